"""Schema of the regression gate's settings (Hydra group ``gate``, files in ``conf/gate/``).

The YAML is merged onto these dataclasses, so a misspelt key or a wrong type is an error rather
than a silently ignored threshold. Kept apart from :mod:`bench.config`: the gate reads a
benchmark's results, it is not part of one.

Metric kinds and how each one's threshold reads:

=============  ===============================  ==========================================
kind           metrics                          threshold
=============  ===============================  ==========================================
throughput     images/s, rows/s, QPS            relative drop (0.30 = 30 % fewer per second)
latency        p50/p95/p99 ms                   relative increase (0.40 = 40 % slower)
build          index build/load, flush seconds  relative increase
quality        recall, precision, mAP, overlap  absolute drop (0.01 = one point of recall)
parity         Keras vs ONNX max rel diff       absolute increase
=============  ===============================  ==========================================

quality and parity are *deterministic* (seeded weights, generated sample, exact same vectors),
so they are compared against the committed baseline with tight tolerances. The other kinds are
*timings*: only meaningful against a baseline measured in the same job (``--against REV``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional, Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench import PROJECT_ROOT
from bench.errors import BenchError

GATE_DIR = PROJECT_ROOT / "conf" / "gate"
KINDS = ("throughput", "latency", "build", "quality", "parity")
DETERMINISTIC_KINDS = ("quality", "parity")


@dataclass
class Thresholds:
    throughput: float = 0.30
    latency: float = 0.40
    build: float = 0.50
    quality: float = 0.01
    parity: float = 1.0e-5


@dataclass
class Floors:
    """Absolute changes too small to call a regression whatever their ratio (sub-ms timings jitter)."""
    latency_ms: float = 0.1
    build_s: float = 0.05


@dataclass
class ExtraRuns:
    """Another deterministic sweep beside the main one: its own experiment, indexes and overrides (e.g. the
    trained Fashion-MNIST model on real images), compared against the same baseline folder."""
    experiment: str = "smoke"
    indexes: list[str] = field(default_factory=lambda: ["FLAT"])
    overrides: list[str] = field(default_factory=list)


@dataclass
class GateRuns:
    """What ``python -m bench.gate`` runs and compares against the committed baseline."""
    experiment: str = "smoke"
    indexes: list[str] = field(default_factory=lambda: ["FLAT", "IVF_FLAT", "HNSW"])
    overrides: list[str] = field(default_factory=list)  # extra `python -m bench` overrides
    baseline_dir: str = "reports/baseline"
    # Extra runs of the same model at these model.precision values (e.g. [int8]), on variant_indexes:
    # their fidelity to FP32 is deterministic too, so a change that breaks quantization fails the gate.
    variants: list[str] = field(default_factory=list)
    variant_indexes: list[str] = field(default_factory=lambda: ["FLAT"])
    extra: list[ExtraRuns] = field(default_factory=list)


@dataclass
class AgainstRuns:
    """What ``python -m bench.compare --against REV`` runs on both revisions, interleaved."""
    experiment: str = "smoke"
    indexes: list[str] = field(default_factory=lambda: ["IVF_FLAT"])
    # 4x the smoke sample: 16 queries give percentiles that are mostly noise.
    overrides: list[str] = field(default_factory=lambda: ["dataset.num_images=320", "dataset.num_queries=64"])
    pairs: int = 4
    # One untimed run per side first: it converts the model (TensorFlow in the process slows
    # onnxruntime) and draws the sample, so no timed run pays for either.
    warmup: bool = True
    # Both sides use the checkout's models/ ONNX cache instead of converting their own: faster,
    # and the same ONNX file on both sides, but a change to the conversion itself goes unmeasured.
    share_models: bool = False


@dataclass
class GateConfig:
    thresholds: Thresholds = field(default_factory=Thresholds)
    floors: Floors = field(default_factory=Floors)
    # Metric name -> threshold, overriding its kind's (e.g. {"QPS@2thr": 0.5} for a jumpy one).
    per_metric: dict[str, float] = field(default_factory=dict)
    # Kinds whose metrics fail the gate when the current side lacks them. Timings may be absent for
    # honest reasons (an embedding cache hit measures nothing); a missing recall means a lost point.
    fail_on_missing: list[str] = field(default_factory=lambda: list(DETERMINISTIC_KINDS))
    # INT8 rows when the current CPU class differs from the baseline's (bench.gate.cpu_class): metric family
    # (the name without @K or point, e.g. "fidelity overlap") -> the lowest value that is not broken.
    cpu_class_floors: dict[str, float] = field(default_factory=dict)
    gate: GateRuns = field(default_factory=GateRuns)
    against: AgainstRuns = field(default_factory=AgainstRuns)


def register_gate_config() -> None:
    ConfigStore.instance().store(group="gate", name="gate_schema", node=GateConfig)


def gate_file(spec: Optional[str]) -> Path:
    """A gate name ("default" -> conf/gate/default.yaml) or a path to a YAML file."""
    spec = spec or "default"
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return GATE_DIR / f"{spec}.yaml"


def load_gate_config(spec: Optional[str] = None, overrides: Sequence[str] = ()) -> GateConfig:
    """The gate settings: schema defaults, then the YAML file, then ``key=value`` overrides.

    Overrides may carry Hydra's group prefix (``gate.thresholds.latency=0.5``) or not.
    """
    path = gate_file(spec)
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in GATE_DIR.glob("*.yaml")))
        raise BenchError(f"gate config {spec!r} not found ({path}): use one of {names} or a path to a YAML file")
    dotlist = [_without_group_prefix(o) for o in overrides]
    bad = [o for o in dotlist if "=" not in o]
    if bad:
        raise BenchError(f"gate override {bad[0]!r} must look like key=value, e.g. thresholds.latency=0.5")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(GateConfig), OmegaConf.load(path),
                                 OmegaConf.from_dotlist(dotlist))
        cfg: GateConfig = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        first = str(err).splitlines()[0]
        where = f"{err.full_key}: " if getattr(err, "full_key", None) else ""
        raise BenchError(f"gate config {path}: {where}{first} (keys: see bench/gate/config.py)") from None
    _check(cfg)
    return cfg


def _without_group_prefix(override: str) -> str:
    """``gate.thresholds.latency=1`` -> ``thresholds.latency=1``; ``gate.indexes=[..]`` is the
    ``gate:`` section's key and stays as it is."""
    if override.startswith("gate."):
        rest = override[len("gate."):]
        if re.split(r"[.=]", rest, maxsplit=1)[0] in {f.name for f in fields(GateConfig)}:
            return rest
    return override


