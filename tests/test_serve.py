"""workload=serve (bench/measure/workloads/serve/): settings checks, the dynamic batcher, the peak bisection,
the accuracy comparison, and real LoadGen tests: the null SUT against the bare loop, a store that fails
mid-test, Ctrl-C, and one short end-to-end run through the CLI."""
from __future__ import annotations

import _thread
import json
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from bench.config import ServeConfig
from bench.errors import BenchError
from bench.measure.workloads.serve import harness, settings
from bench.measure.workloads.serve.accuracy import compare
from bench.measure.workloads.serve.batcher import Batcher, Pending
from bench.measure.workloads.serve.peak import Probe, find_peak
from bench.measure.workloads.serve.pipeline import BackendFailure, NullPipeline, pack, unpack
from bench.measure.workloads.serve.qsl import LoadgenQSL, choose_samples
from bench.measure.workloads.serve.stages import StageLog
from bench.measure.workloads.serve.sut import BareSUT, ServingSUT
from bench.report.serving import summary_line
from bench.report.serving_tables import serving_table
from bench.results import load_results, read_results

K = 4


@pytest.mark.parametrize("change, words", [
    ({"latency_bound_ms": 0}, "serve.latency_bound_ms=0 must be a positive bound"),
    ({"target_qps": -5.0}, "serve.target_qps=-5.0 must be positive"),
    ({"scenarios": ["Server", "MultiStream"]}, "unknown 'MultiStream'"),
    ({"latency_bound_ms": None, "find_peak": True}, "need a bound"),
    ({"max_batch": 0}, "serve.max_batch=0 must be a positive integer"),
])
def test_bad_settings_are_one_line_errors(change, words):
    with pytest.raises(BenchError, match=words.replace("(", r"\(")) as err:
        settings.validate(replace(ServeConfig(), **change))
    assert "\n" not in str(err.value)


def test_bad_settings_exit_2_from_the_cli(bench_cli, tmp_path):
    proc = bench_cli("index=FLAT", "workload=serve", "serve.latency_bound_ms=-1", run_dir=tmp_path, expect_rc=2)
    assert proc.stderr.strip().splitlines()[-1].startswith("error: serve.latency_bound_ms=-1.0 must be a positive")


def test_batcher_fills_batches_up_to_max_and_waits_at_most_the_delay():
    batcher = Batcher(max_batch=4, max_queue_delay_s=0.05)
    now = time.perf_counter()
    batcher.put([Pending(i, i, now) for i in range(6)])
    assert [p.sample_index for p in batcher.take()] == [0, 1, 2, 3]
    start = time.perf_counter()
    assert [p.sample_index for p in batcher.take()] == [4, 5]  # two waiting, the delay since issue runs out
    assert time.perf_counter() - start < 0.2
    batcher.close()
    assert batcher.take() is None
    off = Batcher(max_batch=1, max_queue_delay_s=10.0)
    off.put([Pending(0, 0, time.perf_counter()), Pending(1, 1, time.perf_counter())])
    assert len(off.take()) == 1  # batching off never waits


def _probe_with_threshold(threshold: float):
    def probe(qps: float) -> Probe:
        return Probe(qps=qps, valid=qps <= threshold, p99_ms=qps, verdict="VALID" if qps <= threshold else "INVALID",
                     level=0)
    return probe


def test_peak_bisects_from_the_offline_throughput():
    peak = find_peak(_probe_with_threshold(60.0), start_qps=100.0, max_probes=6, tolerance=0.05)
    assert [p.qps for p in peak.probes][:3] == [100.0, 50.0, 75.0]
    assert len(peak.probes) <= 6 and 50.0 <= peak.qps <= 60.0
    low, high = peak.bracket
    assert low == peak.qps and high > 60.0
    assert find_peak(_probe_with_threshold(500.0), 100.0, 6, 0.05).as_dict()["probes"][0]["valid"]  # VALID at once
    never = find_peak(_probe_with_threshold(1.0), 100.0, 3, 0.05).as_dict()
    assert not never["reached"] and never["not_reached_at_qps"] == 25.0 and len(never["probes"]) == 3


def test_accuracy_counts_near_equal_swaps_and_finds_mismatches():
    offline_ids = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    offline_d = np.array([[0.9, 0.8, 0.7], [0.9, 0.5, 0.5], [0.9, 0.8, 0.7]], dtype=np.float32)
    served_ids = np.array([[1, 2, 3], [4, 6, 5], [7, 8, 10]])
    served_d = np.array([[0.9, 0.8, 0.7], [0.9, 0.5 + 4e-6, 0.5], [0.9, 0.8, 0.6]], dtype=np.float32)
    out = compare(served_ids, served_d, np.ones(3, bool), offline_ids, offline_d, offline_ids, 3, 1e-5)
    assert (out["identical"], out["equal_up_to_swaps"], out["swapped_positions"], out["mismatched"]) == (1, 1, 2, 1)
    assert not out["equal"] and out["mismatched_queries"] == [2]
    assert out["recall_at_k_vs_exact"] == pytest.approx(8 / 9)
    ids, dist = unpack(pack(served_ids[:1], served_d[:1])[0].tobytes(), 3)
    assert ids.tolist() == [1, 2, 3] and dist.tolist() == pytest.approx([0.9, 0.8, 0.7])


# -- real LoadGen tests -------------------------------------------------------------------------------

@pytest.fixture
def samples(tmp_path):
    paths = {i: str(tmp_path / f"{i}.jpg") for i in range(8)}
    return choose_samples(list(range(8)), [], paths, None)


