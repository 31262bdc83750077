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
from bench.report.comparison_tables import index_setting
from bench.report.tables import _store_label

STAGE_NAMES = {"queue": "queue wait", "decode_preprocess": "decode+preprocess", "inference": "inference",
               "search": "search", "lookup": "path lookup"}


def pipeline_label(r: dict) -> str:
    """"model · precision · index · batching": what tells one served pipeline from another."""
    s = r["serve"]
    precision = (r.get("config", {}).get("model", {}) or {}).get("precision", "fp32")
    return f"{r['model']['name']} · {precision} · {index_setting(r)} · batching {s['batching']}"


def _who(r: dict) -> dict[str, Any]:
    s = r["serve"]
    return {"model": r["model"]["name"], "precision": (r.get("config", {}).get("model", {}) or {}).get("precision"),
            "index": index_setting(r), "search params": s["search_point"]["label"], "batching": s["batching"],
            "store": _store_label(r), "metadata": s.get("metadata")}


def _run_label(level: Optional[dict]) -> str:
    """'VALID · short: 5.2 s, 500 queries'."""
    if not level:
        return "not run"
    return f"{level['verdict']} · {short_label(level.get('seconds'), level.get('queries'))}"


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


def peak_cell(peak: Optional[dict]) -> Any:
    """The peak QPS, or the words saying it was not reached even at the lowest probe."""
    if not peak:
        return None
    if not peak["reached"]:
        return f"not reached at ≥ {peak['not_reached_at_qps']:.1f} QPS"
    return round(peak["qps"], 1)


def probes_cell(peak: Optional[dict]) -> str:
    if not peak:
        return ""
    return "; ".join(f"{p['qps']:.1f} {p['verdict']}" + (f" (p99 {p['p99_ms']:.1f} ms)" if p.get("p99_ms") else "")
                     for p in peak["probes"])


def serving_table(results: Iterable[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        s = r.get("serve")
        if not s:
            continue
        single, offline, peak, server = s.get("single_stream"), s.get("offline"), s.get("peak"), s.get("server")
        acc, cal = s.get("accuracy") or {}, s.get("calibration") or {}
        bound = s.get("latency_bound_ms")
        k = r.get("search", {}).get("top_k", "K")
        rows.append({
            **_who(r),
            "SingleStream p90 ms": _round((single or {}).get("latency_ms", {}).get("p90"), 2),
            "SingleStream run": _run_label(single),
            "Offline QPS": _round((offline or {}).get("completed_qps")),
            "Offline run": _run_label(offline),
            f"max Server QPS at p{round(100 * s['latency_percentile'])} ≤ {bound:g} ms":
                peak_cell(peak) if peak else (f"{server['target_qps']:.1f} {server['verdict']}" if server else None),
            "peak probes (target QPS, verdict, p99)": probes_cell(peak),
            "served = offline top-K": (f"{acc['identical'] + acc['equal_up_to_swaps']}/{acc['queries']} "
                                       f"({acc['swapped_positions']} swaps, {acc['mismatched']} mismatched)"
                                       if acc else None),
            f"end-to-end recall@{k}": _round(acc.get("recall_at_k_vs_exact"), 4),
            "null-SUT max QPS": _round(cal.get("null_sut_qps"), 0),
            "client-limited": ("yes" if cal.get("client_limited") else "no") if cal else None,
        })
    return _blank_missing(pd.DataFrame(rows))


def levels_table(results: Iterable[dict]) -> pd.DataFrame:
    """Every performance test of every pipeline: a load level with LoadGen's verdict and latency."""
    rows = []
    for r, level in _levels(results):
        lat = level.get("latency_ms") or {}
        rows.append({"pipeline": pipeline_label(r), "scenario": level["scenario"],
                         "target QPS": _round(level.get("target_qps")) if level["scenario"] != "SingleStream" else None,
                     "completed QPS": _round(level.get("completed_qps")), "verdict": level["verdict"],
                     "run": short_label(level.get("seconds"), level.get("queries")),
                     "p50 ms": _round(lat.get("p50"), 2), "p90 ms": _round(lat.get("p90"), 2),
                     "p99 ms": _round(lat.get("p99"), 2),
                     "early stopping": early_stopping_note(level.get("early_stopping"))})
    return _blank_missing(pd.DataFrame(rows))


def stages_table(results: Iterable[dict]) -> pd.DataFrame:
    """p50 and p99 of each stage per load level (ms per query; a batched query carries its batch's times)."""
    rows = []
    for r, level in _levels(results):
        st = level.get("stages") or {}
        row = {"pipeline": pipeline_label(r), "load level": level_name(level), "verdict": level["verdict"],
               "queries": st.get("queries"), "mean batch": _round(st.get("mean_batch_size"), 2)}
        for stage in ALL_STAGES:
            row[f"{STAGE_NAMES[stage]} p50"] = _round((st.get(stage) or {}).get("p50_ms"), 3)
            row[f"{STAGE_NAMES[stage]} p99"] = _round((st.get(stage) or {}).get("p99_ms"), 3)
        rows.append(row)
    return _blank_missing(pd.DataFrame(rows))


def _levels(results: Iterable[dict]) -> Iterator[tuple[dict, dict]]:
    """(run, load level) for every performance test of every serve run."""
    for r in results:
        for level in (r.get("serve") or {}).get("levels", []):
            yield r, level


def level_name(level: dict) -> str:
    if level["scenario"] == "Server":
        return f"Server @ {level['target_qps']:.1f} QPS"
    return level["scenario"]


def run_tables(result: dict) -> dict[str, pd.DataFrame]:
    tables = {"serving": serving_table([result]), "serving_levels": levels_table([result]),
              "serving_stages": stages_table([result])}
    return {name: df for name, df in tables.items() if not df.empty}
