"""Compare benchmark results, baseline against current, metric by metric, with a verdict each.

(``python -m bench.compare`` is its command line: :mod:`bench.gate.compare_cli`.)

BASELINE and CURRENT are results.json files or folders holding runs (a run directory, a sweep,
``reports/baseline/``). The second form measures the timings the only way a shared CI runner
allows: it runs revision REV and the working tree in the same job, interleaved, and judges each
timing by the median of the per-pair ratios (see :mod:`bench.gate.revisions`).

Matching. Runs are matched by model + index type (+ store and metadata kind when not the
defaults). Search points are matched by label ("nprobe=16") first; a point left over on both
sides at the same sweep position is then compared with its counterpart and the row says
"nprobe=16 → nprobe=1": that is how a config change that swaps a sweep point's parameters shows
up as a recall regression instead of as one point vanishing and another appearing.

Verdicts: ``ok``, ``REGRESSION`` (worse beyond the threshold), ``improved`` (better beyond it),
``missing`` (in the baseline, not in the current results) and ``new`` (the other way round). A
regression fails the comparison, and so does a ``missing`` metric of a kind listed in the gate's
``fail_on_missing`` (the deterministic ones by default); ``new`` never does. A current run that
failed counts as a regression of its ``run status``. Exit status: 0 pass, 1 fail, 2 usage error.
"""
from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import pandas as pd

from bench.errors import BenchError
from bench.gate import cpu_class
from bench.gate.config import DETERMINISTIC_KINDS, GateConfig, load_gate_config
from bench.measure.statistics import as_interval, relative_noise
from bench.results import dig, find_runs, load_results

RELATIVE_KINDS = ("throughput", "latency", "build")
ONLY_CHOICES = ("all", "deterministic", "timing")
VERDICTS = ("REGRESSION", "missing", "improved", "new", cpu_class.NOT_COMPARED, "ok")
RUN_LEVEL = "—"  # the point column of metrics that belong to the whole run
EPSILON = 1e-12  # float slack on absolute thresholds: a drop of exactly the threshold passes


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

# ---------------------------------------------------------------------------------------------
# What a results.json holds, as named metrics




def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class MetricValue:
    metric: Metric
    value: Optional[float]
    note: str = ""
    # A timing's own noise within its run: max/min - 1 across the run's timing trials (issue 12).
    noise: Optional[float] = None


def run_level_metrics(result: dict) -> list[MetricValue]:
    """Metrics of a whole run: model quality on exact search, parity, embedding, load and build."""
    k = _top_k(result)
    embedding = dig(result, "model", "embedding") or {}
    # A cache hit reports the timings of the run that computed the vectors: not this run's.
    stale = "embedding cache hit: no timing measured" if embedding.get("from_cache") else ""
    load = dig(result, "index", "load") or {}
    reused = "collection reused: nothing inserted" if load.get("reused") else ""

    def emb(*path: str) -> Optional[float]:
        return None if stale else _number(dig(embedding, *path))

    return [
        MetricValue(Metric(f"exact precision@{k}", "quality", True, "exact precision"),
                    _number(dig(result, "exact", "precision_at_k"))),
        MetricValue(Metric(f"exact mAP@{k}", "quality", True, "exact mAP"), _number(dig(result, "exact", "map_at_k"))),
        MetricValue(Metric("parity max rel diff", "parity", False),
                    _number(dig(result, "model", "conversion", "parity", "max_rel_diff"))),
        MetricValue(Metric("embed img/s end-to-end", "throughput", True), emb("images_per_s_end_to_end"), stale),
        MetricValue(Metric("embed img/s inference", "throughput", True), emb("images_per_s_inference"), stale),
        # The stage a preprocessing change hits, apart from inference: the end-to-end rate dilutes it.
        MetricValue(Metric("embed img/s decode+preprocess", "throughput", True),
                    _per_second(emb("num_embedded_this_run" if "num_embedded_this_run" in embedding else "num_embedded"),
                                emb("seconds", "decode_preprocess_s")), stale),
        MetricValue(Metric("embed batch-1 p50 ms", "latency", False), emb("batch1_latency", "p50_ms"), stale),
        MetricValue(Metric("embed batch-1 p95 ms", "latency", False), emb("batch1_latency", "p95_ms"), stale),
        MetricValue(Metric("insert rows/s", "throughput", True), _number(load.get("insert_rows_per_s")), reused),
        MetricValue(Metric("flush s", "build", False), _number(load.get("flush_s"))),
        MetricValue(Metric("index build s", "build", False), _number(load.get("build_s"))),
        MetricValue(Metric("index load s", "build", False), _number(load.get("load_s"))),
        *fidelity_metrics(result),
        *serving_metrics(result),
    ]


