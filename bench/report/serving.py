"""The comparison report's Serving section (workload=serve): the tables of bench/report/serving_tables.py,
latency against offered load with the bound drawn, the stacked per-stage chart, and the summary's line
naming the pipeline with the highest QPS at the bound.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from bench.measure.workloads.serve.stages import ALL_STAGES
from bench.report.document import Block, Figure, Heading, Table, Text
from bench.report.plots import MARKERS, _colours, _png, plt
from bench.report.serving_tables import (STAGE_NAMES, bound_label, level_name, levels_table, pipeline_label,
                                         serving_table, stages_table)
from bench.results import Results

STAGE_COLOURS = {"queue": "#bbbbbb", "decode_preprocess": "tab:orange", "inference": "tab:blue", "search": "tab:green",
                 "lookup": "tab:purple"}


def latency_vs_load_plot(results: list[Results]) -> bytes:
    """p50 and p99 against the offered Server QPS, one colour per pipeline; filled markers are VALID tests."""
    labels = [pipeline_label(r) for r in results]
    colour = _colours(labels)
    fig, ax = plt.subplots(figsize=(11, 5))
    bounds = set()
    for r, label, marker in zip(results, labels, MARKERS * 8):
        s = r.serve
        bounds.add(s.latency_bound_ms)
        levels = sorted((lv for lv in s.levels if lv.scenario == "Server"), key=lambda lv: lv.target_qps or 0.0)
        if not levels:
            continue
        qps = [lv.target_qps for lv in levels]
        for key, style in (("p50", ":"), ("p99", "-")):
            ax.plot(qps, [lv.latency_ms.get(key) or np.nan for lv in levels], linestyle=style, color=colour[label],
                    alpha=0.8, label=f"{label} · {key}")
            for lv in levels:
                ax.plot(lv.target_qps, lv.latency_ms.get(key) or np.nan, marker=marker, color=colour[label],
                        markerfacecolor=colour[label] if lv.valid else "none", linestyle="none")
    for bound in sorted(b for b in bounds if b):
        ax.axhline(bound, color="tab:red", linestyle="--", linewidth=1.2, label=f"latency bound {bound:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered load: Server target QPS (Poisson arrivals)")
    ax.set_ylabel("latency per query (ms, log scale; LoadGen)")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    ax.set_title("Latency against offered load: dotted p50, solid p99; filled = VALID, hollow = INVALID")
    return _png(fig)


def stage_chart(results: list[Results]) -> bytes:
    """Mean milliseconds per query in each stage, stacked, one bar per pipeline × load level."""
    bars: list[tuple[str, dict]] = []
    for r in results:
        for level in r.serve.levels:
            bars.append((f"{pipeline_label(r)}\n{level_name(level)} ({level.verdict})", level.stages))
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(bars) + 1.5))
    y = np.arange(len(bars))
    left = np.zeros(len(bars))
    for stage in ALL_STAGES:
        widths = np.array([(st.get(stage) or {}).get("mean_ms") or 0.0 for _, st in bars])
        ax.barh(y, widths, left=left, color=STAGE_COLOURS[stage], label=STAGE_NAMES[stage])
        left += widths
    ax.set_yticks(y, [name for name, _ in bars], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("mean ms per query, stacked by stage (symlog scale: linear below 1 ms)")
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Where the time goes: per-query stage times at each load level")
    return _png(fig)


def section(results: list[Results]) -> list[Block]:
    runs = [r for r in results if r.serve]
    if not runs:
        return []
    bound = runs[0].serve.latency_bound_ms or 0
    blocks: list[Block] = [
        Heading("Serving (MLPerf LoadGen)", 2),
        Text("The query path as one service: LoadGen issues samples (held-out query images); the system under test "
             "reads and decodes the image, runs the model, searches the store at the served point, resolves the ids "
             "to paths and completes the sample. SingleStream: one query at a time. Offline: all at once (throughput). "
             "Server: Poisson arrivals at a target QPS, VALID when LoadGen's rules hold (latency percentile within "
             f"the bound, {bound:g} ms here, minimum duration and query count, early stopping). The peak is bisected "
             "from the Offline throughput. MLPerf requires 600 s per run; shorter runs are labelled \"short\" with "
             "their duration and query count. The null SUT answers at once: its peak is the most this client "
             "(LoadGen and the harness) can drive on this machine; a pipeline near half of it is client-limited."),
        Table("serving", serving_table(runs), "Per pipeline: SingleStream p90 (ms), Offline QPS, the highest VALID "
                                              "Server QPS at the bound with every probe, accuracy against the offline "
                                              "search of the same point, and the client's own limit."),
        Figure("serving_latency_vs_load", latency_vs_load_plot(runs),
               "p50 and p99 latency against offered Server load, with the latency bound drawn."),
        Table("serving_levels", levels_table(runs), "Every LoadGen performance test: verdict, duration and query "
                                                    "count, latency (ms)."),
        Table("serving_stages", stages_table(runs), "p50 and p99 of each stage (ms per query) at each load level; a "
                                                    "batched query carries its batch's model and search time."),
        Figure("serving_stages_plot", stage_chart(runs), "Mean time per query in each stage, stacked: the longest "
                                                         "coloured segment is the stage that limits the pipeline."),
    ]
    return blocks


def summary_line(results: list[Results]) -> Optional[str]:
    """"The pipeline with the highest QPS at p99 <= bound", read off the runs' peaks; ≈ where its bracket
    (highest VALID, lowest INVALID probe) overlaps the runner-up's."""
    runs = [r for r in results if r.serve is not None and (r.serve.peak is not None or r.serve.server is not None)]
    if not runs:
        return None
    bound = bound_label(runs[0])
    reached = sorted(((r.serve.peak.qps, r) for r in runs if r.serve.peak and r.serve.peak.reached),
                     key=lambda pair: -pair[0])
    if not reached:
        return f"**Serving:** no pipeline reached a VALID Server run ({bound})."
    (best_qps, best), runner = reached[0], reached[1] if len(reached) > 1 else None
    line = f"**Serving:** the highest QPS at {bound} is **{pipeline_label(best)}** at {best_qps:.1f} QPS"
    if runner is None:
        return line + " (the only pipeline that reached the bound)."
    runner_qps, runner_run = runner
    # The runner-up's peak lies below its lowest INVALID probe: above the leader's VALID rate, they may tie.
    invalid_above = [p.qps for p in runner_run.serve.peak.probes if p.verdict == "INVALID" and p.qps > runner_qps]
    runner_high = min(invalid_above, default=runner_qps)
    mark = "≈" if runner_high > best_qps or runner_qps == best_qps else "ahead of"
    return line + f", {mark} {pipeline_label(runner_run)} at {runner_qps:.1f} QPS" + (
        " (their bisection brackets overlap)." if mark == "≈" else ".")
