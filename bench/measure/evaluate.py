"""Search-quality metrics, defined once: exact ground truth, recall, overlap, category precision,
distance distributions and the recall–QPS Pareto frontier.

Pure numpy (scipy for the two-sample statistics); no I/O, no global state. Every function states the
exact definition it computes so that tables and reports can quote it.

Conventions shared by every function here:

* **Metrics** follow Milvus: ``"IP"`` (inner product, higher is better), ``"COSINE"`` (cosine
  similarity, higher is better) and ``"L2"`` (*squared* Euclidean distance, lower is better — Milvus
  reports the squared value, so we do too). Names are case-insensitive.
* **Missing results:** ``-1`` (:data:`MISSING_ID`) marks a slot the store did not fill (Milvus may
  return fewer than K hits). It never matches anything, so it counts as a miss. Id rows may also be
  ragged sequences shorter than K; absent slots are misses as well.
* **Ids** are whatever the caller passes (row indices or COCO image ids); the set metrics only
  compare them for equality. Duplicate ids within one row count once.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Optional, Union

import numpy as np
from scipy import stats

from bench.errors import BenchError

# The distance metrics, defined once: exact search computes them, stores are asked for them (search.metric).
METRICS: tuple[str, ...] = ("IP", "COSINE", "L2")
MISSING_ID = -1

# Bound on the (queries × corpus) float64 score block held at once by exact_topk.
_SCORE_BLOCK_BYTES = 256 * 2**20
# Bound on the float64 copy of one block of corpus rows in exact_topk.
_CORPUS_BLOCK_BYTES = 64 * 2**20

IdRows = Union[np.ndarray, Sequence[Sequence[int]]]
Labels = Collection[int]  # a set or tuple of category ids
Point = tuple[float, float]  # (recall, qps)


# ----------------------------------------------------------------------------------------------
# Exact ground truth
# ----------------------------------------------------------------------------------------------

def normalize_metric(metric: str) -> str:
    """Upper-case ``metric`` and check it is one of :data:`METRICS`."""
    name = str(metric).upper()
    if name not in METRICS:
        raise BenchError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)} (search.metric)")
    return name


def exact_topk(corpus: np.ndarray, queries: np.ndarray, k: int, metric: str,
               *, chunk_size: Optional[int] = None,
               corpus_block: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` of every query over ``corpus``: the ground truth for recall@K.

    Definition, per query q and corpus row c:

    * ``IP``: score ``q·c``; the k largest, sorted descending; returned distances are the scores.
    * ``COSINE``: both sides L2-normalised first (an all-zero vector stays zero, so its cosine is 0),
      then as ``IP``; returned distances are cosine similarities.
    * ``L2``: ``‖q − c‖²`` (squared, as Milvus reports it); the k smallest, sorted ascending.

    Ties are broken by the smaller corpus row index, so the result is deterministic. A tie means
    equal computed float64 values.

    Numerics: everything is computed in float64. ``L2`` uses the expansion ``‖q‖² + ‖c‖² − 2 q·c``,
    clamped at 0; its absolute error (~1e-16 × (‖q‖² + ‖c‖²)) is far below the float32 resolution of
    the returned distances, so no separate exact recomputation is needed.

    Memory and speed: the corpus is read in blocks of ``corpus_block`` rows (default: about 64 MiB
    of float64 each), converted to float64 one block at a time, and each block's top-k is merged
    into the running top-k by (key, row index), so the result equals one pass over the whole
    corpus. The corpus is never copied whole (at 100k × 1280 a float64 copy alone is 1 GiB).
    Queries are processed in chunks so that a score block stays under about 256 MiB;
    ``chunk_size`` (queries per chunk) overrides that. Selection uses ``np.argpartition`` and then
    sorts only the k selected per query.

    Returns:
        ``(ids, distances)``: int64 row indices into ``corpus`` of shape (nq, k) and float32 distances
        of shape (nq, k), best first.

    Raises:
        BenchError: unknown metric, or ``k`` outside ``1..len(corpus)``.
        ValueError: arrays not 2-D, dimensions that differ, or non-finite values.
    """
    metric = normalize_metric(metric)
    base = _check_finite_matrix(corpus, "corpus")  # kept in its own dtype; converted per block
    query_rows = _as_finite_matrix(queries, "queries")
    if base.shape[1] != query_rows.shape[1]:
        raise ValueError(f"corpus has dimension {base.shape[1]} but queries have {query_rows.shape[1]}")
    n = base.shape[0]
    if not 1 <= int(k) <= n:
        raise BenchError(f"top_k={k} must be between 1 and the corpus size {n}: lower search.top_k")
    k = int(k)
    if metric == "COSINE":
        query_rows = _unit_rows(query_rows)
    if corpus_block is None:
        corpus_block = max(k, _CORPUS_BLOCK_BYTES // (8 * max(1, base.shape[1])))
    if corpus_block < 1:
        raise ValueError(f"corpus_block must be >= 1, got {corpus_block}")
    if chunk_size is None:
        chunk_size = max(1, _SCORE_BLOCK_BYTES // (8 * min(n, corpus_block)))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    nq = query_rows.shape[0]
    query_sq_norms = np.einsum("ij,ij->i", query_rows, query_rows) if metric == "L2" else None
    # Running best per query, as keys where smaller is better for every metric.
    best_keys = np.full((nq, 0), np.inf)
    best_ids = np.empty((nq, 0), dtype=np.int64)
    for offset in range(0, n, corpus_block):
        block = np.asarray(base[offset:offset + corpus_block], dtype=np.float64)
        if metric == "COSINE":
            block = _unit_rows(block)
        block_sq_norms = np.einsum("ij,ij->i", block, block) if metric == "L2" else None
        take = min(k, block.shape[0])
        block_keys = np.empty((nq, take))
        block_ids = np.empty((nq, take), dtype=np.int64)
        for start in range(0, nq, chunk_size):
            rows = slice(start, start + chunk_size)
            products = query_rows[rows] @ block.T
            if metric == "L2":
                key = query_sq_norms[rows, None] + block_sq_norms[None, :] - 2.0 * products
                np.maximum(key, 0.0, out=key)
            else:
                key = np.negative(products, out=products)
            top = _smallest_k_stable(key, take)
            block_keys[rows] = np.take_along_axis(key, top, axis=1)
            block_ids[rows] = top + offset
        best_keys, best_ids = _merge_smallest_k(best_keys, best_ids, block_keys, block_ids, k)
    distances = best_keys if metric == "L2" else -best_keys
    return best_ids, distances.astype(np.float32)


def _merge_smallest_k(keys_a: np.ndarray, ids_a: np.ndarray, keys_b: np.ndarray, ids_b: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest (key, id) pairs per row of two candidate sets, sorted by key then id.

    Each set holds its block's k best by the same order, so the merge is the k best of the union.
    """
    keys, ids = np.concatenate([keys_a, keys_b], axis=1), np.concatenate([ids_a, ids_b], axis=1)
    order = np.lexsort((ids, keys), axis=1)[:, :k]
    return np.take_along_axis(keys, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _check_finite_matrix(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a 2-D float array in its own precision (no float64 copy), checked finite."""
    matrix = np.asarray(values)
    if not np.issubdtype(matrix.dtype, np.floating):
        matrix = matrix.astype(np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows × dimension), got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return matrix


def _as_finite_matrix(values: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows × dimension), got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return matrix


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # A zero vector has no direction; leaving it zero gives cosine 0 instead of NaN.
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _smallest_k_stable(key: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest keys per row, sorted by (key, index)."""
    n = key.shape[1]
    if k < n:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n), (key.shape[0], 1))
    part_keys = np.take_along_axis(key, part, axis=1)
    top = np.take_along_axis(part, np.lexsort((part, part_keys), axis=1), axis=1)
    # argpartition picks arbitrarily among values equal to the k-th one. Where such ties straddle
    # the cut, redo that row so that the smaller indices win.
    kth = part_keys.max(axis=1)
    straddling = np.flatnonzero((key <= kth[:, None]).sum(axis=1) > k)
    for row in straddling:
        candidates = np.flatnonzero(key[row] <= kth[row])
        order = np.lexsort((candidates, key[row, candidates]))
        top[row] = candidates[order[:k]]
    return top


# ----------------------------------------------------------------------------------------------
# Set overlap: recall (index vs exact), overlap and Jaccard (model vs model), RBO
# ----------------------------------------------------------------------------------------------

def recall_per_query(found_ids: IdRows, exact_ids: IdRows, k: int) -> np.ndarray:
    """Per query: ``|found top-k ∩ exact top-k| / k``, as float64 of shape (nq,).

    Only the first ``k`` entries of each row count. ``-1`` and absent slots in ``found_ids`` are
    misses; the denominator is always ``k``. ``exact_ids`` must be at least ``k`` deep.
    """
    _check_k(k)
    if isinstance(exact_ids, np.ndarray) and exact_ids.ndim == 2 and exact_ids.shape[1] < k:
        raise ValueError(f"exact_ids has {exact_ids.shape[1]} columns; recall@{k} needs at least {k}")
    found = _topk_sets(found_ids, k, "found_ids")
    exact = _topk_sets(exact_ids, k, "exact_ids")
    _check_same_rows(found, exact)
    return np.array([len(f & e) / k for f, e in zip(found, exact)], dtype=np.float64)


def recall_at_k(found_ids: IdRows, exact_ids: IdRows, k: int) -> float:
    """recall@K: mean over queries of ``|found top-K ∩ exact top-K| / K`` (see :func:`recall_per_query`)."""
    return float(recall_per_query(found_ids, exact_ids, k).mean())


def overlap_per_query(ids_a: IdRows, ids_b: IdRows, k: int) -> np.ndarray:
    """Per query: ``|A ∩ B| / K`` over each row's first K slots, ``-1`` and absent slots dropped."""
    _check_k(k)
    a, b = _topk_sets(ids_a, k, "ids_a"), _topk_sets(ids_b, k, "ids_b")
    _check_same_rows(a, b)
    return np.array([len(x & y) / k for x, y in zip(a, b)], dtype=np.float64)


def overlap_at_k(ids_a: IdRows, ids_b: IdRows, k: int) -> float:
    """overlap@K between two result lists for the same queries (e.g. two models).

    Mean over queries of ``|A ∩ B| / K`` where A, B are the ids in each row's first K slots, with
    ``-1`` and absent slots dropped. Symmetric in A and B.
    """
    return float(overlap_per_query(ids_a, ids_b, k).mean())


def jaccard_per_query(ids_a: IdRows, ids_b: IdRows, k: int) -> np.ndarray:
    """Per query: ``|A ∩ B| / |A ∪ B|`` over each row's first K slots (1 for two empty sets)."""
    _check_k(k)
    a, b = _topk_sets(ids_a, k, "ids_a"), _topk_sets(ids_b, k, "ids_b")
    _check_same_rows(a, b)
    return np.array([len(x & y) / len(x | y) if (x or y) else 1.0 for x, y in zip(a, b)], dtype=np.float64)


def jaccard_at_k(ids_a: IdRows, ids_b: IdRows, k: int) -> float:
    """Jaccard@K: mean over queries of ``|A ∩ B| / |A ∪ B|`` over each row's first K slots.

    ``-1`` and absent slots are dropped. Two empty sets count as identical (Jaccard 1), the usual
    convention. With full, duplicate-free rows this equals ``o / (2 − o)`` for overlap ``o``.
    """
    return float(jaccard_per_query(ids_a, ids_b, k).mean())


def rank_biased_overlap(ids_a: IdRows, ids_b: IdRows, p: float = 0.9,
                        k: Optional[int] = None) -> float:
    """Mean over queries of :func:`rbo_per_query`."""
    return float(rbo_per_query(ids_a, ids_b, p, k).mean())


def rbo_per_query(ids_a: IdRows, ids_b: IdRows, p: float = 0.9, k: Optional[int] = None) -> np.ndarray:
    """Per query: extrapolated rank-biased overlap, RBO_ext (Webber, Moffat & Zobel 2010,
    eq. 32 with equal lengths).

    For two rankings S, T evaluated to depth k, with ``X_d = |S[:d] ∩ T[:d]|`` and ``A_d = X_d / d``::

        RBO_ext = A_k · p^k + ((1 − p) / p) · Σ_{d=1..k} A_d · p^d

    It is 1 for identical rankings and 0 for disjoint ones, and unlike overlap@K it rewards agreement
    near the top. ``p`` (0 < p < 1) sets how top-heavy it is: the first d ranks carry weight
    ``1 − p^(d−1) + ((1−p)/p)·d·(ln(1/(1−p)) − Σ_{i<d} p^i/i)``; the default 0.9 puts about 86 % of
    the weight on the top 10, which suits top-10 retrieval.

    Depth ``k`` defaults to the longest row in either input. Rows are compared to that depth;
    ``-1`` and absent slots are distinct placeholders that match nothing, so both lists keep equal
    length as the formula requires.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p}")
    rows_a, rows_b = _id_rows(ids_a, "ids_a"), _id_rows(ids_b, "ids_b")
    _check_same_rows(rows_a, rows_b)
    depth = k if k is not None else max((len(r) for r in rows_a + rows_b), default=0)
    _check_k(depth)
    weights = p ** np.arange(1, depth + 1, dtype=np.float64)
    scores = []
    for row_a, row_b in zip(rows_a, rows_b):
        agreement = _prefix_agreement(row_a[:depth], row_b[:depth], depth)
        scores.append(agreement[-1] * p ** depth + (1.0 - p) / p * float(agreement @ weights))
    return np.array(scores, dtype=np.float64)


def _prefix_agreement(row_a: list[int], row_b: list[int], depth: int) -> np.ndarray:
    """A_d = |S[:d] ∩ T[:d]| / d for d = 1..depth; missing slots never match."""
    seen_a: set[int] = set()
    seen_b: set[int] = set()
    overlap = 0
    agreement = np.empty(depth, dtype=np.float64)
    for d in range(depth):
        a = row_a[d] if d < len(row_a) else MISSING_ID
        b = row_b[d] if d < len(row_b) else MISSING_ID
        if a != MISSING_ID and a not in seen_a:
            seen_a.add(a)
            overlap += a in seen_b
        if b != MISSING_ID and b not in seen_b:
            seen_b.add(b)
            overlap += b in seen_a
        agreement[d] = overlap / (d + 1)
    return agreement


def _id_rows(ids: IdRows, name: str) -> list[list[int]]:
    if isinstance(ids, np.ndarray):
        if ids.ndim != 2:
            raise ValueError(f"{name} must be 2-D (queries × ranks), got shape {ids.shape}")
        return ids.astype(np.int64, copy=False).tolist()
    return [[int(v) for v in row] for row in ids]


def _topk_sets(ids: IdRows, k: int, name: str) -> list[set[int]]:
    return [set(row[:k]) - {MISSING_ID} for row in _id_rows(ids, name)]


def _check_same_rows(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"the two result sets cover different numbers of queries: {len(a)} vs {len(b)}")
    if len(a) == 0:
        raise ValueError("no queries to evaluate")


def _check_k(k: int) -> None:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


# ----------------------------------------------------------------------------------------------
# Category quality: precision@K and mAP@K from COCO labels
# ----------------------------------------------------------------------------------------------

def category_relevance(query_labels: Sequence[Labels], result_labels: Sequence[Sequence[Labels]],
                       k: int) -> np.ndarray:
    """Relevance matrix, bool of shape (nq, k): ``[i, j]`` is True when query i's rank-(j+1) result
    shares at least one category id with query i.

    ``result_labels[i]`` lists the category ids of query i's results in rank order; rows shorter than
    ``k`` (missing results) are padded with False, longer ones are cut at ``k``. A query without
    labels has an all-False row; use :func:`labelled_queries` to exclude such queries, as
    :func:`category_quality_per_query` does.
    """
    _check_k(k)
    if len(query_labels) != len(result_labels):
        raise ValueError(f"{len(query_labels)} queries but {len(result_labels)} result rows")
    relevance = np.zeros((len(query_labels), k), dtype=bool)
    for i, (query, results) in enumerate(zip(query_labels, result_labels)):
        wanted = set(query)
        for j, labels in enumerate(list(results)[:k]):
            relevance[i, j] = not wanted.isdisjoint(labels)
    return relevance


def labelled_queries(query_labels: Sequence[Labels]) -> np.ndarray:
    """Bool mask (nq,): True where the query has at least one category and so can be judged."""
    return np.array([len(labels) > 0 for labels in query_labels], dtype=bool)


def num_relevant_in_corpus(query_labels: Sequence[Labels], corpus_labels: Sequence[Labels]) -> np.ndarray:
    """R_q per query, int64 (nq,): how many corpus items share at least one category with the query.

    This is the denominator mAP@K should use. If a query image is itself in the corpus it counts
    itself; bench holds queries out of the corpus, so it does not arise there.
    """
    query_flat, query_rows = _flatten_labels(query_labels)
    corpus_flat, corpus_rows = _flatten_labels(corpus_labels)
    categories = np.union1d(query_flat, corpus_flat)
    query_hot = _multi_hot(query_flat, query_rows, len(query_labels), categories)
    corpus_hot = _multi_hot(corpus_flat, corpus_rows, len(corpus_labels), categories)
    counts = np.zeros(len(query_labels), dtype=np.int64)
    # float32 counts are exact far beyond any category count; chunk to bound the nq × n block.
    step = max(1, _SCORE_BLOCK_BYTES // (4 * max(1, len(corpus_labels))))
    for start in range(0, len(query_labels), step):
        shared = query_hot[start:start + step] @ corpus_hot.T
        counts[start:start + step] = (shared > 0).sum(axis=1)
    return counts


def _flatten_labels(labels: Sequence[Labels]) -> tuple[np.ndarray, np.ndarray]:
    """Every (item, category) pair as two int64 arrays (categories, item rows): one pass, no per-item numpy."""
    lists = [list(item) for item in labels]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter((c for item in lists for c in item), dtype=np.int64, count=int(lengths.sum()))
    return flat, np.repeat(np.arange(len(lists)), lengths)


def _multi_hot(flat: np.ndarray, rows: np.ndarray, num_rows: int, categories: np.ndarray) -> np.ndarray:
    hot = np.zeros((num_rows, len(categories)), dtype=np.float32)
    hot[rows, np.searchsorted(categories, flat)] = 1.0  # a repeated category sets the same cell
    return hot


def precision_per_query(relevance: np.ndarray) -> np.ndarray:
    """P@K per query, float64 (nq,): relevant results among the top K, divided by K (the matrix width).

    Missing results are non-relevant, so a short result list is penalised, not excused.
    """
    rel = _as_relevance(relevance)
    return rel.sum(axis=1) / rel.shape[1]


def average_precision_per_query(relevance: np.ndarray,
                                num_relevant: Optional[np.ndarray] = None) -> np.ndarray:
    """AP@K per query, float64 (nq,)::

        AP@K = (1 / D) · Σ_{i=1..K} P@i · rel_i

    with ``P@i`` the precision of the first i results and ``rel_i`` 1 if result i is relevant.

    The normaliser D:

    * ``num_relevant`` given (R_q, relevant items in the corpus, see :func:`num_relevant_in_corpus`):
      ``D = min(K, R_q)``. This is the standard AP@K and the preferred choice: a list that finds one
      relevant item at rank 1 and misses nine others scores 0.1, not 1.0.
    * ``num_relevant`` omitted: ``D`` = the number of relevant items in the top K. This only measures
      how early the found relevant items sit, not how many were found; use it when R_q is unknown.

    ``D = 0`` (nothing relevant at all) gives AP 0. ``R_q`` smaller than the relevant hits in the top
    K is inconsistent and raises ValueError.
    """
    rel = _as_relevance(relevance).astype(np.float64)
    top_k = rel.shape[1]
    hits = np.cumsum(rel, axis=1)
    summed = (hits / np.arange(1, top_k + 1) * rel).sum(axis=1)
    if num_relevant is None:
        denominator = hits[:, -1]
    else:
        r_q = np.asarray(num_relevant, dtype=np.float64)
        if r_q.shape != (rel.shape[0],):
            raise ValueError(f"num_relevant must have shape ({rel.shape[0]},), got {r_q.shape}")
        if (r_q < hits[:, -1]).any():
            raise ValueError("num_relevant is smaller than the relevant results found for some query")
        denominator = np.minimum(top_k, r_q)
    return np.divide(summed, denominator, out=np.zeros_like(summed), where=denominator > 0)


def category_quality_per_query(query_labels: Sequence[Labels], result_labels: Sequence[Sequence[Labels]], k: int,
                               num_relevant: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """Per labelled query: ``{"precision_at_k": P@K, "map_at_k": AP@K}`` (float64 arrays, unlabelled
    queries left out, so both are empty when no query has labels)."""
    relevance = category_relevance(query_labels, result_labels, k)
    labelled = labelled_queries(query_labels)
    if not labelled.any():
        return {"precision_at_k": np.zeros(0), "map_at_k": np.zeros(0)}
    r_q = None if num_relevant is None else np.asarray(num_relevant)[labelled]
    return {"precision_at_k": precision_per_query(relevance[labelled]),
            "map_at_k": average_precision_per_query(relevance[labelled], r_q)}


def _as_relevance(relevance: np.ndarray) -> np.ndarray:
    rel = np.asarray(relevance, dtype=bool)
    if rel.ndim != 2 or rel.shape[0] == 0 or rel.shape[1] == 0:
        raise ValueError(f"relevance must be a non-empty 2-D (queries × K) array, got shape {rel.shape}")
    return rel


# ----------------------------------------------------------------------------------------------
# Distance distributions
# ----------------------------------------------------------------------------------------------

def distance_summary(distances: np.ndarray) -> dict[str, float | int]:
    """Summary of a set of distances (any shape, flattened), computed in float64.

    Keys: ``count`` (finite values used), ``non_finite`` (NaN/inf values dropped), ``mean``, ``std``
    (population, ddof=0), ``min``, ``p5``, ``p25``, ``p50``, ``p75``, ``p95``, ``max`` (numpy's
    linear-interpolation percentiles). With no finite value the statistics are NaN. Distances of
    missing (``-1``) results are not recognisable here: mask them out first (``dist[ids != -1]``).
    """
    values = np.asarray(distances, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    summary: dict[str, float | int] = {"count": int(finite.size), "non_finite": int(values.size - finite.size)}
    names = ("mean", "std", "min", "p5", "p25", "p50", "p75", "p95", "max")
    if finite.size == 0:
        summary.update({name: float("nan") for name in names})
        return summary
    p5, p25, p50, p75, p95 = np.percentile(finite, [5, 25, 50, 75, 95])
    summary.update({"mean": float(finite.mean()), "std": float(finite.std()), "min": float(finite.min()),
                    "p5": float(p5), "p25": float(p25), "p50": float(p50), "p75": float(p75),
                    "p95": float(p95), "max": float(finite.max())})
    return summary


def random_pair_distances(vectors: np.ndarray, metric: str, n_pairs: int, seed: int) -> np.ndarray:
    """Distances between ``n_pairs`` random pairs (i, j), i ≠ j, float32 (n_pairs,).

    Same semantics as :func:`exact_topk`: inner product for ``IP``, cosine similarity for ``COSINE``,
    squared L2 for ``L2``, computed in float64. Pairs are drawn uniformly and independently (with
    replacement, ordered) from ``np.random.default_rng(seed)``, so the same seed gives the same
    sample. This is the "unrelated images" baseline the top-K distances are compared against.
    """
    metric = normalize_metric(metric)
    matrix = _check_finite_matrix(vectors, "vectors")  # only the sampled rows go to float64
    n = matrix.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 vectors to form pairs, got {n}")
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, size=n_pairs)
    # Draw the partner from the other n-1 rows, then skip over `first`: uniform and never equal.
    second = rng.integers(0, n - 1, size=n_pairs)
    second += second >= first
    a, b = matrix[first].astype(np.float64), matrix[second].astype(np.float64)
    if metric == "L2":
        values = np.einsum("ij,ij->i", a - b, a - b)
    else:
        if metric == "COSINE":
            a, b = _unit_rows(a), _unit_rows(b)
        values = np.einsum("ij,ij->i", a, b)
    return values.astype(np.float32)


def distribution_difference(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    """How far apart two samples of distances are.

    Keys: ``ks_statistic`` and ``ks_pvalue`` (two-sided two-sample Kolmogorov–Smirnov,
    ``scipy.stats.ks_2samp``: the largest gap between the empirical CDFs, and the p-value of "same
    distribution"), ``wasserstein`` (earth mover's distance in the distances' own units,
    ``scipy.stats.wasserstein_distance``), ``n_a`` and ``n_b`` (finite values used; NaN/inf dropped).
    """
    sample_a = _finite_sample(a, "a")
    sample_b = _finite_sample(b, "b")
    ks = stats.ks_2samp(sample_a, sample_b)
    return {"ks_statistic": float(ks.statistic), "ks_pvalue": float(ks.pvalue),
            "wasserstein": float(stats.wasserstein_distance(sample_a, sample_b)),
            "n_a": int(sample_a.size), "n_b": int(sample_b.size)}


def _finite_sample(values: np.ndarray, name: str) -> np.ndarray:
    sample = np.asarray(values, dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise ValueError(f"sample {name} has no finite values")
    return sample


# ----------------------------------------------------------------------------------------------
# Recall–QPS trade-off (the report's Pareto frontier, which accounts for noise: bench.measure.statistics)
# ----------------------------------------------------------------------------------------------

def best_qps_at_recall(points: Sequence[Point],
                       thresholds: Sequence[float] = (0.9, 0.95, 0.99)) -> dict[float, Optional[float]]:
    """For each threshold t: the highest QPS among points with ``recall >= t``, or None if no point
    reaches t. Points with a NaN coordinate are ignored."""
    result: dict[float, Optional[float]] = {}
    for threshold in thresholds:
        qualifying = [float(q) for r, q in points if not np.isnan(q) and r >= threshold]
        result[threshold] = max(qualifying) if qualifying else None
    return result