def serving_metrics(result: dict) -> list[MetricValue]:
    """workload=serve's figures (bench.measure.workloads.serve): timings, so compared by ``--against`` alone,
    never by the exact gate. A test LoadGen judged INVALID still has its figure; the note says so."""
    serve = result.get("serve") or {}
    if not serve:
        return []

    def verdict(level: dict) -> str:
        return "" if not level or level.get("valid") is not False else f"{level.get('scenario')} run INVALID"

    single, offline, peak = serve.get("single_stream") or {}, serve.get("offline") or {}, serve.get("peak") or {}
    calibration = serve.get("calibration") or {}
    values = [
        MetricValue(Metric("serve SingleStream p90 ms", "latency", False),
                    _number((single.get("latency_ms") or {}).get("p90")), verdict(single)),
        MetricValue(Metric("serve Offline QPS", "throughput", True), _number(offline.get("completed_qps")),
                    verdict(offline)),
        MetricValue(Metric("serve null-SUT max QPS", "throughput", True), _number(calibration.get("null_sut_qps"))),
    ]
    if peak:
        values.append(MetricValue(Metric("serve max Server QPS at bound", "throughput", True), _number(peak.get("qps")),
                                  "" if peak.get("reached") else "bound not reached at any probe"))
    return values


def fidelity_metrics(result: dict) -> list[MetricValue]:
    """A variant's fidelity to its FP32 model (bench.measure.fidelity): deterministic, judged as quality."""
    fidelity = result.get("fidelity") or {}
    if not fidelity:
        return []
    k = _top_k(result)
    values = [
        MetricValue(Metric("fidelity cosine min", "quality", True), _number(dig(fidelity, "cosine", "min"))),
        MetricValue(Metric("fidelity cosine p1", "quality", True), _number(dig(fidelity, "cosine", "p1"))),
        MetricValue(Metric(f"fidelity overlap@{k}", "quality", True, "fidelity overlap"),
                    _number(dig(fidelity, "exact", "overlap_at_k"))),
        MetricValue(Metric("fidelity RBO", "quality", True), _number(dig(fidelity, "exact", "rbo"))),
    ]
    for point in fidelity.get("points") or []:
        values.append(MetricValue(Metric(f"fidelity recall@{k} vs FP32 exact, {point.get('label')}", "quality", True,
                                         "fidelity recall vs FP32 exact"), _number(point.get("recall_at_k"))))
    return values


