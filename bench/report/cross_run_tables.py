"""Tables only the comparison report needs, across runs: operating points, quality, runs and provenance.

They sit beside bench.report.tables and read the same typed results, so a weights or store label reads the
same in a single run's tables and in the report.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import pandas as pd

from bench.measure.evaluate import best_qps_at_recall
from bench.measure.statistics import APPROX, significantly_different
from bench.report.significance import fmt_interval, marks_vs_best
from bench.report.tables import NO_PARAMS, quality_cell, typed
from bench.results import Results
from bench.schema import Section
from bench.schema.sections import RuntimeRecord, SearchPoint
from bench.stores.indexes import format_params
from bench.stores.registry import DEFAULT_KIND

RECALL_THRESHOLDS = (0.9, 0.95, 0.99)


def index_setting(result: Results, with_store: bool = True) -> str:
    """Index type with its build params: two HNSW runs with a different M are different indexes. On a store
    other than the default one, "@<kind>" follows (with_store), so the same index on two stores is two rows."""
    build = format_params(result.index.build_params if result.index else {}, NO_PARAMS)
    setting = result.index_type if build == NO_PARAMS else f"{result.index_type}({build})"
    kind = result.provenance.store.kind
    return f"{setting}@{kind}" if with_store and kind and kind != DEFAULT_KIND else setting


def _number(value: float | None) -> float:
    """results.json stores a failed measurement as null; NaN keeps it out of every comparison."""
    return float("nan") if value is None else float(value)


@dataclass
class Best:
    """The fastest search point reaching a recall floor, by one QPS measure, and the points tied with it."""
    qps: float | None  # None: no point reaches the floor
    point: SearchPoint | None
    ties: list[str] = field(default_factory=list)  # other points reaching it, their QPS range overlapping

    @property
    def label(self) -> str:
        return self.point.label if self.point is not None else "not reached"


@dataclass
class OperatingPoint:
    """One model × index at one recall floor: its best batch QPS and its best 1-thread QPS."""
    model: str
    index: str
    top_k: int
    floor: float
    batch: Best
    thread1: Best

    def best(self, threads: str | None) -> Best:
        return self.batch if threads is None else self.thread1


def _best(points: list[SearchPoint], threads: str | None, floor: float) -> Best:
    """Highest QPS (batch for ``threads`` None, else with that many threads) among the points with
    recall >= floor, and the other qualifying points whose QPS is within its noise."""
    pairs = [(_number(p.recall_at_k), _number(p.qps(threads))) for p in points]
    best = best_qps_at_recall(pairs, [floor])[floor]
    if best is None:
        return Best(None, None)
    chosen = next(p for p, (r, q) in zip(points, pairs) if r >= floor and q == best)
    interval = chosen.qps_range(threads)
    ties = [p.label for p, (r, q) in zip(points, pairs)
            if r >= floor and p is not chosen and not math.isnan(q) and interval is not None
            and p.qps_range(threads) is not None and not significantly_different(interval, p.qps_range(threads))]
    return Best(best, chosen, ties)


def operating_points(results: Iterable[Results | dict],
                     thresholds: Iterable[float] = RECALL_THRESHOLDS) -> list[OperatingPoint]:
    """Per model × index and recall floor, the best QPS reaching it (the big-ann-benchmarks ranking):
    batch QPS (many queries per call) and QPS with one client thread (one query per call, serial)."""
    series: dict[tuple[str, str], tuple[int, list[SearchPoint]]] = {}
    for r in typed(results):
        if r.search is not None:
            series.setdefault((r.model_name, index_setting(r)), (r.search.top_k, []))[1].extend(r.search.points)
    return [OperatingPoint(model, index, k, t, _best(points, None, t), _best(points, "1", t))
            for (model, index), (k, points) in series.items() for t in thresholds]


def _ties(best: Best) -> str:
    return f"{APPROX} {', '.join(best.ties)}" if best.ties else ""


def operating_points_table(results: Iterable[Results | dict],
                           thresholds: Iterable[float] = RECALL_THRESHOLDS) -> pd.DataFrame:
    """:func:`operating_points` as a table. Each best QPS (the median of its trials) comes with its min–max
    across trials, and "within noise" lists the other points that reach the floor with a QPS range
    overlapping the best's: no winner among them can be called."""
    rows = []
    for op in operating_points(results, thresholds):
        batch, one = op.batch, op.thread1
        rows.append({"model": op.model, "index": op.index, f"min recall@{op.top_k}": op.floor,
                     "best batch QPS": batch.qps,
                     "batch QPS range": fmt_interval(batch.point.qps_range() if batch.point else None),
                     "batch: search params": batch.label, "batch: within noise": _ties(batch),
                     "best QPS@1thr": one.qps,
                     "QPS@1thr range": fmt_interval(one.point.qps_range("1") if one.point else None),
                     "1thr: search params": one.label, "1thr: within noise": _ties(one)})
    return pd.DataFrame(rows)


