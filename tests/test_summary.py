"""The report's summary and its table layout, on hand-made results whose answers are known: who is
fastest at each recall floor, when a lead is noise, which warnings apply, and that the Markdown stays
valid with links that resolve."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import layouts
from bench.report.cross_run_tables import operating_points_table
from bench.report.document import (Document, Heading, Layout, Table, Topic, format_number, github_slug,
                                   heading_anchors, numeric_columns, render_markdown, table_markdown,
                                   table_parts)
from bench.report.runset import Group, Run, RunSet
from bench.report.summary import add_summary, interval, summarize, summary_text
from bench.report.tables import load_table, model_table, search_table
from bench.results import TOPK_FILE
from bench.schema.sections import Embedding, SearchPoint
from tests.helpers import results_doc


# ----------------------------------------------------------------------------------------------
# Hand-made results
# ----------------------------------------------------------------------------------------------

def _point(label: str, recall: float, batch: float, qps1: float, **extra) -> dict:
    latency = {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
    return {"label": label, "recall_at_k": recall, "precision_at_k": 0.5, "batch_qps": batch,
            "concurrent_qps": {"1": qps1}, "latency": latency, "end_to_end_latency": latency,
            "resolve_latency": latency, **extra}


def _result(model: str, index: str, points: list[dict], rows: int = 450, store: str = "milvus_lite",
            weights: str = "random", img_s: float = 10.0, **embedding) -> dict:
    return results_doc({
        "config": {"search": {"query_batch_size": 16}},
        "model": {"name": model, "weights": {"kind": weights, "seed": 0}, "embedding_dim": 8,
                  "embedding": {"images_per_s_end_to_end": img_s, "images_per_s_inference": 2 * img_s, **embedding}},
        "index": {"type": index, "build_params": {}, "load": {"rows": rows}},
        "provenance": {"store": {"kind": store, "version": "x"}},
        "metadata": {"kind": "milvus"},
        "search": {"top_k": 10, "metric": "IP", "points": points},
    })


def _summary_of(results: list[dict], folder: Path | None = None, exact_ids: dict[str, list[int]] | None = None):
    """The runs of these results with the document build.py makes from them (its tables are where the summary's
    statements link to); with ``exact_ids`` (model -> one query's exact top-10), each run in ``folder`` gets a
    topk.npz holding them, for the agreement between models."""
    runs = []
    for i, r in enumerate(results):
        path = (folder or Path(".")) / f"{i}_{r['model']['name']}_{r['index']['type']}"
        if exact_ids is not None:
            path.mkdir(parents=True)
            np.savez(path / TOPK_FILE, query_ids=np.array([1]), exact_ids=np.array([exact_ids[r["model"]["name"]]]))
        runs.append(Run(path, r, model_label=r["model"]["name"]))
    runset = RunSet(ok=runs, not_ok=[], unreadable=[], groups=[Group(runs=runs, key={})], differing=[])
    doc = Document("t", [Heading("Runs"), Heading("1. Models"), Table("models", model_table(results)),
                         Heading("2. Indexes per model"), Table("load", load_table(results)),
                         Table("search", search_table(results)),
                         Heading("3. Operating points"), Table("operating_points", operating_points_table(results))])
    if exact_ids is not None:
        doc.add(Heading("4. Agreement between models"), Heading("Exact search results", 3),
                Table("agreement_exact_overlap", pd.DataFrame()))
    return doc, runset


def _floors(results: list[dict]) -> pd.DataFrame:
    doc, runset = _summary_of(results)
    return summarize(doc, runset).floors.set_index("min recall@10")


FASTEST = "highest batch QPS at (model · index · search params)"


def test_fastest_point_per_floor_and_a_clear_lead():
    floors = _floors([
        _result("a", "HNSW", [_point("ef=10", 0.91, 1000, 400), _point("ef=40", 0.96, 500, 200)]),
        _result("b", "HNSW", [_point("ef=10", 0.97, 300, 100)]),
    ])
    assert floors.loc[0.9, FASTEST] == "a · HNSW · ef=10"
    assert floors.loc[0.9, "winner?"] == "yes, leads by 3.33×; one measurement each"  # 1000 against b's 300
    assert floors.loc[0.95, FASTEST] == "a · HNSW · ef=40" and floors.loc[0.95, "recall@10"] == 0.96
    assert floors.loc[0.95, "next best model × index: batch QPS"] == "b · HNSW · ef=10: 300"
    # Nothing reaches 0.99: the summary says so and names the highest recall instead of a winner.
    assert floors.loc[0.99, FASTEST] == "not reached"
    assert floors.loc[0.99, "winner?"] == "no, nothing reaches it; highest recall@10: 0.97 (b · HNSW · ef=10)"


def test_a_small_lead_is_not_called_without_intervals():
    floors = _floors([_result("a", "FLAT", [_point("default", 1.0, 1100, 1)]),
                      _result("b", "FLAT", [_point("default", 1.0, 1000, 1)])])
    assert floors.loc[0.9, "winner?"] == "no, too close to call: 1.1×; one measurement each"


def test_indexes_of_one_model_are_not_ranked_on_a_small_corpus():
    def floors(rows: int) -> pd.DataFrame:
        return _floors([_result("a", "HNSW", [_point("ef=10", 0.95, 1000, 1)], rows=rows),
                        _result("a", "IVF_FLAT", [_point("nprobe=4", 0.95, 500, 1)], rows=rows)])
    assert floors(450).loc[0.9, "winner?"] == ("no, the two differ only in index type, and 450 vectors cannot rank "
                                               "index speed (2×; one measurement each)")
    assert floors(20_000).loc[0.9, "winner?"] == "yes, leads by 2×; one measurement each"


def test_intervals_decide_tie_or_win():
    tie = _floors([_result("a", "FLAT", [_point("default", 1.0, 1000, 1, spread={"batch_qps": {"median": 1000, "min": 800, "max": 1200, "n": 3}})]),
                   _result("b", "FLAT", [_point("default", 1.0, 500, 1, spread={"batch_qps": {"median": 500, "min": 450, "max": 850, "n": 3}})])])
    assert tie.loc[0.9, "winner?"] == "no, ≈ tie within noise: their measured ranges overlap"
    # The same 1.1× lead that is "too close" without intervals is a win when the intervals are apart.
    win = _floors([_result("a", "FLAT", [_point("default", 1.0, 1100, 1, spread={"batch_qps": {"median": 1100, "min": 1090, "max": 1110, "n": 3}})]),
                   _result("b", "FLAT", [_point("default", 1.0, 1000, 1, spread={"batch_qps": {"median": 1000, "min": 990, "max": 1010, "n": 3}})])])
    assert win.loc[0.9, "winner?"] == "yes, leads by 1.1×; measured ranges apart"


def test_a_recall_interval_below_the_floor_is_flagged():
    floors = _floors([_result("a", "HNSW", [_point("ef=10", 0.91, 1000, 1, recall_at_k_ci95=[0.86, 0.95])])])
    assert floors.loc[0.9, "winner?"] == "yes, only candidate; its recall interval reaches below 0.9"


def test_interval_reads_bootstrap_intervals_and_trial_ranges():
    def point(**fields) -> SearchPoint:
        return SearchPoint.model_validate({"label": "p", **fields})

    assert interval(point(recall_at_k_ci95=[0.8, 0.9]), "recall_at_k") == (0.8, 0.9)
    assert interval(point(spread={"batch_qps": {"median": 5, "min": 4, "max": 6, "n": 3}}), "batch_qps") == (4.0, 6.0)
    assert interval(point(spread={"concurrent_qps": {"1": {"median": 1.5, "min": 1, "max": 2, "n": 3}}}),
                    "concurrent_qps", "1") == (1.0, 2.0)
    embedding = Embedding.model_validate({"spread": {"images_per_s_end_to_end": {
        "median": 12, "min": 3, "max": 13, "n": 30, "median_ci95": [11.5, 12.4]}}})
    assert interval(embedding, "images_per_s_end_to_end") == (11.5, 12.4)
    assert interval(point(recall_at_k=0.9), "recall_at_k") is None
    assert interval(point(recall_at_k_ci95=[None, 0.9]), "recall_at_k") is None


def test_warnings_and_leaders(tmp_path):
    results = [_result("a", "HNSW", [_point("ef=10", 0.95, 100, 50)], rows=500, store="milvus_server", img_s=30),
               _result("b", "HNSW", [_point("ef=10", 0.95, 90, 45)], rows=500, store="milvus_server", weights="imagenet",
                       img_s=10)]
    # 4 of the 10 exact results in common: overlap@10 = 0.4, computed from the runs' arrays.
    doc, runset = _summary_of(results, tmp_path, {"a": list(range(10)), "b": [0, 1, 2, 3, *range(100, 106)]})
    summary = add_summary(doc, runset)
    warnings = " ".join(w.text for w in summary.warnings)
    assert "**Random weights** (a)" in warnings
    assert "**Corpus too small to rank index speed:** 500 vectors" in warnings
    assert "builds no index under 1,024 rows" in warnings and "a · HNSW (500 rows)" in warnings
    assert "milvus-lite" not in warnings  # a server run
    lines = " ".join(line.text for line in summary.lines)
    assert "**a** and **b** agree most: overlap@10 = 0.4" in lines
    assert "**a** is fastest, 30 images/s end to end (60 inference alone), against b's 10: leads by 3×" in lines
    # Inserted before the runs list, each statement linked to its section.
    md = render_markdown(doc)
    assert md.index("## Summary") < md.index("## Runs")
    assert "([→ Exact search results](#exact-search-results))" in md
    assert "([→ 2. Indexes per model](#2-indexes-per-model))" in md
    text = summary_text(summary)
    assert "](#" not in text and "**" not in text and "a and b agree most" in text


def test_failed_runs_and_nothing_finished():
    failed = Run(Path("0_x"), results_doc({"status": "failed", "error": "boom"}))
    doc = Document("t", [Heading("Runs"), Table("failed_runs", pd.DataFrame({"run": ["0_x"], "error": ["boom"]}))])
    summary = summarize(doc, RunSet(ok=[], not_ok=[failed], unreadable=[], groups=[], differing=[]))
    assert summary.warnings[0].text.startswith("**1 run(s) failed** and are left out of every table: 0_x")
    assert summary.lines[0].text == "No run finished, so there is nothing to rank."


# ----------------------------------------------------------------------------------------------
# Document: numbers, anchors, layouts
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, shown", [(0.99375, "0.9938"), (41.8765, "41.88"), (606.21, "606.2"),
                                          (12345.6, "12,346"), (1521.4, "1,521"), (7.48e-7, "7.48e-07"),
                                          (512, "512"), (20000, "20,000"), (1.0, "1")])
def test_format_number(value, shown):
    assert format_number(value) == shown


def test_anchors_follow_github():
    assert github_slug("3. Operating points") == "3-operating-points"
    assert github_slug("Group 1: search.top_k=10") == "group-1-searchtop_k10"
    blocks = [Heading("Group 1: a"), Heading("1. Models", 3), Heading("Group 2: b"), Heading("1. Models", 3)]
    assert list(heading_anchors(blocks, "t").values()) == ["group-1-a", "1-models", "group-2-b", "1-models-1"]


def test_layout_splits_by_topic_and_keeps_new_columns_in_their_topic():
    df = pd.DataFrame({"model": ["m"], "index": ["HNSW"], "search params": ["ef=10"], "weights": ["random"],
                       "recall@10": [0.9], "recall@10 ci95 low": [0.85], "p50 ms": [1.5], "batch QPS": [100.0],
                       "QPS@4thr": [300.0]})
    parts = dict(table_parts(Table("search", df, layout=layouts.SEARCH)))
    ids = ["model", "index", "search params"]
    assert [list(p.columns) for p in parts.values()] == [
        ids + ["recall@10", "recall@10 ci95 low"], ids + ["p50 ms"], ids + ["batch QPS", "QPS@4thr"], ids + ["weights"]]
    md = table_markdown(Table("search", df, layout=layouts.SEARCH))
    # Valid GitHub tables: a header, a delimiter row (numbers right-aligned), the same cell count per row.
    for table in re.findall(r"(?:^\|.*\|$\n?)+", md, re.M):
        rows = table.strip().split("\n")
        assert len({row.count("|") - row.count("\\|") for row in rows}) == 1
        assert re.fullmatch(r"\|(:?-+:?\|)+", rows[1])
    assert "|------------:|" in md or "-:|" in md
    assert "**Quality" in md and "**Throughput (QPS: queries/s)**" in md


def test_layout_without_topics_is_one_part_with_the_identifying_columns_first():
    df = pd.DataFrame({"x": [1], "model": ["m"]})
    [(title, part)] = table_parts(Table("t", df, layout=Layout(id_columns=("model",))))
    assert title == "" and list(part.columns) == ["model", "x"]
    one_topic = table_parts(Table("t", df, layout=Layout(id_columns=("model",), topics=(Topic("X", "^x$"),))))
    assert [(title, list(part.columns)) for title, part in one_topic] == [("X", ["model", "x"])]


def test_a_placeholder_word_keeps_a_column_of_figures_right_aligned():
    df = pd.DataFrame({"model": ["m", "n"], "precision@10": [0.5, "no labels"]})
    assert numeric_columns(df) == [False, True]
    assert "|:--------|---------------:|" in table_markdown(Table("t", df))


def test_one_query_per_call_names_a_winner_only_where_called():
    results = [_result("a", "HNSW", [_point("ef=10", 0.95, 1000, 100)], rows=20_000),
               _result("b", "HNSW", [_point("ef=10", 0.97, 900, 300)], rows=20_000),
               _result("c", "HNSW", [_point("ef=10", 0.99, 10, 280)], rows=20_000)]
    doc, runset = _summary_of(results)
    [line] = [l.text for l in summarize(doc, runset).lines if l.text.startswith("**One query")]
    assert line == ("**One query per call** (QPS@1thr) ranks differently. At 0.9 and 0.95: highest is b · HNSW · "
                    "ef=10, but too close to call: 1.07×; one measurement each. At 0.99: c · HNSW · ef=10, the only "
                    "candidate.")
