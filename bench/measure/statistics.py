"""How sure a figure is: bootstrap intervals over queries, distribution-free intervals for percentiles,
the sample count a percentile needs, spreads across repeated trials, and "significantly different".

Pure numpy/scipy, no I/O. The conventions every caller shares:

* **Quality** (recall, precision, mAP, agreement) is a mean over queries. Its interval is a seeded
  percentile bootstrap over the per-query values (``scipy.stats.bootstrap``): it says how much the figure
  would move with another draw of queries from the same collection. The percentile method, not BCa,
  because per-query recall is often all ones, where BCa is undefined.
* **A latency percentile** gets the distribution-free (order-statistic) interval: with n samples, the
  number of them below the true p-quantile is Binomial(n, p), so a pair of order statistics brackets the
  quantile with a known probability, whatever the latency distribution. It is *bounded* only when both
  ends fall inside the data, which needs :func:`min_samples_for_percentile` samples (p99: 368, p95: 72,
  p50: 6 at 95 %). Below that, a percentile is not reported as a number.
* **Timings across trials** (QPS, latency percentiles of each trial) are summarised by their median and
  min–max; the min–max range is the "interval" of a timing (with 3 trials it covers the median with
  probability 1 − 2·0.5³ = 75 %; the same convention as the regression gate's noise, max/min).
* **Significantly different**: two intervals that do not overlap. It is conservative (two 95 % intervals
  that just touch correspond to p ≈ 0.006 for normal estimates), which is what a report that must never
  crown a winner by noise wants.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from scipy import stats

Interval = tuple[float, float]
APPROX = "≈"  # the mark of a difference within the noise


def ci_key(name: str, confidence: float = 0.95) -> str:
    """results.json key of the interval beside ``name``: ``recall_at_k`` -> ``recall_at_k_ci95``."""
    return f"{name}_ci{round(confidence * 100):d}"


# ----------------------------------------------------------------------------------------------
# Bootstrap over queries
# ----------------------------------------------------------------------------------------------

def bootstrap_ci(values: Sequence[float] | np.ndarray, *, resamples: int, confidence: float = 0.95,
                 seed: int = 0) -> Optional[list[float]]:
    """Percentile-bootstrap interval ``[low, high]`` of the mean of ``values`` (per-query figures).

    Seeded, so a rerun on the same values gives the same interval. NaN values (e.g. unlabelled
    queries) are dropped. None when there are no values; ``[v, v]`` when all values are equal (no
    resample can differ, and scipy would warn about a degenerate sample).
    """
    sample = np.asarray(values, dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return None
    if sample.size == 1 or np.all(sample == sample[0]):
        return [float(sample[0]), float(sample[0])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap((sample,), np.mean, n_resamples=int(resamples), confidence_level=confidence,
                                 method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return [float(low), float(high)]


def with_intervals(per_query: dict[str, np.ndarray], *, resamples: int, confidence: float = 0.95,
                   seed: int = 0) -> dict[str, Any]:
    """``{name: mean, ci_key(name): [low, high]}`` for each array of per-query values."""
    out: dict[str, Any] = {}
    for name, values in per_query.items():
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        out[name] = float(finite.mean()) if finite.size else None
        out[ci_key(name, confidence)] = bootstrap_ci(finite, resamples=resamples, confidence=confidence, seed=seed)
    return out


# ----------------------------------------------------------------------------------------------
# Percentiles: how many samples they need, and their distribution-free interval
# ----------------------------------------------------------------------------------------------

def min_samples_for_percentile(percentile: float, confidence: float = 0.95) -> int:
    """The fewest samples for which the equal-tailed order-statistic interval of the ``percentile``-th
    percentile has both ends inside the data.

    With n samples the count below the true quantile is Binomial(n, q), q = percentile/100. The upper end
    is inside the data when P(all n below) = qⁿ ≤ α/2, the lower end when (1 − q)ⁿ ≤ α/2; so
    n = ⌈ln(α/2) / ln(max(q, 1 − q))⌉. At 95 %: p50 → 6, p95 → 72, p99 → 368.
    """
    q = percentile / 100.0
    if not 0.0 < q < 1.0:
        raise ValueError(f"percentile must lie strictly between 0 and 100, got {percentile}")
    tail = (1.0 - confidence) / 2.0
    return math.ceil(math.log(tail) / math.log(max(q, 1.0 - q)) - 1e-9)


def percentile_interval(samples: Sequence[float] | np.ndarray, percentile: float,
                        confidence: float = 0.95) -> Optional[list[float]]:
    """Distribution-free interval ``[X_(l), X_(u)]`` for the ``percentile``-th percentile, or None when
    the samples cannot bound it (fewer than :func:`min_samples_for_percentile`).

    l is the largest rank with P(B ≤ l − 1) ≤ α/2 and u the smallest with P(B ≥ u) ≤ α/2, B ~ Bin(n, q),
    so the coverage P(l ≤ B ≤ u − 1) is at least ``confidence``.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n, q, tail = x.size, percentile / 100.0, (1.0 - confidence) / 2.0
    if n < min_samples_for_percentile(percentile, confidence):
        return None
    ranks = np.arange(0, n + 1)
    below = stats.binom.cdf(ranks - 1, n, q)  # P(B <= r - 1) for r = 0..n
    above = stats.binom.sf(ranks - 1, n, q)  # P(B >= r)
    low = int(ranks[(ranks >= 1) & (below <= tail)].max())
    high = int(ranks[(ranks >= 1) & (above <= tail)].min())
    return [float(x[low - 1]), float(x[high - 1])]


