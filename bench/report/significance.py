"""Intervals and ≈ marks for the tables: formatting a figure's interval (read through its model in
bench.schema: ``interval(name)``, ``qps_range(threads)``) and saying whether a difference is within the noise
(the statistics themselves: bench.measure.statistics).

A figure without an interval (a file written before intervals existed, a single trial) gets an empty cell,
never a ≈ or a winner it cannot back.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from bench.measure.statistics import APPROX, Interval, min_samples_for_percentile, significantly_different
from bench.schema.sections import Latency

BEST = "best"


def fmt_interval(interval: Optional[Interval | Sequence[float]], digits: int = 4) -> str:
    """``low–high`` with ``digits`` significant digits; empty without an interval."""
    if interval is None:
        return ""
    low, high = interval
    return f"{low:.{digits}g}–{high:.{digits}g}"


def percentile_cell(latency: Latency, percentile: int) -> Any:
    """A latency percentile in ms, or ``n<368`` where the samples cannot support it. Files written before
    percentiles were withheld held a number either way; their ``count`` says whether it was one."""
    value = latency.percentile(percentile)
    needed = latency.min_samples.get(f"p{percentile}") or min_samples_for_percentile(percentile)
    count = latency.count
    if count is not None and count < needed:
        return f"n<{needed}"
    # Four significant digits here: a column mixing numbers and "n<368" is text to tabulate, which would
    # otherwise print every digit of the float.
    return float(f"{value:.4g}") if value is not None else None


def marks_vs_best(values: Sequence[Optional[float]], intervals: Sequence[Optional[Interval]],
                  higher_is_better: bool = True) -> list[str]:
    """For each value: ``best``, ``≈ best`` (its interval overlaps the best's), or its significant
    difference from the best in percent. Empty cells where a value or an interval is missing."""
    present = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(present) < 2:  # nothing to compare with
        return [""] * len(values)
    pick = max if higher_is_better else min
    best = pick(present, key=lambda i: values[i])
    marks = []
    for i, value in enumerate(values):
        if i not in present or intervals[i] is None or intervals[best] is None:
            marks.append("")
        elif i == best:
            marks.append(BEST)
        elif not significantly_different(intervals[i], intervals[best]):
            marks.append(f"{APPROX} {BEST}")
        else:
            marks.append(f"{(value / values[best] - 1.0) * 100:+.0f}%" if values[best] else "")
    return marks
