"""Fidelity of a model variant (INT8, FP16, another runtime) to its FP32 reference, on the same images.

Would users see the same results? Measured where they look:

* **cosine** between the variant's and the reference's embedding of each image (min, p1, p50,
  mean): 1 means the same direction, which is all that matters for normalised search;
* **exact search agreement**: each model's exact top-K over its own corpus vectors, for the same
  queries, compared as overlap@K, Jaccard@K and rank-biased overlap;
* **served results against the reference's exact top-K**: recall@K of every search point the
  variant ran (its index results) against what the FP32 model finds exactly: how many of the
  images users saw before they still see;
* **distance shift**: KS and Wasserstein between the two models' top-1 and top-K distances;
* **quality change**: precision@K and mAP@K of exact search, variant minus reference;
* **speed and size ratios**: variant / reference images/s (inference, end to end) and ONNX bytes;
* **a diagnosis** when the fidelity collapses where the CPU explains it (:func:`saturation_warning`).

Pure numpy on arrays the runner already has; the metrics are those of :mod:`bench.measure.evaluate`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from bench.measure import evaluate

COSINE_PERCENTILES = (1, 50)
# Below this cosine p1, an INT8 variant no longer gives the FP32 model's results (overlap@10 falls to about
# 0.5 on the smoke model); above it, overlap stays above 0.8 on every CPU class measured.
COLLAPSE_COSINE_P1 = 0.98


def embedding_cosines(reference: np.ndarray, variant: np.ndarray) -> np.ndarray:
    """Per row: cosine of the angle between the two embeddings of the same image, float64 (n,).

    A zero vector has no direction: its cosine is 0 against anything but another zero vector (1).
    """
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(variant, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two (n, d) arrays of the same shape, got {a.shape} and {b.shape}")
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both = norm_a * norm_b
    dots = np.einsum("ij,ij->i", a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = np.where(both > 0, dots / np.where(both > 0, both, 1.0), 0.0)
    cosines[(norm_a == 0) & (norm_b == 0)] = 1.0
    return np.clip(cosines, -1.0, 1.0)


def cosine_summary(cosines: np.ndarray) -> dict[str, float | int]:
    values = np.asarray(cosines, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no images to compare")
    summary: dict[str, float | int] = {"count": int(values.size), "min": float(values.min())}
    for p in COSINE_PERCENTILES:
        summary[f"p{p}"] = float(np.percentile(values, p))
    summary["mean"] = float(values.mean())
    return summary


def rows_by_id(ids: np.ndarray, vectors: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The rows of ``vectors`` (one per entry of ``ids``) for the ids in ``wanted``, in that order."""
    row_of = {int(i): r for r, i in enumerate(ids)}
    missing = [int(i) for i in wanted if int(i) not in row_of]
    if missing:
        raise ValueError(f"{len(missing)} image(s) have no reference embedding (first id {missing[0]})")
    return vectors[[row_of[int(i)] for i in wanted]]


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or not denominator:
        return None
    return float(numerator) / float(denominator)