def _check(cfg: GateConfig) -> None:
    for kind in KINDS:
        if getattr(cfg.thresholds, kind) < 0:
            raise BenchError(f"gate thresholds.{kind}={getattr(cfg.thresholds, kind)} must be >= 0")
    unknown = sorted(set(cfg.fail_on_missing) - set(KINDS))
    if unknown:
        raise BenchError(f"gate fail_on_missing has unknown kind(s) {unknown}: choose from {', '.join(KINDS)}")
    bad_floors = {name: value for name, value in cfg.cpu_class_floors.items() if not 0 <= value <= 1}
    if bad_floors:
        raise BenchError(f"gate cpu_class_floors {bad_floors} must lie between 0 and 1 (they bound quality metrics)")
    if cfg.against.pairs < 1:
        raise BenchError(f"gate against.pairs={cfg.against.pairs} must be at least 1")
    if not cfg.gate.indexes or not cfg.against.indexes:
        raise BenchError("gate gate.indexes and against.indexes must each list at least one index type")
    if any(not extra.indexes for extra in cfg.gate.extra):
        raise BenchError("gate gate.extra: each entry needs at least one index type in indexes")
    if cfg.gate.variants and not cfg.gate.variant_indexes:
        raise BenchError("gate gate.variants needs at least one index type in gate.variant_indexes")