def point_metrics(result: dict, point: dict) -> list[MetricValue]:
    """Metrics of one search-parameter point: quality against exact search, latency, QPS."""
    k = _top_k(result)
    latency = point.get("latency") or {}
    spread = point.get("spread") or {}
    latency_noise = spread.get("latency") or {}
    values = [
        MetricValue(Metric(f"recall@{k}", "quality", True, "recall"), _number(point.get("recall_at_k"))),
        MetricValue(Metric(f"precision@{k}", "quality", True, "precision"), _number(point.get("precision_at_k"))),
        MetricValue(Metric(f"mAP@{k}", "quality", True, "mAP"), _number(point.get("map_at_k"))),
        *(MetricValue(Metric(f"search p{p} ms", "latency", False), _number(latency.get(f"p{p}_ms")),
                      noise=_latency_noise(latency, latency_noise, p)) for p in (50, 95, 99)),
        MetricValue(Metric("batch QPS", "throughput", True), _number(point.get("batch_qps")),
                    noise=relative_noise(spread.get("batch_qps"))),
    ]
    for threads, qps in sorted((point.get("concurrent_qps") or {}).items(), key=lambda kv: int(kv[0])):
        values.append(MetricValue(Metric(f"QPS@{threads}thr", "throughput", True), _number(qps),
                                  noise=relative_noise((spread.get("concurrent_qps") or {}).get(threads))))
    for name, value in sorted((point.get("overlap") or {}).items()):  # overlap@K with another model, if any
        values.append(MetricValue(Metric(f"overlap {name}", "quality", True, "overlap"), _number(value)))
    return values


def _latency_noise(latency: dict, per_trial: dict, percentile: int) -> Optional[float]:
    """A latency percentile's noise: max/min − 1 of its per-trial values; where no single trial has the
    samples for it (p99 needs 368), the high/low − 1 of its interval over the trials' pooled samples."""
    noise = relative_noise(per_trial.get(f"p{percentile}_ms"))
    if noise is None:
        interval = as_interval(latency.get(f"p{percentile}_ms_ci95"))
        noise = interval[1] / interval[0] - 1.0 if interval and interval[0] > 0 else None
    return noise


def _per_second(count: Optional[float], seconds: Optional[float]) -> Optional[float]:
    return count / seconds if count and seconds else None


def _top_k(result: dict) -> Any:
    return dig(result, "search", "top_k") or dig(result, "config", "search", "top_k") or "K"


def run_key(result: dict) -> str:
    """model/index, plus the store and metadata kind where they are not the defaults."""
    model = dig(result, "model", "name") or dig(result, "config", "model", "name") or "?"
    index = dig(result, "index", "type") or dig(result, "config", "index", "type") or "?"
    key = f"{model}/{index}"
    store = dig(result, "config", "store", "kind")
    if store and store != "milvus_lite":
        key += f"@{store}"
    metadata = dig(result, "config", "metadata", "kind")
    if metadata and metadata != "milvus":
        key += f"+{metadata}"
    return key


def _point_labels(result: dict) -> list[str]:
    return [str(p.get("label")) for p in (dig(result, "search", "points") or [])]


def match_points(baseline: Sequence[str], current: Sequence[str]) -> list[tuple[Optional[int], Optional[int]]]:
    """Pairs of sweep positions (baseline, current); None where a point has no counterpart.

    Equal labels pair first, the n-th occurrence with the n-th. Points left on both sides at the
    same position pair next: the sweep's i-th point with changed parameters.
    """
    free_current: dict[str, list[int]] = defaultdict(list)
    for j, label in enumerate(current):
        free_current[label].append(j)
    pairs: dict[int, Optional[int]] = {}
    for i, label in enumerate(baseline):
        if free_current[label]:
            pairs[i] = free_current[label].pop(0)
    used = set(pairs.values())
    for i in range(len(baseline)):
        if i not in pairs and i < len(current) and i not in used:
            pairs[i] = i
            used.add(i)
    matched: list[tuple[Optional[int], Optional[int]]] = [(i, pairs.get(i)) for i in range(len(baseline))]
    matched += [(None, j) for j in range(len(current)) if j not in used]
    return sorted(matched, key=lambda p: (p[0] if p[0] is not None else math.inf, p[1] if p[1] is not None else -1))


# ---------------------------------------------------------------------------------------------
# Observations: one (baseline, current) value pair per metric, per pair of runs


@dataclass
class Observation:
    run: str
    point: str
    order: tuple[int, int]  # (point position, metric position): the table keeps the sweep's order
    metric: Metric
    baseline: Optional[float]
    current: Optional[float]
    note: str = ""
    noise: tuple[Optional[float], Optional[float]] = (None, None)  # (baseline, current) trial noise
    # (baseline, current) CPU class where they differ and this quality row depends on it (bench.gate.cpu_class)
    cpu_classes: Optional[tuple[str, str]] = None


