"""End to end through the real CLI: `python -m bench ...` on the smoke config, as a user runs it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.results import load_results


@pytest.fixture(scope="session")
def ivf_run(bench_cli, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ivf-run")
    proc = bench_cli("index=IVF_FLAT", run_dir=run_dir)
    return run_dir, proc


def test_single_run_writes_every_measurement(ivf_run):
    run_dir, proc = ivf_run
    result = load_results(run_dir)
    assert result["status"] == "ok" and result["error"] is None
    # Provenance: weights, store, versions, hardware.
    prov = result["provenance"]
    assert prov["weights"]["kind"] == "random" and prov["weights"]["seed"] == 0
    assert prov["store"]["kind"] == "milvus_lite" and prov["store"]["version"]
    assert prov["versions"]["onnxruntime"] and prov["hardware"]["cores"] >= 1
    # Conversion and embedding.
    conversion, embedding = result["model"]["conversion"], result["model"]["embedding"]
    assert conversion["parity"]["max_rel_diff"] < 1e-4 and conversion["parity"]["min_cosine"] > 0.9999
    assert embedding["images_per_s_end_to_end"] > 0 and embedding["images_per_s_inference"] > 0
    assert embedding["batch1_latency"]["count"] > 0
    # Load and index.
    load = result["index"]["load"]
    assert load["build_s"] >= 0 and load["load_s"] >= 0 and load["flush_s"] >= 0
    assert result["index"]["described_params"]["params"] == {"nlist": 16}
    # Search: every point has latency percentiles, QPS and quality.
    points = result["search"]["points"]
    assert [p["label"] for p in points] == ["nprobe=1", "nprobe=2", "nprobe=4", "nprobe=8", "nprobe=16"]
    for point in points:
        latency = point["latency"]
        # Three interleaved trials, each at least one pass over the queries; p99 only with its 368 samples.
        assert latency["count"] >= 3 * result["dataset"]["num_queries"]
        if latency["count"] >= latency["min_samples"]["p99"]:
            assert latency["p50_ms"] <= latency["p99_ms"]
            low, high = latency["p99_ms_ci95"]
            assert low <= latency["p99_ms"] <= high
        else:
            assert latency["p99_ms"] is None
        assert point["batch_qps"] > 0 and set(point["concurrent_qps"]) == {"1", "2"}
        assert point["repeats"] == 3 and len(point["trials"]) == 3
        spread = point["spread"]["batch_qps"]
        assert spread["min"] <= point["batch_qps"] == spread["median"] <= spread["max"]
        assert 0 <= point["precision_at_k"] <= 1
        for metric in ("recall_at_k", "precision_at_k", "map_at_k"):
            low, high = point[f"{metric}_ci95"]
            assert low <= point[metric] <= high
    # Outputs: tables and top-K arrays.
    for name in ("tables.md", "search.csv", "models.csv", "load.csv", "topk.npz"):
        assert (run_dir / name).exists(), name
    topk = np.load(run_dir / "topk.npz")
    assert topk["exact_ids"].shape == (result["dataset"]["num_queries"], 10)
    assert topk["ids_0"].shape == topk["exact_ids"].shape
    assert "recall@10" in proc.stdout and "nprobe=16" in proc.stdout


def test_nprobe_sweep_really_changes_the_search(ivf_run):
    """Recall rises with nprobe, and nprobe=nlist searches every list, which is exact search."""
    result = load_results(ivf_run[0])
    recalls = [p["recall_at_k"] for p in result["search"]["points"]]
    assert recalls == sorted(recalls)
    assert recalls[0] < recalls[-1]
    assert recalls[-1] == pytest.approx(1.0)


def test_second_run_reuses_onnx_and_embeddings(ivf_run, bench_cli, tmp_path):
    proc = bench_cli("index=HNSW", run_dir=tmp_path)
    result = load_results(tmp_path)
    assert result["model"]["conversion"]["cached"] is True
    assert result["model"]["embedding"]["from_cache"] is True
    assert "ONNX cache hit" in proc.stderr and "embedding cache hit" in proc.stderr.lower()
    # Same vectors: the exact ground truth is identical to the first run's.
    first = np.load(ivf_run[0] / "topk.npz")
    second = np.load(tmp_path / "topk.npz")
    np.testing.assert_array_equal(first["exact_ids"], second["exact_ids"])


@pytest.mark.parametrize("override, message", [
    ("index.build.nlist=0", "nlist=0 must be a positive integer"),
    ("search.top_k=0", "search.top_k=0 must be a positive integer"),
    ("dataset.num_queries=1000", "dataset.num_queries"),
    ("index=HNSW index.search=[{ef:4}]", "ef=4 must be >= search.top_k=10"),
    ("search.metric=HAMMING", "search.metric='HAMMING' is not supported"),
])
def test_bad_parameters_give_one_line_errors(bench_cli, tmp_path, override, message):
    proc = bench_cli(*override.split(), run_dir=tmp_path, expect_rc=2)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    # The failure is recorded, not lost.
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_unknown_model_lists_the_choices(bench_cli, tmp_path):
    proc = bench_cli("model=vgg61", run_dir=tmp_path, expect_rc=1)
    assert "Could not find 'model/vgg61'" in proc.stderr and "resnet50" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_typo_in_a_key_is_caught_before_any_work(bench_cli, tmp_path):
    proc = bench_cli("index.buidl.nlist=3", run_dir=tmp_path, expect_rc=1)
    assert "Key 'buidl' not in 'IndexConfig'" in proc.stderr
    assert not (tmp_path / "results.json").exists()


def test_broken_images_are_counted_skips(bench_cli, workspace, tmp_path):
    """A corrupt file and a missing file become counted skips in results.json and the table."""
    sample = workspace.root / "sample"  # generated by the earlier runs of this session
    if not sample.exists():
        bench_cli("index=FLAT", run_dir=tmp_path / "warm")
    images = tmp_path / "images"
    shutil.copytree(sample / "images", images)
    annotations = json.loads((sample / "annotations" / "instances_sample.json").read_text())
    files = [img["file_name"] for img in annotations["images"]]
    (images / files[3]).write_bytes(b"this is not a jpeg")
    (images / files[4]).unlink()
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(annotations))
    run_dir = tmp_path / "run"
    bench_cli("dataset=coco", f"dataset.root={images}", f"dataset.annotations={ann_file}",
              "dataset.num_queries=16", "index=FLAT", "store.recreate=true", run_dir=run_dir)
    result = load_results(run_dir)
    reasons = {Path(s["path"]).name: s["reason"] for s in result["dataset"]["skipped"]}
    assert reasons[files[4]] == "missing file"
    assert files[3] in reasons and reasons[files[3]] != "missing file"
    assert result["dataset"]["num_skipped"] == 2
    assert result["dataset"]["num_corpus"] + result["dataset"]["num_queries"] == len(files) - 2
    assert "skipped" in (run_dir / "models.csv").read_text()


def test_malformed_annotations_give_one_line_error(bench_cli, tmp_path):
    bad = tmp_path / "instances.json"
    bad.write_text("{not json")
    proc = bench_cli("dataset=coco", f"dataset.root={tmp_path}", f"dataset.annotations={bad}",
                     run_dir=tmp_path / "run", expect_rc=2)
    assert "Traceback" not in proc.stderr and str(bad) in proc.stderr


def test_users_own_onnx_file(ivf_run, bench_cli, tmp_path):
    onnx_path = Path(load_results(ivf_run[0])["model"]["onnx_path"])
    bench_cli("model=onnx_file", f"model.path={onnx_path}", "model.embedding_dim=1280", "model.input_size=64",
              "model.preprocessing=tf", "index=FLAT", run_dir=tmp_path)
    result = load_results(tmp_path)
    assert result["model"]["weights"]["kind"] == "file"
    assert result["search"]["points"][0]["recall_at_k"] == pytest.approx(1.0)
