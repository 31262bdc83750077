"""Latency summaries, defined once so every table reports the same percentiles.

A percentile is reported only where the samples support it: with fewer samples than its
distribution-free 95 % interval needs (bench.measure.statistics.min_samples_for_percentile: p95 needs 72,
p99 368), ``pNN_ms`` is None, never a number that is really the maximum by another name.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.measure.statistics import ci_key, min_samples_for_percentile, percentile_interval

PERCENTILES = (50, 95, 99)


def summarize_latencies(seconds: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Percentiles of per-call wall times, in milliseconds, each with its order-statistic interval
    (``p99_ms_ci95``) and None where ``count`` is below ``min_samples[pNN]``."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    summary: dict[str, Any] = {"count": int(ms.size), "mean_ms": float(ms.mean()) if ms.size else None}
    for p in PERCENTILES:
        key = f"p{p}_ms"
        supported = ms.size >= min_samples_for_percentile(p, confidence)
        summary[key] = float(np.percentile(ms, p)) if supported else None
        summary[ci_key(key, confidence)] = percentile_interval(ms, p, confidence) if supported else None
    summary["max_ms"] = float(ms.max()) if ms.size else None
    summary["min_samples"] = {f"p{p}": min_samples_for_percentile(p, confidence) for p in PERCENTILES}
    return summary
