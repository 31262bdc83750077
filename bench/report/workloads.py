"""The comparison report's Workloads section: the workload tables (bench/report/workload_tables.py),
operating points per selectivity, and two plots: recall and latency by selectivity, and search latency
over time with the insert window shaded.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.report.cross_run_tables import index_setting
from bench.report.document import Block, Figure, Heading, Table, Text
from bench.report.plots import MARKERS, _colours, _png, plt
from bench.results import Results
from bench.report.workload_tables import (filtered_operating_points, filtered_table, streaming_summary_table,
                                          streaming_windows_table)


# -- plots ---------------------------------------------------------------------------------------

def filtered_plot(table: pd.DataFrame, k: int) -> bytes:
    """Recall and p50 latency against selectivity (log scale), one line per run × search point."""
    reached = table.dropna(subset=["search params"]).copy()
    reached["series"] = reached["model"] + " · " + reached["index"] + " · " + reached["store"]
    colour = _colours(list(dict.fromkeys(reached["series"])))
    marker = dict(zip(dict.fromkeys(reached["search params"]), MARKERS * 8))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharex=True)
    for (series, params), rows in reached.groupby(["series", "search params"], sort=False):
        rows = rows.sort_values("selectivity")
        for ax, column in zip(axes, (f"recall@{k}", "p50 ms")):
            ax.plot(rows["selectivity"].astype(float), rows[column].astype(float), marker=marker[params], color=colour[series], alpha=0.8,
                    label=f"{series} · {params}")
    for ax, ylabel in zip(axes, (f"recall@{k} within the filtered subset", "search p50 latency (ms, nq=1, log scale)")):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlabel("selectivity (share of the corpus passing the filter, log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    # Stores differ by orders of magnitude once a filter is on (milvus-lite evaluates it row by row).
    axes[1].set_yscale("log")
    axes[1].yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    fig.suptitle("Filtered search: recall and latency by selectivity (1.0 = no filter)")
    return _png(fig)


def streaming_plot(results: list[Results]) -> bytes:
    """Search latency over time, one panel per run, with the insert window shaded."""
    runs = [r for r in results if r.streaming]
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 3.2 * len(runs)), squeeze=False)
    for ax, r in zip(axes[:, 0], runs):
        s = r.streaming
        t, ms = np.asarray(s.timeline.t_s), np.asarray(s.timeline.latency_ms)
        start, end = s.timeline.insert_start_s, s.timeline.insert_end_s
        if start is not None and end is not None:
            ins = s.insert
            ax.axvspan(start, end, color="tab:orange", alpha=0.2,
                       label=f"inserting {ins.rows_inserted} rows ({ins.rows_reached_per_s or 0:.0f} of "
                             f"{ins.rows_asked_per_s or 0:g} rows/s asked)")
        ax.plot(t, ms, ".", markersize=3, color="tab:blue", alpha=0.6, label="one search (nq=1)")
        if t.size >= 5:
            window = max(5, t.size // 40)
            rolling = pd.Series(ms).rolling(window, center=True, min_periods=1).median()
            ax.plot(t, rolling, color="tab:red", linewidth=1.5, label=f"rolling median of {window}")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("latency (ms, log)")
        ax.set_title(f"{r.model_name} · {index_setting(r)} · {r.store_label} · {s.search_point}",
                     fontsize=9)
        ax.legend(loc="upper right", fontsize=7)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("seconds since the streaming measurement started")
    fig.suptitle("Streaming: search latency while rows arrive (shaded: insert window)")
    fig.tight_layout()
    return _png(fig)


# -- the report section --------------------------------------------------------------------------

def section(results: list[Results]) -> list[Block]:
    """The Workloads section over every run that has one; empty when no run has."""
    filtered_runs = [r for r in results if r.filtered]
    streaming_runs = [r for r in results if r.streaming]
    if not filtered_runs and not streaming_runs:
        return []
    blocks: list[Block] = [Heading("Workloads", 2)]
    if filtered_runs:
        k = filtered_runs[0].filtered.top_k
        table = filtered_table(filtered_runs)
        blocks += [
            Heading("Filtered search by selectivity", 3),
            Text("Each query searches only among the corpus images labelled with category c (Milvus: "
                 "`array_contains(category_ids, c)`), c being the category whose share of the "
                 "corpus (selectivity) is nearest each bucket's target. Recall is against exact search within the "
                 "rows passing the filter (when fewer than K pass, finding all of them is 1.0). The 100% rows are "
                 "the unfiltered sweep, for reference. A bucket no category reaches is one row saying so."),
            Table("workloads_filtered", table, f"recall@{k}, category precision@{k}, serial nq=1 latency (ms) and "
                                               "QPS (queries/s) per selectivity bucket and search point."),
            Table("workloads_filtered_operating_points", filtered_operating_points(filtered_runs),
                  "Best QPS (queries/s) at a recall floor, per selectivity bucket."),
            Figure("workloads_filtered_plot", filtered_plot(table, k),
                   f"recall@{k} (left) and p50 latency (right) against selectivity, log scale."),
        ]
    if streaming_runs:
        blocks += [
            Heading("Streaming search (read while write)", 3),
            Text("Half the corpus is loaded and indexed; the other half is inserted at a fixed rate while one client "
                 "searches at a fixed rate. Freshness: time from an insert call's return until a search with the "
                 "row's own vector returns it (resolution: the poll interval plus one search). Recall at the end is "
                 "against exact search over every row inserted by then."),
            Table("workloads_streaming", streaming_summary_table(streaming_runs),
                  "Insert rate reached vs asked, freshness (s), recall at the end."),
            Table("workloads_streaming_windows", streaming_windows_table(streaming_runs),
                  "Search latency (ms) per phase: before, during and after the inserts."),
            Figure("workloads_streaming_plot", streaming_plot(streaming_runs),
                   "Latency of every search over time; the shaded band is the insert window."),
        ]
    return blocks
