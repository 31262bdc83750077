"""Agreement between models on the same queries: overlap@K, Jaccard@K and rank-biased overlap, as
matrices over every pair of models (the metrics themselves are defined in bench.measure.evaluate).
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from bench.config import StatsConfig
from bench.measure.evaluate import jaccard_per_query, overlap_per_query, rbo_per_query
from bench.measure.statistics import ci_key, with_intervals
from bench.report.significance import fmt_interval

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
    return {measure: float(values.mean()) for measure, values in pair_agreement_per_query(ids_a, ids_b, k, p).items()}


def pair_agreement_per_query(ids_a: np.ndarray, ids_b: np.ndarray, k: int, p: float = RBO_P) -> dict[str, np.ndarray]:
    """The same three measures per query, for their bootstrap intervals."""
    return {"overlap": overlap_per_query(ids_a, ids_b, k), "jaccard": jaccard_per_query(ids_a, ids_b, k),
            "rbo": rbo_per_query(ids_a, ids_b, p=p, k=k)}


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
                   p: float = RBO_P, stats: StatsConfig | None = None) -> pd.DataFrame:
    """Long table, one row per (setting, model pair): the same measures at each index/search point, each
    with its bootstrap interval over queries (``stats``: resamples, confidence, seed).

    ``settings`` maps a setting label (e.g. "HNSW(M=16) ef=40") to the per-model results there; a
    setting with fewer than two models has no pairs and no rows.
    """
    stats = stats or StatsConfig()
    level = f"{round(stats.confidence * 100)}% CI"
    rows = []
    for setting, results in settings.items():
        names = list(results)
        if len(names) < 2:
            continue
        reference = results[names[0]][0]
        aligned = {name: align_rows(reference, qids, ids) for name, (qids, ids) in results.items()}
        for a, b in combinations(names, 2):
            values = with_intervals(pair_agreement_per_query(aligned[a], aligned[b], k, p),
                                    resamples=stats.bootstrap_resamples, confidence=stats.confidence, seed=stats.seed)
            row = {"results at": setting, "model A": a, "model B": b}
            for measure, title in (("overlap", f"overlap@{k}"), ("jaccard", f"jaccard@{k}"), ("rbo", f"RBO(p={p})")):
                row[title] = values[measure]
                row[f"{title} {level}"] = fmt_interval(values[ci_key(measure, stats.confidence)])
            rows.append(row)
    return pd.DataFrame(rows)
