"""The verdict on one metric: ``ok``, ``REGRESSION`` (worse beyond the threshold), ``improved`` (better beyond
it), ``missing`` (in the baseline, not in the current results), ``new`` (the other way round), or ``not
compared`` (an INT8 row from another CPU class with no floor set). A regression fails the comparison, and so
does a ``missing`` metric of a kind listed in the gate's ``fail_on_missing``; ``new`` never does.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

from bench.gate import cpu_class
from bench.gate.config import GateConfig
from bench.gate.matching import RUN_LEVEL
from bench.gate.metrics import Metric

RELATIVE_KINDS = ("throughput", "latency", "build")
VERDICTS = ("REGRESSION", "missing", "improved", "new", cpu_class.NOT_COMPARED, "ok")
EPSILON = 1e-12  # float slack on absolute thresholds: a drop of exactly the threshold passes


@dataclass
class Row:
    metric: str
    run: str
    point: str
    kind: str
    deterministic: bool
    baseline: Optional[float]
    current: Optional[float]
    change: Optional[float]  # relative kinds: median current/baseline ratio - 1; absolute: difference
    threshold: float
    verdict: str
    fails: bool
    ratio_min: Optional[float] = None
    ratio_max: Optional[float] = None
    noise: Optional[float] = None  # interleaved runs: the wider side's max/min - 1
    pairs: int = 1
    note: str = ""
    higher_is_better: bool = True
    # Judged against this absolute floor instead of the baseline (an INT8 row from another CPU class)
    floor: Optional[float] = None


def _spread(values: Sequence[float]) -> float:
    """max/min of positive values (1.0 = all equal)."""
    low = min(values)
    return max(values) / low if low > 0 else math.inf


def _threshold(metric: Metric, cfg: GateConfig) -> float:
    return float(cfg.per_metric.get(metric.name, getattr(cfg.thresholds, metric.kind)))


def _floor(metric: Metric, cfg: GateConfig) -> float:
    return {"latency": cfg.floors.latency_ms, "build": cfg.floors.build_s}.get(metric.kind, 0.0)


def judge(metric: Metric, baselines: Sequence[Optional[float]], currents: Sequence[Optional[float]],
          cfg: GateConfig, *, run: str = "", point: str = RUN_LEVEL, note: str = "",
          trial_noise: Sequence[Optional[float]] = ()) -> Row:
    """The verdict on one metric from one or more (baseline, current) pairs, index-aligned.

    Relative kinds use the median of the per-pair ratios current/baseline, which cancels drift
    that hits both runs of a pair. With several pairs a regression must (1) exceed, in the median,
    both the threshold and the job's own noise (the larger of the two sides' max/min over their
    repeats), and (2) be seen in every pair (the ratios' spread must not reach "no change"). A noisy
    runner then costs sensitivity, not false alarms. Changes smaller than the kind's floor never count.

    ``trial_noise`` holds each run's own noise from its timing trials (max/min − 1 across search.repeats),
    on either side: the limits widen to the largest, with one pair as with several, so a single comparison
    of two results.json files is judged against the noise both runs measured.
    """
    threshold = _threshold(metric, cfg)
    both = [(b, c) for b, c in zip(baselines, currents) if b is not None and c is not None]
    base_values = [b for b in baselines if b is not None]
    cur_values = [c for c in currents if c is not None]
    row = Row(metric.name, run, point, metric.kind, metric.deterministic,
              statistics.median(base_values) if base_values else None,
              statistics.median(cur_values) if cur_values else None, None, threshold, "ok", False,
              pairs=len(both), note=note, higher_is_better=metric.higher_is_better)
    if not both:
        row.verdict = "missing" if base_values else "new"
        row.fails = row.verdict == "missing" and metric.kind in cfg.fail_on_missing
        return row
    if metric.kind in RELATIVE_KINDS:
        if any(b == 0 for b, _ in both):
            row.note = "; ".join(filter(None, [note, "baseline is 0: no ratio"]))
            return row
        ratios = [c / b for b, c in both]
        median = statistics.median(ratios)
        row.change, row.ratio_min, row.ratio_max = median - 1.0, min(ratios), max(ratios)
        # Ratio limits: below `low` or above `high` is a change. A threshold of 0.30 reads "30 % fewer
        # per second" for a throughput (ratio < 0.70) and "30 % longer" for a time (ratio > 1.30).
        low, high = 1.0 - threshold, 1.0 + threshold
        # The same job's own noise: how far one side's repeats (interleaved pairs, or each run's timing
        # trials) lie apart. A change smaller than that cannot be told from it, so the limits widen to it.
        spreads = [1.0 + n for n in trial_noise if n is not None and math.isfinite(n)]
        if len(both) > 1:
            spreads += [_spread([b for b, _ in both]), _spread([c for _, c in both])]
        if spreads:
            spread = max(spreads)
            row.noise = spread - 1.0
            low, high = min(low, 1.0 / spread), max(high, spread)
        below = median < low and all(r < 1.0 for r in ratios)  # every pair agrees on the direction
        above = median > high and all(r > 1.0 for r in ratios)
        big_enough = abs(row.current - row.baseline) >= _floor(metric, cfg)  # type: ignore[operator]
        if big_enough and (below or above):
            row.verdict = "REGRESSION" if below == metric.higher_is_better else "improved"
    else:
        differences = [c - b for b, c in both]
        row.change = statistics.median(differences)
        worse = -row.change if metric.higher_is_better else row.change
        if worse > threshold + EPSILON:
            row.verdict = "REGRESSION"
        elif -worse > threshold + EPSILON:
            row.verdict = "improved"
    row.fails = row.verdict == "REGRESSION"
    return row


def judge_floor(metric: Metric, baselines: Sequence[Optional[float]], currents: Sequence[Optional[float]],
                cfg: GateConfig, classes: tuple[str, str], *, run: str = "", point: str = RUN_LEVEL,
                note: str = "") -> Row:
    """A CPU-dependent row whose baseline was measured on another CPU class: the current value against the
    family's floor in ``cpu_class_floors`` (a regression below it), or "not compared" where none is set.
    The baseline value is shown, not judged."""
    floor = cfg.cpu_class_floors.get(metric.group)
    cur_values = [c for c in currents if c is not None]
    base_values = [b for b in baselines if b is not None]
    row = Row(metric.name, run, point, metric.kind, metric.deterministic,
              statistics.median(base_values) if base_values else None,
              statistics.median(cur_values) if cur_values else None, None, _threshold(metric, cfg), "ok", False,
              pairs=len(cur_values), note="; ".join(filter(None, [note, cpu_class.floor_note(classes[0], floor)])),
              higher_is_better=metric.higher_is_better, floor=floor)
    if row.current is None:
        row.verdict = "missing" if base_values else "new"
        row.fails = row.verdict == "missing" and metric.kind in cfg.fail_on_missing
    elif floor is None:
        row.verdict = cpu_class.NOT_COMPARED
    elif row.current < floor - EPSILON:
        row.verdict, row.fails = "REGRESSION", True
    if row.current is not None and row.baseline is not None:
        row.change = row.current - row.baseline
    return row
