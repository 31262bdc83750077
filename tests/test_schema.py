"""results.json has one schema (bench/schema): old files load through upgrade(), the run validates what it
writes, the report and gate read typed attributes, and docs/results-format.md is generated from it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.results import RESULTS_FILE, RunResult, load_results, read_results
from bench.schema import SCHEMA_VERSION, Results, upgrade
from bench.schema.doc import render

REPO = Path(__file__).resolve().parent.parent
V1_FILE = REPO / "tests" / "fixtures" / "results_v1.json"  # written by the code before the schema (README there)


def test_a_version_1_file_loads_through_upgrade():
    raw = json.loads(V1_FILE.read_text())
    assert raw["schema_version"] == 1 and SCHEMA_VERSION == 2
    result = read_results(V1_FILE)
    assert result.schema_version == SCHEMA_VERSION and result.ok
    assert (result.model_name, result.index_type, result.top_k, result.cpu_class) == (
        "mobilenet_v2", "FLAT", 10, "x86-avx2")
    point = result.search.points[0]
    assert point.label == "default" and point.recall_at_k == 1.0
    assert point.interval("recall_at_k") == (1.0, 1.0)
    assert point.qps("1") == raw["search"]["points"][0]["concurrent_qps"]["1"]
    assert point.qps_range() == (raw["search"]["points"][0]["spread"]["batch_qps"]["min"],
                                 raw["search"]["points"][0]["spread"]["batch_qps"]["max"])
    embedding = result.model.embedding
    # What readers used to branch on is filled in once, by upgrade().
    assert embedding.num_embedded_this_run == raw["model"]["embedding"]["num_embedded_this_run"]
    assert result.config.stats.confidence == 0.95
    # Fields no model declares are kept, not dropped.
    assert embedding.extra("cache_key") == raw["model"]["embedding"]["cache_key"]


def test_upgrade_fills_what_version_1_lacked_and_leaves_the_input_alone():
    raw = json.loads(V1_FILE.read_text())
    del raw["model"]["embedding"]["num_embedded_this_run"]
    upgraded = upgrade(raw)
    assert "num_embedded_this_run" not in raw["model"]["embedding"]
    assert upgraded["model"]["embedding"]["num_embedded_this_run"] == raw["model"]["embedding"]["num_embedded"]
    assert upgraded["schema_version"] == SCHEMA_VERSION


def test_every_committed_baseline_loads():
    runs = sorted((REPO / "reports" / "baseline").rglob(RESULTS_FILE))
    assert len(runs) >= 4
    assert all(read_results(p).ok for p in runs)


def test_newer_and_broken_files_are_refused_with_the_reason(tmp_path: Path):
    raw = json.loads(V1_FILE.read_text())
    (tmp_path / "newer.json").write_text(json.dumps({**raw, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match="newer than this code"):
        load_results(tmp_path / "newer.json")
    raw["search"]["points"][0]["batch_qps"] = "fast"
    (tmp_path / "broken.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"search\.points\.0\.batch_qps"):
        load_results(tmp_path / "broken.json")


def test_a_failed_run_with_only_some_sections_loads(tmp_path: Path):
    result = RunResult(tmp_path, {"model": {"name": "m"}, "index": {"type": "HNSW"}}, {"git_commit": "abc"})
    result.set("dataset", {"name": "coco_sample", "num_corpus": 64, "query_image_ids": [1, 2]})
    result.fail("boom")
    typed = read_results(tmp_path)
    assert (typed.status, typed.error, typed.model_name, typed.index_type) == ("failed", "boom", "m", "HNSW")
    assert typed.search is None and not typed.ok


def test_the_run_validates_each_section_as_it_writes_it(tmp_path: Path):
    result = RunResult(tmp_path, {}, {})
    # numpy values are written as JSON numbers and validate as such
    result.set("search", {"top_k": np.int64(10), "metric": "IP", "points": [
        {"label": "ef=10", "params": {"ef": 10}, "recall_at_k": np.float32(0.5), "recall_at_k_ci95": [0.4, 0.6],
         "batch_qps": 100.0, "concurrent_qps": {"1": 50.0}}]})
    assert read_results(tmp_path).search.points[0].interval("recall_at_k") == (0.4, 0.6)
    with pytest.raises(ValueError, match="section 'search'.*batch_qps"):
        result.set("search", {"top_k": 10, "metric": "IP", "points": [{"label": "x", "batch_qps": "fast"}]})
    with pytest.raises(ValueError, match="recall_at_k_ci95"):
        result.set("exact", {"recall_at_k": 0.5, "recall_at_k_ci95": 0.5})
    with pytest.raises(ValueError, match="no section 'searches'"):
        result.set("searches", {})
    # The file on disk still holds the last valid section.
    assert read_results(tmp_path).search.points[0].label == "ef=10"


def test_workload_sections_are_typed_too(tmp_path: Path):
    result = RunResult(tmp_path, {}, {})
    result.set("serve", {"batching": "off", "levels": []})  # published early: most of it is still missing
    result.set("filtered", {"top_k": 10, "buckets": [{"target": 0.1, "reached": False, "note": "none near 10 %"}]})
    typed = read_results(tmp_path)
    assert typed.serve.levels == [] and typed.serve.peak is None
    assert typed.filtered.buckets[0].reached is False
    with pytest.raises(ValueError, match="section 'streaming'"):
        result.set("streaming", {"search_point": "ef=10"})  # lacks initial_rows, insert, freshness


def test_the_results_format_page_is_generated_from_the_schema():
    page = REPO / "docs" / "results-format.md"
    assert page.read_text() == render(), "docs/results-format.md is stale: run `python -m bench.schema`"
    for name in Results.model_fields:
        assert f"| `{name}` |" in page.read_text()
