"""What a results.json holds, as named metrics the gate judges: one list per run, one per search point.

Each metric has a kind (bench.gate.config.KINDS: how its threshold reads) and a direction. A value that
was not measured this run (an embedding cache hit, a reused collection) is None with a note saying why,
so it is reported as such instead of being compared with a figure another run measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from bench.gate.config import DETERMINISTIC_KINDS
from bench.schema import Results
from bench.schema.sections import SearchPoint
from bench.schema.workloads import ServeLevel


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # see bench.gate.config.KINDS
    higher_is_better: bool
    family: str = ""  # the name without top-K or search point ("fidelity overlap"): what cpu_class_floors name

    @property
    def group(self) -> str:
        return self.family or self.name

    @property
    def deterministic(self) -> bool:
        return self.kind in DETERMINISTIC_KINDS


# A current run that did not finish: one row, always judged, whatever --only says.
STATUS = Metric("run status (1 = ok)", "quality", True)


@dataclass
class MetricValue:
    metric: Metric
    value: Optional[float]
    note: str = ""
    # A timing's own noise within its run: max/min - 1 across the run's timing trials (search.repeats).
    noise: Optional[float] = None


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _per_second(count: Optional[float], seconds: Optional[float]) -> Optional[float]:
    return count / seconds if count and seconds else None


def _top_k(result: Results) -> Any:
    return result.top_k or "K"


def run_level_metrics(result: Results) -> list[MetricValue]:
    """Metrics of a whole run: model quality on exact search, parity, embedding, load and build."""
    k = _top_k(result)
    model = result.model
    embedding = model.embedding if model else None
    # A cache hit reports the timings of the run that computed the vectors: not this run's.
    stale = "embedding cache hit: no timing measured" if embedding and embedding.from_cache else ""
    load = result.index.load if result.index else None
    reused = "collection reused: nothing inserted" if load and load.reused else ""

    def emb(value: Any) -> Optional[float]:
        return None if stale or embedding is None else _number(value)

    exact = result.exact
    parity = model.conversion.parity if model else None
    return [
        MetricValue(Metric(f"exact precision@{k}", "quality", True, "exact precision"),
                    _number(exact.precision_at_k if exact else None)),
        MetricValue(Metric(f"exact mAP@{k}", "quality", True, "exact mAP"), _number(exact.map_at_k if exact else None)),
        MetricValue(Metric("parity max rel diff", "parity", False), _number(parity and parity.max_rel_diff)),
        MetricValue(Metric("embed img/s end-to-end", "throughput", True),
                    emb(embedding and embedding.images_per_s_end_to_end), stale),
        MetricValue(Metric("embed img/s inference", "throughput", True),
                    emb(embedding and embedding.images_per_s_inference), stale),
        # The stage a preprocessing change hits, apart from inference: the end-to-end rate dilutes it.
        MetricValue(Metric("embed img/s decode+preprocess", "throughput", True),
                    _per_second(emb(embedding and embedding.num_embedded_this_run),
                                emb(embedding and embedding.seconds.decode_preprocess_s)), stale),
        MetricValue(Metric("embed batch-1 p50 ms", "latency", False),
                    emb(embedding and embedding.batch1_latency.p50_ms), stale),
        MetricValue(Metric("embed batch-1 p95 ms", "latency", False),
                    emb(embedding and embedding.batch1_latency.p95_ms), stale),
        MetricValue(Metric("insert rows/s", "throughput", True), _number(load and load.insert_rows_per_s), reused),
        MetricValue(Metric("flush s", "build", False), _number(load and load.flush_s)),
        MetricValue(Metric("index build s", "build", False), _number(load and load.build_s)),
        MetricValue(Metric("index load s", "build", False), _number(load and load.load_s)),
        *fidelity_metrics(result),
        *serving_metrics(result),
    ]


def serving_metrics(result: Results) -> list[MetricValue]:
    """workload=serve's figures (bench.measure.workloads.serve): timings, so compared by ``--against`` alone,
    never by the exact gate. A test LoadGen judged INVALID still has its figure; the note says so."""
    serve = result.serve
    if serve is None:
        return []

    def verdict(level: Optional[ServeLevel]) -> str:
        return "" if level is None or level.valid is not False else f"{level.scenario} run INVALID"

    single, offline, peak = serve.single_stream, serve.offline, serve.peak
    values = [
        MetricValue(Metric("serve SingleStream p90 ms", "latency", False),
                    _number(single.latency_ms.get("p90") if single else None), verdict(single)),
        MetricValue(Metric("serve Offline QPS", "throughput", True), _number(offline and offline.completed_qps),
                    verdict(offline)),
        MetricValue(Metric("serve null-SUT max QPS", "throughput", True),
                    _number(serve.calibration and serve.calibration.null_sut_qps)),
    ]
    if peak is not None:
        values.append(MetricValue(Metric("serve max Server QPS at bound", "throughput", True), _number(peak.qps),
                                  "" if peak.reached else "bound not reached at any probe"))
    return values


def fidelity_metrics(result: Results) -> list[MetricValue]:
    """A variant's fidelity to its FP32 model (bench.measure.fidelity): deterministic, judged as quality."""
    fidelity = result.fidelity
    if fidelity is None:
        return []
    k = _top_k(result)
    values = [
        MetricValue(Metric("fidelity cosine min", "quality", True), _number(fidelity.cosine.min)),
        MetricValue(Metric("fidelity cosine p1", "quality", True), _number(fidelity.cosine.p1)),
        MetricValue(Metric(f"fidelity overlap@{k}", "quality", True, "fidelity overlap"),
                    _number(fidelity.exact.overlap_at_k)),
        MetricValue(Metric("fidelity RBO", "quality", True), _number(fidelity.exact.rbo)),
    ]
    for point in fidelity.points:
        values.append(MetricValue(Metric(f"fidelity recall@{k} vs FP32 exact, {point.label}", "quality", True,
                                         "fidelity recall vs FP32 exact"), _number(point.recall_at_k)))
    return values