def observe(baseline: Sequence[dict], current: Sequence[dict]) -> tuple[list[Observation], list[str]]:
    """Every metric of every run on either side, matched; plus notes on what differs between the sides."""
    base_runs, cur_runs = _by_key(baseline, "baseline"), _by_key(current, "current")
    observations: list[Observation] = []
    notes: list[str] = []
    for key in list(base_runs) + [k for k in cur_runs if k not in base_runs]:
        base, cur = base_runs.get(key), cur_runs.get(key)
        if base is not None and cur is not None:
            notes += _context_notes(key, base, cur)
        observations += _observe_run(key, base, cur)
    return observations, notes


def _by_key(results: Sequence[dict], side: str) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    for result in results:
        key = run_key(result)
        if key in runs:
            raise BenchError(f"two {side} runs are both {key}: compare one sweep folder at a time, "
                             "or pass the two results.json files")
        runs[key] = result
    return runs


def _observe_run(key: str, base: Optional[dict], cur: Optional[dict]) -> list[Observation]:
    out: list[Observation] = []
    if cur is not None and cur.get("status") != "ok":
        # Judged against 1.0 ("ok") even for a run the baseline lacks: a run that fails always fails.
        out.append(Observation(key, RUN_LEVEL, (-2, 0), STATUS, 1.0, 0.0,
                               f"current run {cur.get('status')}: {cur.get('error')}"))
    base_level = {m.metric.name: m for m in run_level_metrics(base)} if base is not None else {}
    cur_level = {m.metric.name: m for m in run_level_metrics(cur)} if cur is not None else {}
    classes = cpu_class.classes(base, cur)
    out += _observe_values(key, RUN_LEVEL, -1, base_level, cur_level, "", classes)

    base_labels = _point_labels(base) if base is not None else []
    cur_labels = _point_labels(cur) if cur is not None else []
    base_points = dig(base, "search", "points") or []
    cur_points = dig(cur, "search", "points") or []
    for i, j in match_points(base_labels, cur_labels):
        b = {m.metric.name: m for m in point_metrics(base, base_points[i])} if i is not None else {}
        c = {m.metric.name: m for m in point_metrics(cur, cur_points[j])} if j is not None else {}
        if i is not None and j is not None and base_labels[i] != cur_labels[j]:
            point = f"{base_labels[i]} → {cur_labels[j]}"
            note = f"search params changed at sweep position {i + 1}"
        else:
            point = base_labels[i] if i is not None else cur_labels[j]
            note = ""
        out += _observe_values(key, point, i if i is not None else 1000 + (j or 0), b, c, note, classes)
    return out


def _observe_values(key: str, point: str, position: int, base: dict[str, MetricValue],
                    cur: dict[str, MetricValue], note: str,
                    classes: Optional[tuple[str, str]] = None) -> list[Observation]:
    names = list(base) + [n for n in cur if n not in base]
    out = []
    for order, name in enumerate(names):
        b, c = base.get(name), cur.get(name)
        if (b is None or b.value is None) and (c is None or c.value is None):
            continue  # measured on neither side (e.g. both embedding cache hits): nothing to compare
        metric = (b or c).metric  # type: ignore[union-attr]
        notes = [n for n in (note, b.note if b else "", c.note if c else "") if n]
        out.append(Observation(key, point, (position, order), metric, b.value if b else None,
                               c.value if c else None, "; ".join(dict.fromkeys(notes)),
                               (b.noise if b else None, c.noise if c else None),
                               classes if metric.kind == "quality" else None))
    return out


