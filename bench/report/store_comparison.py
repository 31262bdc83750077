"""The same index on different stores, side by side: what a database costs over the raw index.

Search points are matched across store kinds by model, index type with its build params, and search
params. Each store is set against a reference: a bare index library (``capabilities().database`` False,
e.g. faiss) when the runs include one, else the first store kind met. A row gives both stores' figures,
the QPS ratio (store / reference) and the recall difference (store − reference), and says whether the
QPS difference stands out of the noise (the min–max ranges across timing trials do not overlap).
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from bench.measure.statistics import APPROX, significantly_different
from bench.report.cross_run_tables import index_setting
from bench.report.significance import percentile_cell
from bench.report.tables import typed
from bench.results import Results
from bench.schema.sections import SearchPoint
from bench.stores.registry import known_capabilities


def _kind(result: Results) -> str:
    return str(result.provenance.store.kind or "?")


def reference_kind(kinds: list[str]) -> str:
    """The kind the others are compared against: the first bare index library, else the first kind."""
    for kind in kinds:
        caps = known_capabilities(kind)
        if caps is not None and not caps.database:
            return kind
    return kinds[0]


def _ratio(value: float | None, reference: float | None) -> float | None:
    return value / reference if value is not None and reference else None


def _noise_mark(point: SearchPoint, ref: SearchPoint, threads: str | None = None) -> str:
    """"yes" when the two QPS ranges across trials do not overlap, ≈ when they do, "" without ranges."""
    mine, theirs = point.qps_range(threads), ref.qps_range(threads)
    if mine is None or theirs is None:
        return ""
    return "yes" if significantly_different(mine, theirs) else APPROX


def store_comparison_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    """One row per (model, index setting, search point, store) that the reference store also ran."""
    points: dict[tuple[str, str, str], dict[str, tuple[Results, SearchPoint]]] = {}
    kinds: list[str] = []
    k = None
    for r in typed(results):
        if r.search is None:
            continue
        k, kind = r.search.top_k, _kind(r)
        if kind not in kinds:
            kinds.append(kind)
        setting = index_setting(r, with_store=False)
        for point in r.search.points:
            points.setdefault((r.model_name, setting, point.label), {}).setdefault(kind, (r, point))
    if len(kinds) < 2:
        return pd.DataFrame()
    reference = reference_kind(kinds)
    # Grouped by model, then index setting (each in the order first met), each setting's points in sweep order.
    models = list(dict.fromkeys(model for model, _, _ in points))
    settings = list(dict.fromkeys(setting for _, setting, _ in points))
    grouped = sorted(points.items(), key=lambda item: (models.index(item[0][0]), settings.index(item[0][1])))
    rows = []
    for (model, setting, label), by_kind in grouped:
        if reference not in by_kind:
            continue
        ref_run, ref = by_kind[reference]
        for kind, (run, point) in by_kind.items():
            if kind == reference:
                continue
            recall, ref_recall = point.recall_at_k, ref.recall_at_k
            batch, ref_batch = point.batch_qps, ref.batch_qps
            one, ref_one = point.qps("1"), ref.qps("1")
            rows.append({
                "model": model, "index": setting, "search params": label,
                "store": run.store_label, "reference": ref_run.store_label,
                f"recall@{k}": recall, f"reference recall@{k}": ref_recall,
                "recall diff": recall - ref_recall if recall is not None and ref_recall is not None else None,
                "batch QPS": batch, "reference batch QPS": ref_batch, "batch QPS ratio": _ratio(batch, ref_batch),
                "batch QPS differs": _noise_mark(point, ref),
                "QPS@1thr": one, "reference QPS@1thr": ref_one, "QPS@1thr ratio": _ratio(one, ref_one),
                "QPS@1thr differs": _noise_mark(point, ref, "1"),
                "p50 ms": percentile_cell(point.latency, 50),
                "reference p50 ms": percentile_cell(ref.latency, 50),
            })
    return pd.DataFrame(rows)
