"""Workloads beyond the plain sweep (``workload=`` in conf/workload/): filtered and streaming search, and
the query path served under load (serve/).

The ideas follow VectorDBBench 1.0 (zilliztech/VectorDBBench): its label-filter cases (one label
value per target share of the corpus, ground truth computed within that share) and its read-write
cases (a fixed insert rate while searching, results per stage of the insert). What differs here:
labels are the images' own COCO categories, so selectivity comes from the data, not from a
synthetic label column; and every phase is bounded in wall time.
"""
from __future__ import annotations

from typing import Iterable

from bench.config import WorkloadConfig
from bench.errors import BenchError

KINDS = ("none", "filtered", "streaming", "serve")


def validate(cfg: WorkloadConfig, search_points: int) -> None:
    """Value checks that the structured config's types cannot express, before any work starts."""
    if cfg.kind not in KINDS:
        raise BenchError(f"workload.kind={cfg.kind!r} is unknown: choose one of {', '.join(KINDS)} (conf/workload/)")
    if cfg.kind == "filtered":
        if not cfg.selectivities or any(not 0 < s <= 1 for s in cfg.selectivities):
            raise BenchError(f"workload.selectivities={list(cfg.selectivities)} must be shares of the corpus in (0, 1]")
        if cfg.selectivity_tolerance < 1:
            raise BenchError(f"workload.selectivity_tolerance={cfg.selectivity_tolerance} must be a factor >= 1")
    if cfg.kind == "streaming":
        for name in ("insert_rows_per_s", "search_qps", "max_insert_s", "freshness_timeout_s", "freshness_poll_s"):
            if getattr(cfg, name) <= 0:
                raise BenchError(f"workload.{name}={getattr(cfg, name)} must be positive")
        for name in ("insert_batch_size",):
            if getattr(cfg, name) <= 0:
                raise BenchError(f"workload.{name}={getattr(cfg, name)} must be a positive integer")
        if cfg.window_s < 0 or cfg.freshness_samples < 0:
            raise BenchError("workload.window_s and workload.freshness_samples must not be negative")
        if not -search_points <= cfg.search_point < search_points:
            raise BenchError(f"workload.search_point={cfg.search_point} is not a point of index.search "
                             f"({search_points} points)")


def check_labels(cfg: WorkloadConfig, dataset_name: str, labels: Iterable[Iterable[int]]) -> None:
    """A filter needs labels: a dataset without any is a one-line error, not a table of empty buckets."""
    if cfg.kind == "filtered" and not any(any(True for _ in lab) for lab in labels):
        raise BenchError(f"workload=filtered needs category labels, but no image of dataset {dataset_name!r} has "
                         "any annotation: use a COCO dataset with instances (or the sample), or workload=none")
