"""The serve workload: which tests run in which order, and the section they fill.

1. the served point (``serve.search``, or the fastest point of the sweep reaching ``serve.min_recall``);
2. a warm-up of the pipeline, which also sizes LoadGen's Offline query;
3. accuracy mode: every query image once, its served top-K against the offline search of the same point;
4. the performance scenarios: SingleStream (p50/p90/p99 of one stream), Offline (throughput), Server at
   ``serve.target_qps`` or, with ``serve.find_peak``, the bisection for the highest VALID QPS;
5. the calibration: the same SUT with a pipeline that answers at once (null SUT), and a bare LoadGen loop.

Each test's LoadGen logs and per-query stage times stay in ``<run>/serve/<nn>_<test>/``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from bench.config import Config, ServeConfig
from bench.errors import BenchError
from bench.measure.clock import Stopwatch
from bench.measure.search import search_topk
from bench.measure.workloads.base import AFTER_SWEEP, Workload
from bench.measure.workloads.serve import accuracy, harness, settings
from bench.measure.workloads.serve.peak import Probe, find_peak
from bench.measure.workloads.serve.pipeline import NullPipeline, QueryPipeline
from bench.measure.workloads.serve.qsl import LoadgenQSL, Samples, choose_samples
from bench.measure.workloads.serve.stages import StageLog, slowest_stage
from bench.measure.workloads.serve.sut import BareSUT, ServingSUT
from bench.models.loader import BatchDecoder
from bench.models.preprocess import get_preprocessor, load_preprocess_hook
from bench.models.runtime import make_session
from bench.run.context import RunContext
from bench.stores.indexes import point_label

log = logging.getLogger(__name__)

# The report says the client, not the pipeline, limits a peak at this share of the null SUT's QPS.
CLIENT_LIMIT_SHARE = 0.5
# LoadGen's Offline query is sized from an expected QPS; a little above the warm-up's rate keeps the
# test past its minimum duration when the pipeline runs faster once warm.
OFFLINE_SIZING = 1.25
DRAIN_GRACE_S = 30.0
CALIBRATION_MIN_DURATION_MS = 1000


def batching_label(cfg: ServeConfig) -> str:
    threads = f"{cfg.workers} worker{'s' if cfg.workers > 1 else ''}"
    if cfg.max_batch <= 1:
        return f"off ({threads})"
    return f"max {cfg.max_batch}, {cfg.max_queue_delay_ms:g} ms ({threads})"


def choose_point(cfg: ServeConfig, points: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """(search params, why these): serve.search, or the sweep's fastest point (serial p50) reaching min_recall."""
    if cfg.search is not None:
        return dict(cfg.search), "given: serve.search"
    if not points:
        raise BenchError("workload=serve needs the sweep's points to choose serve.search: set serve.search")

    def p50(p: dict) -> float:
        value = (p.get("latency") or {}).get("p50_ms")
        return value if value is not None else math.inf

    reaching = [p for p in points if (p.get("recall_at_k") or 0.0) >= cfg.min_recall]
    if reaching:
        best = min(reaching, key=p50)
        return dict(best["params"]), f"fastest sweep point (serial p50) with recall@K >= {cfg.min_recall:g}"
    best = max(points, key=lambda p: p.get("recall_at_k") or 0.0)
    log.warning("serve: no sweep point reaches recall %.3g; serving the most exact one, %s", cfg.min_recall,
                best["label"])
    return dict(best["params"]), f"no sweep point reaches recall@K >= {cfg.min_recall:g}: the most exact one"


