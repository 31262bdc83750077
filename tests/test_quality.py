"""bench.measure.quality.CategoryQuality: precision@K, mAP@K and recall@K with their intervals, by hand."""
from __future__ import annotations

import numpy as np
import pytest

from bench.config import StatsConfig
from bench.measure.quality import CategoryQuality

# Queries 1, 2, 3 (3 unlabelled); corpus 10..15 with their categories.
LABELS = {1: {1}, 2: {2, 3}, 3: set(), 10: {1}, 11: {4}, 12: {1, 5}, 13: set(), 14: {3}, 15: {9}}
QUERIES, CORPUS = np.array([1, 2, 3]), np.array([10, 11, 12, 13, 14, 15])


def quality(**stats) -> CategoryQuality:
    return CategoryQuality(LABELS, QUERIES, CORPUS, k=3, stats=StatsConfig(**{"bootstrap_resamples": 200, **stats}))


def test_precision_map_and_recall_over_the_labelled_queries():
    results = np.array([[10, 11, 12], [14, 15, -1], [10, 11, 12]])  # -1: a slot the store did not fill
    out = quality()(results, exact_ids=np.array([[10, 12, 11], [14, 13, 15], [10, 11, 12]]))
    # q1: relevant at ranks 1 and 3 (R=2): P = 2/3, AP = (1 + 2/3) / min(3, 2) = 5/6
    # q2: relevant at rank 1 (R=1): P = 1/3, AP = 1 / 1 = 1;  q3 has no labels: left out
    assert out["num_queries"] == 2 and out["num_unlabelled"] == 1
    assert out["precision_at_k"] == pytest.approx(0.5)
    assert out["map_at_k"] == pytest.approx((5 / 6 + 1) / 2)
    # recall over every query: 3/3, 2/3, 3/3
    assert out["recall_at_k"] == pytest.approx(8 / 9)
    low, high = out["precision_at_k_ci95"]
    assert low <= 0.5 <= high


def test_no_labelled_query_is_undefined_not_zero():
    labels = {1: set(), 10: {1}, 11: {2}, 12: {1}}
    out = CategoryQuality(labels, np.array([1]), np.array([10, 11, 12]), k=2)(np.array([[10, 11]]))
    assert out["precision_at_k"] is None and out["map_at_k"] is None
    assert out["num_queries"] == 0 and out["num_unlabelled"] == 1
    assert "recall_at_k" not in out


def test_the_interval_follows_the_stats_settings():
    results = np.array([[10, 11, 12], [14, 15, 11], [10, 11, 12]])
    wide, narrow = quality(confidence=0.99)(results), quality(confidence=0.5)(results)
    assert "precision_at_k_ci99" in wide and "precision_at_k_ci50" in narrow
