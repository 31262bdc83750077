"""Intervals, sample counts, trial spreads and significance (bench.measure.statistics), the interleaved
timing trials (bench.measure.search) and the ≈ marks the report and the gate build on them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bench.config import SearchConfig
from bench.gate.comparison import compare_pairs
from bench.gate.config import GateConfig
from bench.measure.search import PointResults, interleaved_trials, latency_target
from bench.measure.statistics import (APPROX, all_within_noise, bootstrap_ci, ci_key, dominates,
                                      embedding_spread, min_samples_for_percentile, pareto_frontier_with_noise,
                                      percentile_interval, significantly_different, trial_spread,
                                      with_intervals)
from bench.measure.timing import summarize_latencies
from bench.report.cross_run_tables import operating_points_table
from bench.report.significance import marks_vs_best, percentile_cell
from bench.stores.base import CollectionSpec, SearchHits
from bench.stores.faiss_store import FaissConfig, FaissStore
from bench.results import as_results
from bench.schema.sections import Latency, TrialSpread
from tests.helpers import results_doc


def test_min_samples_match_the_binomial_bound():
    assert [min_samples_for_percentile(p) for p in (50, 95, 99)] == [6, 72, 368]
    for p in (50, 90, 95, 99, 99.9):
        n, q = min_samples_for_percentile(p), p / 100
        # n is the first count at which both tails of Binomial(n, q) can be cut at 2.5 % inside the data.
        assert max(q, 1 - q) ** n <= 0.025 < max(q, 1 - q) ** (n - 1)


def test_percentile_interval_is_bounded_only_from_the_minimum_count_and_covers():
    rng = np.random.default_rng(1)
    assert percentile_interval(rng.exponential(size=367), 99) is None
    assert percentile_interval(rng.exponential(size=368), 99) is not None
    # Coverage over many draws of an exponential (true p95 = ln 20) is at least 95 %.
    truth, hits = np.log(20), 0
    for _ in range(400):
        low, high = percentile_interval(rng.exponential(size=200), 95)
        hits += low <= truth <= high
    assert hits / 400 >= 0.93


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(0).random(50)
    first = bootstrap_ci(values, resamples=500, seed=3)
    assert first == bootstrap_ci(values, resamples=500, seed=3)
    assert first[0] < values.mean() < first[1]
    assert bootstrap_ci(np.ones(50), resamples=500) == [1.0, 1.0]  # degenerate: no warning, no NaN
    assert bootstrap_ci([], resamples=500) is None
    out = with_intervals({"recall_at_k": values}, resamples=200)
    assert out["recall_at_k"] == pytest.approx(values.mean()) and ci_key("recall_at_k") in out


def test_latency_summary_refuses_unsupported_percentiles():
    summary = summarize_latencies(np.linspace(0.001, 0.002, 100))
    assert summary["count"] == 100 and summary["p95_ms"] is not None and summary["p99_ms"] is None
    assert summary["p99_ms_ci95"] is None and summary["min_samples"]["p99"] == 368
    latency = Latency.model_validate(summary)  # as results.json holds it, read through bench.schema
    assert percentile_cell(latency, 99) == "n<368" and isinstance(percentile_cell(latency, 50), float)
    # Results written before intervals: their count says whether the number was one.
    # A file from before percentiles were withheld: a p99 of 50 samples is shown as what it is.
    assert percentile_cell(Latency(count=50, p99_ms=3.0, p50_ms=1.0), 99) == "n<368"
    assert percentile_cell(Latency(count=50, p99_ms=3.0, p50_ms=1.0), 50) == 1.0


def test_significance_helpers():
    assert not significantly_different((1, 2), (1.5, 3)) and significantly_different((1, 2), (2.5, 3))
    assert not significantly_different(None, (1, 2))
    assert all_within_noise([(1, 3), (2, 4), (2.5, 5)]) and not all_within_noise([(1, 2), (3, 4)])
    assert marks_vs_best([100.0, 95.0, 50.0], [(90, 110), (85, 101), (45, 55)]) == ["best", f"{APPROX} best", "-50%"]
    assert marks_vs_best([100.0, 95.0], [None, None]) == ["", ""]


def test_a_point_is_dominated_only_when_significantly_worse():
    fast = (0.90, (0.85, 0.95), 500.0, (480.0, 520.0))
    slightly_slower = (0.91, (0.86, 0.96), 470.0, (450.0, 490.0))  # QPS ranges overlap: not dominated
    much_slower = (0.92, (0.87, 0.97), 300.0, (290.0, 310.0))  # recall within noise, QPS significantly worse
    exact = (1.0, (1.0, 1.0), 200.0, (190.0, 210.0))  # significantly better recall
    assert not dominates(fast, slightly_slower) and dominates(fast, much_slower) and not dominates(fast, exact)
    assert pareto_frontier_with_noise([fast, slightly_slower, much_slower, exact]) == [0, 1, 3]


def test_trial_spread_and_noise():
    assert trial_spread([3.0, 1.0, 2.0, None, float("nan")]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert trial_spread([None]) is None
    # As results.json holds it, read through bench.schema: max/min - 1.
    assert TrialSpread.model_validate({"min": 100.0, "max": 125.0}).relative_noise == pytest.approx(0.25)
    assert TrialSpread.model_validate({"min": None, "max": 125.0}).relative_noise is None


def test_embedding_spread_from_per_batch_times():
    batches = [{"images": 16, "wall_s": 2.0, "inference_s": 1.0},
               {"images": 16, "wall_s": 4.0, "inference_s": 3.0}]
    spread = embedding_spread(batches)
    assert spread["images_per_s_inference"] == {"median": (16 + 16 / 3) / 2, "min": 16 / 3, "max": 16.0, "n": 2,
                                                "median_ci95": None}  # 2 batches cannot bound a median
    assert spread["images_per_s_end_to_end"]["max"] == 8.0
    many = embedding_spread([{"images": 16, "wall_s": 1.0 + i / 10, "inference_s": 0.5} for i in range(20)])
    low, high = many["images_per_s_end_to_end"]["median_ci95"]
    assert many["images_per_s_end_to_end"]["min"] <= low <= many["images_per_s_end_to_end"]["median"] <= high
    assert embedding_spread([]) is None  # a cache hit measures no batch


class _CountingStore(FaissStore):
    """store=faiss (FLAT over a few rows), recording the order in which parameter points are searched."""

    def __init__(self):
        super().__init__(FaissConfig())
        self.prepare(CollectionSpec("c", 4, "IP", "f", with_paths=False), 8)
        self.insert(np.arange(8), np.eye(8, 4, dtype=np.float32), [], [[1]] * 8)
        self.build_index("FLAT", {})
        self.calls: list[str] = []

    def search(self, vectors, k, params, with_paths=False, filter=None):
        self.calls.append(params["p"])
        return super().search(vectors, k, {}, with_paths, filter)


class _NoMetadata:
    paths_in_search = False

    def resolve(self, hits):
        return []


def test_trials_are_interleaved_across_points_and_collect_enough_latency_samples():
    store, queries = _CountingStore(), np.zeros((10, 4), dtype=np.float32)
    cfg = SearchConfig(top_k=2, warmup=1, concurrency=[1], min_throughput_s=0.0, repeats=3, latency_max_s=5.0)
    points = [PointResults({"p": name}, SearchHits(np.zeros((10, 2)), np.zeros((10, 2))), 1e-4) for name in "ab"]
    summaries = interleaved_trials(store, _NoMetadata(), queries, points, ["a", "b"], cfg)
    # Point order by trial: a's trial 1, b's trial 1, a's trial 2, ...
    blocks = [store.calls[0]] + [c for prev, c in zip(store.calls, store.calls[1:]) if c != prev]
    assert blocks == ["a", "b", "a", "b", "a", "b"]
    for summary in summaries:
        assert summary["repeats"] == 3 and len(summary["trials"]) == 3
        assert summary["latency"]["count"] >= latency_target(cfg) == 368
        assert summary["latency"]["p99_ms"] is not None
        assert summary["spread"]["batch_qps"]["n"] == 3


def _run(batch_qps: float, low: float, high: float) -> dict:
    return results_doc({"model": {"name": "m"}, "index": {"type": "HNSW"},
            "search": {"top_k": 10, "points": [
                {"label": "ef=10", "recall_at_k": 0.9, "batch_qps": batch_qps, "concurrent_qps": {},
                 "latency": {}, "spread": {"batch_qps": {"median": batch_qps, "min": low, "max": high, "n": 3}}},
                {"label": "ef=20", "recall_at_k": 0.95, "batch_qps": batch_qps * 0.95, "concurrent_qps": {},
                 "latency": {}, "spread": {"batch_qps": {"median": batch_qps * 0.95, "min": low * 0.95,
                                                         "max": high * 0.95, "n": 3}}}]}})


def test_operating_points_name_the_ties_instead_of_a_winner():
    table = operating_points_table([_run(100.0, 90.0, 110.0)], thresholds=[0.9])
    row = table.iloc[0]
    assert row["batch: search params"] == "ef=10" and row["batch: within noise"] == f"{APPROX} ef=20"
    assert row["batch QPS range"] == "90–110"


def test_gate_widens_its_limits_to_the_trials_noise():
    """A 35 % QPS drop fails a 30 % threshold, unless the runs' own trials spread wider than that."""
    cfg = GateConfig()
    quiet = compare_pairs([([_run(100.0, 98.0, 102.0)], [_run(65.0, 64.0, 66.0)])], cfg, only="timing")
    noisy = compare_pairs([([_run(100.0, 60.0, 110.0)], [_run(65.0, 50.0, 90.0)])], cfg, only="timing")
    verdict = lambda c: {(r.point, r.metric): r.verdict for r in c.rows}[("ef=10", "batch QPS")]  # noqa: E731
    assert verdict(quiet) == "REGRESSION" and verdict(noisy) == "ok"
    assert "noise" in noisy.table().columns


