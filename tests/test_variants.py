"""INT8/FP16 variants of the small seeded-random MobileNetV2: real quantization, cache, calibration, errors.

Uses the session-wide ONNX folder of tests/test_convert.py and tests/test_embed.py, so the FP32
model is converted once per test session.
"""
from __future__ import annotations

import json
from dataclasses import replace

import onnx
import pytest

from bench import cpu
from bench.config import QuantConfig
from bench.data.dataset import ImageRecord
from bench.data.sample import ensure_sample
from bench.errors import BenchError
from bench.models.convert import ConvertedModel, ensure_onnx
from bench.models.variants import (
    PRECISIONS,
    calibration_records,
    ensure_model,
    ensure_variant,
    resolve_reduce_range,
    validate_precision,
    variant_settings,
)
from tests.helpers import small_model_cfg

NUM_IMAGES = 12


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "shared-onnx-models"


@pytest.fixture(scope="session")
def parent(models_dir) -> ConvertedModel:
    return ensure_onnx(small_model_cfg(), models_dir)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> list[ImageRecord]:
    """The generated sample's JPEGs (several sizes and modes), as a small corpus."""
    images, _ = ensure_sample(tmp_path_factory.mktemp("calibration-sample"), NUM_IMAGES, seed=0)
    return [ImageRecord(image_id=500 + i, path=path, category_ids=(1,))
            for i, path in enumerate(sorted(images.iterdir()))]


@pytest.fixture(scope="session")
def int8(parent, corpus, tmp_path_factory) -> tuple[ConvertedModel, object]:
    cache = tmp_path_factory.mktemp("variants")
    cfg = small_model_cfg(precision="int8", calibration_images=8)
    return ensure_variant(parent, cfg, calibration_records(cfg, corpus), cache), cache


def op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_int8_is_a_calibrated_qdq_model_close_to_fp32(int8, parent):
    model, _ = int8
    variant = model.variant
    assert model.name == "mnv2-int8" and model.onnx_path != parent.onnx_path
    assert model.onnx_sha256 != parent.onnx_sha256
    assert (model.input_name, model.output_name, model.embedding_dim) == (parent.input_name, parent.output_name,
                                                                           parent.embedding_dim)
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(model.onnx_path)  # QDQ format
    assert variant["settings"] == variant_settings(small_model_cfg(precision="int8", calibration_images=8))
    assert variant["settings"]["per_channel"] and variant["settings"]["weight_type"] == "QInt8"
    # reduce_range=auto, resolved for this CPU: on where its u8s8 kernels saturate (x86 without VNNI).
    assert variant["settings"]["reduce_range_setting"] == "auto"
    assert variant["settings"]["reduce_range"] is (not cpu.detect()["int8_dot_product"])
    assert len(variant["calibration"]) == 8 and all(c["sha256"] for c in variant["calibration"])
    # Recorded: seconds, size (int8 weights: about a quarter of the FP32 file) and parity with the parent.
    assert variant["seconds"] > 0 and set(variant["steps_s"]) >= {"pre_process_s", "quantize_s", "parity_s"}
    assert variant["onnx_bytes"] == model.onnx_path.stat().st_size
    assert variant["size_ratio"] < 0.4
    assert variant["parity"]["min_cosine"] > 0.95 and variant["parity"]["zero_rows"] == 0
    assert variant["parent_onnx_sha256"] == parent.onnx_sha256
    assert model.conversion == parent.conversion  # the Keras-vs-ONNX conversion record stays the parent's


def test_variant_is_cached_under_a_key_of_every_setting(int8, parent, corpus):
    model, cache = int8
    cfg = small_model_cfg(precision="int8", calibration_images=8)
    again = ensure_variant(parent, cfg, calibration_records(cfg, corpus), cache)
    assert again.variant["cached"] is True and again.onnx_sha256 == model.onnx_sha256
    assert again.variant["created_at"] == model.variant["created_at"]
    # Another calibration set is another file.
    other = small_model_cfg(precision="int8", calibration_images=8, calibration_seed=1)
    assert calibration_records(other, corpus) != calibration_records(cfg, corpus)
    assert ensure_variant(parent, other, calibration_records(other, corpus), cache).variant["cached"] is False
    assert len(list(cache.glob("*.onnx"))) == 2 and not list(cache.glob(".*"))  # no temporary files left
    # A sidecar that no longer matches its file is a miss, never a wrong model.
    sidecar = json.loads((cache / model.onnx_path.with_suffix(".json").name).read_text())
    sidecar["variant"]["key"] = "0" * 64
    model.onnx_path.with_suffix(".json").write_text(json.dumps(sidecar))
    assert ensure_variant(parent, cfg, calibration_records(cfg, corpus), cache).variant["cached"] is False


def test_quant_settings_shape_the_file_and_its_key(int8, parent, corpus):
    model, cache = int8
    forced = "false" if model.variant["settings"]["reduce_range"] else "true"  # the other way than auto chose
    cfg = small_model_cfg(precision="int8", calibration_images=8, quant=QuantConfig(reduce_range=forced))
    other = ensure_variant(parent, cfg, calibration_records(cfg, corpus), cache)
    assert other.variant["cached"] is False and other.onnx_sha256 != model.onnx_sha256
    assert other.variant["settings"]["reduce_range"] is (forced == "true")
    assert other.variant["settings"]["reduce_range_setting"] == forced
    u8u8 = small_model_cfg(precision="int8", calibration_images=8,
                           quant=QuantConfig(weight_type="QUInt8", per_channel=False, calibrate_method="Percentile"))
    made = ensure_variant(parent, u8u8, calibration_records(u8u8, corpus), cache)
    assert made.onnx_sha256 not in (model.onnx_sha256, other.onnx_sha256)
    assert {k: made.variant["settings"][k] for k in ("weight_type", "per_channel", "calibrate_method")} == {
        "weight_type": "QUInt8", "per_channel": False, "calibrate_method": "Percentile"}
    weights = {init.data_type for init in onnx.load(str(made.onnx_path)).graph.initializer if len(init.dims) == 4}
    assert weights == {onnx.TensorProto.UINT8}  # the quantized conv weights are unsigned now


