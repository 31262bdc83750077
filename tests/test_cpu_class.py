"""INT8 across CPU classes: detection, the collapse diagnosis, and the gate's floor checks.

No session can pick its machine, so the class logic is tested by overriding the *recorded* class
(``BENCH_CPU_CLASS``, set only here): on any class other than the baseline's, the gate checks the
INT8 rows against floors and still compares FP32 rows exactly. Real breakage (a calibration fed the
wrong images) fails on every class.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bench import cpu
from bench.config import register_configs
from bench.data.images import load_rgb
from bench.gate.baseline import check_gate, run_gate_config
from bench.gate.comparison import compare_pairs
from bench.gate.config import load_gate_config
from bench.measure.fidelity import saturation_warning
from bench.models import variants
from bench.results import as_results, load_results, read_results
from bench.runner import run

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "reports" / "baseline"
INT8_BASELINE = BASELINE / "mobilenet_v2-int8_FLAT"
FP32_BASELINE = BASELINE / "mobilenet_v2_FLAT"
CLASSES = ("x86-avx512vnni", "x86-avx2", "x86-amx", "arm64-dotprod", "unknown")


def another_class(than: str) -> str:
    return next(c for c in CLASSES if c != than)


def with_class(result: dict, cpu_class: str) -> dict:
    copied = copy.deepcopy(result)
    copied["provenance"]["hardware"]["cpu_class"] = cpu_class
    return copied


@pytest.fixture(scope="module")
def cfg():
    return load_gate_config()


@pytest.fixture(scope="module")
def int8_baseline() -> dict:
    return load_results(INT8_BASELINE)


# ---------------------------------------------------------------------------------------------
# Detection


@pytest.mark.parametrize("flags, expected", [
    ({"avx2"}, "x86-avx2"),
    ({"avx2", "avx512f"}, "x86-avx512"),
    ({"avx2", "avx512f", "avx512_vnni"}, "x86-avx512vnni"),
    ({"avx2", "avx_vnni"}, "x86-avxvnni"),
    ({"avx2", "avx512f", "avx512_vnni", "amx_int8"}, "x86-amx"),
    (set(), "x86-sse"),
])
def test_x86_classes(flags, expected):
    features = cpu.features_of("x86", flags)
    assert cpu.class_of("x86", features) == expected
    assert cpu.has_int8_dot_product("x86", features) == (expected in ("x86-avx512vnni", "x86-avxvnni", "x86-amx"))


def test_flags_are_read_from_cpuinfo_on_both_architectures(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n\n"
                   "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu.class_of("x86", cpu.features_of("x86", cpu.read_flags(x86))) == "x86-avx512vnni"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp sve\nCPU implementer\t: 0x41\n")
    features = cpu.features_of("arm64", cpu.read_flags(arm))
    assert features == {"asimddp": True, "i8mm": False, "sve": True}
    assert cpu.class_of("arm64", features) == "arm64-dotprod"
    assert cpu.read_flags(tmp_path / "missing") == set()
    assert cpu.architecture("x86_64") == "x86" and cpu.architecture("aarch64") == "arm64"


def test_this_machine_is_recorded_and_an_override_is_marked(monkeypatch):
    monkeypatch.delenv(cpu.OVERRIDE_ENV, raising=False)
    detected = cpu.describe()
    assert detected["cpu_class"] == cpu.detect()["class"] and "cpu_class_override" not in detected
    monkeypatch.setenv(cpu.OVERRIDE_ENV, "arm64-i8mm")
    overridden = cpu.describe()
    assert overridden["cpu_class"] == "arm64-i8mm" and overridden["cpu_class_detected"] == detected["cpu_class"]
    assert overridden["cpu_features"] == detected["cpu_features"]  # the features stay what the CPU has


def test_collapse_is_explained_only_where_the_cpu_explains_it():
    avx2 = {"machine": "x86_64", "cpu_class": "x86-avx2", "int8_dot_product": False}
    off = {"precision": "int8", "reduce_range": False}
    warning = saturation_warning(0.93, off, avx2)
    assert "cosine p1 0.9300 < 0.98" in warning and "x86-avx2" in warning
    assert "model.quant.reduce_range=auto" in warning
    assert saturation_warning(0.99, off, avx2) is None  # no collapse
    assert saturation_warning(0.93, {"precision": "int8", "reduce_range": True}, avx2) is None  # already on
    assert saturation_warning(0.93, off, {**avx2, "int8_dot_product": True}) is None  # VNNI: another cause
    assert saturation_warning(0.93, off, {"machine": "aarch64", "int8_dot_product": True}) is None
    assert saturation_warning(0.0, {"precision": "fp16"}, avx2) is None


# ---------------------------------------------------------------------------------------------
# The gate's rules, on the committed INT8 baseline


def test_same_class_compares_int8_rows_exactly(cfg, int8_baseline):
    worse = copy.deepcopy(int8_baseline)
    worse["fidelity"]["exact"]["overlap_at_k"] -= 0.05  # still far above the floor
    comparison = compare_pairs([([int8_baseline], [worse])], cfg, only="deterministic")
    assert {r.metric for r in comparison.failures} == {"fidelity overlap@10"}
    assert not any("CPU class" in r.note for r in comparison.rows)


@pytest.mark.parametrize("current_class", [c for c in CLASSES if c != "x86-avx2"])
def test_other_class_checks_int8_rows_against_floors(cfg, int8_baseline, current_class):
    baseline_class = as_results(int8_baseline).cpu_class
    current = with_class(int8_baseline, current_class)
    current["fidelity"]["exact"]["overlap_at_k"] -= 0.05  # what another class may well measure
    current["exact"]["precision_at_k"] += 0.04
    comparison = compare_pairs([([int8_baseline], [current])], cfg, only="deterministic")
    if current_class == baseline_class:
        pytest.skip("the committed baseline is of this class")
    assert comparison.passed, comparison.markdown()
    overlap = next(r for r in comparison.rows if r.metric == "fidelity overlap@10")
    assert overlap.verdict == "ok" and overlap.floor == 0.7
    assert f"other CPU class (baseline {baseline_class}): floor check ≥ 0.7" in overlap.note
    precision = next(r for r in comparison.rows if r.metric == "exact precision@10")
    assert precision.verdict == "not compared" and precision.floor is None
    parity = next(r for r in comparison.rows if r.metric == "parity max rel diff")  # FP32 conversion: exact
    assert parity.floor is None and "CPU class" not in parity.note
    assert any("other CPU class" in note for note in comparison.notes)
    # Collapsed fidelity (an AVX2 CPU with reduce_range off) fails the floors on any class.
    collapsed = with_class(int8_baseline, current_class)
    collapsed["fidelity"]["cosine"]["p1"], collapsed["fidelity"]["exact"]["overlap_at_k"] = 0.93, 0.48
    failing = {r.metric for r in compare_pairs([([int8_baseline], [collapsed])], cfg,
                                               only="deterministic").failures}
    assert failing == {"fidelity cosine p1", "fidelity overlap@10"}


def test_fp32_rows_stay_exact_on_another_class(cfg):
    fp32 = load_results(FP32_BASELINE)
    other = with_class(fp32, another_class(as_results(fp32).cpu_class))
    other["search"]["points"][0]["recall_at_k"] -= 0.05
    comparison = compare_pairs([([fp32], [other])], cfg, only="deterministic")
    assert [r.metric for r in comparison.failures] == ["recall@10"]
    assert all(r.floor is None for r in comparison.rows)


# ---------------------------------------------------------------------------------------------
# End to end


def test_gate_on_an_overridden_class_gives_floor_checks_not_failures(cfg, tmp_path, monkeypatch):
    """The gate's FLAT runs (FP32 and INT8) recorded as another class: INT8 rows floor-checked, all pass."""
    baseline_class = read_results(INT8_BASELINE).cpu_class
    monkeypatch.setenv(cpu.OVERRIDE_ENV, another_class(baseline_class))
    runs = run_gate_config(load_gate_config(overrides=["gate.indexes=[FLAT]"]), tmp_path / "work")
    baseline = tmp_path / "baseline"
    for run_dir in (FP32_BASELINE, INT8_BASELINE):
        shutil.copytree(run_dir, baseline / run_dir.name)
    comparison = check_gate(cfg, runs, baseline)
    assert comparison.passed, comparison.markdown()
    assert {load_results(r)["provenance"]["hardware"]["cpu_class"] for r in runs} == {another_class(baseline_class)}
    int8_rows = [r for r in comparison.rows if r.run == "mobilenet_v2-int8/FLAT" and r.kind == "quality"]
    assert int8_rows and all(f"other CPU class (baseline {baseline_class})" in r.note for r in int8_rows)
    assert sum(r.floor is not None for r in int8_rows) == 5  # cosine min and p1, overlap, RBO, recall vs FP32
    fp32_rows = [r for r in comparison.rows if r.run == "mobilenet_v2/FLAT"]
    assert fp32_rows and all(r.verdict == "ok" and r.floor is None for r in fp32_rows)