def test_binomial_coverage_of_the_order_statistic_interval_is_exact():
    n, q = 400, 0.99
    x = np.arange(1, n + 1, dtype=float)  # order statistics are their own ranks
    low, high = percentile_interval(x, 99)
    coverage = stats.binom.cdf(high - 1, n, q) - stats.binom.cdf(low - 1, n, q)
    assert coverage >= 0.95


def _timed_point(label: str, recall: float, qps: float, low: float, high: float) -> dict:
    spread = {"median": qps, "min": low, "max": high, "n": 3}
    return {"label": label, "recall_at_k": recall, "recall_at_k_ci95": [recall - 0.02, min(1.0, recall + 0.02)],
            "batch_qps": qps, "concurrent_qps": {"1": qps}, "repeats": 3,
            "spread": {"batch_qps": spread, "concurrent_qps": {"1": spread}}}


def test_report_says_the_corpus_is_too_small_to_rank_when_all_qps_overlap():
    from bench.report.build import _operating_points, _qps_points, _unrankable
    from bench.report.document import Text
    from bench.report.runset import Group, Run

    def result(points):
        return results_doc({"model": {"name": "m"}, "index": {"type": "HNSW", "build_params": {}},
                            "search": {"top_k": 10, "points": points}})

    tied = as_results(result([_timed_point("ef=10", 0.95, 500, 400, 600), _timed_point("ef=20", 0.99, 450, 380, 560)]))
    apart = as_results(result([_timed_point("ef=10", 0.95, 900, 850, 950),
                               _timed_point("ef=20", 0.99, 450, 380, 560)]))
    assert _unrankable(_qps_points([tied]), "batch QPS") == ["m"]
    assert _unrankable(_qps_points([apart]), "batch QPS") == []
    blocks = _operating_points(Group([Run(Path("r"), tied)], {}), [tied], "", 2)
    assert any(isinstance(b, Text) and "too small" in b.text for b in blocks)
    blocks = _operating_points(Group([Run(Path("r"), apart)], {}), [apart], "", 2)
    assert not any(isinstance(b, Text) and "too small" in b.text for b in blocks)