def _context_notes(key: str, base: dict, cur: dict) -> list[str]:
    """What differs between the two runs besides the code: data, store, hardware, versions."""
    notes = []
    for label, path in (("dataset", ("dataset", "name")), ("corpus size", ("dataset", "num_corpus")),
                        ("queries", ("dataset", "num_queries")), ("top_k", ("search", "top_k")),
                        ("metric", ("search", "metric")), ("store", ("provenance", "store", "version")),
                        ("weights", ("provenance", "weights", "kind"))):
        a, b = dig(base, *path), dig(cur, *path)
        if a != b:
            notes.append(f"{key}: {label} differs ({a} vs {b})")
    hw_a, hw_b = dig(base, "provenance", "hardware") or {}, dig(cur, "provenance", "hardware") or {}
    if (hw_a.get("cpu"), hw_a.get("cores")) != (hw_b.get("cpu"), hw_b.get("cores")):
        notes.append(f"{key}: other hardware ({hw_a.get('cpu')} x{hw_a.get('cores')} vs "
                     f"{hw_b.get('cpu')} x{hw_b.get('cores')}): its timings are not comparable")
    classes = cpu_class.classes(base, cur)
    if classes:
        notes.append(f"{key}: other CPU class ({classes[0]} baseline, {classes[1]} now): its INT8 rows are "
                     "checked against cpu_class_floors, not against the baseline's values")
    va, vb = dig(base, "provenance", "versions") or {}, dig(cur, "provenance", "versions") or {}
    changed = [f"{p} {va.get(p)} → {vb.get(p)}" for p in sorted(set(va) | set(vb)) if va.get(p) != vb.get(p)]
    if changed:
        notes.append(f"{key}: package versions differ: {', '.join(changed)}")
    return notes


# ---------------------------------------------------------------------------------------------
# Verdicts


@dataclass
class Row:
    metric: str
    run: str
    point: str
    kind: str
    deterministic: bool
    baseline: Optional[float]
    current: Optional[float]
    change: Optional[float]  # relative kinds: median current/baseline ratio - 1; absolute: difference
    threshold: float
    verdict: str
    fails: bool
    ratio_min: Optional[float] = None
    ratio_max: Optional[float] = None
    noise: Optional[float] = None  # interleaved runs: the wider side's max/min - 1
    pairs: int = 1
    note: str = ""
    higher_is_better: bool = True
    # Judged against this absolute floor instead of the baseline (an INT8 row from another CPU class)
    floor: Optional[float] = None


def _spread(values: Sequence[float]) -> float:
    """max/min of positive values (1.0 = all equal)."""
    low = min(values)
    return max(values) / low if low > 0 else math.inf


def _threshold(metric: Metric, cfg: GateConfig) -> float:
    return float(cfg.per_metric.get(metric.name, getattr(cfg.thresholds, metric.kind)))


def _floor(metric: Metric, cfg: GateConfig) -> float:
    return {"latency": cfg.floors.latency_ms, "build": cfg.floors.build_s}.get(metric.kind, 0.0)


