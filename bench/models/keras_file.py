"""``model.source=keras_file``: a user's own saved Keras model, made into an embedding model for conversion.

``model.path`` is a ``.keras`` file, a legacy ``.h5`` file or a TensorFlow SavedModel folder. The
model must take one NHWC RGB image input; ``model.output_layer`` names the inner layer to embed
from (default: the model's own output). A 4-D output (a feature map) is pooled with
``model.pooling``, as for keras.applications models; a 2-D output is the embedding as it is.

``model.weights``: ``file`` (the saved weights) or ``random`` (the same architecture re-initialised
with Keras's default initialisers after ``keras.utils.set_random_seed(model.seed)``, the untrained
reference that shows what training changed).

The file is identified by its sha256 (a SavedModel folder by every file's path and sha256), so the
converted ONNX file is cached per content, not per path. TensorFlow is imported by the caller
(:mod:`bench.models.convert`) only when a conversion is needed; nothing here imports it.
"""
from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from bench.config import ModelConfig
from bench.errors import BenchError

log = logging.getLogger(__name__)

WEIGHTS = ("file", "random")
SAVED_MODEL_FILE = "saved_model.pb"
SERVING_ENDPOINT = "serving_default"


def model_path(cfg: ModelConfig) -> Path:
    """``model.path`` checked: an existing .keras or .h5 file, or a SavedModel folder."""
    if not cfg.path:
        raise BenchError("model.source=keras_file needs model.path=/path/to/model.keras (or .h5, or a SavedModel "
                         "folder)")
    path = Path(cfg.path).expanduser()
    if path.is_dir():
        if not (path / SAVED_MODEL_FILE).is_file():
            raise BenchError(f"model.path={cfg.path!r} is a folder without {SAVED_MODEL_FILE}: pass a .keras or .h5 "
                             "file, or a TensorFlow SavedModel folder")
    elif not path.is_file():
        raise BenchError(f"model.path={cfg.path!r} does not exist: pass an existing .keras or .h5 file, or a "
                         "SavedModel folder")
    elif path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise BenchError(f"model.path={cfg.path!r} is not a .keras or .h5 file: save the model with "
                         "model.save('model.keras'), or pass a SavedModel folder (an .onnx file is model.source=onnx)")
    if str(cfg.weights) not in WEIGHTS:
        raise BenchError(f"model.weights={cfg.weights!r} with model.source=keras_file: choose file (the saved "
                         "weights) or random (the same architecture, re-initialised with model.seed)")
    return path.resolve()


def content_sha256(path: Path) -> str:
    """sha256 of the file, or of a SavedModel folder's every relative path and file content."""
    stat = path.stat()
    return _content_sha256(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)  # keyed by size and mtime too: a file saved again is hashed again
def _content_sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(f"{file.relative_to(path).as_posix()}\0".encode())
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def load_embedding_model(cfg: ModelConfig, path: Path, keras: Any, random_seed: Optional[int]) -> Any:
    """The saved model cut at ``model.output_layer`` and pooled: one image in, one vector per image out."""
    if path.is_dir():
        if random_seed is not None:
            raise BenchError(f"model.weights=random needs a .keras or .h5 file: the SavedModel {path} is a graph "
                             "whose weights Keras cannot re-initialise")
        model = _saved_model(path, keras, cfg.output_layer)
    else:
        model = _load(path, keras)
    _check_input(path, model)
    if random_seed is not None:
        keras.utils.set_random_seed(random_seed)  # same seed -> same initial weights -> same ONNX file
        model = keras.models.clone_model(model)  # same layers, fresh default initialisation
    output = model.outputs[0] if path.is_dir() else _output_tensor(cfg, path, model)
    rank = len(output.shape)
    if rank == 4:
        pool = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}.get(cfg.pooling)
        if pool is None:
            raise BenchError(f"model.pooling={cfg.pooling!r}: choose avg or max to pool the feature map of "
                             f"{cfg.output_layer or 'the output'}")
        output = pool(name="bench_pooling")(output)
    elif rank != 2:
        raise BenchError(f"{cfg.output_layer or 'the output'} of {path} has shape {tuple(output.shape)}: choose a "
                         "model.output_layer that gives (batch, dim) vectors or a (batch, h, w, c) feature map")
    return keras.Model(model.inputs[0], output, name="bench_embedding")  # one tensor in, as bench calls it


def _check_input(path: Path, model: Any) -> None:
    inputs = list(model.inputs)
    if len(inputs) != 1:
        names = ", ".join(getattr(t, "name", "?") for t in inputs)
        raise BenchError(f"{path} has {len(inputs)} inputs ({names}): bench feeds one image batch, so save a model "
                         "with a single image input")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise BenchError(f"{path} takes input shape {shape}: bench feeds NHWC RGB batches (batch, size, size, 3); "
                         "save a model whose input has 3 channels last (repeat a grayscale channel)")
    if shape[1] != shape[2]:
        raise BenchError(f"{path} takes {shape[1]}x{shape[2]} images: bench feeds square images")


def _load(path: Path, keras: Any) -> Any:
    try:
        # compile=False: the optimizer and loss are not needed, and custom ones would fail to load.
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises ValueError, TypeError, OSError... depending on what is wrong
        raise BenchError(f"Keras cannot load {path}: {' '.join(str(err).split())[:300]}") from err


def _saved_model(path: Path, keras: Any, output_name: Optional[str]) -> Any:
    """A SavedModel folder as a functional model around its serving signature. Keras 3 loads no SavedModel
    as layers, so model.output_layer chooses among the signature's named outputs."""
    try:
        layer = keras.layers.TFSMLayer(str(path), call_endpoint=SERVING_ENDPOINT)
        args, kwargs = layer.call_endpoint_fn.structured_input_signature
    except Exception as err:
        raise BenchError(f"cannot load the SavedModel {path} (signature {SERVING_ENDPOINT}): "
                         f"{' '.join(str(err).split())[:300]}") from err
    specs = [*args, *kwargs.values()]
    if len(specs) != 1:
        raise BenchError(f"{path} has {len(specs)} inputs in its {SERVING_ENDPOINT} signature: bench feeds one "
                         "image batch, so export a model with a single image input")
    image = keras.Input(tuple(specs[0].shape[1:]), name="image")
    outputs = layer(image)
    if not isinstance(outputs, dict):
        return keras.Model(image, outputs, name="saved_model")
    if output_name is None and len(outputs) == 1:
        output_name = next(iter(outputs))
    if output_name not in outputs:
        raise BenchError(f"{path} has no output called model.output_layer={output_name!r} in its {SERVING_ENDPOINT} "
                         f"signature: choose one of {', '.join(sorted(outputs))}")
    return keras.Model(image, outputs[output_name], name="saved_model")


def _output_tensor(cfg: ModelConfig, path: Path, model: Any) -> Any:
    name = cfg.output_layer
    if not name:
        if len(model.outputs) != 1:
            raise BenchError(f"{path} has {len(model.outputs)} outputs: set model.output_layer to the layer to embed "
                             f"from ({_layer_names(model)})")
        return model.outputs[0]
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise BenchError(f"{path} has no layer called model.output_layer={name!r}: choose one of "
                         f"{_layer_names(model)}") from None
    return layer.output


def _layer_names(model: Any) -> str:
    names = [layer.name for layer in model.layers]
    shown = ", ".join(names[-12:])
    return shown if len(names) <= 12 else f"... {shown} ({len(names)} layers; the last 12 shown)"