def quality_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    """Category precision@K and mAP@K per model, with their 95 % bootstrap intervals over queries: on the
    exact top-K, then at every index search point. On exact search, "vs best model" marks the models
    whose precision cannot be told from the best one's (≈)."""
    rows, seen, exact_rows = [], set(), []
    for r in typed(results):
        model, search = r.model, r.search
        if model is None or search is None:
            continue
        k, weights = search.top_k, model.weights.label if model.weights else "?"
        if model.name not in seen and r.exact is not None:
            seen.add(model.name)
            exact_rows.append(len(rows))
            rows.append(_quality_row(model.name, weights, "exact search", r.exact, k))
        for point in search.points:
            rows.append(_quality_row(model.name, weights, f"{index_setting(r)} {point.label}", point, k))
    if rows and len(exact_rows) > 1:
        marks = marks_vs_best([rows[i]["_value"] for i in exact_rows], [rows[i]["_interval"] for i in exact_rows])
        for i, mark in zip(exact_rows, marks):
            rows[i]["vs best model"] = mark
    for row in rows:
        del row["_value"], row["_interval"]
    return pd.DataFrame(rows)


def _quality_row(model: str, weights: str, where: str, section: Section, k: int) -> dict:
    return {"model": model, "weights": weights, "results": where,
            f"precision@{k}": quality_cell(section.precision_at_k),
            f"precision@{k} 95% CI": fmt_interval(section.interval("precision_at_k")),
            f"mAP@{k}": quality_cell(section.map_at_k), f"mAP@{k} 95% CI": fmt_interval(section.interval("map_at_k")),
            "queries": section.num_queries, "unlabelled queries": section.num_unlabelled,
            "_value": section.precision_at_k, "_interval": section.interval("precision_at_k")}


def runs_table(runs: dict[str, Results]) -> pd.DataFrame:
    """Run directory -> status, model, index and error (failed runs keep whatever config they had)."""
    return pd.DataFrame([{"run": name, "status": r.status, "model": r.model_name, "index": r.index_type,
                          "created": r.provenance.created_at, "error": r.error or ""} for name, r in runs.items()])


def provenance_table(runs: dict[str, Results]) -> pd.DataFrame:
    rows = []
    for name, r in runs.items():
        prov = r.provenance
        hw = prov.hardware
        weights = prov.weights or (r.model.weights if r.model else None)
        rows.append({"run": name, "commit": str(prov.git_commit or "?"), "created": prov.created_at,
                     "cpu": hw.cpu, "cpu class": r.cpu_class, "int8 features": hw.features_label,
                     "cores": hw.cores, "memory GB": hw.memory_gb, "os": hw.os, "python": hw.python,
                     "store": r.store_label, "weights": weights.label if weights else "?",
                     "runtime": _runtime_label(prov.runtime)})
    return pd.DataFrame(rows)


def _runtime_label(runtime: RuntimeRecord | None) -> str:
    """e.g. "CUDAExecutionProvider on NVIDIA H100 (GPU 0), 2 threads" (bench.models.runtime)."""
    if runtime is None:
        return "CPUExecutionProvider (not recorded)"
    return f"{runtime.provider} on {runtime.device}, {runtime.threads_in_use} threads"


def versions_table(runs: dict[str, Results]) -> pd.DataFrame:
    """Package -> version; where runs used different versions, each version with the runs that had it."""
    seen: dict[str, dict[str, list[str]]] = {}
    for name, r in runs.items():
        for package, version in r.provenance.versions.items():
            seen.setdefault(package, {}).setdefault(str(version), []).append(name)
    rows = []
    for package, by_version in seen.items():
        if len(by_version) == 1:
            rows.append({"package": package, "version": next(iter(by_version)), "same in all runs": True})
        else:
            text = "; ".join(f"{v} ({', '.join(names)})" for v, names in by_version.items())
            rows.append({"package": package, "version": text, "same in all runs": False})
    return pd.DataFrame(rows)
