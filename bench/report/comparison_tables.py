"""Tables only the comparison report needs: operating points, quality, runs and provenance.

They sit beside bench.report.tables and use its label helpers, so a weights or store label reads the same
in a single run's tables and in the report.
"""
from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

from bench.cpu import features_label, recorded_class
from bench.measure.evaluate import best_qps_at_recall
from bench.measure.statistics import APPROX, Interval, significantly_different
from bench.report.significance import fmt_interval, marks_vs_best, qps_interval, quality_interval
from bench.report.tables import NO_PARAMS, _store_label, _weights_label, quality_cell
from bench.stores.indexes import format_params
from bench.stores.registry import DEFAULT_KIND

weights_label = _weights_label
RECALL_THRESHOLDS = (0.9, 0.95, 0.99)


def index_setting(result: dict, with_store: bool = True) -> str:
    """Index type with its build params: two HNSW runs with a different M are different indexes. On a store
    other than the default one, "@<kind>" follows (with_store), so the same index on two stores is two rows."""
    index = result.get("index", {})
    build = format_params(index.get("build_params", {}), NO_PARAMS)
    setting = index.get("type", "?") if build == NO_PARAMS else f"{index.get('type', '?')}({build})"
    kind = result.get("provenance", {}).get("store", {}).get("kind")
    return f"{setting}@{kind}" if with_store and kind and kind != DEFAULT_KIND else setting


def _number(value: float | None) -> float:
    """results.json stores a failed measurement as null; NaN keeps it out of every comparison."""
    return float("nan") if value is None else float(value)


def _best_point(points: list[tuple[float, float, str, Interval | None]],
                threshold: float) -> tuple[float | None, str, Interval | None, str]:
    """Highest QPS among (recall, qps, label, qps interval) points with recall >= threshold: its QPS,
    label and interval, and the other qualifying points whose QPS is within its noise ("≈ a, b")."""
    best = best_qps_at_recall([(r, q) for r, q, _, _ in points], [threshold])[threshold]
    if best is None:
        return None, "not reached", None, ""
    r_best, q_best, label, interval = next(p for p in points if p[0] >= threshold and p[1] == best)
    ties = [lbl for r, q, lbl, other in points
            if r >= threshold and lbl != label and not math.isnan(q) and interval is not None
            and other is not None and not significantly_different(interval, other)]
    return best, label, interval, f"{APPROX} {', '.join(ties)}" if ties else ""


def operating_points_table(results: Iterable[dict], thresholds: Iterable[float] = RECALL_THRESHOLDS) -> pd.DataFrame:
    """Per model × index and recall threshold, the best QPS reaching it (the big-ann-benchmarks ranking):
    batch QPS (many queries per call) and QPS with one client thread (one query per call, serial).

    Each best QPS (the median of its trials) comes with its min–max across trials, and "within noise"
    lists the other points that reach the floor with a QPS range overlapping the best's: no winner
    among them can be called."""
    series: dict[tuple[str, str], dict[str, list]] = {}
    k = None
    for r in results:
        search = r.get("search")
        if not search:
            continue
        k = search["top_k"]
        s = series.setdefault((r["model"]["name"], index_setting(r)), {"batch": [], "thread1": []})
        for point in search["points"]:
            recall = _number(point.get("recall_at_k"))
            s["batch"].append((recall, _number(point.get("batch_qps")), point["label"], qps_interval(point)))
            s["thread1"].append((recall, _number(point.get("concurrent_qps", {}).get("1")), point["label"],
                                 qps_interval(point, "1")))
    rows = []
    for (model, index), s in series.items():
        for t in thresholds:
            batch, batch_at, batch_range, batch_ties = _best_point(s["batch"], t)
            one, one_at, one_range, one_ties = _best_point(s["thread1"], t)
            rows.append({"model": model, "index": index, f"min recall@{k}": t, "best batch QPS": batch,
                         "batch QPS range": fmt_interval(batch_range), "batch: search params": batch_at,
                         "batch: within noise": batch_ties, "best QPS@1thr": one,
                         "QPS@1thr range": fmt_interval(one_range), "1thr: search params": one_at,
                         "1thr: within noise": one_ties})
    return pd.DataFrame(rows)


