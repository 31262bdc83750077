"""Latency summaries, defined once so every table reports the same percentiles."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def summarize_latencies(seconds: Sequence[float]) -> dict[str, float]:
    """Percentiles of per-call wall times, in milliseconds."""
    if len(seconds) == 0:
        return {"count": 0, "mean_ms": float("nan"), "p50_ms": float("nan"), "p95_ms": float("nan"),
                "p99_ms": float("nan"), "max_ms": float("nan")}
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"count": int(ms.size), "mean_ms": float(ms.mean()), "p50_ms": float(p50),
            "p95_ms": float(p95), "p99_ms": float(p99), "max_ms": float(ms.max())}
