"""Compare benchmark results, baseline against current, metric by metric, with a verdict each.

(``python -m bench.compare`` is its command line: :mod:`bench.gate.compare_command`.)

BASELINE and CURRENT are results.json files or folders holding runs (a run directory, a sweep,
``reports/baseline/``). The second form measures the timings the only way a shared CI runner
allows: it runs revision REV and the working tree in the same job, interleaved, and judges each
timing by the median of the per-pair ratios (see :mod:`bench.gate.revisions`).

The work is split by job: :mod:`bench.gate.metrics` reads the named metrics out of a run,
:mod:`bench.gate.matching` pairs runs, search points and metrics across the two sides,
:mod:`bench.gate.judge` gives each pair its verdict, and :mod:`bench.gate.table` is the outcome with its
Markdown and JSON. A current run that failed counts as a regression of its ``run status``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

from bench.errors import BenchError
from bench.gate.config import GateConfig, load_gate_config
from bench.gate.judge import judge, judge_floor
from bench.gate.matching import Observation, observe
from bench.gate.metrics import STATUS, Metric
from bench.gate.table import Comparison
from bench.results import Results, as_results, find_runs, read_results

ONLY_CHOICES = ("all", "deterministic", "timing")


def _selected(metric: Metric, only: str) -> bool:
    return only == "all" or metric == STATUS or (only == "deterministic") == metric.deterministic


def compare_pairs(pairs: Sequence[tuple[Sequence[Results | dict], Sequence[Results | dict]]],
                  cfg: Optional[GateConfig] = None, *,
                  only: str = "all", baseline: str = "", current: str = "") -> Comparison:
    """Compare one or more (baseline results, current results) pairs of the same runs.

    One pair: a plain comparison. Several: interleaved repeats, judged on the median ratio. Results may be
    typed or results.json documents (validated here).
    """
    if only not in ONLY_CHOICES:
        raise BenchError(f"--only={only!r}: choose one of {', '.join(ONLY_CHOICES)}")
    if not pairs:
        raise BenchError("nothing to compare: no pairs of runs")
    cfg = _cfg(cfg)
    grouped: dict[tuple[str, str, str], list[Observation]] = {}
    per_pair: list[dict[tuple[str, str, str], Observation]] = []
    notes: list[str] = []
    for base_results, cur_results in pairs:
        observations, pair_notes = observe([as_results(r) for r in base_results],
                                           [as_results(r) for r in cur_results])
        notes += [n for n in pair_notes if n not in notes]
        keyed = {}
        for obs in observations:
            if not _selected(obs.metric, only):
                continue
            key = (obs.run, obs.point, obs.metric.name)
            keyed[key] = obs
            grouped.setdefault(key, []).append(obs)
        per_pair.append(keyed)
    # Table order: runs as first seen (baseline's order), then the sweep's points, then metrics.
    run_order = list(dict.fromkeys(key[0] for key in grouped))
    rows = []
    for key, observations in sorted(grouped.items(), key=lambda kv: (run_order.index(kv[0][0]), kv[1][0].order)):
        first = observations[0]
        aligned = [pair.get(key) for pair in per_pair]
        baselines, currents = [o.baseline if o else None for o in aligned], [o.current if o else None for o in aligned]
        if first.cpu_classes is not None:
            rows.append(judge_floor(first.metric, baselines, currents, cfg, first.cpu_classes, run=first.run,
                                    point=first.point, note=first.note))
            continue
        rows.append(judge(first.metric, baselines, currents, cfg, run=first.run, point=first.point,
                          note=first.note, trial_noise=[n for o in aligned if o for n in o.noise]))
    return Comparison(rows, notes, baseline, current, "interleaved" if len(pairs) > 1 else "single")


def _cfg(cfg: Optional[GateConfig]) -> GateConfig:
    return cfg if cfg is not None else load_gate_config()


def load_side(paths: Iterable[Path]) -> list[Results]:
    """Every run's results under the given files or folders."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise BenchError(f"{path} does not exist: pass a results.json file or a folder of runs")
    runs = find_runs(paths)
    if not runs:
        raise BenchError(f"no results.json under {', '.join(map(str, paths))}: pass a run or sweep folder")
    results = []
    for run in runs:
        try:
            results.append(read_results(run))
        except (OSError, ValueError) as err:
            raise BenchError(f"cannot read {run}/results.json ({err})") from None
    return results


def compare_paths(baseline: Sequence[Path], current: Sequence[Path], cfg: Optional[GateConfig] = None, *,
                  only: str = "all") -> Comparison:
    """Compare the runs under ``baseline`` with those under ``current``."""
    return compare_pairs([(load_side(baseline), load_side(current))], _cfg(cfg), only=only,
                         baseline=", ".join(map(str, baseline)), current=", ".join(map(str, current)))
