"""Sections that a workload adds (bench/measure/workloads/): ``filtered``, ``streaming`` and ``serve``.

A new workload declares its section here and names it in :data:`WORKLOAD_SECTIONS`; the top level of
results.json accepts no other. The serve workload publishes its section while it runs (after each load
level), so every field of it may still be missing when a run stops early.
"""
from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from bench.schema.base import Section
from bench.schema.sections import Latency, SearchPoint

# -------------------------------------------------------------------------------------------------
# workload=filtered: search restricted to one category, per selectivity bucket


class FilteredPoint(SearchPoint):
    results_outside_filter: int = 0


class Bucket(Section):
    target: float = Field(description="the selectivity asked for")
    reached: bool
    category_name: Optional[str] = None
    selectivity: Optional[float] = None
    passing_rows: Optional[int] = None
    note: str = ""
    points: list[FilteredPoint] = Field(default_factory=list)


class FilteredSection(Section):
    field: str = "category_ids"
    top_k: int
    tolerance: Optional[float] = None
    category_selectivity: dict[str, float] = Field(default_factory=dict)
    flat_self_check: Optional[str] = None
    buckets: list[Bucket] = Field(default_factory=list)


# -------------------------------------------------------------------------------------------------
# workload=streaming: half the corpus arrives while searching


class StreamingInsert(Section):
    rows_asked: int
    rows_inserted: int
    rows_asked_per_s: Optional[float] = None
    rows_reached_per_s: Optional[float] = None
    seconds: Optional[float] = None
    rows_inserted_after_deadline: Optional[int] = None


class Window(Section):
    phase: str = Field(description="before, during or after the inserts")
    start_s: float
    end_s: float
    latency: Latency
    search_qps_reached: Optional[float] = None


class Freshness(Section):
    probes: int
    seen: int
    p50_s: Optional[float] = None
    max_s: Optional[float] = None


class Timeline(Section):
    t_s: list[float] = Field(default_factory=list)
    latency_ms: list[float] = Field(default_factory=list)
    insert_start_s: Optional[float] = None
    insert_end_s: Optional[float] = None


class StreamingSection(Section):
    search_point: str
    initial_rows: int
    insert: StreamingInsert
    search_qps_asked: Optional[float] = None
    windows: list[Window] = Field(default_factory=list)
    freshness: Freshness
    recall_at_end: Optional[float] = None
    timeline: Timeline = Field(default_factory=Timeline)


# -------------------------------------------------------------------------------------------------
# workload=serve: the query path as one service under MLPerf LoadGen


class ServeLevel(Section):
    """One LoadGen test (a load level) with its verdict."""
    scenario: str = Field(description="SingleStream, Server or Offline")
    verdict: str = Field(description="VALID, INVALID or interrupted")
    valid: Optional[bool] = None
    target_qps: Optional[float] = None
    completed_qps: Optional[float] = None
    seconds: Optional[float] = None
    queries: Optional[int] = None
    latency_ms: dict[str, Optional[float]] = Field(default_factory=dict, description="p50, p90, p99 ...")
    early_stopping: Optional[str] = None
    stages: dict[str, Any] = Field(default_factory=dict, description="stage -> p50_ms, p99_ms, mean_ms")


class PeakProbe(Section):
    qps: float
    verdict: str
    p99_ms: Optional[float] = None


class Peak(Section):
    reached: bool
    qps: Optional[float] = None
    not_reached_at_qps: Optional[float] = None
    probes: list[PeakProbe] = Field(default_factory=list)


class Accuracy(Section):
    queries: int
    identical: int
    equal_up_to_swaps: int
    swapped_positions: int
    mismatched: int
    recall_at_k_vs_exact: Optional[float] = None


class Calibration(Section):
    null_sut_qps: Optional[float] = None
    client_limited: Optional[bool] = None


class ServedPoint(Section):
    """The search point the pipeline serves, and how it was chosen."""
    label: Optional[str] = None
    params: dict[str, Any] = Field(default_factory=dict)
    chosen_by: Optional[str] = None
    sweep_recall_at_k: Optional[float] = None


class ServeSection(Section):
    search_point: ServedPoint = Field(default_factory=ServedPoint)
    batching: Optional[str] = None
    latency_bound_ms: Optional[float] = None
    latency_percentile: Optional[float] = None
    metadata: Optional[str] = None
    levels: list[ServeLevel] = Field(default_factory=list)
    single_stream: Optional[ServeLevel] = None
    offline: Optional[ServeLevel] = None
    server: Optional[ServeLevel] = None
    peak: Optional[Peak] = None
    accuracy: Optional[Accuracy] = None
    calibration: Optional[Calibration] = None


WORKLOAD_SECTIONS: dict[str, type[Section]] = {
    "filtered": FilteredSection, "streaming": StreamingSection, "serve": ServeSection}