def point_metrics(result: Results, point: SearchPoint) -> list[MetricValue]:
    """Metrics of one search-parameter point: quality against exact search, latency, QPS."""
    k = _top_k(result)
    spread = point.spread
    values = [
        MetricValue(Metric(f"recall@{k}", "quality", True, "recall"), _number(point.recall_at_k)),
        MetricValue(Metric(f"precision@{k}", "quality", True, "precision"), _number(point.precision_at_k)),
        MetricValue(Metric(f"mAP@{k}", "quality", True, "mAP"), _number(point.map_at_k)),
        *(MetricValue(Metric(f"search p{p} ms", "latency", False), _number(point.latency.percentile(p)),
                      noise=_latency_noise(point, p)) for p in (50, 95, 99)),
        MetricValue(Metric("batch QPS", "throughput", True), _number(point.batch_qps),
                    noise=spread.batch_qps.relative_noise if spread.batch_qps else None),
    ]
    for threads, qps in sorted(point.concurrent_qps.items(), key=lambda kv: int(kv[0])):
        trials = spread.concurrent_qps.get(threads)
        values.append(MetricValue(Metric(f"QPS@{threads}thr", "throughput", True), _number(qps),
                                  noise=trials.relative_noise if trials else None))
    overlap = point.extra("overlap") or {}  # overlap@K with another model, if any
    for name, value in sorted(overlap.items()):
        values.append(MetricValue(Metric(f"overlap {name}", "quality", True, "overlap"), _number(value)))
    return values


def _latency_noise(point: SearchPoint, percentile: int) -> Optional[float]:
    """A latency percentile's noise: max/min − 1 of its per-trial values; where no single trial has the
    samples for it (p99 needs 368), the high/low − 1 of its interval over the trials' pooled samples."""
    trials = point.spread.latency.get(f"p{percentile}_ms")
    if trials is not None and trials.relative_noise is not None:
        return trials.relative_noise
    interval = point.latency.interval(f"p{percentile}_ms")
    return interval[1] / interval[0] - 1.0 if interval and interval[0] > 0 else None


def run_key(result: Results) -> str:
    """model/index, plus the store and metadata kind where they are not the defaults."""
    key = f"{result.model_name}/{result.index_type}"
    store, metadata = result.config.store.kind, result.config.metadata.kind
    if store and store != "milvus_lite":
        key += f"@{store}"
    if metadata and metadata != "milvus":
        key += f"+{metadata}"
    return key
