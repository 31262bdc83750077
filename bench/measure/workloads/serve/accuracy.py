"""Is the service the system the rest of the report measures? LoadGen's accuracy mode issues every query
once and logs each response; here the served top-K of each query image is compared with the offline
search of the same point (the sweep's own code, on the cached embedding of the same image).

The served embedding is computed at another batch size than the cached one, which can change its last
bits, so two results whose distances differ by at most ``tolerance`` may trade places: such swaps are
counted, not called mismatches. End-to-end recall is against exact search.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure.evaluate import recall_at_k
from bench.measure.workloads.serve.pipeline import unpack


def read_accuracy_log(path: Path, num_samples: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, distances, answered) per sample index from LoadGen's mlperf_log_accuracy.json."""
    ids = np.full((num_samples, k), -1, dtype=np.int64)
    distances = np.full((num_samples, k), np.nan, dtype=np.float32)
    answered = np.zeros(num_samples, dtype=bool)
    for entry in json.loads(path.read_text() or "[]"):
        payload = bytes.fromhex(entry["data"])
        if len(payload) < 12 * k:
            continue  # completed empty: drained or undecodable
        i = int(entry["qsl_idx"])
        ids[i], distances[i] = unpack(payload, k)
        answered[i] = True
    return ids, distances, answered


def compare(served_ids: np.ndarray, served_distances: np.ndarray, answered: np.ndarray, offline_ids: np.ndarray,
            offline_distances: np.ndarray, exact_ids: np.ndarray, k: int, tolerance: float) -> dict[str, Any]:
    """Row by row: identical, equal up to swaps of near-equal distances (counted), or a mismatch."""
    same = served_ids == offline_ids
    near = np.abs(served_distances.astype(np.float64) - offline_distances.astype(np.float64)) <= tolerance
    identical = answered & same.all(axis=1)
    swapped_rows = answered & ~identical & (same | near).all(axis=1)
    mismatched = answered & ~(identical | swapped_rows)
    diff = np.abs(served_distances[answered].astype(np.float64) - offline_distances[answered].astype(np.float64))
    return {
        "queries": int(answered.size), "answered": int(answered.sum()),
        "identical": int(identical.sum()), "equal_up_to_swaps": int(swapped_rows.sum()),
        "swapped_positions": int((~same & near & swapped_rows[:, None]).sum()), "mismatched": int(mismatched.sum()),
        "mismatched_queries": [int(i) for i in np.flatnonzero(mismatched)[:20]],
        "equal": bool(answered.all() and not mismatched.any()), "swap_tolerance": tolerance,
        "max_distance_diff": float(np.nanmax(diff)) if diff.size and np.isfinite(diff).any() else None,
        "recall_at_k_vs_exact": recall_at_k(served_ids[answered], exact_ids[answered], k) if answered.any() else None,
        "offline_recall_at_k_vs_exact": recall_at_k(offline_ids, exact_ids, k),
    }
