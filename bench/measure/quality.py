"""Search quality with its intervals, the one implementation: precision@K and mAP@K from the images' category
labels, and recall@K against the exact top-K.

Relevance is "shares a COCO category with the query" (bench.measure.evaluate holds the per-query arithmetic);
each figure is the mean over the labelled queries with its bootstrap interval over queries
(``<metric>_ci95``), so two runs' figures can be told apart from noise.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from bench.config import StatsConfig
from bench.measure import evaluate
from bench.measure.statistics import with_intervals


class CategoryQuality:
    """``quality(result_ids)`` -> precision@K, mAP@K (AP normalised by min(K, R_q)) and, given the exact ids,
    recall@K, each with its interval; ``num_queries`` counts the labelled queries averaged over,
    ``num_unlabelled`` those left out. With no labelled query, precision and mAP are None, not 0."""

    def __init__(self, labels: Mapping[int, set[int]], query_ids: np.ndarray, corpus_ids: np.ndarray, k: int,
                 stats: Optional[StatsConfig] = None):
        self.labels, self.k, self.stats = labels, k, stats or StatsConfig()
        self.query_labels = [labels[int(q)] for q in query_ids]
        # R_q: relevant items in the corpus, the denominator of AP@K.
        self.num_relevant = evaluate.num_relevant_in_corpus(self.query_labels, [labels[int(c)] for c in corpus_ids])

    def __call__(self, result_ids: np.ndarray, exact_ids: np.ndarray | None = None) -> dict[str, Any]:
        # Padded results (-1) have no labels, so they count as not relevant.
        result_labels = [[self.labels.get(int(r), set()) for r in row] for row in result_ids]
        per_query = evaluate.category_quality_per_query(self.query_labels, result_labels, self.k, self.num_relevant)
        if exact_ids is not None:
            per_query = {"recall_at_k": evaluate.recall_per_query(result_ids, exact_ids, self.k), **per_query}
        labelled = int(per_query["precision_at_k"].size)
        return {**with_intervals(per_query, resamples=self.stats.bootstrap_resamples,
                                 confidence=self.stats.confidence, seed=self.stats.seed),
                "num_queries": labelled, "num_unlabelled": len(self.query_labels) - labelled}