def judge(metric: Metric, baselines: Sequence[Optional[float]], currents: Sequence[Optional[float]],
          cfg: GateConfig, *, run: str = "", point: str = RUN_LEVEL, note: str = "",
          trial_noise: Sequence[Optional[float]] = ()) -> Row:
    """The verdict on one metric from one or more (baseline, current) pairs, index-aligned.

    Relative kinds use the median of the per-pair ratios current/baseline, which cancels drift
    that hits both runs of a pair. With several pairs a regression must (1) exceed, in the median,
    both the threshold and the job's own noise (the larger of the two sides' max/min over their
    repeats), and (2) be seen in every pair (the ratios' spread must not reach "no change"). A noisy
    runner then costs sensitivity, not false alarms. Changes smaller than the kind's floor never count.

    ``trial_noise`` holds each run's own noise from its timing trials (max/min − 1 across search.repeats),
    on either side: the limits widen to the largest, with one pair as with several, so a single comparison
    of two results.json files is judged against the noise both runs measured.
    """
    threshold = _threshold(metric, cfg)
    both = [(b, c) for b, c in zip(baselines, currents) if b is not None and c is not None]
    base_values = [b for b in baselines if b is not None]
    cur_values = [c for c in currents if c is not None]
    row = Row(metric.name, run, point, metric.kind, metric.deterministic,
              statistics.median(base_values) if base_values else None,
              statistics.median(cur_values) if cur_values else None, None, threshold, "ok", False,
              pairs=len(both), note=note, higher_is_better=metric.higher_is_better)
    if not both:
        row.verdict = "missing" if base_values else "new"
        row.fails = row.verdict == "missing" and metric.kind in cfg.fail_on_missing
        return row
    if metric.kind in RELATIVE_KINDS:
        if any(b == 0 for b, _ in both):
            row.note = "; ".join(filter(None, [note, "baseline is 0: no ratio"]))
            return row
        ratios = [c / b for b, c in both]
        median = statistics.median(ratios)
        row.change, row.ratio_min, row.ratio_max = median - 1.0, min(ratios), max(ratios)
        # Ratio limits: below `low` or above `high` is a change. A threshold of 0.30 reads "30 % fewer
        # per second" for a throughput (ratio < 0.70) and "30 % longer" for a time (ratio > 1.30).
        low, high = 1.0 - threshold, 1.0 + threshold
        # The same job's own noise: how far one side's repeats (interleaved pairs, or each run's timing
        # trials) lie apart. A change smaller than that cannot be told from it, so the limits widen to it.
        spreads = [1.0 + n for n in trial_noise if n is not None and math.isfinite(n)]
        if len(both) > 1:
            spreads += [_spread([b for b, _ in both]), _spread([c for _, c in both])]
        if spreads:
            spread = max(spreads)
            row.noise = spread - 1.0
            low, high = min(low, 1.0 / spread), max(high, spread)
        below = median < low and all(r < 1.0 for r in ratios)  # every pair agrees on the direction
        above = median > high and all(r > 1.0 for r in ratios)
        big_enough = abs(row.current - row.baseline) >= _floor(metric, cfg)  # type: ignore[operator]
        if big_enough and (below or above):
            row.verdict = "REGRESSION" if below == metric.higher_is_better else "improved"
    else:
        differences = [c - b for b, c in both]
        row.change = statistics.median(differences)
        worse = -row.change if metric.higher_is_better else row.change
        if worse > threshold + EPSILON:
            row.verdict = "REGRESSION"
        elif -worse > threshold + EPSILON:
            row.verdict = "improved"
    row.fails = row.verdict == "REGRESSION"
    return row


def judge_floor(metric: Metric, baselines: Sequence[Optional[float]], currents: Sequence[Optional[float]],
                cfg: GateConfig, classes: tuple[str, str], *, run: str = "", point: str = RUN_LEVEL,
                note: str = "") -> Row:
    """A CPU-dependent row whose baseline was measured on another CPU class: the current value against the
    family's floor in ``cpu_class_floors`` (a regression below it), or "not compared" where none is set.
    The baseline value is shown, not judged."""
    floor = cfg.cpu_class_floors.get(metric.group)
    cur_values = [c for c in currents if c is not None]
    base_values = [b for b in baselines if b is not None]
    row = Row(metric.name, run, point, metric.kind, metric.deterministic,
              statistics.median(base_values) if base_values else None,
              statistics.median(cur_values) if cur_values else None, None, _threshold(metric, cfg), "ok", False,
              pairs=len(cur_values), note="; ".join(filter(None, [note, cpu_class.floor_note(classes[0], floor)])),
              higher_is_better=metric.higher_is_better, floor=floor)
    if row.current is None:
        row.verdict = "missing" if base_values else "new"
        row.fails = row.verdict == "missing" and metric.kind in cfg.fail_on_missing
    elif floor is None:
        row.verdict = cpu_class.NOT_COMPARED
    elif row.current < floor - EPSILON:
        row.verdict, row.fails = "REGRESSION", True
    if row.current is not None and row.baseline is not None:
        row.change = row.current - row.baseline
    return row