def quality_table(results: Iterable[dict]) -> pd.DataFrame:
    """Category precision@K and mAP@K per model, with their 95 % bootstrap intervals over queries: on the
    exact top-K, then at every index search point. On exact search, "vs best model" marks the models
    whose precision cannot be told from the best one's (≈)."""
    rows, seen, exact_rows = [], set(), []
    for r in results:
        model, search = r.get("model"), r.get("search")
        if not model or not search:
            continue
        k, weights = search["top_k"], _weights_label(model.get("weights"))
        exact = r.get("exact") or {}
        if model["name"] not in seen and exact:
            seen.add(model["name"])
            exact_rows.append(len(rows))
            rows.append(_quality_row(model["name"], weights, "exact search", exact, k))
        for point in search["points"]:
            rows.append(_quality_row(model["name"], weights, f"{index_setting(r)} {point['label']}", point, k))
    if rows and len(exact_rows) > 1:
        marks = marks_vs_best([rows[i]["_value"] for i in exact_rows], [rows[i]["_interval"] for i in exact_rows])
        for i, mark in zip(exact_rows, marks):
            rows[i]["vs best model"] = mark
    for row in rows:
        del row["_value"], row["_interval"]
    return pd.DataFrame(rows)


def _quality_row(model: str, weights: str, where: str, section: dict, k: int) -> dict:
    return {"model": model, "weights": weights, "results": where,
            f"precision@{k}": quality_cell(section.get("precision_at_k")),
            f"precision@{k} 95% CI": fmt_interval(quality_interval(section, "precision_at_k")),
            f"mAP@{k}": quality_cell(section.get("map_at_k")), f"mAP@{k} 95% CI": fmt_interval(quality_interval(section, "map_at_k")),
            "queries": section.get("num_queries"), "unlabelled queries": section.get("num_unlabelled"),
            "_value": section.get("precision_at_k"), "_interval": quality_interval(section, "precision_at_k")}


def runs_table(runs: dict[str, dict]) -> pd.DataFrame:
    """Run directory -> status, model, index and error (failed runs keep whatever config they had)."""
    rows = []
    for name, r in runs.items():
        config = r.get("config", {})
        rows.append({"run": name, "status": r.get("status", "?"),
                     "model": r.get("model", {}).get("name") or config.get("model", {}).get("name", "?"),
                     "index": r.get("index", {}).get("type") or config.get("index", {}).get("type", "?"),
                     "created": r.get("provenance", {}).get("created_at"), "error": r.get("error") or ""})
    return pd.DataFrame(rows)


def provenance_table(runs: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for name, r in runs.items():
        prov = r.get("provenance", {})
        hw = prov.get("hardware", {})
        rows.append({"run": name, "commit": str(prov.get("git_commit", "?")), "created": prov.get("created_at"),
                     "cpu": hw.get("cpu"), "cpu class": recorded_class(r), "int8 features": features_label(hw),
                     "cores": hw.get("cores"), "memory GB": hw.get("memory_gb"),
                     "os": hw.get("os"), "python": hw.get("python"), "store": _store_label(r),
                     "weights": _weights_label(prov.get("weights") or r.get("model", {}).get("weights")),
                     "runtime": _runtime_label(prov.get("runtime"))})
    return pd.DataFrame(rows)


def _runtime_label(runtime: dict | None) -> str:
    """e.g. "CUDAExecutionProvider on NVIDIA H100 (GPU 0), 2 threads" (bench.models.runtime)."""
    if not runtime:
        return "CPUExecutionProvider (not recorded)"
    return f"{runtime.get('provider')} on {runtime.get('device')}, {runtime.get('threads_in_use')} threads"


def versions_table(runs: dict[str, dict]) -> pd.DataFrame:
    """Package -> version; where runs used different versions, each version with the runs that had it."""
    seen: dict[str, dict[str, list[str]]] = {}
    for name, r in runs.items():
        for package, version in r.get("provenance", {}).get("versions", {}).items():
            seen.setdefault(package, {}).setdefault(str(version), []).append(name)
    rows = []
    for package, by_version in seen.items():
        if len(by_version) == 1:
            rows.append({"package": package, "version": next(iter(by_version)), "same in all runs": True})
        else:
            text = "; ".join(f"{v} ({', '.join(names)})" for v, names in by_version.items())
            rows.append({"package": package, "version": text, "same in all runs": False})
    return pd.DataFrame(rows)
