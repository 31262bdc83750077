"""Tests for the comparison report: hand-made cases for the agreement, distance and grouping helpers,
then a report built from a real multirun through the CLI (two models × FLAT and HNSW)."""
from __future__ import annotations

import base64
import copy
import json
import math
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.errors import BenchError
from bench.measure.evaluate import overlap_at_k
from bench.report.agreement import agreement_matrices, align_rows, pairwise_table
from bench.report.build import TITLE, build_report, default_outdir, main
from bench.report.cross_run_tables import operating_points_table
from bench.report.distances import difference_table, distance_samples, metric_meaning, summary_table
from bench.report.document import Heading, Table, heading_anchors, table_markdown
from bench.report.runset import Run, group_compatible
from tests.helpers import results_doc
from tests import browser

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["## Summary", "## Runs", "## 1. Models", "## 2. Indexes per model", "## 3. Operating points",
            "## 4. Agreement between models", "## 5. Distance distributions", "## 6. Quality", "## 7. Provenance"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------------------
# Hand-made cases
# ----------------------------------------------------------------------------------------------

def test_align_rows_follows_the_reference_query_order():
    rows = np.array([[30, 31], [10, 11], [20, 21]])
    aligned = align_rows(np.array([1, 2, 3]), np.array([3, 1, 2]), rows)
    assert aligned.tolist() == [[10, 11], [20, 21], [30, 31]]


def test_align_rows_refuses_other_queries():
    with pytest.raises(ValueError, match="different query images"):
        align_rows(np.array([1, 2]), np.array([1, 3]), np.array([[0], [0]]))


def test_agreement_matrices_known_values():
    # k=2, two queries (ids 100, 200). B lists the queries in the other order, so it must be aligned.
    a = (np.array([100, 200]), np.array([[1, 2], [3, 4]]))
    b = (np.array([200, 100]), np.array([[3, 5], [2, 1]]))
    c = (np.array([100, 200]), np.array([[7, 8], [9, 10]]))
    m = agreement_matrices({"A": a, "B": b, "C": c}, k=2, p=0.5)
    # A vs B: query 100 shares {1,2} (2/2), query 200 shares {3} (1/2).
    assert m["overlap"].loc["A", "B"] == pytest.approx((1 + 0.5) / 2)
    assert m["jaccard"].loc["A", "B"] == pytest.approx((1 + 1 / 3) / 2)
    # RBO_ext with p=0.5, depth 2: A_2·p² + (1−p)/p·(A_1·p + A_2·p²).
    # query 100: A_1=0, A_2=1 -> 0.25 + (0 + 0.25) = 0.5; query 200: A_1=1, A_2=0.5 -> 0.125 + 0.625 = 0.75.
    assert m["rbo"].loc["A", "B"] == pytest.approx((0.5 + 0.75) / 2)
    for measure in ("overlap", "jaccard", "rbo"):
        matrix = m[measure]
        assert np.allclose(matrix.to_numpy(), matrix.to_numpy().T)  # symmetric
        assert np.allclose(np.diag(matrix.to_numpy()), 1.0)
        assert matrix.loc["A", "C"] == 0.0 and matrix.loc["B", "C"] == 0.0


def test_pairwise_table_skips_settings_with_one_model():
    same = (np.array([1]), np.array([[5, 6]]))
    table = pairwise_table({"exact": {"A": same, "B": same}, "HNSW ef=10": {"A": same}}, k=2)
    assert table["results at"].tolist() == ["exact"]
    assert table.loc[0, "overlap@2"] == 1.0 and table.loc[0, "jaccard@2"] == 1.0


def test_distance_samples_leave_out_missing_results():
    topk = {"exact_ids": np.array([[1, -1], [2, 3]]),
            "exact_distances": np.array([[0.9, 0.0], [0.8, 0.7]], dtype=np.float32),
            "random_pair_distances": np.array([0.1, 0.2], dtype=np.float32)}
    samples = distance_samples(topk)
    assert samples["top-1"].tolist() == pytest.approx([0.9, 0.8])
    assert samples["top-K"].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert samples["random pairs"].tolist() == pytest.approx([0.1, 0.2])


def test_distance_tables_known_values():
    base = np.array([0.1, 0.2, 0.3, 0.4])
    samples = {"A": {"top-1": base, "top-K": base, "random pairs": base},
               "B": {"top-1": base + 1.0, "top-K": base, "random pairs": base}}
    diff = difference_table(samples).set_index("sample")
    # Shifted by 1: the CDFs never overlap (KS 1) and every unit of mass moves by 1 (Wasserstein 1).
    assert diff.loc["top-1", "KS statistic"] == pytest.approx(1.0)
    assert diff.loc["top-1", "Wasserstein"] == pytest.approx(1.0)
    assert diff.loc["top-K", "KS statistic"] == 0.0 and diff.loc["top-K", "Wasserstein"] == 0.0
    summary = summary_table(samples).set_index(["model", "sample"])
    assert summary.loc[("B", "top-1"), "mean"] == pytest.approx(1.25)
    assert summary.loc[("A", "top-K"), "count"] == 4


def test_metric_meaning_says_what_a_distance_is():
    assert "cosine similarity" in metric_meaning("ip")
    assert "2 − 2·cosine" in metric_meaning("L2")
    with pytest.raises(BenchError):
        metric_meaning("hamming")


def _point(label: str, recall: float, batch: float, qps1: float | None) -> dict:
    return {"label": label, "recall_at_k": recall, "batch_qps": batch,
            "concurrent_qps": {} if qps1 is None else {"1": qps1}}


def test_operating_points_pick_the_fastest_point_over_each_recall_floor():
    result = results_doc({"model": {"name": "m"}, "index": {"type": "HNSW", "build_params": {"M": 8}},
                          "search": {"top_k": 10, "points": [_point("ef=10", 0.85, 1000, 400),
                                                             _point("ef=20", 0.92, 500, 300),
                                                             _point("ef=40", 0.99, 100, None)]}})
    table = operating_points_table([result]).set_index("min recall@10")
    assert table.loc[0.9, "best batch QPS"] == 500 and table.loc[0.9, "batch: search params"] == "ef=20"
    assert table.loc[0.95, "best batch QPS"] == 100 and table.loc[0.99, "batch: search params"] == "ef=40"
    assert table.loc[0.9, "best QPS@1thr"] == 300
    # The only point reaching 0.95 has no 1-thread figure.
    assert math.isnan(table.loc[0.95, "best QPS@1thr"]) and table.loc[0.95, "1thr: search params"] == "not reached"
    assert table.loc[0.9, "index"] == "HNSW(M=8)"


def _fake_result(top_k: int = 10, dataset: str = "coco_sample", queries: tuple[int, ...] = (1, 2)) -> dict:
    return results_doc({"config": {"dataset": {"split": "sample", "limit": None}},
                        "dataset": {"name": dataset, "num_images": 10, "num_corpus": 8,
                                    "query_image_ids": list(queries)},
                        "search": {"top_k": top_k, "metric": "IP"}, "model": {"name": "m"}})


def test_group_compatible_names_the_differing_fields():
    runs = [Run(Path(f"r{i}"), data) for i, data in enumerate(
        [_fake_result(), _fake_result(queries=(2, 1)), _fake_result(top_k=5), _fake_result(top_k=5, dataset="coco")])]
    groups, differing = group_compatible(runs)
    assert differing == ["dataset.name", "search.top_k"]  # query order alone is no difference
    assert [len(g.runs) for g in groups] == [2, 1, 1]
    assert groups[0].key == {"dataset.name": "coco_sample", "search.top_k": 10}


def test_markdown_table_marks_missing_values_and_escapes_pipes():
    md = table_markdown(Table("t", pd.DataFrame({"a": ["x|y", "z"], "b": [1.23456, float("nan")]})))
    assert "x\\|y" in md and "1.235" in md and "–" in md and "nan" not in md


def test_no_runs_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(BenchError, match="no results.json"):
        build_report([tmp_path], tmp_path / "out")
    assert main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no such file or directory")


def test_default_outdir(tmp_path):
    assert default_outdir([tmp_path]) == tmp_path / "report"
    assert default_outdir([tmp_path, tmp_path]).parent == Path("reports")


# ----------------------------------------------------------------------------------------------
# A report from a real multirun
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sweep(tmp_path_factory) -> Path:
    """Two models × FLAT and HNSW through the CLI; the multirun callback writes sweep/report."""
    tmp = tmp_path_factory.mktemp("report_sweep")
    sweep_dir = tmp / "sweep"
    cmd = [sys.executable, "-m", "bench", "-m", "experiment=smoke", "model=mobilenet_v2,efficientnet_b0",
           "index=FLAT,HNSW", "model.weights=random", "model.input_size=64", f"hydra.sweep.dir={sweep_dir}",
           f"cache_dir={tmp / 'models'}", f"embeddings_dir={tmp / 'emb'}", f"store.uri={tmp / 'm.db'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "comparison report:" in proc.stdout
    # A job that fails does not fail a multirun; say which one did, and why, before any report test runs.
    states = {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/results.json")}
    problems = {name: (r["status"], r["error"]) for name, r in states.items() if r["status"] != "ok"}
    assert len(states) == 4 and not problems, problems or proc.stdout[-3000:]
    (tmp / "stdout.txt").write_text(proc.stdout)
    return sweep_dir


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs).get("src", ""))


def test_multirun_writes_the_report(sweep):
    report = sweep / "report"
    md = (report / "report.md").read_text()
    for section in SECTIONS:
        assert section in md, section
    assert "All 4 finished runs belong together" in md
    assert "cosine similarity" in md  # the metric is stated
    assert "not meaningful" in md and "random weights" in md
    for csv in ("models", "load", "search", "operating_points", "agreement_exact_overlap", "agreement_exact_jaccard",
                "agreement_exact_rbo", "agreement_points", "distance_summary", "distance_tests", "quality",
                "provenance", "versions", "runs"):
        assert (report / f"{csv}.csv").is_file(), csv
    pngs = sorted(report.glob("*.png"))
    assert {p.stem for p in pngs} >= {"recall_qps", "agreement_exact", "distances"}

    parser = _Images()
    parser.feed((report / "report.html").read_text())
    assert len(parser.sources) == len(pngs)
    for src in parser.sources:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        data = base64.b64decode(src[len(prefix):], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(BytesIO(data)) as image:
            assert image.format == "PNG" and image.width > 300


def test_agreement_matrix_matches_the_runs_arrays(sweep):
    """The report's overlap@10 equals overlap_at_k over the two FLAT runs' exact ids, query-aligned."""
    matrix = pd.read_csv(sweep / "report" / "agreement_exact_overlap.csv", index_col=0)
    a = np.load(sweep / "0_mobilenet_v2_FLAT" / "topk.npz")
    b = np.load(sweep / "2_efficientnet_b0_FLAT" / "topk.npz")
    expected = overlap_at_k(a["exact_ids"], align_rows(a["query_ids"], b["query_ids"], b["exact_ids"]), 10)
    assert matrix.loc["mobilenet_v2", "efficientnet_b0"] == pytest.approx(expected)
    assert matrix.loc["efficientnet_b0", "mobilenet_v2"] == pytest.approx(expected)
    points = pd.read_csv(sweep / "report" / "agreement_points.csv")
    # exact search, FLAT's one point and HNSW's four, each with the one pair of models.
    assert len(points) == 6


def test_failed_and_mismatched_runs(sweep, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(sweep, runs, ignore=shutil.ignore_patterns("report"))
    failed = runs / "9_vgg16_FLAT"
    failed.mkdir()
    data = json.loads((runs / "0_mobilenet_v2_FLAT" / "results.json").read_text())
    failed_data = {k: data[k] for k in ("schema_version", "config", "provenance")}
    failed_data.update(status="failed", error="could not reach Milvus at localhost:19530: start it")
    (failed / "results.json").write_text(json.dumps(failed_data))
    other_k = runs / "8_mobilenet_v2_FLAT_k5"
    shutil.copytree(runs / "0_mobilenet_v2_FLAT", other_k)
    changed = copy.deepcopy(data)
    changed["search"]["top_k"] = 5
    (other_k / "results.json").write_text(json.dumps(changed))

    assert main([str(runs), "--out", str(tmp_path / "out")]) == 0
    assert "comparison report:" in capsys.readouterr().out
    md = (tmp_path / "out" / "report.md").read_text()
    assert "1 run(s) did not finish" in md
    assert "9_vgg16_FLAT" in md and "could not reach Milvus at localhost:19530" in md
    assert "do not all belong together: they differ in search.top_k" in md
    assert "## Group 1: search.top_k=10" in md and "## Group 2: search.top_k=5" in md
    assert "### 1. Models" in md and "group2_search.csv" in md
    assert pd.read_csv(tmp_path / "out" / "runs.csv").set_index("run").loc["8_mobilenet_v2_FLAT_k5", "group"] == 2
    failed_runs = pd.read_csv(tmp_path / "out" / "failed_runs.csv")
    assert failed_runs["status"].tolist() == ["failed"]
    # The summary says both, and ranks each group apart (K beside the recall floors).
    summary = md.split("## Runs")[0]
    assert "**1 run(s) failed** and are left out of every table: 9_vgg16_FLAT" in summary
    assert "**Runs fall into 2 groups** that differ in search.top_k" in summary
    floors = pd.read_csv(tmp_path / "out" / "summary_recall_floors.csv")
    assert sorted(set(zip(floors["group"], floors["K"]))) == [(1, 10), (2, 5)]


def test_one_model_has_no_agreement_to_show(sweep, tmp_path):
    paths = build_report([sweep / "0_mobilenet_v2_FLAT", sweep / "1_mobilenet_v2_HNSW"], tmp_path / "out")
    md = paths["markdown"].read_text()
    assert "Only one model in this set (mobilenet_v2)" in md
    assert "distance_summary.csv" in md and "distance_tests.csv" not in md


def test_all_runs_failed_still_gives_a_report(tmp_path):
    run = tmp_path / "0_x"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"schema_version": 1, "status": "failed", "error": "boom",
                                                  "config": {}, "provenance": {}}))
    paths = build_report([tmp_path], tmp_path / "out")
    md = paths["markdown"].read_text()
    assert "No run finished" in md and "boom" in md


