"""workload=filtered and workload=streaming end to end through the CLI, on the smoke config."""
from __future__ import annotations

import json

from PIL import Image

from bench.results import load_results


def test_filtered_flat_run_spans_selectivities_and_passes_its_self_check(bench_cli, tmp_path):
    proc = bench_cli("index=FLAT", "workload=filtered", "workload.selectivities=[0.001,0.01,0.1,0.5]", "metadata=redis",
                     run_dir=tmp_path)
    section = load_results(tmp_path)["filtered"]
    assert section["flat_self_check"] == "passed"
    unreached, *buckets = section["buckets"]
    # 64 corpus images: the rarest category is in 1 of 64, far from 0.1 %.
    assert not unreached["reached"] and unreached["note"].startswith("not reached: the nearest category is")
    assert [b["reached"] for b in buckets] == [True, True, True]
    shares = [b["selectivity"] for b in buckets]
    assert shares == sorted(shares) and shares[-1] / shares[0] >= 10  # the skewed sample spans a decade or more
    for bucket in buckets:
        assert bucket["filter"] == f"category_ids contains {bucket['category']}"
        [point] = bucket["points"]
        assert point["recall_at_k"] == 1.0 and point["results_outside_filter"] == 0
        assert point["latency"]["p50_ms"] > 0 and point["batch_qps"] > 0
    assert "filtered:" in proc.stdout and "~1%" in proc.stdout and "not reached" in proc.stdout
    assert "## filtered operating points" in (tmp_path / "tables.md").read_text()


def test_streaming_hnsw_run_with_redis_paths(bench_cli, tmp_path):
    proc = bench_cli("index=HNSW", "workload=streaming", "workload.insert_rows_per_s=40", "workload.window_s=0.5",
                     "workload.search_qps=20", "metadata=redis", run_dir=tmp_path)
    result = load_results(tmp_path)
    section = result["streaming"]
    assert section["initial_rows"] == 32 and result["index"]["load"]["rows"] == 32
    assert section["insert"]["rows_inserted"] == 32 and section["insert"]["complete"]
    assert 0 < section["insert"]["rows_reached_per_s"] <= 40
    assert [w["phase"] for w in section["windows"]] == ["before", "during", "after"]
    assert all(w["latency"]["count"] > 0 for w in section["windows"])
    assert section["freshness"]["seen"] == section["freshness"]["probes"] > 0
    assert section["recall_at_end"] > 0.9
    # The plain sweep afterwards searches the whole corpus (every path resolves through Redis).
    assert all(p["end_to_end_latency"]["count"] > 0 for p in result["search"]["points"])
    assert "streaming_windows:" in proc.stdout


def test_filter_on_a_dataset_without_labels_is_one_line(bench_cli, tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), (i * 60, 0, 0)).save(images / f"{i}.jpg")
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps({"images": [{"id": i, "file_name": f"{i}.jpg", "width": 32, "height": 32}
                                          for i in range(3)], "annotations": [], "categories": []}))
    proc = bench_cli("dataset=coco", f"dataset.root={images}", f"dataset.annotations={ann}", "dataset.num_queries=1",
                     "workload=filtered", run_dir=tmp_path / "run", expect_rc=2)
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: workload=filtered needs category labels, but no image of dataset 'coco_val2017' has any annotation: "
        "use a COCO dataset with instances (or the sample), or workload=none")
