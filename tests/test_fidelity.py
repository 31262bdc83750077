"""Fidelity math: cosines, agreement with the reference's exact search, distance shift, quality and ratios."""
from __future__ import annotations

import numpy as np
import pytest

from bench.config import StatsConfig
from bench.measure import evaluate
from bench.measure.quality import CategoryQuality
from bench.measure.fidelity import (cosine_summary, embedding_cosines, fidelity_section, ratio, rows_by_id,
                                    speed_and_size)
from tests.helpers import clustered

K = 5


def test_embedding_cosines_known_values():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [0.0, 0.0]])
    # same direction, orthogonal, opposite, a zero vector (no direction), two zero vectors
    np.testing.assert_allclose(embedding_cosines(a, b), [1.0, 0.0, -1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        embedding_cosines(a, b[:3])


def test_cosine_summary_percentiles():
    values = np.linspace(0.9, 1.0, 101)
    summary = cosine_summary(values)
    assert summary["count"] == 101 and summary["min"] == pytest.approx(0.9)
    assert summary["p1"] == pytest.approx(0.901) and summary["p50"] == pytest.approx(0.95)
    assert summary["mean"] == pytest.approx(0.95)


def test_rows_by_id_reorders_and_refuses_missing_ids():
    ids = np.array([7, 3, 5])
    vectors = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(rows_by_id(ids, vectors, np.array([5, 7])), [[4.0, 5.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="no reference embedding"):
        rows_by_id(ids, vectors, np.array([4]))


def test_ratios_and_sizes():
    assert ratio(30.0, 15.0) == 2.0 and ratio(None, 3.0) is None and ratio(3.0, 0) is None
    out = speed_and_size({"images_per_s_inference": 10.0, "images_per_s_end_to_end": 8.0, "from_cache": True},
                         {"images_per_s_inference": 19.0, "images_per_s_end_to_end": 12.0}, 100, 26)
    assert out["speed"]["images_per_s_inference"]["ratio"] == pytest.approx(1.9)
    assert out["speed"]["images_per_s_end_to_end"]["ratio"] == pytest.approx(1.5)
    assert out["speed"]["from_cache"] == {"reference": True, "variant": False}
    assert out["size"]["ratio"] == pytest.approx(0.26)


def _setup(noise: float):
    """A reference embedding of 60 images and a variant of it with some noise, the last 10 as queries."""
    rng = np.random.default_rng(0)
    reference = clustered(60, 32, seed=3, clusters=6)
    variant = reference + noise * rng.standard_normal(reference.shape).astype(np.float32)
    variant /= np.linalg.norm(variant, axis=1, keepdims=True)
    ids = np.arange(1000, 1060)
    corpus_ids, query_ids = ids[:50], ids[50:]
    labels = {int(i): {int(i) % 3} for i in ids}

    quality = CategoryQuality(labels, query_ids, corpus_ids, K, StatsConfig(bootstrap_resamples=50))

    rows, distances = evaluate.exact_topk(variant[:50], variant[50:], K, "IP")
    # The reference arrives in another order: rows are matched by id.
    order = rng.permutation(60)
    section = fidelity_section(reference_ids=ids[order], reference_vectors=reference[order], corpus_ids=corpus_ids,
                               corpus_vectors=variant[:50], query_ids=query_ids, query_vectors=variant[50:],
                               exact_ids=corpus_ids[rows], exact_distances=distances,
                               served={"FLAT default": corpus_ids[rows], "worse": corpus_ids[rows][:, ::-1] * 0 - 1},
                               quality=quality, k=K, metric="IP")
    return section, reference, variant


def test_identical_embeddings_have_perfect_fidelity():
    section, _, _ = _setup(noise=0.0)
    assert section["num_images"] == 60 and section["top_k"] == K
    assert section["cosine"]["min"] == pytest.approx(1.0)
    assert section["exact"] == pytest.approx({"overlap_at_k": 1.0, "jaccard_at_k": 1.0, "rbo": 1.0, "recall_at_k": 1.0})
    assert section["points"][0] == {"label": "FLAT default", "recall_at_k": 1.0}
    assert section["points"][1] == {"label": "worse", "recall_at_k": 0.0}  # every slot missing
    # Renormalising moved the distances by float32 rounding only.
    assert section["distances"]["topk"]["wasserstein"] < 1e-6
    assert section["quality"]["precision_at_k"]["change"] == 0.0


def test_noisy_variant_loses_fidelity_as_the_metrics_define_it():
    section, reference, variant = _setup(noise=0.08)
    cosines = np.sum(reference * variant, axis=1)
    assert section["cosine"]["min"] == pytest.approx(cosines.min())
    assert section["cosine"]["p50"] == pytest.approx(np.median(cosines))
    assert section["cosine"]["p1"] < 1.0
    ref_rows, _ = evaluate.exact_topk(reference[:50], reference[50:], K, "IP")
    var_rows, _ = evaluate.exact_topk(variant[:50], variant[50:], K, "IP")
    expected = evaluate.overlap_at_k(var_rows, ref_rows, K)
    assert section["exact"]["overlap_at_k"] == pytest.approx(expected) and expected < 1.0
    assert section["exact"]["recall_at_k"] == pytest.approx(expected)
    assert 0 < section["exact"]["rbo"] < 1
    quality = section["quality"]["precision_at_k"]
    assert quality["change"] == pytest.approx(quality["variant"] - quality["reference"])