# ---------------------------------------------------------------------------------------------
# Comparison: the table, its Markdown and JSON


@dataclass
class Comparison:
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    baseline: str = ""
    current: str = ""
    mode: str = "single"  # single | interleaved

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.fails]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def counts(self) -> dict[str, int]:
        return {v: sum(r.verdict == v for r in self.rows) for v in VERDICTS}

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{counts[v]} {v}" for v in VERDICTS if counts[v] and v != "ok"]
        verdict = "PASS" if self.passed else f"FAIL ({len(self.failures)} failing)"
        pairs = max((r.pairs for r in self.rows), default=1)
        how = f", median of {pairs} interleaved pairs" if self.mode == "interleaved" else ""
        return f"{verdict}: {len(self.rows)} metrics{how}; " + (", ".join(parts) or "all ok")

    def table(self) -> pd.DataFrame:
        """The table a person reads: formatted strings, one row per metric."""
        interleaved = self.mode == "interleaved"
        # A single comparison has a noise column too when the runs measured one (timing trials).
        extra = ["ratio spread", "noise", "pairs"] if interleaved else (
            ["noise"] if any(r.noise is not None for r in self.rows) else [])
        records = []
        for r in self.rows:
            record = {"metric": r.metric, "run": r.run, "point": r.point, "baseline": _fmt(r.baseline),
                      "current": _fmt(r.current), "change": _fmt_change(r), "threshold": _fmt_threshold(r),
                      "verdict": r.verdict}
            if interleaved:
                record["ratio spread"] = (f"{r.ratio_min:.3f}–{r.ratio_max:.3f}" if r.ratio_min is not None
                                          else "")
                record["pairs"] = r.pairs
            if "noise" in extra:
                record["noise"] = f"±{r.noise * 100:.0f}%" if r.noise is not None and math.isfinite(r.noise) else ""
            record["note"] = r.note
            records.append(record)
        return pd.DataFrame(records, columns=["metric", "run", "point", "baseline", "current", "change",
                                              "threshold", "verdict"] + extra + ["note"])

    def markdown(self) -> str:
        lines = [f"### bench regression gate: {self.summary()}", "",
                 f"baseline: `{self.baseline}`  ", f"current: `{self.current}`", ""]
        if self.mode == "interleaved":
            lines += ["Timings: `change` is the median of the per-pair ratios current/baseline. A regression "
                      "must exceed the threshold and the job's own noise (the wider side's max/min over its "
                      "repeats, and each run's own timing trials) in the median, and show in every pair "
                      "(`ratio spread` must not reach 1).", ""]
        elif any(r.noise is not None for r in self.rows):
            lines += ["Timings: a regression must exceed the threshold and the runs' own noise (`noise`: the wider "
                      "max/min across either run's timing trials, search.repeats).", ""]
        if self.notes:
            lines += [f"- {n}" for n in self.notes] + [""]
        table = self.table()
        # disable_numparse: keep "+0.5%", "-0.01" as written instead of tabulate re-reading them as numbers
        lines.append(table.to_markdown(index=False, disable_numparse=True) if not table.empty else "_(no metrics)_")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict:
        return {"passed": self.passed, "summary": self.summary(), "counts": self.counts(), "mode": self.mode,
                "baseline": self.baseline, "current": self.current, "notes": self.notes,
                "rows": [vars(r) for r in self.rows]}

    def write(self, outdir: Path, stem: str = "compare") -> tuple[Path, Path]:
        outdir.mkdir(parents=True, exist_ok=True)
        md, js = outdir / f"{stem}.md", outdir / f"{stem}.json"
        md.write_text(self.markdown())
        js.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
        return md, js


def _fmt(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4g}"


def _fmt_change(r: Row) -> str:
    if r.change is None:
        return ""
    if r.change == 0:
        return "0"
    return f"{r.change * 100:+.1f}%" if r.kind in RELATIVE_KINDS else f"{r.change:+.4g}"


