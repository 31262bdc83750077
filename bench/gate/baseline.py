"""`python -m bench.gate`: the CI regression gate on the deterministic metrics.

Runs the gate's small config (``conf/gate/default.yaml``: the smoke experiment on FLAT, IVF_FLAT
and HNSW, its INT8 variant, and extra runs such as the trained Fashion-MNIST CNN) into a scratch
folder and compares its recall, precision, mAP and parity with the baseline committed under
``reports/baseline/``. Those numbers are exactly reproducible (seeded random weights or a
committed model file, a generated sample or fixed real images, fresh embeddings), so the tolerances are tight and the gate
does not depend on how busy the runner is. Timings are not judged here: a committed timing
from another machine means nothing; ``python -m bench.compare --against REV`` measures them.

    python -m bench.gate                      # compare; exit 1 on a regression
    python -m bench.gate --update-baseline    # re-measure and rewrite reports/baseline/ (on purpose)

The ONNX model comes from the checkout's ``models/`` cache (converted on first use); the
sample, embeddings and Milvus Lite database are made fresh in the scratch folder.
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from bench.errors import BenchError
from bench.gate.comparison import compare_pairs, load_side
from bench.gate.table import Comparison
from bench.gate.config import GateConfig, load_gate_config
from bench.gate.revisions import REPO, bench_overrides, run_bench
from bench.io import safe_name
from bench.results import RESULTS_FILE

# Variant runs' folders name the precision too ("mobilenet_v2-int8_FLAT"): baseline folders are run names.
VARIANT_SUBDIR = ["hydra.sweep.subdir=${hydra.job.num}_${model.name}-${model.precision}_${index.type}"]


def run_gate_config(cfg: GateConfig, workdir: Path, extra_overrides: Sequence[str] = ()) -> list[Path]:
    """The gate's runs, everything but the ONNX cache inside ``workdir``; returns the run folders."""
    spec = cfg.gate
    args = bench_overrides(workdir, experiment=spec.experiment, indexes=spec.indexes,
                           overrides=[*spec.overrides, *extra_overrides], data_dir=workdir / "sample")
    runs = run_bench(REPO, workdir, args)
    if spec.variants:  # a sweep of its own (not every index x precision), on the same sample
        variant_dir = workdir / "variants"
        args = bench_overrides(variant_dir, experiment=spec.experiment, indexes=spec.variant_indexes,
                               overrides=[*spec.overrides, f"model.precision={','.join(spec.variants)}",
                                          *VARIANT_SUBDIR, *extra_overrides], data_dir=workdir / "sample")
        runs += run_bench(REPO, variant_dir, args)
    for number, extra in enumerate(spec.extra):  # their own data: dataset.root comes from their overrides
        extra_dir = workdir / f"extra{number}"
        args = bench_overrides(extra_dir, experiment=extra.experiment, indexes=extra.indexes,
                               overrides=[*extra.overrides, *extra_overrides])
        runs += run_bench(REPO, extra_dir, args)
    return runs


def baseline_path(cfg: GateConfig) -> Path:
    path = Path(cfg.gate.baseline_dir)
    return path if path.is_absolute() else REPO / path


def check_gate(cfg: GateConfig, runs: Sequence[Path], baseline: Path) -> Comparison:
    """The deterministic metrics of ``runs`` against the committed baseline."""
    if not baseline.is_dir() or not any(baseline.rglob(RESULTS_FILE)):
        raise BenchError(f"no baseline results under {baseline}: create it with `make baseline` "
                         "(python -m bench.gate --update-baseline) and commit it")
    return compare_pairs([(load_side([baseline]), load_side(runs))], cfg, only="deterministic",
                         baseline=_relative(baseline), current="this tree (fresh smoke runs)")


def write_baseline(runs: Sequence[Path], baseline: Path) -> list[Path]:
    """Replace the baseline's runs with these runs' results.json files (nothing else is kept)."""
    results = load_side(runs)
    failed = [f"{r.model_name}: {r.error}" for r in results if r.status != "ok"]
    if failed:
        raise BenchError(f"not writing a baseline from failed runs ({'; '.join(failed)})")
    baseline.mkdir(parents=True, exist_ok=True)
    for old in sorted({p.parent for p in baseline.rglob(RESULTS_FILE)}):
        shutil.rmtree(old)
    written = []
    for run in runs:
        # Sweep folders are "<job number>_<model>_<index>"; the number is an accident of order.
        target = baseline / re.sub(r"^\d+_", "", run.name)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / RESULTS_FILE, target / RESULTS_FILE)
        written.append(target / RESULTS_FILE)
    return written


def machine_key() -> str:
    """A folder name for pytest-benchmark's saved runs: CPU model and core count, OS, Python.

    pytest-benchmark keys its storage by OS and Python version only, so a laptop's numbers would
    be compared with a CI runner's. ``make benchmarks`` stores under this key instead.
    """
    from bench.provenance import hardware

    hw = hardware()
    # The CPU class too: one model name ("AMD EPYC") covers machines with and without AVX-512.
    text = (f"{hw['cpu']}-{hw['cpu_class']}-{hw['cores']}c-{platform.system()}-"
            f"py{'.'.join(platform.python_version_tuple()[:2])}")
    return safe_name(text, keep=".").strip("_")


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__.split("\n\n")[0])
    p.add_argument("--gate", metavar="NAME|PATH", help="gate settings: conf/gate/NAME.yaml or a YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one gate setting, e.g. --set gate.indexes=[FLAT] (repeatable)")
    p.add_argument("--baseline", type=Path, help="compare against this folder instead of gate.baseline_dir")
    p.add_argument("--out", type=Path, default=REPO / "reports" / "gate",
                   help="where gate.md and gate.json go (default: reports/gate)")
    p.add_argument("--update-baseline", action="store_true",
                   help="re-measure and rewrite the baseline instead of comparing (then commit it)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder with the runs")
    p.add_argument("--print-machine-key", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("bench_overrides", nargs="*", metavar="OVERRIDE",
                   help="extra `python -m bench` overrides for the runs (to try a change by hand)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.print_machine_key:
        print(machine_key())
        return 0
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    try:
        cfg = load_gate_config(args.gate, args.overrides)
        baseline = args.baseline or baseline_path(cfg)
        print(f"gate: {cfg.gate.experiment} on {', '.join(cfg.gate.indexes)} in {workdir}", file=sys.stderr,
              flush=True)
        runs = run_gate_config(cfg, workdir, args.bench_overrides)
        if args.update_baseline:
            written = write_baseline(runs, baseline)
            print(f"baseline rewritten ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC): "
                  + ", ".join(_relative(p) for p in written))
            print("review the change (git diff --stat reports/baseline) and commit it with the change that "
                  "explains it")
            return 0
        comparison = check_gate(cfg, runs, baseline)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept the runs in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(comparison.markdown())
    md, js = comparison.write(args.out, stem="gate")
    print(f"{comparison.summary()} ({time.perf_counter() - started:.0f} s); table: {_relative(md)}, {_relative(js)}")
    return comparison.exit_code
