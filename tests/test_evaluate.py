"""Tests for bench.measure.evaluate: hand-made cases with the arithmetic written out, plus a recall check of
a numpy IVF search on clustered vectors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.errors import BenchError
from bench.measure.evaluate import (
    average_precision_per_query,
    best_qps_at_recall,
    category_quality_per_query,
    category_relevance,
    distance_summary,
    distribution_difference,
    exact_topk,
    jaccard_at_k,
    labelled_queries,
    num_relevant_in_corpus,
    overlap_at_k,
    precision_per_query,
    random_pair_distances,
    rank_biased_overlap,
    recall_at_k,
    recall_per_query,
)


# ---------------------------------------------------------------------------------------- exact_topk

def test_exact_topk_ip_sorted_descending():
    corpus = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)
    # q = (1, 0.5): inner products 1, 0.5, 1.5, -1
    ids, dist = exact_topk(corpus, np.array([[1, 0.5]]), k=3, metric="IP")
    assert ids.tolist() == [[2, 0, 1]]
    np.testing.assert_allclose(dist, [[1.5, 1.0, 0.5]])
    assert ids.dtype == np.int64 and dist.dtype == np.float32


def test_exact_topk_cosine_normalises_where_ip_does_not():
    corpus = np.array([[10, 0], [1, 1], [0, 3]], dtype=np.float32)
    query = np.array([[2, 2]], dtype=np.float32)
    # IP: 20, 4, 6 -> long vector 0 wins
    ids_ip, _ = exact_topk(corpus, query, k=3, metric="IP")
    assert ids_ip.tolist() == [[0, 2, 1]]
    # cosine: 1/sqrt2, 1, 1/sqrt2 -> same direction wins; the tie between 0 and 2 goes to index 0
    ids_cos, dist_cos = exact_topk(corpus, query, k=3, metric="cosine")
    assert ids_cos.tolist() == [[1, 0, 2]]
    np.testing.assert_allclose(dist_cos, [[1.0, 1 / math.sqrt(2), 1 / math.sqrt(2)]], rtol=1e-6)


def test_exact_topk_cosine_zero_vector_scores_zero_not_nan():
    corpus = np.array([[0, 0], [-1, 0]], dtype=np.float32)
    ids, dist = exact_topk(corpus, np.array([[1, 0]]), k=2, metric="COSINE")
    assert ids.tolist() == [[0, 1]]
    assert dist.tolist() == [[0.0, -1.0]]


def test_exact_topk_l2_is_squared_and_ascending_with_index_tie_break():
    corpus = np.array([[0, 0], [3, 4], [1, 1], [-1, -1]], dtype=np.float32)
    queries = np.array([[0, 0], [1, 1]], dtype=np.float32)
    ids, dist = exact_topk(corpus, queries, k=4, metric="L2")
    # query (0,0): 0, 25, 2, 2 -> rows 2 and 3 tie at 2, lower index first
    # query (1,1): 2, 13, 0, 8
    assert ids.tolist() == [[0, 2, 3, 1], [2, 0, 3, 1]]
    assert dist.tolist() == [[0, 2, 2, 25], [0, 2, 8, 13]]


def test_exact_topk_ties_at_the_cut_go_to_lower_indices():
    corpus = np.array([[0, 1], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    query = np.array([[1, 0]], dtype=np.float32)  # scores 0, 1, 1, 0
    assert exact_topk(corpus, query, k=1, metric="IP")[0].tolist() == [[1]]
    assert exact_topk(corpus, query, k=2, metric="IP")[0].tolist() == [[1, 2]]
    assert exact_topk(corpus, query, k=3, metric="IP")[0].tolist() == [[1, 2, 0]]
    # 200 identical rows: argpartition picks arbitrary members, the result must not.
    same = np.ones((200, 4), dtype=np.float32)
    for metric in ("IP", "COSINE", "L2"):
        ids, _ = exact_topk(same, np.ones((3, 4)), k=7, metric=metric)
        assert ids.tolist() == [list(range(7))] * 3


def test_exact_topk_chunking_matches_full_stable_sort():
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(300, 16)).astype(np.float32)
    # Round so that exact ties occur often and the tie-break is exercised on random data too.
    corpus = np.round(corpus, 0)
    queries = np.round(rng.normal(size=(37, 16)), 0).astype(np.float32)
    for metric in ("IP", "L2"):
        c64, q64 = corpus.astype(np.float64), queries.astype(np.float64)
        if metric == "IP":
            key = -(q64 @ c64.T)
        else:
            key = ((q64[:, None, :] - c64[None, :, :]) ** 2).sum(-1)
        expected = np.argsort(key, axis=1, kind="stable")[:, :10]
        for chunk in (1, 5, None):
            ids, dist = exact_topk(corpus, queries, k=10, metric=metric, chunk_size=chunk)
            np.testing.assert_array_equal(ids, expected)
            sign = -1 if metric == "IP" else 1
            np.testing.assert_allclose(dist, sign * np.take_along_axis(key, expected, 1), rtol=1e-6)


def test_exact_topk_agrees_with_faiss_brute_force():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    corpus = rng.normal(size=(500, 32)).astype(np.float32)
    queries = rng.normal(size=(20, 32)).astype(np.float32)
    for metric, index in (("IP", faiss.IndexFlatIP(32)), ("L2", faiss.IndexFlatL2(32))):
        index.add(corpus)
        faiss_dist, faiss_ids = index.search(queries, 10)
        ids, dist = exact_topk(corpus, queries, k=10, metric=metric)
        np.testing.assert_array_equal(ids, faiss_ids)
        np.testing.assert_allclose(dist, faiss_dist, rtol=1e-4, atol=1e-4)


def test_exact_topk_k_equal_to_corpus_size_returns_everything():
    corpus = np.array([[3.0], [1.0], [2.0]])
    ids, dist = exact_topk(corpus, np.array([[1.0]]), k=3, metric="IP")
    assert ids.tolist() == [[0, 2, 1]] and dist.tolist() == [[3, 2, 1]]


def test_exact_topk_rejects_bad_input():
    corpus = np.eye(3, dtype=np.float32)
    with pytest.raises(BenchError, match="unknown metric"):
        exact_topk(corpus, corpus, k=1, metric="HAMMING")
    with pytest.raises(BenchError, match="top_k=4"):
        exact_topk(corpus, corpus, k=4, metric="IP")
    with pytest.raises(BenchError, match="top_k=0"):
        exact_topk(corpus, corpus, k=0, metric="IP")
    with pytest.raises(ValueError, match="dimension"):
        exact_topk(corpus, np.ones((1, 2)), k=1, metric="IP")
    with pytest.raises(ValueError, match="NaN"):
        exact_topk(corpus, np.array([[np.nan, 0, 0]]), k=1, metric="IP")
    with pytest.raises(ValueError, match="2-D"):
        exact_topk(corpus, np.ones(3), k=1, metric="IP")


# ----------------------------------------------------------------------------------- recall / overlap

def test_recall_counts_minus_one_padding_as_misses():
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[1, 2, -1], [4, -1, -1]])
    # query 0: {1,2} of {1,2,3} -> 2/3; query 1: {4} -> 1/3; mean 1/2
    np.testing.assert_allclose(recall_per_query(found, exact, 3), [2 / 3, 1 / 3])
    assert recall_at_k(found, exact, 3) == pytest.approx(0.5)
    # The same results as ragged lists (the store returned fewer than K) give the same recall.
    assert recall_at_k([[1, 2], [4]], exact, 3) == pytest.approx(0.5)


def test_recall_only_looks_at_the_first_k_and_ignores_order():
    exact = np.array([[1, 2, 3]])
    # top-2: {2, 9} vs {1, 2} -> 1/2 (the 1 at rank 3 is beyond K)
    assert recall_at_k(np.array([[2, 9, 1]]), exact, 2) == pytest.approx(0.5)
    assert recall_at_k(np.array([[3, 2, 1]]), exact, 3) == 1.0
    # A duplicated id counts once.
    assert recall_at_k(np.array([[1, 1, 1]]), exact, 3) == pytest.approx(1 / 3)


def test_recall_rejects_shallow_truth_and_mismatched_rows():
    with pytest.raises(ValueError, match="at least 3"):
        recall_at_k(np.array([[1, 2, 3]]), np.array([[1, 2]]), 3)
    with pytest.raises(ValueError, match="different numbers"):
        recall_at_k(np.array([[1], [2]]), np.array([[1]]), 1)


def test_overlap_and_jaccard():
    a = [[1, 2, 3], [1, 2, 3]]
    b = [[2, 3, 4], [1, 2, 3]]
    # query 0: |{2,3}| / 3 = 2/3, Jaccard 2 / |{1,2,3,4}| = 2/4; query 1: identical -> 1, 1
    assert overlap_at_k(a[:1], b[:1], 3) == pytest.approx(2 / 3)
    assert jaccard_at_k(a[:1], b[:1], 3) == pytest.approx(2 / 4)
    assert overlap_at_k(a, b, 3) == pytest.approx((2 / 3 + 1) / 2)
    assert jaccard_at_k(a, b, 3) == pytest.approx((0.5 + 1) / 2)
    # Symmetric, and -1 is dropped: {5} vs {5, 6} -> overlap 1/2, Jaccard 1/2
    assert overlap_at_k([[5, -1]], [[5, 6]], 2) == overlap_at_k([[5, 6]], [[5, -1]], 2) == 0.5
    assert jaccard_at_k(np.array([[5, -1]]), np.array([[5, 6]]), 2) == 0.5
    # Two empty result lists are identical.
    assert jaccard_at_k([[-1, -1]], [[-1, -1]], 2) == 1.0


# ----------------------------------------------------------------------------------------------- RBO

def test_rbo_identical_is_one_and_disjoint_is_zero():
    assert rank_biased_overlap([[1, 2, 3, 4]], [[1, 2, 3, 4]]) == pytest.approx(1.0)
    assert rank_biased_overlap([[1, 2, 3, 4]], [[5, 6, 7, 8]]) == 0.0
    assert rank_biased_overlap(np.arange(10)[None], np.arange(10)[None], p=0.5) == pytest.approx(1.0)


def test_rbo_worked_values():
    p = 0.9
    # S = [1,2,3], T = [1,3,2]: X_1 = 1, X_2 = 1, X_3 = 3 -> A = 1, 1/2, 1
    # RBO_ext = A_3 p^3 + (1-p)/p (A_1 p + A_2 p^2 + A_3 p^3)
    #         = 0.729 + (0.1/0.9)(0.9 + 0.405 + 0.729) = 0.729 + 0.226 = 0.955
    assert rank_biased_overlap([[1, 2, 3]], [[1, 3, 2]], p=p) == pytest.approx(0.955)
    # Swapping the top pair costs more: T = [2,1,3]: A = 0, 1, 1
    #         = 0.729 + (0.1/0.9)(0 + 0.81 + 0.729) = 0.729 + 0.171 = 0.9
    assert rank_biased_overlap([[1, 2, 3]], [[2, 1, 3]], p=p) == pytest.approx(0.9)
    # Mean over the two queries.
    assert rank_biased_overlap([[1, 2, 3], [1, 2, 3]], [[1, 3, 2], [2, 1, 3]]) == pytest.approx(0.9275)


def test_rbo_missing_slots_never_match():
    # S = [1,2], T = [1,-1]: A = 1, 1/2; p = 0.5
    # = 0.5 * 0.25 + (0.5/0.5)(1 * 0.5 + 0.5 * 0.25) = 0.125 + 0.625 = 0.75
    assert rank_biased_overlap([[1, 2]], [[1, -1]], p=0.5) == pytest.approx(0.75)
    assert rank_biased_overlap([[1, 2]], [[1]], p=0.5) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="strictly between"):
        rank_biased_overlap([[1]], [[1]], p=1.0)


# ---------------------------------------------------------------------------------- precision / mAP

RELEVANCE = np.array([
    [1, 0, 1, 0],
    [0, 0, 0, 0],
    [1, 1, 0, 0],
], dtype=bool)


def test_precision_at_k_on_hand_built_relevance():
    # P@4 per query: 2/4, 0/4, 2/4
    np.testing.assert_allclose(precision_per_query(RELEVANCE), [0.5, 0.0, 0.5])


def test_map_without_corpus_counts_normalises_by_hits_in_top_k():
    # q0: hits at ranks 1 and 3: (P@1 + P@3) / 2 = (1 + 2/3) / 2 = 5/6
    # q1: no hits -> 0;  q2: hits at 1, 2: (1 + 1) / 2 = 1
    np.testing.assert_allclose(average_precision_per_query(RELEVANCE), [5 / 6, 0, 1])


def test_map_with_corpus_counts_normalises_by_min_k_and_r():
    # R = 3, 5, 2: q0 (1 + 2/3) / min(4,3) = 5/9; q1 0; q2 (1 + 1) / min(4,2) = 1
    r_q = np.array([3, 5, 2])
    np.testing.assert_allclose(average_precision_per_query(RELEVANCE, r_q), [5 / 9, 0, 1])
    # R = 10 > K: the normaliser is capped at K = 4: q0 (5/3) / 4 = 5/12
    assert average_precision_per_query(RELEVANCE, np.array([10, 10, 10]))[0] == pytest.approx(5 / 12)
    with pytest.raises(ValueError, match="smaller than"):
        average_precision_per_query(RELEVANCE, np.array([1, 0, 2]))


def test_category_relevance_and_quality_exclude_unlabelled_queries():
    query_labels = [{1}, (2, 3), set()]
    result_labels = [
        [{1}, {4}, {1, 5}, set()],  # cut at k = 3: T, F, T
        [(3,), (9,)],               # only two results: T, F, then padded F
        [{1}, {2}],                 # query has no labels: nothing can be relevant
    ]
    relevance = category_relevance(query_labels, result_labels, k=3)
    assert relevance.tolist() == [[True, False, True], [True, False, False], [False, False, False]]
    assert labelled_queries(query_labels).tolist() == [True, True, False]
    per_query = category_quality_per_query(query_labels, result_labels, k=3)
    # over queries 0 and 1 only: P@3 = 2/3, 1/3; AP (normalised by the hits found) = (1 + 2/3)/2, 1/1
    np.testing.assert_allclose(per_query["precision_at_k"], [2 / 3, 1 / 3])
    np.testing.assert_allclose(per_query["map_at_k"], [5 / 6, 1])
    # With R_q = 4, 1, 0: AP q0 = (5/3) / 3 = 5/9, q1 = 1/1
    with_r = category_quality_per_query(query_labels, result_labels, k=3, num_relevant=np.array([4, 1, 0]))
    np.testing.assert_allclose(with_r["map_at_k"], [5 / 9, 1])


def test_category_quality_with_no_labels_has_no_queries():
    per_query = category_quality_per_query([set(), ()], [[{1}], [{2}]], k=1)
    assert per_query["precision_at_k"].size == 0 and per_query["map_at_k"].size == 0


def test_num_relevant_in_corpus():
    corpus = [{1}, {2}, {1, 3}, set(), (4,)]
    # {1}: rows 0, 2 -> 2; {2,3}: rows 1, 2 -> 2 (row 2 once); {}: 0; {7}: 0
    assert num_relevant_in_corpus([{1}, (2, 3), set(), {7}], corpus).tolist() == [2, 2, 0, 0]


# ---------------------------------------------------------------------------------------- distances

def test_distance_summary():
    values = np.append(np.arange(1, 101, dtype=np.float32), [np.nan, np.inf])
    s = distance_summary(values.reshape(2, 51))
    assert s["count"] == 100 and s["non_finite"] == 2
    assert s["mean"] == pytest.approx(50.5) and s["p50"] == pytest.approx(50.5)
    assert s["min"] == 1 and s["max"] == 100
    assert s["p5"] == pytest.approx(5.95) and s["p95"] == pytest.approx(95.05)  # 1 + 0.05 * 99, ...
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101)))
    assert set(s) == {"count", "non_finite", "mean", "std", "min", "p5", "p25", "p50", "p75", "p95", "max"}
    empty = distance_summary(np.array([]))
    assert empty["count"] == 0 and math.isnan(empty["mean"])


def test_random_pair_distances_never_pairs_a_vector_with_itself():
    basis = np.eye(5, dtype=np.float32)  # distinct rows: IP 0, squared L2 2; self: IP 1, L2 0
    assert (random_pair_distances(basis, "IP", 500, seed=0) == 0).all()
    assert (random_pair_distances(basis, "L2", 500, seed=0) == 2).all()
    assert (random_pair_distances(3 * basis, "COSINE", 500, seed=0) == 0).all()
    pair = np.array([[1.0, 0.0], [3.0, 4.0]])
    assert random_pair_distances(pair, "COSINE", 4, seed=1).tolist() == pytest.approx([0.6] * 4)
    assert random_pair_distances(pair, "L2", 4, seed=1).tolist() == [20.0] * 4


def test_random_pair_distances_is_seeded_and_draws_real_pairs():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    a = random_pair_distances(vectors, "L2", 200, seed=7)
    assert a.dtype == np.float32 and a.shape == (200,)
    np.testing.assert_array_equal(a, random_pair_distances(vectors, "L2", 200, seed=7))
    assert not np.array_equal(a, random_pair_distances(vectors, "L2", 200, seed=8))
    v = vectors.astype(np.float64)
    all_pairs = ((v[:, None] - v[None]) ** 2).sum(-1)[~np.eye(30, dtype=bool)]
    assert all(np.isclose(all_pairs, d, rtol=1e-5).any() for d in a)


def test_distribution_difference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=2000)
    same = distribution_difference(a, a.copy())
    assert same["ks_statistic"] == pytest.approx(0.0) and same["ks_pvalue"] == pytest.approx(1.0)
    assert same["wasserstein"] == pytest.approx(0.0)
    # Shifting a sample by 0.5 moves every unit of mass by 0.5.
    shifted = distribution_difference(a, a + 0.5)
    assert shifted["wasserstein"] == pytest.approx(0.5)
    assert shifted["ks_statistic"] > 0.15 and shifted["ks_pvalue"] < 1e-10
    assert shifted["n_a"] == shifted["n_b"] == 2000
    # Two samples from one distribution: no significant difference.
    other = distribution_difference(a, rng.normal(size=2000))
    assert other["ks_pvalue"] > 0.01 and other["wasserstein"] < 0.1
    with pytest.raises(ValueError, match="no finite"):
        distribution_difference(a, np.array([np.nan]))


# ------------------------------------------------------------------------------------------- pareto

POINTS = [(0.5, 1000), (0.7, 800), (0.6, 500), (0.9, 300), (0.9, 200), (0.95, 100), (0.4, 900)]


def test_best_qps_at_recall():
    assert best_qps_at_recall(POINTS) == {0.9: 300, 0.95: 100, 0.99: None}
    assert best_qps_at_recall(POINTS, thresholds=(0.0,)) == {0.0: 1000}


# ----------------------------------------------- recall of an approximate (IVF) search rises with nprobe

def _gaussian_blobs(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray, spread: float) -> np.ndarray:
    labels = rng.integers(0, len(centres), size=n)
    points = centres[labels] + spread * rng.normal(size=(n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def _ivf_search(corpus: np.ndarray, queries: np.ndarray, k: int, nlist: int, nprobe: int,
                rng: np.random.Generator) -> np.ndarray:
    """A plain IVF_FLAT: k-means coarse lists, probe the nprobe nearest centroids, exact inside."""
    centroids = corpus[rng.choice(len(corpus), nlist, replace=False)].astype(np.float64)
    for _ in range(10):  # Lloyd iterations on inner product (spherical k-means)
        assign = np.argmax(corpus @ centroids.T, axis=1)
        for c in range(nlist):
            members = corpus[assign == c]
            if len(members):
                centroids[c] = members.mean(axis=0) / np.linalg.norm(members.mean(axis=0))
    assign = np.argmax(corpus @ centroids.T, axis=1)
    probed = np.argsort(-(queries @ centroids.T), axis=1)[:, :nprobe]
    found = np.full((len(queries), k), -1, dtype=np.int64)
    for i, lists in enumerate(probed):
        candidates = np.flatnonzero(np.isin(assign, lists))
        take = min(k, len(candidates))
        local, _ = exact_topk(corpus[candidates], queries[i:i + 1], take, "IP")
        found[i, :take] = candidates[local[0]]
    return found


def test_recall_of_ivf_search_rises_with_nprobe_on_clustered_vectors():
    rng = np.random.default_rng(42)
    dim, k, nlist = 32, 10, 64
    centres = rng.normal(size=(16, dim))
    corpus = _gaussian_blobs(rng, 4000, dim, centres, spread=0.6)
    queries = _gaussian_blobs(rng, 100, dim, centres, spread=0.6)
    exact_ids, _ = exact_topk(corpus, queries, k, "IP")

    recalls = {}
    for nprobe in (1, 2, 4, 8, 16, nlist):
        found = _ivf_search(corpus, queries, k, nlist, nprobe, np.random.default_rng(0))
        recalls[nprobe] = recall_at_k(found, exact_ids, k)

    values = list(recalls.values())
    assert all(later >= earlier for earlier, later in zip(values, values[1:])), recalls
    assert recalls[1] < 0.9, recalls          # one list misses neighbours across cell borders
    assert recalls[16] > recalls[1] + 0.1, recalls
    assert recalls[16] >= 0.9, recalls
    assert recalls[nlist] == 1.0, recalls     # probing every list is exhaustive


def test_exact_topk_in_corpus_blocks_equals_one_pass():
    # Small integers: IP and L2 are computed exactly, so ties are real and common, also across
    # block boundaries. COSINE divides by norms, so its ties are a matter of rounding, which
    # another BLAS kernel (a 1-row block) may round differently: it gets tie-free data.
    rng = np.random.default_rng(5)
    rounded = np.round(rng.normal(size=(301, 8)), 0).astype(np.float32)
    rounded_queries = np.round(rng.normal(size=(23, 8)), 0).astype(np.float32)
    for metric in ("IP", "COSINE", "L2"):
        corpus = rng.normal(size=(301, 8)).astype(np.float32) if metric == "COSINE" else rounded
        queries = rng.normal(size=(23, 8)).astype(np.float32) if metric == "COSINE" else rounded_queries
        whole_ids, whole_dist = exact_topk(corpus, queries, k=10, metric=metric, corpus_block=len(corpus))
        for block in (1, 7, 10, 64, 300):
            for chunk in (None, 4):
                ids, dist = exact_topk(corpus, queries, k=10, metric=metric, corpus_block=block, chunk_size=chunk)
                np.testing.assert_array_equal(ids, whole_ids)
                np.testing.assert_array_equal(dist, whole_dist)


def test_exact_topk_does_not_copy_a_float32_corpus_to_float64(monkeypatch):
    # The corpus goes to float64 one block at a time: no array as large as a float64 corpus appears.
    corpus = np.random.default_rng(0).normal(size=(4000, 16)).astype(np.float32)
    real_asarray, biggest = np.asarray, []

    def spy(values, *args, **kwargs):
        out = real_asarray(values, *args, **kwargs)
        if isinstance(out, np.ndarray) and out.dtype == np.float64:
            biggest.append(out.shape[0])
        return out

    monkeypatch.setattr(np, "asarray", spy)
    exact_topk(corpus, corpus[:3], k=5, metric="L2", corpus_block=500)
    assert biggest and max(biggest) <= 500


def test_num_relevant_in_corpus_with_repeated_and_sparse_categories():
    corpus = [(90, 90), (1,), (), [1, 90], {5000}]
    assert num_relevant_in_corpus([(90,), {1, 5000}, (), (7,)], corpus).tolist() == [2, 3, 0, 0]
