"""The serve workload's settings: value checks before any work, and LoadGen's TestSettings for one test.

LoadGen owns the scenarios, the arrival process and the VALID rules; this module only translates
``serve.*`` into its settings, one test at a time (a scenario, a mode, a target QPS).
"""
from __future__ import annotations

from typing import Optional

from bench.config import ServeConfig
from bench.errors import BenchError

SCENARIOS = ("SingleStream", "Server", "Offline")
ACCURACY, PERFORMANCE = "AccuracyOnly", "PerformanceOnly"
# MLPerf Inference requires this long a run for a result that counts; shorter ones are labelled "short".
MLPERF_MIN_DURATION_S = 600.0


def validate(cfg: ServeConfig) -> None:
    """One-line errors for settings LoadGen would refuse or that make no sense, before any work starts."""
    unknown = [s for s in cfg.scenarios if s not in SCENARIOS]
    if unknown or not cfg.scenarios:
        problem = "unknown " + repr(unknown[0]) if unknown else "empty"
        raise BenchError(f"serve.scenarios={list(cfg.scenarios)}: {problem}; choose from {', '.join(SCENARIOS)}")
    if cfg.latency_bound_ms is not None and cfg.latency_bound_ms <= 0:
        raise BenchError(f"serve.latency_bound_ms={cfg.latency_bound_ms} must be a positive bound in ms")
    if cfg.latency_bound_ms is None and (cfg.find_peak or "Server" in cfg.scenarios):
        raise BenchError("serve.latency_bound_ms is null, but serve.find_peak and the Server scenario need a bound: "
                         "set serve.latency_bound_ms=100, or drop Server from serve.scenarios")
    if cfg.target_qps is not None and cfg.target_qps <= 0:
        raise BenchError(f"serve.target_qps={cfg.target_qps} must be positive (or null: half the Offline throughput)")
    if not 0 < cfg.latency_percentile < 1:
        raise BenchError(f"serve.latency_percentile={cfg.latency_percentile} must lie between 0 and 1, e.g. 0.99")
    for name in ("min_duration_ms", "min_query_count", "peak_probes", "max_batch", "workers", "calibration_queries"):
        if getattr(cfg, name) < 1:
            raise BenchError(f"serve.{name}={getattr(cfg, name)} must be a positive integer")
    for name in ("max_queue_delay_ms", "swap_tolerance", "warmup_s"):
        if getattr(cfg, name) < 0:
            raise BenchError(f"serve.{name}={getattr(cfg, name)} must not be negative")
    if cfg.calibration_qps <= 0:
        raise BenchError(f"serve.calibration_qps={cfg.calibration_qps} must be a positive QPS")
    if not 0 < cfg.peak_tolerance < 1:
        raise BenchError(f"serve.peak_tolerance={cfg.peak_tolerance} must lie between 0 and 1, e.g. 0.05")
    if not 0 <= cfg.min_recall <= 1:
        raise BenchError(f"serve.min_recall={cfg.min_recall} must lie between 0 and 1")
    if cfg.samples is not None and cfg.samples < 1:
        raise BenchError(f"serve.samples={cfg.samples} must be positive (or null: the held-out queries)")
    if "Server" in cfg.scenarios and cfg.target_qps is None and "Offline" not in cfg.scenarios:
        raise BenchError("the Server scenario without serve.target_qps runs at half the Offline throughput: "
                         "set serve.target_qps, or keep Offline in serve.scenarios")
    if cfg.find_peak and "Offline" not in cfg.scenarios:
        raise BenchError("serve.find_peak starts from the Offline throughput: keep Offline in serve.scenarios")


def test_settings(cfg: ServeConfig, scenario: str, *, mode: str = PERFORMANCE, target_qps: Optional[float] = None,
                  min_query_count: Optional[int] = None, min_duration_ms: Optional[int] = None):
    """LoadGen's TestSettings for one test. ``target_qps`` is the Server's Poisson rate, or the Offline
    scenario's expected throughput (LoadGen sizes the Offline query from it)."""
    import mlperf_loadgen as lg

    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = getattr(lg.TestMode, mode)
    settings.min_duration_ms = int(cfg.min_duration_ms if min_duration_ms is None else min_duration_ms)
    settings.min_query_count = int(cfg.min_query_count if min_query_count is None else min_query_count)
    settings.qsl_rng_seed = settings.sample_index_rng_seed = settings.schedule_rng_seed = int(cfg.seed)
    if scenario == "Server":
        if target_qps is None or target_qps <= 0:
            raise BenchError(f"a Server test needs a positive target QPS, got {target_qps}")
        settings.server_target_qps = float(target_qps)
        settings.server_target_latency_ns = int(cfg.latency_bound_ms * 1e6)
        settings.server_target_latency_percentile = float(cfg.latency_percentile)
    elif scenario == "Offline" and target_qps:
        settings.offline_expected_qps = float(target_qps)
    return settings


def short_label(seconds: Optional[float], queries: Optional[int]) -> str:
    """'short: 10.2 s, 512 queries' below MLPerf's 600 s minimum, else the same without 'short'."""
    if seconds is None:
        return "not run"
    prefix = "short: " if seconds < MLPERF_MIN_DURATION_S else ""
    return f"{prefix}{seconds:.1f} s, {queries or 0} queries"
