"""Serving tables: what workload=serve measured (results.json's "serve" section, bench/measure/workloads/serve/).

One row per pipeline (model × precision × index × batching): SingleStream p90, Offline QPS, the highest
Server QPS at the bound with its probes, accuracy against offline search, and the client's own limit;
one row per load level (one LoadGen test) with its verdict and latency; one row per load level with
each stage's p50 and p99. Every row carries LoadGen's verdict and the duration and query count it used
("short" below MLPerf's 600 s). The same functions serve a run's tables.md and the comparison report.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator, Optional

import pandas as pd

from bench.measure.workloads.serve.settings import short_label
from bench.measure.workloads.serve.stages import ALL_STAGES
from bench.report.cross_run_tables import index_setting
from bench.report.tables import typed
from bench.results import Results
from bench.schema.workloads import Peak, ServeLevel

STAGE_NAMES = {"queue": "queue wait", "decode_preprocess": "decode+preprocess", "inference": "inference",
               "search": "search", "lookup": "path lookup"}


def pipeline_label(r: Results) -> str:
    """"model · precision · index · batching": what tells one served pipeline from another."""
    return f"{r.model_name} · {r.config.model.precision} · {index_setting(r)} · batching {r.serve.batching}"


def _who(r: Results) -> dict[str, Any]:
    s = r.serve
    return {"model": r.model_name, "precision": r.config.model.precision,
            "index": index_setting(r), "search params": s.search_point.label, "batching": s.batching,
            "store": r.store_label, "metadata": s.metadata}


def _run_label(level: Optional[ServeLevel]) -> str:
    """'VALID · short: 5.2 s, 500 queries'."""
    if level is None:
        return "not run"
    return f"{level.verdict} · {short_label(level.seconds, level.queries)}"


def early_stopping_note(text: Optional[str]) -> Optional[str]:
    """LoadGen's early-stopping paragraph, down to what it asks for ("needs >= 359 more queries")."""
    if not text:
        return None
    if more := re.search(r"at least (\d+) more queries", text):
        return f"needs ≥ {more.group(1)} more queries"
    if total := re.search(r"at\s+least (\d+) total queries", text):
        return f"p99 estimate needs ≥ {total.group(1)} queries"
    return None


def _blank_missing(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype(object).where(df.notna(), None)


def _round(value: Optional[float], digits: int = 1) -> Optional[float]:
    return round(value, digits) if isinstance(value, (int, float)) else None


def peak_cell(peak: Optional[Peak]) -> Any:
    """The peak QPS, or the words saying it was not reached even at the lowest probe."""
    if peak is None:
        return None
    if not peak.reached:
        return f"not reached at ≥ {peak.not_reached_at_qps or 0:.1f} QPS"
    return round(peak.qps, 1)


def probes_cell(peak: Optional[Peak]) -> str:
    if peak is None:
        return ""
    return "; ".join(f"{p.qps:.1f} {p.verdict}" + (f" (p99 {p.p99_ms:.1f} ms)" if p.p99_ms else "")
                     for p in peak.probes)


def bound_label(r: Results) -> str:
    """The bound a run's peak is measured at, e.g. "p99 ≤ 50 ms"."""
    s = r.serve
    return f"p{round(100 * (s.latency_percentile or 0))} ≤ {s.latency_bound_ms or 0:g} ms"


def serving_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    rows = []
    for r in typed(results):
        s = r.serve
        if s is None:
            continue
        single, offline, peak, server = s.single_stream, s.offline, s.peak, s.server
        acc, cal = s.accuracy, s.calibration
        k = r.top_k or "K"
        rows.append({
            **_who(r),
            "SingleStream p90 ms": _round(single.latency_ms.get("p90") if single else None, 2),
            "SingleStream run": _run_label(single),
            "Offline QPS": _round(offline.completed_qps if offline else None),
            "Offline run": _run_label(offline),
            f"max Server QPS at {bound_label(r)}":
                peak_cell(peak) if peak else (f"{server.target_qps or 0:.1f} {server.verdict}" if server else None),
            "peak probes (target QPS, verdict, p99)": probes_cell(peak),
            "served = offline top-K": (f"{acc.identical + acc.equal_up_to_swaps}/{acc.queries} "
                                       f"({acc.swapped_positions} swaps, {acc.mismatched} mismatched)"
                                       if acc else None),
            f"end-to-end recall@{k}": _round(acc.recall_at_k_vs_exact if acc else None, 4),
            "null-SUT max QPS": _round(cal.null_sut_qps if cal else None, 0),
            "client-limited": ("yes" if cal.client_limited else "no") if cal else None,
        })
    return _blank_missing(pd.DataFrame(rows))


def levels_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    """Every performance test of every pipeline: a load level with LoadGen's verdict and latency."""
    rows = []
    for r, level in _levels(results):
        lat = level.latency_ms
        rows.append({"pipeline": pipeline_label(r), "scenario": level.scenario,
                     "target QPS": _round(level.target_qps) if level.scenario != "SingleStream" else None,
                     "completed QPS": _round(level.completed_qps), "verdict": level.verdict,
                     "run": short_label(level.seconds, level.queries),
                     "p50 ms": _round(lat.get("p50"), 2), "p90 ms": _round(lat.get("p90"), 2),
                     "p99 ms": _round(lat.get("p99"), 2),
                     "early stopping": early_stopping_note(level.early_stopping)})
    return _blank_missing(pd.DataFrame(rows))


def stages_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    """p50 and p99 of each stage per load level (ms per query; a batched query carries its batch's times)."""
    rows = []
    for r, level in _levels(results):
        st = level.stages
        row = {"pipeline": pipeline_label(r), "load level": level_name(level), "verdict": level.verdict,
               "queries": st.get("queries"), "mean batch": _round(st.get("mean_batch_size"), 2)}
        for stage in ALL_STAGES:
            row[f"{STAGE_NAMES[stage]} p50"] = _round((st.get(stage) or {}).get("p50_ms"), 3)
            row[f"{STAGE_NAMES[stage]} p99"] = _round((st.get(stage) or {}).get("p99_ms"), 3)
        rows.append(row)
    return _blank_missing(pd.DataFrame(rows))


def _levels(results: Iterable[Results | dict]) -> Iterator[tuple[Results, ServeLevel]]:
    """(run, load level) for every performance test of every serve run."""
    for r in typed(results):
        for level in r.serve.levels if r.serve else []:
            yield r, level


def level_name(level: ServeLevel) -> str:
    if level.scenario == "Server":
        return f"Server @ {level.target_qps or 0:.1f} QPS"
    return level.scenario


def run_tables(result: Results | dict) -> dict[str, pd.DataFrame]:
    tables = {"serving": serving_table([result]), "serving_levels": levels_table([result]),
              "serving_stages": stages_table([result])}
    return {name: df for name, df in tables.items() if not df.empty}