def _fmt_threshold(r: Row) -> str:
    if r.floor is not None:
        return f"≥ {r.floor:g}"  # a floor, not a tolerance around the baseline
    if r.verdict == cpu_class.NOT_COMPARED:
        return ""
    # The side a regression lies on: "-30%" for a throughput, "+40%" for a latency.
    sign = "-" if r.higher_is_better else "+"
    return f"{sign}{r.threshold * 100:g}%" if r.kind in RELATIVE_KINDS else f"{sign}{r.threshold:g}"


def _selected(metric: Metric, only: str) -> bool:
    return only == "all" or metric == STATUS or (only == "deterministic") == metric.deterministic


def compare_pairs(pairs: Sequence[tuple[Sequence[dict], Sequence[dict]]], cfg: Optional[GateConfig] = None, *,
                  only: str = "all", baseline: str = "", current: str = "") -> Comparison:
    """Compare one or more (baseline results, current results) pairs of the same runs.

    One pair: a plain comparison. Several: interleaved repeats, judged on the median ratio.
    """
    if only not in ONLY_CHOICES:
        raise BenchError(f"--only={only!r}: choose one of {', '.join(ONLY_CHOICES)}")
    if not pairs:
        raise BenchError("nothing to compare: no pairs of runs")
    cfg = _cfg(cfg)
    grouped: dict[tuple[str, str, str], list[Observation]] = {}
    per_pair: list[dict[tuple[str, str, str], Observation]] = []
    notes: list[str] = []
    for base_results, cur_results in pairs:
        observations, pair_notes = observe(base_results, cur_results)
        notes += [n for n in pair_notes if n not in notes]
        keyed = {}
        for obs in observations:
            if not _selected(obs.metric, only):
                continue
            key = (obs.run, obs.point, obs.metric.name)
            keyed[key] = obs
            grouped.setdefault(key, []).append(obs)
        per_pair.append(keyed)
    # Table order: runs as first seen (baseline's order), then the sweep's points, then metrics.
    run_order = list(dict.fromkeys(key[0] for key in grouped))
    rows = []
    for key, observations in sorted(grouped.items(), key=lambda kv: (run_order.index(kv[0][0]), kv[1][0].order)):
        first = observations[0]
        aligned = [pair.get(key) for pair in per_pair]
        baselines, currents = [o.baseline if o else None for o in aligned], [o.current if o else None for o in aligned]
        if first.cpu_classes is not None:
            rows.append(judge_floor(first.metric, baselines, currents, cfg, first.cpu_classes, run=first.run,
                                    point=first.point, note=first.note))
            continue
        rows.append(judge(first.metric, baselines, currents, cfg, run=first.run, point=first.point,
                          note=first.note, trial_noise=[n for o in aligned if o for n in o.noise]))
    return Comparison(rows, notes, baseline, current, "interleaved" if len(pairs) > 1 else "single")


def _cfg(cfg: Optional[GateConfig]) -> GateConfig:
    return cfg if cfg is not None else load_gate_config()


def load_side(paths: Iterable[Path]) -> list[dict]:
    """Every run's results under the given files or folders."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise BenchError(f"{path} does not exist: pass a results.json file or a folder of runs")
    runs = find_runs(paths)
    if not runs:
        raise BenchError(f"no results.json under {', '.join(map(str, paths))}: pass a run or sweep folder")
    results = []
    for run in runs:
        try:
            results.append(load_results(run))
        except (OSError, ValueError) as err:
            raise BenchError(f"cannot read {run}/results.json ({err})") from None
    return results


def compare_paths(baseline: Sequence[Path], current: Sequence[Path], cfg: Optional[GateConfig] = None, *,
                  only: str = "all") -> Comparison:
    """Compare the runs under ``baseline`` with those under ``current``."""
    return compare_pairs([(load_side(baseline), load_side(current))], _cfg(cfg), only=only,
                         baseline=", ".join(map(str, baseline)), current=", ".join(map(str, current)))
