"""Keras -> ONNX conversion: one input, parity within bounds, cache hits without TensorFlow, clear errors.

A small MobileNetV2 (64 px, seeded random weights) keeps the file fast; the conversion runs once per
session into a folder that tests/test_embed.py shares, so running both files converts once.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench.errors import BenchError
from bench.models import convert
from bench.models.convert import ConvertedModel, ensure_onnx, parity_metrics, sha256_file
from tests.helpers import SMALL_DIM, SMALL_SIZE, small_model_cfg

REPO = Path(__file__).resolve().parents[1]
SIZE, DIM = SMALL_SIZE, SMALL_DIM
small_cfg = small_model_cfg


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    # Same folder name as in test_embed.py: the second file to run gets a cache hit.
    return tmp_path_factory.getbasetemp() / "shared-onnx-models"


@pytest.fixture(scope="session")
def converted(models_dir) -> ConvertedModel:
    return ensure_onnx(small_cfg(), models_dir)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No Keras weights cache and no route to the weights server, whatever this machine has."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # discard port: connection refused at once
    for var in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_conversion_gives_one_input_and_recorded_parity(converted):
    session = ort.InferenceSession(str(converted.onnx_path), providers=["CPUExecutionProvider"])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    assert len(inputs) == 1
    assert inputs[0].name == converted.input_name and outputs[0].name == converted.output_name
    assert inputs[0].shape[1:] == [SIZE, SIZE, 3] and not isinstance(inputs[0].shape[0], int)  # dynamic batch
    assert converted.embedding_dim == DIM and converted.input_size == SIZE

    parity = converted.conversion["parity"]
    assert parity["max_rel_diff"] <= 1e-4
    assert parity["min_cosine"] >= 0.9999
    assert parity["max_abs_diff"] >= 0
    assert converted.conversion["opset"] == 17
    assert converted.conversion["onnx_bytes"] == converted.onnx_path.stat().st_size
    assert converted.onnx_sha256 == sha256_file(converted.onnx_path)
    assert converted.weights == {"kind": "random", "seed": 0, "sha256": None,
                                 "source": converted.weights["source"]}
    name = converted.onnx_path.name
    assert name == f"mnv2-MobileNetV2-random-s0-{SIZE}px-avg-opset17.onnx"

    sidecar = json.loads(converted.onnx_path.with_suffix(".json").read_text())
    assert sidecar["onnx_sha256"] == converted.onnx_sha256
    assert set(sidecar["conversion"]["versions"]) >= {"tensorflow", "keras", "tf2onnx"}
    assert sidecar["conversion"]["seconds"] > 0
    assert sidecar["weights"]["kind"] == "random"


def test_onnx_output_matches_keras_on_a_fresh_batch(converted):
    """Beyond the recorded parity: rebuild the same seeded model and compare on other inputs."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3),
                                           pooling="avg")
    x = np.random.default_rng(42).uniform(-1, 1, size=(3, SIZE, SIZE, 3)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    session = ort.InferenceSession(str(converted.onnx_path), providers=["CPUExecutionProvider"])
    actual = session.run([converted.output_name], {converted.input_name: x})[0]
    metrics = parity_metrics(expected, actual)
    assert metrics["max_rel_diff"] <= 1e-4 and metrics["min_cosine"] >= 0.9999


def test_second_call_is_a_cache_hit(converted, models_dir, caplog):
    with caplog.at_level(logging.INFO, logger="bench.models.convert"):
        again = ensure_onnx(small_cfg(), models_dir)
    assert again.conversion["cached"] is True
    assert again.onnx_path == converted.onnx_path and again.onnx_sha256 == converted.onnx_sha256
    assert again.conversion["parity"] == converted.conversion["parity"]
    assert any("ONNX cache hit" in r.getMessage() for r in caplog.records)


def test_cached_run_does_not_import_tensorflow(converted, models_dir):
    script = f"""
import json, sys
from pathlib import Path
from bench.config import ModelConfig
from bench.models.convert import ensure_onnx
cfg = ModelConfig(name="mnv2", source="keras", architecture="MobileNetV2", weights="random", seed=0,
                  input_size={SIZE}, preprocessing="tf", pooling="avg", embedding_dim={DIM}, opset=17)
model = ensure_onnx(cfg, Path({str(models_dir)!r}))
print(json.dumps({{"cached": model.conversion["cached"], "sha": model.onnx_sha256,
                  "tf": [m for m in ("tensorflow", "keras", "tf2onnx") if m in sys.modules]}}))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"cached": True, "sha": converted.onnx_sha256, "tf": []}


def test_tampered_onnx_file_is_not_a_cache_hit(converted, tmp_path):
    for path in (converted.onnx_path, converted.onnx_path.with_suffix(".json")):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    with open(tmp_path / converted.onnx_path.name, "ab") as f:
        f.write(b"\0")
    plan = convert._WeightsPlan("random", seed=0)
    assert convert._load_cached(small_cfg(), tmp_path, plan) is None
    assert convert._load_cached(small_cfg(), converted.onnx_path.parent, plan) is not None


def test_wrong_embedding_dim_names_the_value_to_set(converted, models_dir):
    with pytest.raises(BenchError, match=f"set model.embedding_dim={DIM}"):
        ensure_onnx(small_cfg(embedding_dim=512), models_dir)


def test_weights_file_is_loaded_and_hashed(tmp_path):
    import keras

    keras.utils.set_random_seed(7)
    donor = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                           pooling="avg")
    weights_path = tmp_path / "donor.weights.h5"
    donor.save_weights(weights_path)
    sample = np.random.default_rng(1).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(donor(sample, training=False))
    keras.backend.clear_session()

    model = ensure_onnx(small_cfg(weights=str(weights_path), input_size=32), tmp_path / "models")
    digest = sha256_file(weights_path)
    assert model.weights["kind"] == "file" and model.weights["sha256"] == digest
    assert model.weights["source"] == str(weights_path.resolve())
    assert f"-file-{digest[:8]}-32px-" in model.onnx_path.name
    assert model.conversion["cached"] is False
    session = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    actual = session.run([model.output_name], {model.input_name: sample})[0]
    assert parity_metrics(expected, actual)["min_cosine"] >= 0.9999  # the file's weights, not new random ones


def test_unknown_architecture_lists_valid_names(tmp_path):
    with pytest.raises(BenchError) as err:
        ensure_onnx(small_cfg(architecture="VGG61"), tmp_path)
    assert "VGG61" in str(err.value) and "ConvNeXtBase" in str(err.value)


def test_opset_19_is_refused_before_any_work(tmp_path):
    with pytest.raises(BenchError, match="13..18"):
        ensure_onnx(small_cfg(opset=19), tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_missing_weights_file(tmp_path):
    with pytest.raises(BenchError, match="is not a file"):
        ensure_onnx(small_cfg(weights=str(tmp_path / "nope.h5")), tmp_path)


def test_unknown_preprocessing(tmp_path):
    with pytest.raises(BenchError, match="model.preprocessing"):
        ensure_onnx(small_cfg(preprocessing="inception"), tmp_path)


def test_imagenet_offline_names_the_fix(offline, tmp_path):
    with pytest.raises(BenchError) as err:
        ensure_onnx(small_cfg(weights="imagenet"), tmp_path / "models")
    message = str(err.value)
    assert "\n" not in message
    assert "internet" in message and "model.weights=/path/to/file.h5" in message
    assert "model.weights=random" in message


def test_auto_offline_falls_back_to_seeded_random_loudly(offline, converted, models_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="bench.models.convert"):
        model = ensure_onnx(small_cfg(weights="auto"), models_dir)
    assert model.weights["kind"] == "random" and model.weights["seed"] == 0
    assert model.weights["fallback_from"] == "auto"
    assert model.onnx_sha256 == converted.onnx_sha256  # the same seeded model, from the cache
    assert any(r.levelno == logging.WARNING and "RANDOM" in r.getMessage() for r in caplog.records)


def test_onnx_source_uses_the_file_as_is(converted):
    cfg = small_cfg(source="onnx", architecture="", path=str(converted.onnx_path), input_size=224)
    model = ensure_onnx(cfg, Path("unused"))
    assert model.input_size == SIZE  # static size in the graph wins over the config
    assert model.embedding_dim == DIM
    assert (model.input_name, model.output_name) == (converted.input_name, converted.output_name)
    assert model.weights == {"kind": "file", "seed": None, "sha256": converted.onnx_sha256,
                             "source": str(converted.onnx_path)}
    assert model.conversion["parity"] is None and "not checked" in model.conversion["parity_note"]
    assert model.conversion["opset"] == 17


def test_onnx_source_missing_file(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        ensure_onnx(small_cfg(source="onnx", path=str(tmp_path / "model.onnx")), tmp_path)


def test_onnx_source_with_two_inputs_is_refused(tmp_path):
    from onnx import TensorProto, helper, save

    a = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 8, 8, 3])
    b = helper.make_tensor_value_info("normalization_mean", TensorProto.FLOAT, [None, 8, 8, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8, 8, 3])
    graph = helper.make_graph([helper.make_node("Add", ["input", "normalization_mean"], ["y"])], "g", [a, b], [y])
    path = tmp_path / "two_inputs.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(BenchError, match="EfficientNet"):
        ensure_onnx(small_cfg(source="onnx", path=str(path), input_size=8), tmp_path)


def test_parity_metrics():
    x = np.array([[1.0, 2.0], [0.0, 0.0]])
    same = parity_metrics(x, x)
    assert same["max_abs_diff"] == 0 and same["max_rel_diff"] == 0
    assert same["min_cosine"] == pytest.approx(1.0)
    flipped = parity_metrics(x, np.array([[-1.0, -2.0], [0.0, 0.0]]))
    assert flipped["min_cosine"] == pytest.approx(-1.0) and flipped["max_rel_diff"] == pytest.approx(2.0)