def _raw_pixels(parent, records):
    """A broken calibration reader: the images without the model's preprocessing (0-255, not -1..1)."""
    images = np.stack([load_rgb(record.path, parent.input_size) for record in records])
    return [images[i:i + variants.CALIBRATION_BATCH].astype(np.float32)
            for i in range(0, len(images), variants.CALIBRATION_BATCH)]


def test_calibration_on_the_wrong_images_fails_on_every_class(cfg, tmp_path, monkeypatch):
    # Its own caches: a broken variant must never be a cache hit for another test.
    register_configs()
    overrides = ["experiment=smoke", "index=FLAT", "model.precision=int8", f"cache_dir={tmp_path / 'models'}",
                 f"embeddings_dir={tmp_path / 'embeddings'}", f"store.uri={tmp_path / 'lite.db'}",
                 f"dataset.root={tmp_path / 'sample'}"]
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        typed = OmegaConf.to_object(compose("config", overrides=overrides))
    monkeypatch.setattr(variants, "_calibration_batches", _raw_pixels)
    broken = run(typed, tmp_path / "run").data
    baseline = load_results(INT8_BASELINE)
    for current_class in CLASSES:
        comparison = compare_pairs([([baseline], [with_class(broken, current_class)])], cfg, only="deterministic")
        failing = {r.metric for r in comparison.failures}
        assert {"fidelity cosine p1", "fidelity overlap@10"} <= failing, (current_class, comparison.markdown())
