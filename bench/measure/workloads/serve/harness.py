"""One LoadGen test: start it, wait for it (Ctrl-C stops it cleanly), and read what its logs say.

LoadGen's ``StartTestWithLogSettings`` runs in a helper thread: while the main thread is inside
LoadGen's C++ code no Python signal handler can run, so Ctrl-C would wait for the whole test. Here
the main thread only waits; on Ctrl-C (or SIGTERM) it tells the system under test to drain
(complete every query at once, doing no work), which lets LoadGen finish its schedule and write
its logs, then re-raises. The figures come from LoadGen's detail log (``:::MLLOG`` JSON lines),
the same values its ``mlperf_log_summary.txt`` prints.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from bench.measure.clock import Stopwatch

log = logging.getLogger(__name__)

MLLOG_PREFIX = ":::MLLOG "
SUMMARY_FILE, DETAIL_FILE = "mlperf_log_summary.txt", "mlperf_log_detail.txt"
ACCURACY_FILE = "mlperf_log_accuracy.json"
JOIN_POLL_S = 0.1


@dataclass
class LoadgenTest:
    """What one LoadGen test reported, in the units the report uses (ms, queries/s)."""
    scenario: str
    mode: str
    log_dir: str
    valid: Optional[bool]
    verdict: str  # VALID / INVALID, or "interrupted"
    seconds: float  # wall time of the test
    queries: Optional[int]  # samples completed (an Offline test is one query of many samples)
    completed_qps: Optional[float]
    target_qps: Optional[float] = None
    scheduled_qps: Optional[float] = None
    latency_ms: dict[str, Optional[float]] = field(default_factory=dict)  # p50, p90, p99, mean, max
    rules: dict[str, Any] = field(default_factory=dict)  # min duration met, min queries met, early stopping
    early_stopping: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_detail_log(path: Path) -> dict[str, Any]:
    """Every ``:::MLLOG`` key of LoadGen's detail log with its last value."""
    values: dict[str, Any] = {}
    if not path.is_file():
        return values
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(MLLOG_PREFIX):
            try:
                entry = json.loads(line[len(MLLOG_PREFIX):])
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupt
            values[entry.get("key")] = entry.get("value")
    return values


def _ns_to_ms(value: Any) -> Optional[float]:
    return float(value) / 1e6 if isinstance(value, (int, float)) else None


def parse_test(log_dir: Path, scenario: str, mode: str, seconds: float, target_qps: Optional[float]) -> LoadgenTest:
    v = read_detail_log(log_dir / DETAIL_FILE)
    validity = v.get("result_validity")
    latency = {"p50": _ns_to_ms(v.get("result_50.00_percentile_latency_ns")),
               "p90": _ns_to_ms(v.get("result_90.00_percentile_latency_ns")),
               "p99": _ns_to_ms(v.get("result_99.00_percentile_latency_ns")),
               "mean": _ns_to_ms(v.get("result_mean_latency_ns")), "max": _ns_to_ms(v.get("result_max_latency_ns"))}
    # Each scenario names its throughput differently: Offline samples/s, Server completed samples/s,
    # SingleStream queries/s (one sample each) including LoadGen's own overhead.
    qps = next((v[key] for key in ("result_samples_per_second", "result_completed_samples_per_sec",
                                   "result_qps_with_loadgen_overhead") if key in v), None)
    # An Offline test is one query of many samples: count samples, as the other scenarios do.
    queries = v.get("result_query_count")
    if isinstance(queries, int) and isinstance(v.get("generated_samples_per_query"), int):
        queries *= v["generated_samples_per_query"]
    return LoadgenTest(
        scenario=scenario, mode=mode, log_dir=str(log_dir), valid=None if validity is None else validity == "VALID",
        verdict=str(validity) if validity is not None else ("accuracy run" if mode == "AccuracyOnly" else "no result"),
        seconds=seconds, queries=queries,
        completed_qps=float(qps) if isinstance(qps, (int, float)) else None, target_qps=target_qps,
        scheduled_qps=v.get("result_scheduled_samples_per_sec"), latency_ms=latency,
        rules={"min_duration_met": v.get("result_min_duration_met"), "min_queries_met": v.get("result_min_queries_met"),
               "early_stopping_met": v.get("early_stopping_met"),
               "performance_constraints_met": v.get("result_perf_constraints_met"),
               "over_bound_queries": v.get("result_overlatency_query_count")},
        early_stopping=str(v.get("early_stopping_result") or "").strip())


def run_test(sut: Any, qsl: Any, settings: Any, log_dir: Path, *, drain: Callable[[str], None], drain_timeout_s: float,
             scenario: str, mode: str, target_qps: Optional[float] = None) -> LoadgenTest:
    """Run one test with LoadGen writing its logs into ``log_dir``; ``drain(reason)`` makes the system under
    test complete every query at once. Ctrl-C drains, waits up to ``drain_timeout_s`` for LoadGen to finish
    and write its logs, then re-raises."""
    import mlperf_loadgen as lg

    log_dir.mkdir(parents=True, exist_ok=True)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False  # the trace is large and timestamps every sample; the stages are ours
    failure: list[BaseException] = []
    # Waited on instead of Thread.join: a join interrupted by KeyboardInterrupt can leave the thread looking
    # finished while it still runs (CPython's join bookkeeping), and LoadGen's handles would be freed under it.
    done = threading.Event()

    def body() -> None:
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            failure.append(err)
        finally:
            done.set()

    thread = threading.Thread(target=body, name=f"loadgen-{scenario}", daemon=True)
    watch = Stopwatch()
    thread.start()
    try:
        while not done.wait(JOIN_POLL_S):
            pass
    except KeyboardInterrupt as err:
        log.warning("interrupted: stopping LoadGen (the system under test completes what is left at once; "
                    "waiting up to %.0f s for LoadGen to write its logs in %s)", drain_timeout_s, log_dir)
        drain("interrupted")
        if not done.wait(drain_timeout_s):
            # Its SUT and QSL must outlive it: destroying them under a running test crashes the process.
            log.warning("LoadGen's %s schedule runs on past %.0f s: its logs in %s stop here", scenario,
                        drain_timeout_s, log_dir)
            err.loadgen_running = True  # type: ignore[attr-defined]
        raise
    if failure:
        raise failure[0]
    return parse_test(log_dir, scenario, mode, watch.elapsed(), target_qps)
