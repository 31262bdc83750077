"""Tables only the comparison report needs: operating points, quality, runs and provenance.

They sit beside bench.report.tables and use its label helpers, so a weights or store label reads the same
in a single run's tables and in the report.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from bench.measure.evaluate import best_qps_at_recall
from bench.report.tables import NO_PARAMS, _store_label, _weights_label
from bench.stores.indexes import format_params

weights_label = _weights_label
RECALL_THRESHOLDS = (0.9, 0.95, 0.99)


def index_setting(result: dict) -> str:
    """Index type with its build params: two HNSW runs with a different M are different indexes."""
    index = result.get("index", {})
    build = format_params(index.get("build_params", {}), NO_PARAMS)
    return index.get("type", "?") if build == NO_PARAMS else f"{index.get('type', '?')}({build})"


def _number(value: float | None) -> float:
    """results.json stores a failed measurement as null; NaN keeps it out of every comparison."""
    return float("nan") if value is None else float(value)


def _best_point(points: list[tuple[float, float, str]], threshold: float) -> tuple[float | None, str]:
    """Highest QPS among (recall, qps, label) points with recall >= threshold, and its label."""
    best = best_qps_at_recall([(r, q) for r, q, _ in points], [threshold])[threshold]
    if best is None:
        return None, "not reached"
    label = next(lbl for r, q, lbl in points if r >= threshold and q == best)
    return best, label


def operating_points_table(results: Iterable[dict], thresholds: Iterable[float] = RECALL_THRESHOLDS) -> pd.DataFrame:
    """Per model × index and recall threshold, the best QPS reaching it (the big-ann-benchmarks ranking):
    batch QPS (many queries per call) and QPS with one client thread (one query per call, serial)."""
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
            s["batch"].append((recall, _number(point.get("batch_qps")), point["label"]))
            s["thread1"].append((recall, _number(point.get("concurrent_qps", {}).get("1")), point["label"]))
    rows = []
    for (model, index), s in series.items():
        for t in thresholds:
            batch, batch_at = _best_point(s["batch"], t)
            one, one_at = _best_point(s["thread1"], t)
            rows.append({"model": model, "index": index, f"min recall@{k}": t, "best batch QPS": batch,
                         "batch: search params": batch_at, "best QPS@1thr": one, "1thr: search params": one_at})
    return pd.DataFrame(rows)


def quality_table(results: Iterable[dict]) -> pd.DataFrame:
    """Category precision@K and mAP@K per model: on the exact top-K, then at every index search point."""
    rows, seen = [], set()
    for r in results:
        model, search = r.get("model"), r.get("search")
        if not model or not search:
            continue
        k, weights = search["top_k"], _weights_label(model.get("weights"))
        exact = r.get("exact") or {}
        if model["name"] not in seen and exact:
            seen.add(model["name"])
            rows.append({"model": model["name"], "weights": weights, "results": "exact search",
                         f"precision@{k}": exact.get("precision_at_k"), f"mAP@{k}": exact.get("map_at_k"),
                         "queries": exact.get("num_queries"), "unlabelled queries": exact.get("num_unlabelled")})
        for point in search["points"]:
            rows.append({"model": model["name"], "weights": weights,
                         "results": f"{index_setting(r)} {point['label']}",
                         f"precision@{k}": point.get("precision_at_k"), f"mAP@{k}": point.get("map_at_k"),
                         "queries": point.get("num_queries"), "unlabelled queries": point.get("num_unlabelled")})
    return pd.DataFrame(rows)


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
                     "cpu": hw.get("cpu"), "cores": hw.get("cores"), "memory GB": hw.get("memory_gb"),
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
