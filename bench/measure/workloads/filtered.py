"""Filtered search: every query also searches among the corpus rows labelled with one category c.

Like VectorDBBench 1.0's label-filter cases, the filter values are chosen by the share of the corpus
that passes them (selectivity), about 1 %, 10 % and 50 % by default, and the ground truth of each is
exact search within the passing subset. Here the labels are the images' COCO categories: each target
takes the category whose selectivity is nearest to it (as a ratio), and a target that no category
comes within ``selectivity_tolerance`` of is a row saying so, not a row of NaN.

Each bucket is measured with the plain sweep's own code (bench.measure.search: the top-K once, then
interleaved timing trials) through a view of the store that adds the filter (a
:class:`bench.stores.base.LabelFilter`, which each store translates) to every search, so latency, QPS
and recall mean the same as in the unfiltered table. FLAT must find the exact filtered top-K: a built-in self-check.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from bench.config import Config
from bench.data.dataset import Dataset
from bench.errors import BenchError
from bench.measure.evaluate import exact_topk
from bench.measure.search import interleaved_trials, search_topk
from bench.measure.workloads.base import AFTER_SWEEP, Workload
from bench.run.context import RunContext
from bench.stores.base import LabelFilter, SearchHits, VectorStore
from bench.stores.indexes import point_label

log = logging.getLogger(__name__)

# FLAT's distances must equal numpy's exact ones up to float32 rounding (ties may swap ids).
FLAT_DISTANCE_ATOL = 1e-4


@dataclass(frozen=True)
class Bucket:
    target: float  # the selectivity asked for
    category: Optional[int]  # None: no category came near enough
    category_name: Optional[str]
    selectivity: Optional[float]  # share of the corpus passing the filter
    passing_rows: int
    note: str  # why a bucket was not reached, else ""

    @property
    def reached(self) -> bool:
        return self.category is not None


def category_selectivity(corpus_labels: Sequence[Sequence[int]]) -> dict[int, float]:
    """Share of the corpus rows carrying each category (a row with several categories counts for each)."""
    n = len(corpus_labels)
    counts: dict[int, int] = {}
    for labels in corpus_labels:
        for c in set(labels):
            counts[int(c)] = counts.get(int(c), 0) + 1
    return {c: counts[c] / n for c in sorted(counts)} if n else {}


def choose_buckets(selectivity: Mapping[int, float], targets: Sequence[float], tolerance: float,
                   num_rows: int, names: Mapping[int, str] | None = None) -> list[Bucket]:
    """For each target, the category whose selectivity is nearest in ratio (|log(s / target)| smallest;
    ties: the smaller category id), kept when within a factor ``tolerance`` of the target."""
    names = names or {}
    buckets = []
    for target in targets:
        if not selectivity:
            buckets.append(Bucket(target, None, None, None, 0, "no labelled row in the corpus"))
            continue
        nearest = min(selectivity, key=lambda c: (abs(math.log(selectivity[c] / target)), c))
        share = selectivity[nearest]
        label = names.get(nearest, str(nearest))
        if abs(math.log(share / target)) > math.log(tolerance):
            buckets.append(Bucket(target, None, None, None, 0,
                                  f"not reached: the nearest category is {label!r} at {share:.2%} "
                                  f"(more than {tolerance:g}x from {target:.0%})"))
        else:
            buckets.append(Bucket(target, nearest, label, share, round(share * num_rows), ""))
    return buckets


def filtered_exact(corpus_vectors: np.ndarray, passing: np.ndarray, queries: np.ndarray, k: int,
                   metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k within the rows where ``passing`` is True: (row indices into the whole corpus, distances),
    padded with -1 / NaN when fewer than k rows pass."""
    rows = np.flatnonzero(passing)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    distances = np.full((len(queries), k), np.nan, dtype=np.float32)
    if rows.size:
        depth = min(k, rows.size)
        sub_ids, sub_distances = exact_topk(corpus_vectors[rows], queries, depth, metric)
        ids[:, :depth], distances[:, :depth] = rows[sub_ids], sub_distances
    return ids, distances


def filtered_recall(found_ids: np.ndarray, exact_ids: np.ndarray, k: int) -> float:
    """Mean over queries of |found top-k ∩ exact top-k| / (number of exact results, at most k).

    With fewer than k rows passing the filter, finding all of them is recall 1.0, so the denominator is
    what exists (padding -1 never counts). A query with no passing row at all is left out."""
    per_query = []
    for found, exact in zip(found_ids, exact_ids):
        truth = {int(i) for i in exact[:k] if i >= 0}
        if truth:
            per_query.append(len(truth & {int(i) for i in found[:k] if i >= 0}) / len(truth))
    return float(np.mean(per_query)) if per_query else float("nan")


class FilteredView:
    """The store, with one filter added to every search the measurement makes."""

    def __init__(self, store: VectorStore, label_filter: LabelFilter):
        self.store, self.label_filter = store, label_filter

    def search(self, vectors: np.ndarray, k: int, params: Mapping[str, Any], with_paths: bool = False,
               filter: Optional[LabelFilter] = None) -> SearchHits:
        return self.store.search(vectors, k, params, with_paths=with_paths, filter=self.label_filter)


