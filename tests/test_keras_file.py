"""`model.source=keras_file`: a saved Keras model (.keras, .h5, SavedModel folder) through the tf2onnx path,
with its parity check, cached by content; the committed Fashion-MNIST CNN is the model under test."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench.config import ModelConfig
from bench.errors import BenchError
from bench.models.convert import ensure_onnx, sha256_file
from tests.conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "fashion_cnn"
TRAINED = FIXTURES / "fashion_cnn_s0.keras"


def file_cfg(path: Path | None, **overrides) -> ModelConfig:
    values = dict(name="cnn", source="keras_file", path=None if path is None else str(path),
                  output_layer="embedding", weights="file", seed=0,
                  input_size=28, preprocessing="tf", pooling="avg", embedding_dim=32, batch_size=8, opset=17)
    return ModelConfig(**{**values, **overrides})


def embed(model, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    return session.run([model.output_name], {model.input_name: batch})[0]


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (6, 28, 28, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def keras():
    import keras as keras_module  # only here: the other test modules never import TensorFlow

    return keras_module


def test_a_saved_model_converts_with_parity_and_is_cached_by_content(tmp_path, batch):
    models = tmp_path / "models"
    model = ensure_onnx(file_cfg(TRAINED, input_size=224), models)  # the file's 28 px wins over 224
    assert model.input_size == 28 and model.embedding_dim == 32
    parity = model.conversion["parity"]
    assert parity["max_rel_diff"] <= 1e-4 and parity["min_cosine"] >= 0.9999 and not model.conversion["cached"]
    assert model.weights["kind"] == "file" and model.weights["sha256"] == sha256_file(TRAINED)
    vectors = embed(model, batch)
    assert vectors.shape == (6, 32) and np.all(vectors >= 0)  # the ReLU of the embedding layer
    # The same bytes under another name: a cache hit, without TensorFlow.
    moved = tmp_path / "renamed.keras"
    shutil.copyfile(TRAINED, moved)
    again = ensure_onnx(file_cfg(moved, input_size=224), models)
    assert again.conversion["cached"] and again.onnx_path == model.onnx_path
    # Another file (the second trained seed): another ONNX file.
    other = ensure_onnx(file_cfg(FIXTURES / "fashion_cnn_s1.keras"), models)
    assert other.onnx_path != model.onnx_path and not np.allclose(embed(other, batch), vectors)


def test_an_inner_feature_map_is_pooled(tmp_path, batch):
    avg = ensure_onnx(file_cfg(TRAINED, output_layer="conv2", pooling="avg"), tmp_path)
    peak = ensure_onnx(file_cfg(TRAINED, output_layer="conv2", pooling="max"), tmp_path)
    assert avg.embedding_dim == peak.embedding_dim == 32  # conv2's 32 filters, globally pooled
    assert np.all(embed(peak, batch) >= embed(avg, batch) - 1e-6)


def test_h5_and_saved_model_folder_give_the_same_vectors(tmp_path, keras, batch):
    reference = embed(ensure_onnx(file_cfg(TRAINED), tmp_path / "models"), batch)
    saved = keras.models.load_model(TRAINED, compile=False)
    saved.save(tmp_path / "cnn.h5")
    h5 = ensure_onnx(file_cfg(tmp_path / "cnn.h5"), tmp_path / "models")
    np.testing.assert_allclose(embed(h5, batch), reference, rtol=1e-5, atol=1e-6)
    # A SavedModel exposes only its signature's outputs: export the embedding model itself.
    keras.Model(saved.inputs[0], saved.get_layer("embedding").output).export(str(tmp_path / "sm"), verbose=False)
    folder = ensure_onnx(file_cfg(tmp_path / "sm", output_layer=None), tmp_path / "models")
    np.testing.assert_allclose(embed(folder, batch), reference, rtol=1e-5, atol=1e-6)
    assert folder.conversion["parity"]["max_rel_diff"] <= 1e-4


def test_random_weights_reinitialise_the_architecture_by_seed(tmp_path, batch):
    trained = embed(ensure_onnx(file_cfg(TRAINED), tmp_path), batch)
    first = ensure_onnx(file_cfg(TRAINED, weights="random", seed=0), tmp_path / "a")
    second = ensure_onnx(file_cfg(TRAINED, weights="random", seed=0), tmp_path / "b")
    other = ensure_onnx(file_cfg(TRAINED, weights="random", seed=1), tmp_path / "a")
    assert first.weights["kind"] == "random" and first.weights["seed"] == 0
    assert first.weights["model_file"]["sha256"] == sha256_file(TRAINED)
    # Seeded: the same weights in two fresh caches (the files differ only in tf2onnx's generated names).
    np.testing.assert_array_equal(embed(first, batch), embed(second, batch))
    assert not np.allclose(embed(other, batch), embed(first, batch))
    assert not np.allclose(embed(first, batch), trained)


def test_settings_are_checked_before_tensorflow(tmp_path):
    with pytest.raises(BenchError, match="needs model.path="):
        ensure_onnx(file_cfg(None), tmp_path)
    with pytest.raises(BenchError, match="does not exist"):
        ensure_onnx(file_cfg(tmp_path / "nope.keras"), tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(BenchError, match="model.source=onnx"):
        ensure_onnx(file_cfg(tmp_path / "model.onnx"), tmp_path)
    with pytest.raises(BenchError, match="choose file .* or random"):
        ensure_onnx(file_cfg(TRAINED, weights="imagenet"), tmp_path)


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory, keras) -> Path:
    image, extra = keras.Input((28, 28, 3), name="image"), keras.Input((4,), name="extra")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(image))
    model = keras.Model([image, extra], keras.layers.Concatenate()([pooled, extra]))
    path = tmp_path_factory.mktemp("two") / "two_inputs.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("case, message", [
    ("two_inputs", "has 2 inputs (image, extra): bench feeds one image batch"),
    ("no_layer", "has no layer called model.output_layer='embeding': choose one of"),
])
def test_bad_model_files_are_one_line_exit_2(case, message, two_inputs, tmp_path):
    args = [f"model.path={two_inputs}", "model.output_layer=null"] if case == "two_inputs" else \
        [f"model.path={TRAINED}", "model.output_layer=embeding"]
    proc = run_cli(["model=keras_file", "model.embedding_dim=32", *args, "dataset.num_images=20",
                    "dataset.num_queries=4", f"dataset.root={tmp_path / 'sample'}", f"cache_dir={tmp_path / 'models'}",
                    f"embeddings_dir={tmp_path / 'emb'}", f"store.uri={tmp_path / 'lite.db'}",
                    f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
