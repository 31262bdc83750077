"""Agreement between models on the same queries: overlap@K, Jaccard@K and rank-biased overlap, as
matrices over every pair of models (the metrics themselves are defined in bench.measure.evaluate).
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from bench.measure.evaluate import jaccard_at_k, overlap_at_k, rank_biased_overlap

# RBO's persistence: 0.9 puts about 86 % of the weight on the first 10 ranks (see evaluate.rank_biased_overlap).
RBO_P = 0.9
MEASURES = ("overlap", "jaccard", "rbo")


def align_rows(reference_ids: np.ndarray, query_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows`` (one per entry of ``query_ids``) reordered to follow ``reference_ids``.

    Two runs may list the same queries in another order; comparing row i with row i would then compare
    different queries. Raises ValueError when the two runs do not cover the same queries.
    """
    reference = [int(q) for q in reference_ids]
    position = {int(q): i for i, q in enumerate(query_ids)}
    if len(position) != len(query_ids) or sorted(position) != sorted(reference):
        raise ValueError("the two runs were searched with different query images; their results cannot be compared")
    return rows[[position[q] for q in reference]]


def pair_agreement(ids_a: np.ndarray, ids_b: np.ndarray, k: int, p: float = RBO_P) -> dict[str, float]:
    """overlap@K, Jaccard@K and RBO (to depth K) between two aligned result arrays."""
    return {"overlap": overlap_at_k(ids_a, ids_b, k), "jaccard": jaccard_at_k(ids_a, ids_b, k),
            "rbo": rank_biased_overlap(ids_a, ids_b, p=p, k=k)}


def agreement_matrices(results: dict[str, tuple[np.ndarray, np.ndarray]], k: int,
                       p: float = RBO_P) -> dict[str, pd.DataFrame]:
    """One symmetric model × model matrix per measure ("overlap", "jaccard", "rbo").

    ``results`` maps a model label to ``(query_ids, ids)``; every model is aligned to the first one's
    query order. The diagonal is each model against itself (1 by definition, unless it has missing slots).
    """
    names = list(results)
    reference = results[names[0]][0]
    aligned = {name: align_rows(reference, qids, ids) for name, (qids, ids) in results.items()}
    matrices = {m: pd.DataFrame(np.nan, index=names, columns=names, dtype=float) for m in MEASURES}
    for a in names:
        for b in names:
            if names.index(b) < names.index(a):
                continue
            values = pair_agreement(aligned[a], aligned[b], k, p)
            for measure, value in values.items():
                matrices[measure].loc[a, b] = matrices[measure].loc[b, a] = value
    for matrix in matrices.values():
        matrix.index.name = "model"
    return matrices


def pairwise_table(settings: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], k: int,
                   p: float = RBO_P) -> pd.DataFrame:
    """Long table, one row per (setting, model pair): the same measures at each index/search point.

    ``settings`` maps a setting label (e.g. "HNSW(M=16) ef=40") to the per-model results there; a
    setting with fewer than two models has no pairs and no rows.
    """
    rows = []
    for setting, results in settings.items():
        names = list(results)
        if len(names) < 2:
            continue
        reference = results[names[0]][0]
        aligned = {name: align_rows(reference, qids, ids) for name, (qids, ids) in results.items()}
        for a, b in combinations(names, 2):
            values = pair_agreement(aligned[a], aligned[b], k, p)
            rows.append({"results at": setting, "model A": a, "model B": b, f"overlap@{k}": values["overlap"],
                         f"jaccard@{k}": values["jaccard"], f"RBO(p={p})": values["rbo"]})
    return pd.DataFrame(rows)
