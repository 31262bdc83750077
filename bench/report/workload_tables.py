"""Workload tables: filtered search per selectivity bucket, streaming search per time window.

Runs made with workload=filtered carry a "filtered" section in results.json, runs made with
workload=streaming a "streaming" one (bench/measure/workloads/). The same functions serve a single
run's tables.md and the comparison report's Workloads section (bench/report/workloads.py).
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from bench.measure.evaluate import best_qps_at_recall
from bench.report import serving_tables
from bench.report.client_tables import clients_table
from bench.report.cross_run_tables import RECALL_THRESHOLDS, index_setting
from bench.report.significance import percentile_cell
from bench.report.tables import typed
from bench.results import Results
from bench.schema.workloads import Bucket

UNFILTERED = "none (whole corpus)"


def _blank_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Cells with nothing to show (an unreached bucket, no freshness probe seen) as empty, never "nan"."""
    return df.astype(object).where(df.notna(), None)


def _who(r: Results) -> dict:
    return {"model": r.model_name, "index": index_setting(r), "store": r.store_label}


def _bucket_name(bucket: Bucket) -> str:
    return f"~{bucket.target:.0%}"


def filtered_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    """One row per run × selectivity bucket × search point; the unfiltered sweep as the 100 % reference;
    a bucket no category reached is one row that says why."""
    rows = []
    for r in typed(results):
        section = r.filtered
        if section is None:
            continue
        k = section.top_k
        # The unfiltered sweep, as the 100 % bucket.
        unfiltered = Bucket(target=1.0, reached=True, category_name=UNFILTERED, selectivity=1.0,
                            passing_rows=r.dataset.num_corpus if r.dataset else None,
                            points=[p.model_dump() for p in r.search.points] if r.search else [])
        for bucket in [unfiltered, *section.buckets]:
            base = {**_who(r), "bucket": "100%" if bucket.category_name == UNFILTERED else _bucket_name(bucket),
                    "category": bucket.category_name if bucket.reached else bucket.note,
                    "selectivity": bucket.selectivity, "rows passing": bucket.passing_rows if bucket.reached
                    else None}
            if not bucket.reached:
                rows.append(base)
                continue
            for p in bucket.points:
                rows.append({**base, "search params": p.label, f"recall@{k}": p.recall_at_k,
                             f"precision@{k}": p.precision_at_k, "p50 ms": percentile_cell(p.latency, 50),
                             "p99 ms": percentile_cell(p.latency, 99), "batch QPS": p.batch_qps,
                             "QPS@1thr": p.qps("1"), "results outside filter": p.results_outside_filter})
    return _blank_missing(pd.DataFrame(rows))


def _qps_or_not_reached(qps: float | None) -> float | str:
    # Rounded: the column mixes numbers and words, so tabulate cannot apply its float format.
    return round(qps, 1) if qps is not None else "not reached"


def filtered_operating_points(results: Iterable[Results | dict],
                              thresholds: Iterable[float] = RECALL_THRESHOLDS) -> pd.DataFrame:
    """Per run and selectivity bucket: the best batch QPS and 1-thread QPS reaching each recall floor."""
    rows = []
    for r in typed(results):
        section = r.filtered
        if section is None:
            continue
        for bucket in section.buckets:
            if not bucket.reached:
                continue
            points = bucket.points
            batch = best_qps_at_recall([(_nan(p.recall_at_k), _nan(p.batch_qps)) for p in points], tuple(thresholds))
            one = best_qps_at_recall([(_nan(p.recall_at_k), _nan(p.qps("1"))) for p in points], tuple(thresholds))
            for t in thresholds:
                rows.append({**_who(r), "bucket": _bucket_name(bucket), "category": bucket.category_name,
                             "selectivity": bucket.selectivity, f"min recall@{section.top_k}": t,
                             "best batch QPS": _qps_or_not_reached(batch[t]),
                             "best QPS@1thr": _qps_or_not_reached(one[t])})
    return pd.DataFrame(rows)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def streaming_windows_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    rows = []
    for r in typed(results):
        section = r.streaming
        if section is None:
            continue
        for w in section.windows:
            rows.append({**_who(r), "search params": section.search_point, "phase": w.phase,
                         "from s": w.start_s, "to s": w.end_s, "searches": w.latency.count,
                         "p50 ms": percentile_cell(w.latency, 50), "p99 ms": percentile_cell(w.latency, 99),
                         "max ms": w.latency.max_ms, "search QPS reached": w.search_qps_reached,
                         "search QPS asked": section.search_qps_asked})
    return pd.DataFrame(rows)


def streaming_summary_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    rows = []
    for r in typed(results):
        section = r.streaming
        if section is None:
            continue
        ins, fresh = section.insert, section.freshness
        rows.append({**_who(r), "rows loaded first": section.initial_rows, "rows streamed": ins.rows_inserted,
                     "of rows asked": ins.rows_asked, "insert rows/s asked": ins.rows_asked_per_s,
                     "insert rows/s reached": ins.rows_reached_per_s,
                     "rows inserted after deadline": ins.rows_inserted_after_deadline,
                     "freshness p50 s": fresh.p50_s, "freshness max s": fresh.max_s,
                     "freshness probes seen": f"{fresh.seen}/{fresh.probes}",
                     f"recall@{r.top_k} at end": section.recall_at_end})
    return _blank_missing(pd.DataFrame(rows))


def run_tables(result: Results | dict) -> dict[str, pd.DataFrame]:
    """The workload tables of one run (none for workload=none), for its tables.md."""
    result = typed([result])[0]
    tables = {"filtered": filtered_table([result]), "filtered_operating_points": filtered_operating_points([result]),
              "streaming": streaming_summary_table([result]), "streaming_windows": streaming_windows_table([result]),
              "concurrency_from_client_processes": clients_table([result])}
    return {**{name: df for name, df in tables.items() if not df.empty}, **serving_tables.run_tables(result)}