def test_reduce_range_auto_follows_the_cpu(monkeypatch):
    auto = QuantConfig()
    monkeypatch.setattr(cpu, "detect", lambda: {"arch": "x86", "int8_dot_product": False})
    assert resolve_reduce_range(auto) is True  # AVX2 without VNNI: 7-bit weights, as onnxruntime advises
    monkeypatch.setattr(cpu, "detect", lambda: {"arch": "x86", "int8_dot_product": True})
    assert resolve_reduce_range(auto) is False
    assert resolve_reduce_range(QuantConfig(reduce_range=True)) is True  # a YAML bool works as well as "true"
    assert resolve_reduce_range(QuantConfig(reduce_range="False")) is False


def test_dynamic_int8_and_fp16(parent, corpus, tmp_path):
    dynamic = ensure_variant(parent, small_model_cfg(precision="int8_dynamic"), [], tmp_path)
    assert dynamic.name == "mnv2-int8_dynamic" and "DynamicQuantizeLinear" in op_types(dynamic.onnx_path)
    assert dynamic.variant["parity"]["min_cosine"] > 0.99

    fp16 = ensure_variant(parent, small_model_cfg(precision="fp16"), [], tmp_path)
    graph = onnx.load(str(fp16.onnx_path)).graph
    weights = {init.data_type for init in graph.initializer if len(init.dims) == 4}
    assert weights == {onnx.TensorProto.FLOAT16}  # float16 conv weights
    # float32 in and out (keep_io_types): the embedding loop feeds and reads float32 unchanged.
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert 0.4 < fp16.variant["size_ratio"] < 0.6
    # This random-weight model outputs values near 1e-11, below float16's range: the variant says so.
    assert fp16.variant["parity"]["zero_rows"] == fp16.variant["parity"]["batch"]


def test_fp32_is_the_parent_itself(parent, corpus, models_dir):
    model, reference = ensure_model(small_model_cfg(), corpus, models_dir)
    assert reference is None and model.onnx_sha256 == parent.onnx_sha256 and model.variant is None


def test_calibration_is_a_seeded_draw_from_the_corpus_only(corpus):
    cfg = small_model_cfg(precision="int8", calibration_images=5)
    chosen = calibration_records(cfg, corpus)
    assert chosen == calibration_records(cfg, corpus) and len(chosen) == 5
    assert set(chosen) <= set(corpus) and [r.image_id for r in chosen] == sorted(r.image_id for r in chosen)
    assert calibration_records(small_model_cfg(precision="fp16"), corpus) == []


def test_bad_settings_are_one_line_errors(parent, corpus, models_dir):
    with pytest.raises(BenchError, match="model.precision='int4' is not a precision: choose one of "
                                         "fp32, int8, int8_dynamic, fp16"):
        validate_precision(small_model_cfg(precision="int4"))
    assert list(PRECISIONS) == ["fp32", "int8", "int8_dynamic", "fp16"]
    with pytest.raises(BenchError, match="calibration_images=0 must be at least 1"):
        validate_precision(small_model_cfg(precision="int8", calibration_images=0))
    with pytest.raises(BenchError, match="model.quant.reduce_range='sometimes' must be auto, true or false"):
        validate_precision(small_model_cfg(precision="int8", quant=QuantConfig(reduce_range="sometimes")))
    with pytest.raises(BenchError, match="model.quant.calibrate_method='KL' is not one of MinMax, Entropy, Percentile"):
        validate_precision(small_model_cfg(precision="int8", quant=QuantConfig(calibrate_method="KL")))
    with pytest.raises(BenchError, match="model.quant.weight_type='QInt4' is not one of QUInt8, QInt8"):
        validate_precision(small_model_cfg(precision="int8", quant=QuantConfig(weight_type="QInt4")))
    with pytest.raises(BenchError, match=f"calibration_images=50 is more than the {NUM_IMAGES} corpus images"):
        ensure_model(small_model_cfg(precision="int8", calibration_images=50), corpus, models_dir)


def test_quantization_failure_names_the_model_and_the_step(parent, corpus, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an onnx model")
    model = replace(parent, name="brokennet", onnx_path=broken, onnx_sha256="f" * 64)
    cfg = small_model_cfg(precision="int8", calibration_images=4)
    with pytest.raises(BenchError, match=r"making the int8 variant of brokennet failed at pre-processing "
                                         r"\(quant_pre_process\): "):
        ensure_variant(model, cfg, calibration_records(cfg, corpus), tmp_path / "cache")
    with pytest.raises(BenchError, match="making the fp16 variant of brokennet failed at the float16 conversion"):
        ensure_variant(model, small_model_cfg(precision="fp16"), [], tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.onnx"))  # nothing half-made is left to hit later
    # Unreadable calibration images: the step that failed is named too.
    missing = [replace(r, path=tmp_path / f"gone{i}.jpg") for i, r in enumerate(corpus[:4])]
    with pytest.raises(BenchError, match="failed at decoding the calibration images: none of the calibration"):
        ensure_variant(parent, cfg, missing, tmp_path / "cache")
