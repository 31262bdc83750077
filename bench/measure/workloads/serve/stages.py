"""Where each query's time goes: queue wait, decode+preprocess, inference, search, path lookup.

Every completed query adds one row; a batched query carries its batch's stage times (the model call
and the search call serve the whole batch) and its own queue wait (from LoadGen issuing it to its
batch starting). Rows are summarised per load level (one LoadGen test) as p50/p99 per stage, and
kept as CSV beside LoadGen's logs.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from bench.measure.workloads.serve.pipeline import STAGES

ALL_STAGES = ("queue",) + STAGES
COLUMNS = ("issued_at", "queue", *STAGES, "batch_size", "service")


class StageLog:
    """Per-query stage seconds of one LoadGen test, appended from the worker threads."""

    def __init__(self) -> None:
        self._rows: list[tuple[float, ...]] = []
        self._lock = threading.Lock()

    def add_batch(self, issued_at: list[float], started: float, seconds: dict[str, float], finished: float) -> None:
        stage = tuple(seconds.get(s, 0.0) for s in STAGES)
        rows = [(t, started - t, *stage, float(len(issued_at)), finished - started) for t in issued_at]
        with self._lock:
            self._rows.extend(rows)

    def frame(self) -> pd.DataFrame:
        with self._lock:
            return pd.DataFrame(self._rows, columns=list(COLUMNS))

    def summary(self) -> dict[str, Any]:
        """p50/p99/mean milliseconds per stage, the mean batch size and the number of queries."""
        df = self.frame()
        out: dict[str, Any] = {"queries": int(len(df)),
                               "mean_batch_size": float(df["batch_size"].mean()) if len(df) else None}
        for stage in ALL_STAGES:
            ms = df[stage].to_numpy(dtype=np.float64) * 1e3
            out[stage] = {"p50_ms": _pct(ms, 50), "p99_ms": _pct(ms, 99),
                          "mean_ms": float(ms.mean()) if ms.size else None}
        return out

    def write(self, path: Path) -> None:
        self.frame().to_csv(path, index=False, float_format="%.6g")


def _pct(ms: np.ndarray, p: float) -> Optional[float]:
    return float(np.percentile(ms, p)) if ms.size else None


def slowest_stage(summary: dict[str, Any]) -> Optional[str]:
    """The stage with the largest mean time per query, queue wait left out (it is waiting, not work)."""
    means = {s: (summary.get(s) or {}).get("mean_ms") for s in STAGES}
    means = {s: m for s, m in means.items() if m is not None}
    return max(means, key=means.get) if means else None