def _run(sut, samples, scenario, log_dir, **kw):
    serve = replace(ServeConfig(), min_duration_ms=kw.pop("min_duration_ms", 300), min_query_count=kw.pop("count", 200))
    test_settings = settings.test_settings(serve, scenario, target_qps=kw.get("qps"))
    with LoadgenQSL(samples) as qsl, sut as handle:
        return harness.run_test(handle, qsl, test_settings, log_dir, drain=sut.drain, drain_timeout_s=10,
                                scenario=scenario, mode=settings.PERFORMANCE, target_qps=kw.get("qps"))


def test_null_sut_and_bare_loop_run_a_valid_server_test_with_logs(samples, tmp_path):
    log = StageLog()
    null = _run(ServingSUT(NullPipeline(K), samples.paths, max_batch=1, max_queue_delay_s=0, workers=1, stage_log=log),
                samples, "Server", tmp_path / "null", qps=2000.0, count=600)
    bare = _run(BareSUT(), samples, "Server", tmp_path / "bare", qps=2000.0, count=600)
    for test in (null, bare):
        assert test.verdict == "VALID" and test.queries >= 600 and test.completed_qps > 1000
        assert (tmp_path / test.log_dir / harness.SUMMARY_FILE).is_file()
    assert log.summary()["queries"] == null.queries  # every query went through the worker and was timed


def test_a_store_that_fails_mid_test_drains_and_keeps_the_logs(samples, tmp_path):
    calls = []

    def failing(paths):
        calls.append(len(paths))
        if len(calls) > 3:
            raise BackendFailure("vector store milvus_server", ConnectionError("connection refused"))
        return NullPipeline(K)(paths)

    sut = ServingSUT(failing, samples.paths, max_batch=2, max_queue_delay_s=0.001, workers=2)
    test = _run(sut, samples, "Offline", tmp_path / "fail", qps=1000.0, count=100)
    assert isinstance(sut.failure, BackendFailure) and "vector store milvus_server" in str(sut.failure)
    assert sut.drained.startswith("failed") and test.queries >= 100  # LoadGen got every answer and finished
    assert (tmp_path / "fail" / harness.SUMMARY_FILE).is_file()


def test_ctrl_c_stops_loadgen_and_keeps_its_logs(samples, tmp_path):
    slow = lambda paths: (time.sleep(0.01), NullPipeline(K)(paths))[1]  # noqa: E731
    sut = ServingSUT(slow, samples.paths, max_batch=1, max_queue_delay_s=0, workers=1)
    threading.Timer(0.5, _thread.interrupt_main).start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt) as stopped:
        _run(sut, samples, "Server", tmp_path / "stop", qps=50.0, count=100, min_duration_ms=3000)
    assert sut.drained == "interrupted" and not getattr(stopped.value, "loadgen_running", False)
    assert time.perf_counter() - start < 8  # LoadGen ran out its 3 s schedule with instant answers, then stopped
    summary = (tmp_path / "stop" / harness.SUMMARY_FILE).read_text()
    assert "Result is" in summary  # LoadGen wrote its logs


def test_serve_run_end_to_end(bench_cli, tmp_path):
    """A short run: accuracy mode equals the offline search, each scenario has a verdict and its logs,
    the peak bisection keeps its probes, the calibration measures both clients, and the tables say "short"."""
    proc = bench_cli("index=HNSW", "workload=serve", "metadata=redis", "serve.min_duration_ms=300",
                     "serve.min_query_count=60", "serve.find_peak=true", "serve.peak_probes=2", "serve.max_batch=4",
                     "serve.workers=2", "serve.calibration_queries=500", "serve.calibration_qps=4000",
                     "serve.warmup_s=0.2", "search.repeats=1", run_dir=tmp_path)
    result = load_results(tmp_path)
    serve = result["serve"]
    acc = serve["accuracy"]
    assert acc["equal"] and acc["answered"] == acc["queries"] == result["dataset"]["num_queries"]
    assert acc["recall_at_k_vs_exact"] == pytest.approx(acc["offline_recall_at_k_vs_exact"])
    assert serve["search_point"]["sweep_recall_at_k"] >= 0.95 and serve["metadata"] == "redis"
    assert [lv["scenario"] for lv in serve["levels"]][:2] == ["SingleStream", "Offline"]
    assert len(serve["peak"]["probes"]) <= 2 and serve["peak"]["start_qps"] == serve["offline"]["completed_qps"]
    for level in serve["levels"]:
        assert level["verdict"] in ("VALID", "INVALID") and level["label"].startswith("short: ")
        assert (tmp_path / level["log_dir"] / harness.SUMMARY_FILE).is_file()
        assert (tmp_path / level["log_dir"] / "stages.csv").is_file()
        stages = level["stages"]
        assert stages["queries"] > 0 and all(stages[s]["p50_ms"] > 0 for s in ("decode_preprocess", "inference",
                                                                                "search", "lookup"))
    assert serve["offline"]["stages"]["mean_batch_size"] > 1  # Offline fills batches
    cal = serve["calibration"]
    assert cal["null_sut_qps"] and cal["bare_loop_qps"] and cal["harness_us_per_query"] is not None
    assert "serving:" in proc.stdout and "short: " in (tmp_path / "tables.md").read_text()
    assert not serving_table([result]).empty
    assert summary_line([read_results(tmp_path)]).startswith("**Serving:**")
    json.dumps(serve)  # the section is plain JSON