def fidelity_section(*, reference_ids: np.ndarray, reference_vectors: np.ndarray, corpus_ids: np.ndarray,
                     corpus_vectors: np.ndarray, query_ids: np.ndarray, query_vectors: np.ndarray,
                     exact_ids: np.ndarray, exact_distances: np.ndarray, served: dict[str, np.ndarray],
                     quality: Callable[[np.ndarray], dict[str, Any]], k: int, metric: str) -> dict[str, Any]:
    """Everything above but speed and size, from the two models' embeddings and the variant's results.

    ``reference_*``: the FP32 model's embedding of the same images (any order, by id). ``corpus_*``,
    ``query_*``: the variant's. ``exact_ids``/``exact_distances``: the variant's exact top-K.
    ``served``: search-point label -> the variant's result ids there. ``quality``: result ids ->
    {precision_at_k, map_at_k, ...} for these queries.
    """
    ref_corpus = rows_by_id(reference_ids, reference_vectors, corpus_ids)
    ref_queries = rows_by_id(reference_ids, reference_vectors, query_ids)
    cosines = embedding_cosines(np.concatenate([ref_corpus, ref_queries]), np.concatenate([corpus_vectors,
                                                                                           query_vectors]))
    ref_rows, ref_distances = evaluate.exact_topk(ref_corpus, ref_queries, k, metric)
    ref_exact = corpus_ids[ref_rows]
    ref_quality, var_quality = quality(ref_exact), quality(exact_ids)
    return {
        "top_k": k, "metric": metric, "num_images": int(len(cosines)),
        "cosine": cosine_summary(cosines),
        "exact": {"overlap_at_k": evaluate.overlap_at_k(exact_ids, ref_exact, k),
                  "jaccard_at_k": evaluate.jaccard_at_k(exact_ids, ref_exact, k),
                  "rbo": evaluate.rank_biased_overlap(exact_ids, ref_exact, k=k),
                  # = overlap@K when no slot is missing: the variant's exact results against FP32's
                  "recall_at_k": evaluate.recall_at_k(exact_ids, ref_exact, k)},
        "points": [{"label": label, "recall_at_k": evaluate.recall_at_k(ids, ref_exact, k)}
                   for label, ids in served.items()],
        "distances": {"top1": evaluate.distribution_difference(ref_distances[:, 0], exact_distances[:, 0]),
                      "topk": evaluate.distribution_difference(ref_distances, exact_distances)},
        "quality": {name: {"reference": ref_quality.get(name), "variant": var_quality.get(name),
                           "change": _difference(var_quality.get(name), ref_quality.get(name))}
                    for name in ("precision_at_k", "map_at_k")},
    }


def speed_and_size(reference_stats: dict, variant_stats: dict, reference_bytes: Optional[int],
                   variant_bytes: Optional[int]) -> dict[str, Any]:
    """Ratios variant / reference of embedding images/s and ONNX bytes, with where the timings came from."""
    speed = {}
    for name in ("images_per_s_inference", "images_per_s_end_to_end"):
        speed[name] = {"reference": reference_stats.get(name), "variant": variant_stats.get(name),
                       "ratio": ratio(variant_stats.get(name), reference_stats.get(name))}
    # A cache hit carries the timings of the run that computed the vectors: say when each was measured.
    speed["measured_at"] = {"reference": reference_stats.get("measured_at"),
                            "variant": variant_stats.get("measured_at")}
    speed["from_cache"] = {"reference": bool(reference_stats.get("from_cache")),
                           "variant": bool(variant_stats.get("from_cache"))}
    return {"speed": speed, "size": {"reference_onnx_bytes": reference_bytes, "variant_onnx_bytes": variant_bytes,
                                     "ratio": ratio(variant_bytes, reference_bytes)}}


def _difference(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else float(a) - float(b)


def saturation_warning(cosine_p1: Optional[float], settings: dict, hardware: dict) -> Optional[str]:
    """Why an INT8 variant's fidelity collapsed, when the CPU explains it; else None.

    On x86 without VNNI (or AMX), onnxruntime's u8s8 kernels add pairs of u8 x s8 products in 16 bits
    with saturation; 7-bit weights (``reduce_range``) keep the sums in range. ``hardware`` is the run's
    provenance: its detected ``int8_dot_product``, not a class a test may have overridden.
    """
    if cosine_p1 is None or cosine_p1 >= COLLAPSE_COSINE_P1:
        return None
    if not str(settings.get("precision", "")).startswith("int8") or settings.get("reduce_range"):
        return None
    if hardware.get("machine") not in ("x86_64", "AMD64") or hardware.get("int8_dot_product", True):
        return None
    cpu_class = hardware.get("cpu_class_detected", hardware.get("cpu_class", "x86"))
    return (f"INT8 fidelity collapsed (cosine p1 {cosine_p1:.4f} < {COLLAPSE_COSINE_P1}): this CPU ({cpu_class}) "
            "has no VNNI, so onnxruntime's u8s8 kernels add pairs of products in 16 bits and saturate; "
            "set model.quant.reduce_range=auto (or true), or model.quant.weight_type=QUInt8 (U8U8)")