def test_summary_links_resolve_and_the_console_prints_it(sweep):
    report = sweep / "report"
    md = (report / "report.md").read_text()
    assert md.index("## Summary") < md.index("## Runs")
    assert "summary_recall_floors.csv" in md and "overlap@10" in md.split("## Runs")[0]
    # Every link goes to a heading's GitHub anchor, in the Markdown and in the HTML.
    headings = [Heading(m.group(2), len(m.group(1))) for m in re.finditer(r"^(#{2,6}) (.+)$", md, re.M)]
    anchors = set(heading_anchors(headings, TITLE).values())
    links = re.findall(r"\]\(#([^)]+)\)", md)
    assert links and set(links) <= anchors, set(links) - anchors
    ids = set(re.findall(r' id="([^"]+)"', (report / "report.html").read_text()))
    assert set(links) <= ids
    # The console ends the multirun with the same summary, before the report's paths.
    stdout = (sweep.parent / "stdout.txt").read_text()
    summary = (report / "summary.txt").read_text().strip()
    assert summary.startswith("Summary:") and summary in stdout
    assert stdout.index(summary) < stdout.index("comparison report:")


@pytest.mark.skipif(browser.CHROMIUM is None and not browser.REQUIRED, reason="headless chromium not installed")
def test_html_renders_in_headless_chromium(sweep, tmp_path):
    """In a real browser: every image decodes, and no table's identifying columns are clipped, at the
    width people read it (1400 px) and at a narrow one where the wide tables must scroll."""
    assert browser.CHROMIUM, "BENCH_REQUIRE_BROWSER=1 but no chromium: `make browser` installs it"
    page = sweep / "report" / "report.html"
    for width in (1400, 900):
        checks = browser.check_page(page, tmp_path, width)
        assert len(checks["images"]) == len(list((sweep / "report").glob("*.png"))) > 0
        for image in checks["images"]:
            assert image["width"] > 300 and image["distinct_colours"] > 10, image
        assert checks["tables"] > 10 and checks["pinned_cells"] > 0
        assert checks["clipped"] == [], checks["clipped"][:5]
        assert checks["page_overflow_px"] <= 0  # wide tables scroll in their boxes, not the page
    assert checks["scrolling"] > 0  # at 900 px some tables scroll: the pinning was exercised
    shot = browser.screenshot(page, tmp_path / "report.png", 1400, 1000)
    print(f"screenshot: {shot}")
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.shape == (1000, 1400)
    assert pixels.std() > 10  # text, tables and plots drawn, not a blank page