class ServeWorkload(Workload):
    """After the plain sweep: ``prepare(context)`` builds the pipeline and warms it; ``run(context)`` returns
    the "serve" section, saved as each test ends (``context.publish``)."""

    name = "serve"
    phase = AFTER_SWEEP

    def __init__(self) -> None:
        self.section: dict[str, Any] = {}
        self.pipeline: Optional[QueryPipeline] = None
        self.samples: Optional[Samples] = None
        self.params: dict[str, Any] = {}
        self._tests = 0

    @classmethod
    def validate(cls, cfg: Config) -> None:
        settings.validate(cfg.serve)

    # -- prepare -----------------------------------------------------------------------------------
    def prepare(self, context: RunContext) -> None:
        cfg, serve = context.cfg, context.cfg.serve
        self.params, chosen_by = choose_point(serve, context.search_points)
        label = point_label(self.params)
        model = context.model
        session = make_session(model.onnx_path, cfg.runtime)
        decoder = BatchDecoder(model.input_size, get_preprocessor(model.preprocessing),
                               load_preprocess_hook(cfg.model.preprocess_hook), cfg.model.jpeg_draft)
        self.pipeline = QueryPipeline(model, session, decoder, context.store, context.metadata, self.params,
                                      cfg.search.top_k, cfg.store.kind)
        self.samples = choose_samples(context.queries.ids, context.corpus.ids, context.corpus.paths, serve.samples)
        sweep = next((p for p in context.search_points if p.get("params") == self.params), {})
        self.section = {
            "search_point": {"label": label, "params": self.params, "chosen_by": chosen_by,
                             "sweep_recall_at_k": sweep.get("recall_at_k")},
            "batching": batching_label(serve), "max_batch": serve.max_batch,
            "max_queue_delay_ms": serve.max_queue_delay_ms, "workers": serve.workers,
            "latency_bound_ms": serve.latency_bound_ms, "latency_percentile": serve.latency_percentile,
            "samples": self.samples.describe(), "store": cfg.store.kind, "metadata": context.metadata.kind,
            "log_dir": str(context.outdir / "serve"), "levels": [],
        }
        log.info("serve: %s at %s (%s), batching %s; samples: %s", model.name, label, chosen_by,
                 self.section["batching"], self.section["samples"]["note"])
        self.section["warmup"] = self._warm_up(serve)
        context.publish(self.name, self.section)

    def _warm_up(self, serve: ServeConfig) -> dict[str, Any]:
        """Untimed passes over the samples in batches of max_batch: sessions, caches and connections warm up,
        and the rate sizes LoadGen's Offline query."""
        paths, n, done = self.samples.paths, max(1, serve.max_batch), 0
        watch = Stopwatch()
        while done == 0 or watch.elapsed() < serve.warmup_s:
            self.pipeline([paths[(done + i) % len(paths)] for i in range(n)])
            done += n
        seconds = watch.elapsed()
        return {"queries": done, "seconds": seconds, "qps": done / seconds, "batch": n}

    # -- run ---------------------------------------------------------------------------------------
    def run(self, context: RunContext) -> dict[str, Any]:
        if self.pipeline is None:
            self.prepare(context)
        serve, section = context.cfg.serve, self.section
        if serve.accuracy:
            section["accuracy"] = self._accuracy(context)
            context.publish(self.name, section)
        if "SingleStream" in serve.scenarios:
            section["single_stream"] = self._level(context, "SingleStream")
        if "Offline" in serve.scenarios:
            expected = section["warmup"]["qps"] * OFFLINE_SIZING
            section["offline"] = self._level(context, "Offline", qps=expected)
        if "Server" in serve.scenarios:
            self._server(context)
        if serve.calibrate:
            section["calibration"] = self._calibrate(context)
        section["slowest_stage"] = self._slowest_stage()
        context.publish(self.name, section)
        return section

    def _server(self, context: RunContext) -> None:
        serve, section = context.cfg.serve, self.section
        offline_qps = (section.get("offline") or {}).get("completed_qps")
        if not serve.find_peak:
            qps = serve.target_qps or (offline_qps or section["warmup"]["qps"]) / 2
            section["server"] = self._level(context, "Server", qps=qps)
            return
        start = offline_qps or section["warmup"]["qps"]

        def probe(qps: float) -> Probe:
            level = self._level(context, "Server", qps=qps)
            return Probe(qps=qps, valid=bool(level["valid"]), p99_ms=level["latency_ms"].get("p99"),
                         verdict=level["verdict"], level=len(section["levels"]) - 1)

        peak = find_peak(probe, start, serve.peak_probes, serve.peak_tolerance)
        section["peak"] = peak.as_dict()
        context.publish(self.name, section)

    def _level(self, context: RunContext, scenario: str, *, qps: Optional[float] = None) -> dict[str, Any]:
        """One performance test of the pipeline, recorded as a load level with its stage times."""
        stage_log = StageLog()
        test = self._test(context, scenario, settings.PERFORMANCE, self._serving_sut(context.cfg.serve, self.pipeline,
                                                                                     stage_log), self.samples, qps=qps)
        level = {**test.as_dict(), "label": settings.short_label(test.seconds, test.queries),
                 "stages": stage_log.summary()}
        self.section["levels"].append(level)
        context.publish(self.name, self.section)
        return level

    @staticmethod
    def _serving_sut(serve: ServeConfig, pipeline: Any, stage_log: StageLog) -> ServingSUT:
        return ServingSUT(pipeline, [], max_batch=serve.max_batch, max_queue_delay_s=serve.max_queue_delay_ms / 1e3,
                          workers=serve.workers, stage_log=stage_log)

    def _test(self, context: RunContext, scenario: str, mode: str, sut: Any, samples: Samples, *,
              qps: Optional[float] = None, min_query_count: Optional[int] = None,
              min_duration_ms: Optional[int] = None, name: Optional[str] = None) -> harness.LoadgenTest:
        """One LoadGen test of ``sut`` (a ServingSUT or the BareSUT) over ``samples``; logs in serve/<nn>_<name>/."""
        serve = context.cfg.serve
        self._tests += 1
        suffix = f"_{qps:.4g}qps" if scenario == "Server" and qps else ""
        log_dir = context.outdir / "serve" / f"{self._tests:02d}_{name or scenario}{suffix}"
        test_settings = settings.test_settings(serve, scenario, mode=mode, target_qps=qps,
                                               min_query_count=min_query_count, min_duration_ms=min_duration_ms)
        if isinstance(sut, ServingSUT):
            sut.paths = list(samples.paths)
        log.info("serve: %s %s%s -> %s", scenario, mode, f" at {qps:.4g} QPS" if qps else "", log_dir)
        drain_s = (min_duration_ms or serve.min_duration_ms) / 1e3 + DRAIN_GRACE_S
        with LoadgenQSL(samples) as qsl, sut as handle:
            try:
                test = harness.run_test(handle, qsl, test_settings, log_dir, drain=sut.drain, drain_timeout_s=drain_s,
                                        scenario=scenario, mode=mode, target_qps=qps)
            finally:
                if isinstance(sut, ServingSUT):
                    sut.stage_log.write(log_dir / "stages.csv")
        if getattr(sut, "failure", None) is not None:
            raise BenchError(f"serve: {sut.failure} (in the {scenario} test); LoadGen's logs are kept in {log_dir}")
        log.info("serve: %s %s: %s, %s QPS, p99 %s ms (%s)", scenario, mode, test.verdict,
                 _fmt(test.completed_qps), _fmt(test.latency_ms.get("p99")), settings.short_label(test.seconds,
                                                                                                  test.queries))
        return test

    def _accuracy(self, context: RunContext) -> dict[str, Any]:
        """Accuracy mode over the query images alone: each once, compared with the offline search."""
        cfg = context.cfg
        k = cfg.search.top_k
        queries = choose_samples(context.queries.ids, context.corpus.ids, context.corpus.paths, None)
        scenario = "Offline" if "Offline" in cfg.serve.scenarios else cfg.serve.scenarios[0]
        test = self._test(context, scenario, settings.ACCURACY, self._serving_sut(cfg.serve, self.pipeline, StageLog()),
                          queries, name="accuracy",
                             qps=self.section["warmup"]["qps"] if scenario != "Server" else None)
        ids, distances, answered = accuracy.read_accuracy_log(Path(test.log_dir) / harness.ACCURACY_FILE,
                                                              len(queries.paths), k)
        offline = search_topk(context.store, context.metadata, context.queries.vectors, self.params, cfg.search,
                              point_label(self.params))
        out = accuracy.compare(ids, distances, answered, offline.hits.ids, offline.hits.distances, context.exact.ids,
                               k, cfg.serve.swap_tolerance)
        out.update({"scenario": scenario, "log_dir": test.log_dir, "seconds": test.seconds})
        log.info("serve accuracy: %d/%d identical, %d equal up to %d swap(s), %d mismatched; end-to-end recall@%d %.4f",
                 out["identical"], out["queries"], out["equal_up_to_swaps"], out["swapped_positions"],
                 out["mismatched"], k, out["recall_at_k_vs_exact"] or float("nan"))
        return out

    def _calibrate(self, context: RunContext) -> dict[str, Any]:
        """What the client costs: the highest VALID Server QPS of this SUT with a pipeline that answers at once
        (null SUT), and of a bare LoadGen loop whose issue callback completes each sample itself."""
        serve, k = context.cfg.serve, context.cfg.search.top_k

        def peak_of(name: str, make_sut: Callable[[], Any]) -> dict[str, Any]:
            def probe(qps: float) -> Probe:
                test = self._test(context, "Server", settings.PERFORMANCE, make_sut(), self.samples, qps=qps,
                                  min_query_count=serve.calibration_queries,
                                  min_duration_ms=CALIBRATION_MIN_DURATION_MS, name=name)
                return Probe(qps=qps, valid=bool(test.valid), p99_ms=test.latency_ms.get("p99"),
                             verdict=test.verdict, level=-1)
            return find_peak(probe, serve.calibration_qps, serve.peak_probes, serve.peak_tolerance).as_dict()

        null = peak_of("null_sut", lambda: self._serving_sut(serve, NullPipeline(k), StageLog()))
        bare = peak_of("bare_loop", BareSUT)
        null_qps, bare_qps = null["qps"], bare["qps"]
        best = (self.section.get("peak") or {}).get("qps") or (self.section.get("offline") or {}).get("completed_qps")
        return {
            "queries_per_probe": serve.calibration_queries, "null_sut_qps": null_qps, "bare_loop_qps": bare_qps,
            "null_vs_bare": null_qps / bare_qps if null_qps and bare_qps else None,
            "harness_us_per_query": (1e6 / null_qps - 1e6 / bare_qps) if null_qps and bare_qps else None,
            "client_limited": bool(best and null_qps and best >= CLIENT_LIMIT_SHARE * null_qps),
            "null_sut": null, "bare_loop": bare,
        }

    def _slowest_stage(self) -> dict[str, Any]:
        """Per load level, the stage with the largest mean time per query."""
        return {f"{lv['scenario']}" + (f" @ {lv['target_qps']:.4g} QPS" if lv["scenario"] == "Server" else ""):
                slowest_stage(lv["stages"]) for lv in self.section["levels"]}


def _fmt(value: Optional[float]) -> str:
    return f"{value:.4g}" if value is not None else "—"