# ----------------------------------------------------------------------------------------------
# Repeated trials
# ----------------------------------------------------------------------------------------------

def trial_spread(values: Iterable[Optional[float]]) -> Optional[dict[str, float | int]]:
    """``{"median", "min", "max", "n"}`` of the finite values (one per trial); None if there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None
    return {"median": float(np.median(finite)), "min": min(finite), "max": max(finite), "n": len(finite)}


def spread_interval(spread: Optional[dict]) -> Optional[Interval]:
    """The (min, max) of a :func:`trial_spread` as measured (the tuner reads its trials' figures in memory)."""
    if not spread or spread.get("min") is None or spread.get("max") is None:
        return None
    return float(spread["min"]), float(spread["max"])


def embedding_spread(batches: Sequence[dict]) -> Optional[dict[str, Any]]:
    """Images/s per embedding batch, median and min–max, end to end and for inference alone.

    ``batches`` holds ``{"images", "wall_s", "inference_s"}`` per batch, where ``wall_s`` is the time
    from the previous batch's end to this one's (the loader overlaps decoding with inference, so the
    end-to-end time of a batch is its share of the wall clock, not decode plus inference). None when
    there are no batches (a cache hit measures nothing).
    """
    e2e = [b["images"] / b["wall_s"] for b in batches if b.get("images") and b.get("wall_s")]
    infer = [b["images"] / b["inference_s"] for b in batches if b.get("images") and b.get("inference_s")]
    if not e2e and not infer:
        return None
    return {"batches": len(batches), "images_per_s_end_to_end": _batch_rates(e2e),
            "images_per_s_inference": _batch_rates(infer)}


def _batch_rates(rates: Sequence[float]) -> Optional[dict[str, Any]]:
    """The spread of per-batch rates, plus the 95 % interval of their median (``median_ci95``, from
    6 batches on). Unlike three timing trials, hundreds of batches have a min–max that any outlier
    (the first batch fills the loader's pipeline) stretches, so comparisons use the median's interval."""
    spread = trial_spread(rates)
    if spread is not None:
        spread["median_ci95"] = percentile_interval(rates, 50)
    return spread


# ----------------------------------------------------------------------------------------------
# Significance
# ----------------------------------------------------------------------------------------------

def as_interval(value: Any) -> Optional[Interval]:
    """A ``[low, high]`` pair as a tuple, or None if absent, incomplete or not finite."""
    if not isinstance(value, (list, tuple)) or len(value) != 2 or any(v is None for v in value):
        return None
    low, high = float(value[0]), float(value[1])
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def significantly_different(a: Optional[Interval], b: Optional[Interval]) -> bool:
    """True when the two intervals do not overlap. Without an interval on either side, a difference
    cannot be judged, so it is not called significant."""
    if a is None or b is None:
        return False
    return a[1] < b[0] or b[1] < a[0]


def all_within_noise(intervals: Sequence[Optional[Interval]]) -> bool:
    """True when every pair of intervals overlaps (for intervals on a line: they share a common point),
    so no value can be ranked above another. Needs at least two intervals, all present."""
    if len(intervals) < 2 or any(i is None for i in intervals):
        return False
    return max(i[0] for i in intervals) <= min(i[1] for i in intervals)  # type: ignore[index]


def dominates(b: tuple[float, Optional[Interval], float, Optional[Interval]],
              a: tuple[float, Optional[Interval], float, Optional[Interval]]) -> bool:
    """Whether point b dominates point a on (recall, recall interval, qps, qps interval), with noise.

    b dominates a when it is significantly better on one axis and not significantly worse on the other:
    a point is dominated only when it is significantly worse. Without intervals this falls back to the
    plain definition (at least as good on both, better on one).
    """
    rb, rib, qb, qib = b
    ra, ria, qa, qia = a
    if rib is None or ria is None or qib is None or qia is None:
        return rb >= ra and qb >= qa and (rb > ra or qb > qa)
    better_r = significantly_different(rib, ria) and rb > ra
    better_q = significantly_different(qib, qia) and qb > qa
    worse_r = significantly_different(rib, ria) and rb < ra
    worse_q = significantly_different(qib, qia) and qb < qa
    return (better_r or better_q) and not (worse_r or worse_q)


def pareto_frontier_with_noise(points: Sequence[tuple[float, Optional[Interval], float, Optional[Interval]]]) -> list[int]:
    """Indices of the points no other point dominates (:func:`dominates`), by recall ascending.
    Points with a NaN value are left out."""
    valid = [i for i, (r, _, q, _) in enumerate(points) if not (math.isnan(r) or math.isnan(q))]
    frontier = [i for i in valid if not any(dominates(points[j], points[i]) for j in valid if j != i)]
    return sorted(frontier, key=lambda i: (points[i][0], -points[i][2], i))