def flat_self_check(index_type: str, bucket: Bucket, found: SearchHits, exact_distances: np.ndarray,
                    recall: float) -> None:
    """FLAT is exact search, so with the same filter it must return the exact filtered top-K. Ids may
    differ only between equal distances, so the distances are compared. Anything else means the filter
    or the ground truth is wrong: that fails the run rather than publishing a wrong table."""
    if index_type != "FLAT" or recall >= 1.0 - 1e-9:
        return
    valid = ~np.isnan(exact_distances)
    same_count = np.array_equal(found.ids >= 0, valid)
    close = same_count and np.allclose(found.distances[valid], exact_distances[valid], atol=FLAT_DISTANCE_ATOL)
    if not close:
        raise BenchError(f"self-check failed: FLAT's filtered recall is {recall:.4f}, not 1.0, for "
                         f"{LabelFilter((bucket.category,))} ({bucket.category_name}, {bucket.selectivity:.2%} "
                         "of the corpus): the store's filter and the exact filtered ground truth disagree")


class FilteredWorkload(Workload):
    """workload=filtered: after the plain sweep, every selectivity bucket through every search point."""
    name = "filtered"
    phase = AFTER_SWEEP

    @classmethod
    def validate(cls, cfg: Config) -> None:
        workload = cfg.workload
        if not workload.selectivities or any(not 0 < s <= 1 for s in workload.selectivities):
            raise BenchError(f"workload.selectivities={list(workload.selectivities)} must be shares of the corpus "
                             "in (0, 1]")
        if workload.selectivity_tolerance < 1:
            raise BenchError(f"workload.selectivity_tolerance={workload.selectivity_tolerance} must be a factor >= 1")

    @classmethod
    def check_dataset(cls, cfg: Config, dataset: Dataset) -> None:
        """A filter needs labels: a dataset without any is a one-line error, not a table of empty buckets."""
        if not any(r.category_ids for r in dataset.images):
            raise BenchError(f"workload=filtered needs category labels, but no image of dataset {dataset.name!r} "
                             "has any annotation: use a COCO dataset with instances (or the sample), or workload=none")

    def run(self, context: RunContext) -> dict[str, Any]:
        """Returns results.json's "filtered" section."""
        cfg, corpus = context.cfg, context.corpus
        corpus_labels = [corpus.labels[int(i)] for i in corpus.ids]
        selectivity = category_selectivity(corpus_labels)
        names = context.categories
        buckets = choose_buckets(selectivity, list(cfg.workload.selectivities), cfg.workload.selectivity_tolerance,
                                 len(corpus), names)
        out = []
        for bucket in buckets:
            if not bucket.reached:
                log.warning("selectivity bucket %.0f%%: %s", 100 * bucket.target, bucket.note)
                out.append({**asdict(bucket), "reached": False, "filter": None, "points": []})
            else:
                out.append(self._bucket(context, bucket, corpus_labels))
        return {"field": "category_ids", "top_k": cfg.search.top_k, "tolerance": cfg.workload.selectivity_tolerance,
                "category_selectivity": {names.get(c, str(c)): s for c, s in selectivity.items()},
                "flat_self_check": "passed" if cfg.index.type == "FLAT" else "not applicable", "buckets": out}

    @staticmethod
    def _bucket(context: RunContext, bucket: Bucket, corpus_labels: Sequence[Sequence[int]]) -> dict[str, Any]:
        """One reached bucket: its exact filtered ground truth, then the sweep's points through the filter."""
        cfg, corpus, queries = context.cfg, context.corpus, context.queries.vectors
        k, index_type = cfg.search.top_k, cfg.index.type
        label_filter = LabelFilter((bucket.category,))
        row: dict[str, Any] = {**asdict(bucket), "reached": True, "filter": str(label_filter), "points": []}
        passing = np.array([bucket.category in lab for lab in corpus_labels])
        exact_rows, exact_distances = filtered_exact(corpus.vectors, passing, queries, k, cfg.search.metric)
        exact_ids = np.where(exact_rows >= 0, corpus.ids[np.maximum(exact_rows, 0)], -1)
        view = FilteredView(context.store, label_filter)
        points = list(cfg.index.search)
        labels_of = [point_label(dict(params)) for params in points]
        names_of = [f"{label} | {bucket.category_name}" for label in labels_of]
        found = [search_topk(view, context.metadata, queries, dict(params), cfg.search, name)
                 for params, name in zip(points, names_of)]
        timings = interleaved_trials(view, context.metadata, queries, found, names_of, cfg.search,
                                     cfg.stats.confidence)
        for label, point, timing in zip(labels_of, found, timings):
            recall = filtered_recall(point.hits.ids, exact_ids, k)
            flat_self_check(index_type, bucket, point.hits, exact_distances, recall)
            outside = int(np.sum([(i >= 0) and (bucket.category not in corpus.labels.get(int(i), ()))
                                  for i in point.hits.ids.ravel()]))
            row["points"].append({"label": label, "params": point.params, **timing, "recall_at_k": recall,
                                  "results_outside_filter": outside, **context.quality(point.hits.ids)})
        return row
