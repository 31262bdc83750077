"""Variants end to end through `python -m bench`: an INT8 run with its fidelity section, a precision
sweep with the report's Variants section, one-line errors for bad input, and the gate's fidelity checks."""
from __future__ import annotations

import copy
import json

import onnxruntime as ort
import pytest

from bench import cpu
from bench.gate.comparison import compare_pairs
from bench.gate.config import load_gate_config
from bench.report.variants import variants_table
from bench.report.runset import load_runset
from bench.results import load_results


@pytest.fixture(scope="session")
def int8_run(bench_cli, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("int8-run")
    proc = bench_cli("model.precision=int8", "index=FLAT", run_dir=run_dir)
    return run_dir, proc


def test_int8_run_carries_its_fidelity_to_fp32(int8_run):
    run_dir, proc = int8_run
    result = load_results(run_dir)
    assert result["status"] == "ok"
    model = result["model"]
    assert model["name"] == "mobilenet_v2-int8" and model["precision"] == "int8"
    assert model["variant"]["settings"]["quant_format"] == "QDQ" and model["variant"]["settings"]["calibration_images"] == 32
    assert model["onnx_bytes"] == model["variant"]["onnx_bytes"] < model["variant"]["parent_onnx_bytes"] / 3
    # The calibration images are corpus images, never queries.
    calibrated = {c["image_id"] for c in model["variant"]["calibration"]}
    assert not calibrated & set(result["dataset"]["query_image_ids"])
    fidelity = result["fidelity"]
    assert fidelity["reference"]["model"] == "mobilenet_v2"
    assert fidelity["num_images"] == result["dataset"]["num_corpus"] + result["dataset"]["num_queries"]
    # The gate's floors for another CPU class: every class reaches them with reduce_range=auto.
    floors = load_gate_config().cpu_class_floors
    assert floors["fidelity cosine min"] <= fidelity["cosine"]["min"] <= fidelity["cosine"]["p1"] <= 1.0
    assert floors["fidelity cosine p1"] <= fidelity["cosine"]["p1"] <= fidelity["cosine"]["p50"] <= 1.0
    assert floors["fidelity overlap"] <= fidelity["exact"]["overlap_at_k"] <= 1.0
    assert floors["fidelity RBO"] <= fidelity["exact"]["rbo"] <= 1.0
    assert "warning" not in fidelity  # no collapse to explain
    hardware = result["provenance"]["hardware"]
    assert hardware["cpu_class"] == cpu.describe()["cpu_class"] and set(hardware["cpu_features"]) >= {"avx2"} or (
        hardware["machine"] != "x86_64")
    assert model["variant"]["settings"]["reduce_range"] is (not hardware["int8_dot_product"])
    assert [p["label"] for p in fidelity["points"]] == ["FLAT default"]
    assert set(fidelity["distances"]["topk"]) >= {"ks_statistic", "wasserstein"}
    assert fidelity["quality"]["precision_at_k"]["variant"] == result["exact"]["precision_at_k"]
    assert fidelity["speed"]["images_per_s_inference"]["ratio"] > 0 and 0.2 < fidelity["size"]["ratio"] < 0.35
    # What ran it, in provenance and in the run's model table.
    runtime = result["provenance"]["runtime"]
    assert runtime["provider"] == "CPUExecutionProvider" and runtime["device"] and runtime["threads_in_use"] >= 1
    assert "CPUExecutionProvider" in (run_dir / "models.csv").read_text()
    assert hardware["cpu_class"] in (run_dir / "models.csv").read_text()
    assert "made the int8 variant of mobilenet_v2" in proc.stderr or "variant cache hit" in proc.stderr


def test_precision_sweep_builds_the_variants_section(bench_cli, tmp_path):
    proc = bench_cli("model.precision=fp32,int8,fp16", "index=HNSW", run_dir=tmp_path, multirun=True)
    runset = load_runset([tmp_path])
    assert len(runset.ok) == 3 and not runset.not_ok, proc.stdout[-2000:]
    table = variants_table(runset.groups[0]).set_index("model")
    assert list(table.index) == ["mobilenet_v2", "mobilenet_v2-int8", "mobilenet_v2-fp16"]
    assert table.loc["mobilenet_v2", "infer speed ×"] == 1.0
    assert table.loc["mobilenet_v2-int8", "cosine p1"] > 0.9 and table.loc["mobilenet_v2-int8", "size ×"] < 0.35
    # This random-weight model's outputs (about 1e-11) underflow float16: the fp16 row shows it, not hides it.
    assert table.loc["mobilenet_v2-fp16", "cosine p1"] == 0.0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Variants: speed against fidelity" in report and (tmp_path / "report" / "variants.csv").exists()
    assert (tmp_path / "report" / "variants_speed_fidelity.png").stat().st_size > 1000
    assert "recall@10 vs FP32 exact" in (tmp_path / "report" / "variants_served.csv").read_text()
    assert table.loc["mobilenet_v2-int8", "quant"].startswith("QDQ per-channel U8S8 MinMax reduce_range=")
    assert table.loc["mobilenet_v2-int8", "cpu class"] == cpu.describe()["cpu_class"]
    assert "| cpu class" in report


@pytest.mark.parametrize("overrides, message", [
    (["model.precision=int4"], "model.precision='int4' is not a precision: choose one of fp32, int8, int8_dynamic, fp16"),
    (["model.precision=int8", "model.calibration_images=500"],
     "model.calibration_images=500 is more than the 64 corpus images"),
    pytest.param(["runtime=cuda"], "runtime.provider=CUDAExecutionProvider is not in this onnxruntime",
                 marks=pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                                          reason="this onnxruntime has the CUDA provider")),
])
def test_bad_variant_settings_are_one_line_errors(bench_cli, tmp_path, overrides, message):
    proc = bench_cli(*overrides, "index=FLAT", run_dir=tmp_path, expect_rc=2)
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_gate_judges_int8_fidelity(int8_run):
    """Broken quantization fails the gate: lower fidelity is a regression, a lost fidelity section is missing."""
    cfg = load_gate_config()
    assert cfg.gate.variants == ["int8"]
    baseline = load_results(int8_run[0])
    assert compare_pairs([([baseline], [copy.deepcopy(baseline)])], cfg, only="deterministic").passed
    worse = copy.deepcopy(baseline)
    worse["fidelity"]["exact"]["overlap_at_k"] -= 0.05
    worse["fidelity"]["cosine"]["p1"] -= 0.05
    comparison = compare_pairs([([baseline], [worse])], cfg, only="deterministic")
    failing = {r.metric for r in comparison.failures}
    assert failing == {"fidelity overlap@10", "fidelity cosine p1"}
    lost = copy.deepcopy(baseline)
    del lost["fidelity"]
    comparison = compare_pairs([([baseline], [lost])], cfg, only="deterministic")
    assert not comparison.passed and {r.verdict for r in comparison.failures} == {"missing"}
