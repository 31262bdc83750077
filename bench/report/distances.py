"""Distance distributions per model: top-1, top-K and random-pair samples, their summaries, and how
different two models' distributions are (statistics from bench.measure.evaluate).
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from bench.measure.evaluate import MISSING_ID, distance_summary, distribution_difference, normalize_metric

# Sample name -> what it holds; the order is the order of tables and plot panels.
SAMPLES = {
    "top-1": "distance to the nearest corpus image of each query (exact search)",
    "top-K": "distances to all K nearest corpus images of each query (exact search, ranks 1..K)",
    "random pairs": "distances between random pairs of corpus images (the 'unrelated images' baseline)",
}

# What a distance is under each metric, given that bench L2-normalises every embedding (bench.models.embed).
_METRIC_MEANING = {
    "IP": ("inner product of L2-normalised embeddings = cosine similarity, range −1..1, higher = more similar",
           "cosine similarity (IP on unit vectors)"),
    "COSINE": ("cosine similarity, range −1..1, higher = more similar", "cosine similarity"),
    "L2": ("squared Euclidean distance between L2-normalised embeddings = 2 − 2·cosine, range 0..4, "
           "lower = more similar", "squared L2 distance (unit vectors)"),
}


def metric_meaning(metric: str) -> str:
    """One sentence saying what a distance means under ``metric``, so models can be compared."""
    return _METRIC_MEANING[normalize_metric(metric)][0]


def metric_axis_label(metric: str) -> str:
    return _METRIC_MEANING[normalize_metric(metric)][1]


def distance_samples(topk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The three samples of one run's topk.npz arrays; missing results (id -1) are left out."""
    ids, dist = topk["exact_ids"], topk["exact_distances"]
    present = ids != MISSING_ID
    return {"top-1": dist[:, 0][present[:, 0]], "top-K": dist[present],
            "random pairs": np.asarray(topk["random_pair_distances"]).ravel()}


def summary_table(samples_by_model: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    rows = []
    for model, samples in samples_by_model.items():
        for sample, values in samples.items():
            rows.append({"model": model, "sample": sample, **distance_summary(values)})
    return pd.DataFrame(rows)


def difference_table(samples_by_model: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """Per pair of models and per sample: KS statistic and p-value, and Wasserstein distance."""
    rows = []
    for a, b in combinations(samples_by_model, 2):
        for sample in SAMPLES:
            diff = distribution_difference(samples_by_model[a][sample], samples_by_model[b][sample])
            rows.append({"model A": a, "model B": b, "sample": sample, "KS statistic": diff["ks_statistic"],
                         "KS p-value": diff["ks_pvalue"], "Wasserstein": diff["wasserstein"],
                         "n A": diff["n_a"], "n B": diff["n_b"]})
    return pd.DataFrame(rows)
