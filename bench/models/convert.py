"""Keras model -> ONNX file, converted once and cached, with a Keras-vs-onnxruntime parity check.

The Keras model is a keras.applications constructor (``model.source=keras``) or a user's saved
model (``model.source=keras_file``, :mod:`bench.models.keras_file`); both take the same path below.

The only conversion path that works for VGG16, ResNet50, MobileNetV2 and EfficientNet alike is
``tf2onnx.convert.from_keras`` with an explicit NHWC float32 input signature;
``Model.export(format="onnx")`` silently adds inputs to EfficientNet (measured with Keras 3.15 and tf2onnx 1.17).

TensorFlow is imported lazily, inside the conversion only: a run whose ONNX file is already cached
never imports it (saves seconds of start-up and gigabytes of memory).
"""
from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import onnxruntime as ort

from bench.config import ModelConfig
from bench.errors import BenchError
from bench.io import atomic_write_text, replacing, safe_name
from bench.models import keras_file
from bench.models.preprocess import get_preprocessor

log = logging.getLogger(__name__)

SUPPORTED_OPSETS = range(13, 19)  # tf2onnx 1.17 refuses 19 ("not supported yet"); 13-18 measured to work
POOLINGS = ("avg", "max")  # None would give a 4-D feature map, not an embedding
MIN_INPUT_SIZE = 32  # keras.applications refuse smaller inputs
PARITY_BATCH = 4
PARITY_SEED = 0
PARITY_MAX_REL_DIFF = 1e-4  # measured: 1e-6 on ResNet50, so this is safe yet catches broken graphs
PARITY_MIN_COSINE = 0.9999
# Keras downloads ImageNet weights from here; a HEAD request tells quickly whether we are offline.
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
NETWORK_PROBE_TIMEOUT_S = 3.0
DOWNLOAD_SOCKET_TIMEOUT_S = 60.0
SIDECAR_SCHEMA_VERSION = 1


@dataclass
class ConvertedModel:
    name: str
    onnx_path: Path
    onnx_sha256: str
    input_name: str
    output_name: str
    input_size: int
    embedding_dim: int
    preprocessing: str
    weights: dict  # provenance: kind, seed, sha256, source (+ fallback_from)
    conversion: dict  # seconds, cached, opset, onnx_bytes, parity{max_abs_diff, max_rel_diff, min_cosine} | None
    variant: Optional[dict] = None  # a precision variant's provenance (bench.models.variants); None: FP32 as converted


@dataclass
class _WeightsPlan:
    """Which weights a Keras model gets, decided before TensorFlow is imported."""
    kind: str  # imagenet | random | file
    seed: Optional[int] = None
    sha256: Optional[str] = None
    path: Optional[Path] = None
    fallback_from: Optional[str] = None  # "auto" when auto fell back to random
    allow_fallback: bool = False  # auto chose imagenet: a failed download falls back to random
    # model.source=keras_file: the saved model the architecture (and, for kind "file", the weights) come from.
    model_file: Optional[Path] = None
    model_sha256: Optional[str] = None

    @property
    def tag(self) -> str:
        if self.kind == "random":
            return f"random-s{self.seed}"
        if self.kind == "file":
            return f"file-{self.sha256[:8]}"
        return "imagenet"

    def provenance(self, architecture: str) -> dict:
        if self.kind == "imagenet":
            source = f"keras.applications.{architecture}(weights='imagenet'), cached in {_keras_models_dir()}"
        elif self.kind == "random":
            source = f"keras default initializers after keras.utils.set_random_seed({self.seed})"
        else:
            source = str(self.path)
        prov = {"kind": self.kind, "seed": self.seed, "sha256": self.sha256, "source": source}
        if self.model_file is not None:
            prov["model_file"] = {"path": str(self.model_file), "sha256": self.model_sha256}
        if self.fallback_from:
            prov["fallback_from"] = self.fallback_from
        return prov


# ---------------------------------------------------------------------------------------------
# Public entry point


def ensure_onnx(cfg: ModelConfig, cache_dir: Path) -> ConvertedModel:
    """The ONNX model described by ``cfg``: from the cache when present, else converted and cached."""
    cache_dir = Path(cache_dir)
    get_preprocessor(cfg.preprocessing)  # unknown preprocessing: fail before any work
    if cfg.source == "onnx":
        return _load_user_onnx(cfg)
    if cfg.source not in ("keras", "keras_file"):
        raise BenchError(f"unknown model.source={cfg.source!r}: choose keras, keras_file or onnx")
    _validate_keras_settings(cfg)
    cache_dir.mkdir(parents=True, exist_ok=True)

    plan = _plan_keras_file(cfg) if cfg.source == "keras_file" else _plan_weights(cfg, cache_dir)
    if isinstance(plan, ConvertedModel):  # weights=auto found converted ImageNet weights in the cache
        return plan
    cached = _load_cached(cfg, cache_dir, plan)
    if cached is not None:
        return cached
    return _convert_keras(cfg, cache_dir, plan)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Settings and weights, all decided without TensorFlow


def _validate_keras_settings(cfg: ModelConfig) -> None:
    if cfg.opset not in SUPPORTED_OPSETS:
        raise BenchError(f"model.opset={cfg.opset} is not supported by tf2onnx here: "
                         f"choose {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1} (17 is the default)")
    if cfg.pooling not in POOLINGS:
        raise BenchError(f"model.pooling={cfg.pooling!r}: choose one of {', '.join(POOLINGS)}")
    if cfg.source == "keras_file":
        return  # the saved model's own input and layers are checked when it is loaded
    if not cfg.architecture:
        raise BenchError("model.architecture is empty: set it to a keras.applications name, e.g. VGG16")
    if cfg.input_size < MIN_INPUT_SIZE:
        raise BenchError(f"model.input_size={cfg.input_size} is too small: keras.applications need >= "
                         f"{MIN_INPUT_SIZE}")


def _plan_weights(cfg: ModelConfig, cache_dir: Path) -> _WeightsPlan | ConvertedModel:
    choice = str(cfg.weights).strip()
    if choice == "random":
        return _WeightsPlan("random", seed=cfg.seed)
    if choice == "imagenet":
        plan = _WeightsPlan("imagenet")
        if _cache_paths(cfg, cache_dir, plan)[0].exists():
            return plan  # the cached ONNX needs neither the .h5 file nor the network
        available, reason = _imagenet_available(cfg.architecture)
        if not available:
            _keras_constructor(cfg.architecture)  # a typo in the name is the better error to report
            raise BenchError(_imagenet_unavailable_message(cfg.architecture, reason))
        return plan
    if choice == "auto":
        imagenet = _WeightsPlan("imagenet", allow_fallback=True)
        cached = _load_cached(cfg, cache_dir, imagenet)
        if cached is not None:
            return cached
        available, reason = _imagenet_available(cfg.architecture)
        if available:
            return imagenet
        _warn_random_fallback(cfg, reason)
        return _WeightsPlan("random", seed=cfg.seed, fallback_from="auto")
    path = Path(choice).expanduser()
    if not path.is_file():
        raise BenchError(f"model.weights={choice!r} is not a file: pass an existing .h5/.weights.h5 file, "
                         f"or model.weights=imagenet|random|auto")
    path = path.resolve()
    return _WeightsPlan("file", sha256=sha256_file(path), path=path)


def _plan_keras_file(cfg: ModelConfig) -> _WeightsPlan:
    """A saved model's own weights, or its architecture re-initialised; cached by the file's content."""
    path = keras_file.model_path(cfg)
    digest = keras_file.content_sha256(path)
    if cfg.weights == "random":
        return _WeightsPlan("random", seed=cfg.seed, model_file=path, model_sha256=digest)
    return _WeightsPlan("file", sha256=digest, path=path, model_file=path, model_sha256=digest)


def _keras_models_dir() -> Path:
    """Where Keras caches downloaded weights (same rule as keras.src.backend.config)."""
    if "KERAS_HOME" in os.environ:
        base = Path(os.environ["KERAS_HOME"])
    else:
        home = Path.home()
        base = (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"
    return base.expanduser() / "models"


def _imagenet_file_cached(architecture: str) -> bool:
    """Is a no-top weights file for this architecture in the Keras cache?

    Keras names the files inconsistently (vgg16_weights_..._notop.h5, mobilenet_v2_..._no_top.h5,
    efficientnetb0_notop.h5); all contain the architecture name once case and separators are dropped.
    A false positive costs only a failed download attempt later, which is handled.
    """
    wanted = re.sub(r"[^a-z0-9]", "", architecture.lower())
    folder = _keras_models_dir()
    if not folder.is_dir():
        return False
    for file in folder.iterdir():
        flat = re.sub(r"[^a-z0-9]", "", file.name.lower())
        if wanted in flat and "notop" in flat:
            return True
    return False


def _weights_server_reachable() -> tuple[bool, str]:
    # A fresh opener reads the proxy environment now, not when urllib was first used.
    opener = urllib.request.build_opener()
    request = urllib.request.Request(KERAS_WEIGHTS_URL, method="HEAD")
    try:
        with opener.open(request, timeout=NETWORK_PROBE_TIMEOUT_S):
            return True, "reachable"
    except urllib.error.HTTPError:
        return True, "reachable"  # any HTTP answer means we are online
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return False, f"{KERAS_WEIGHTS_URL} unreachable: {reason}"


def _imagenet_available(architecture: str) -> tuple[bool, str]:
    if _imagenet_file_cached(architecture):
        return True, f"cached in {_keras_models_dir()}"
    return _weights_server_reachable()


def _imagenet_unavailable_message(architecture: str, reason: str) -> str:
    return (f"ImageNet weights for {architecture} are not cached in {_keras_models_dir()} and cannot be "
            f"downloaded ({reason}): connect to the internet, or pass model.weights=/path/to/file.h5 "
            f"or model.weights=random")


def _warn_random_fallback(cfg: ModelConfig, reason: str) -> None:
    log.warning("model.weights=auto: ImageNet weights for %s are unavailable (%s); using RANDOM weights "
                "(seed %d). Embeddings will not reflect a trained model; set model.weights=imagenet or "
                "model.weights=/path/to/file.h5 to require real weights.", cfg.architecture, reason, cfg.seed)


# ---------------------------------------------------------------------------------------------
# Cache


def _cache_paths(cfg: ModelConfig, cache_dir: Path, plan: _WeightsPlan) -> tuple[Path, Path]:
    stem = (f"{safe_name(cfg.name)}-{safe_name(_architecture(cfg, plan))}-{plan.tag}-{cfg.input_size}px-"
            f"{cfg.pooling}-opset{cfg.opset}")
    return cache_dir / f"{stem}.onnx", cache_dir / f"{stem}.json"


def _architecture(cfg: ModelConfig, plan: _WeightsPlan) -> str:
    """What is converted: a keras.applications name, or a saved model by content and the layer embedded from."""
    if plan.model_file is None:
        return cfg.architecture
    return f"file{plan.model_sha256[:8]}-{cfg.output_layer or 'output'}"


def _load_cached(cfg: ModelConfig, cache_dir: Path, plan: _WeightsPlan) -> ConvertedModel | None:
    onnx_path, sidecar_path = _cache_paths(cfg, cache_dir, plan)
    if not (onnx_path.exists() and sidecar_path.exists()):
        return None
    started = time.perf_counter()
    try:
        sidecar = json.loads(sidecar_path.read_text())
        recorded = sidecar["onnx_sha256"]
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring unreadable ONNX sidecar %s (%s); converting again", sidecar_path, err)
        return None
    actual = sha256_file(onnx_path)
    if actual != recorded:
        log.warning("ONNX cache %s does not match its sidecar's sha256; converting again", onnx_path)
        return None
    log.info("ONNX cache hit: %s", onnx_path)
    weights = dict(sidecar["weights"])
    if plan.fallback_from:
        weights["fallback_from"] = plan.fallback_from  # this run asked for auto and got random
    conversion = dict(sidecar["conversion"])
    conversion.update(cached=True, cache_check_s=time.perf_counter() - started, sidecar=str(sidecar_path))
    model = ConvertedModel(
        name=cfg.name, onnx_path=onnx_path, onnx_sha256=actual, input_name=sidecar["input_name"],
        output_name=sidecar["output_name"], input_size=int(sidecar["input_size"]),
        embedding_dim=int(sidecar["embedding_dim"]), preprocessing=cfg.preprocessing, weights=weights,
        conversion=conversion)
    _check_embedding_dim(cfg, model.embedding_dim)
    return model


def _check_embedding_dim(cfg: ModelConfig, actual: int) -> None:
    if cfg.embedding_dim != actual:
        raise BenchError(f"model.embedding_dim={cfg.embedding_dim} but model {cfg.name!r} outputs {actual}-d "
                         f"vectors: set model.embedding_dim={actual}")


# ---------------------------------------------------------------------------------------------
# Conversion (the only place TensorFlow is imported)


def _import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ info/warning chatter
    import tensorflow as tf
    import keras
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # per-op INFO lines drown our log
    return tf, keras, tf2onnx


def _keras_constructor(architecture: str) -> Callable[..., Any]:
    _, keras, _ = _import_tensorflow()
    constructor = getattr(keras.applications, architecture, None)
    if not (architecture[:1].isupper() and callable(constructor)):
        names = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise BenchError(f"unknown model.architecture={architecture!r}: choose a keras.applications model, "
                         f"e.g. {', '.join(names[:12])} ... ({len(names)} in all)")
    return constructor


def _build_keras_model(cfg: ModelConfig, plan: _WeightsPlan):
    _, keras, _ = _import_tensorflow()
    if plan.model_file is not None:
        return keras_file.load_embedding_model(cfg, plan.model_file, keras,
                                               plan.seed if plan.kind == "random" else None)
    constructor = _keras_constructor(cfg.architecture)
    size = cfg.input_size
    if plan.kind == "random":
        keras.utils.set_random_seed(plan.seed)  # same seed -> same weights -> same ONNX file contents
        weights = None
    elif plan.kind == "file":
        weights = str(plan.path)
    else:
        weights = "imagenet"
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT_S)  # urlretrieve has no timeout of its own
    try:
        return constructor(include_top=False, weights=weights, input_shape=(size, size, 3),
                           pooling=cfg.pooling)
    except Exception as err:  # keras raises bare Exception for download failures
        message = " ".join(str(err).split())
        if plan.kind == "imagenet" and (isinstance(err, OSError) or "URL fetch failure" in message):
            raise _DownloadFailed(message) from err
        if plan.kind == "file":
            raise BenchError(f"cannot load weights file {plan.path} into {cfg.architecture} "
                             f"(input {size}px, pooling {cfg.pooling}): {message}") from err
        raise BenchError(f"keras.applications.{cfg.architecture} refused input_size={size}, "
                         f"pooling={cfg.pooling}, weights={cfg.weights}: {message}") from err
    finally:
        socket.setdefaulttimeout(previous_timeout)


class _DownloadFailed(Exception):
    pass


def _convert_keras(cfg: ModelConfig, cache_dir: Path, plan: _WeightsPlan) -> ConvertedModel:
    log.info("converting %s (%s, %s weights, %s pooling) to ONNX opset %d ...", cfg.name, _described(cfg, plan),
             plan.tag, cfg.pooling, cfg.opset)
    # Timed apart: the import costs seconds only for the first conversion in a process.
    t0 = time.perf_counter()
    _import_tensorflow()
    tf_import_s = time.perf_counter() - t0
    started = time.perf_counter()
    try:
        model = _build_keras_model(cfg, plan)
    except _DownloadFailed as err:
        if not plan.allow_fallback:
            raise BenchError(_imagenet_unavailable_message(cfg.architecture, str(err))) from err
        _warn_random_fallback(cfg, str(err))
        plan = _WeightsPlan("random", seed=cfg.seed, fallback_from="auto")
        cached = _load_cached(cfg, cache_dir, plan)
        if cached is not None:
            return cached
        model = _build_keras_model(cfg, plan)
    try:
        return _convert_built_model(cfg, cache_dir, plan, model, started, tf_import_s)
    finally:
        del model
        _, keras, _ = _import_tensorflow()
        keras.backend.clear_session()  # a VGG16 holds ~4 GiB during conversion; give it back
        gc.collect()


def _described(cfg: ModelConfig, plan: _WeightsPlan) -> str:
    if plan.model_file is None:
        return f"keras.applications.{cfg.architecture}, {cfg.input_size}px"
    return f"{plan.model_file}, layer {cfg.output_layer or '(its output)'}"


def _input_side(cfg: ModelConfig, model) -> int:
    """The image side the model takes: fixed by a saved model's input layer, else model.input_size."""
    side = model.inputs[0].shape[1]
    if side is None:
        return cfg.input_size
    if side != cfg.input_size:
        log.warning("model.input_size=%d ignored: %s takes %dpx images", cfg.input_size, cfg.path, side)
    return int(side)


def _convert_built_model(cfg: ModelConfig, cache_dir: Path, plan: _WeightsPlan, model,
                         started: float, tf_import_s: float) -> ConvertedModel:
    tf, keras, tf2onnx = _import_tensorflow()
    build_s = time.perf_counter() - started
    onnx_path, sidecar_path = _cache_paths(cfg, cache_dir, plan)
    size = _input_side(cfg, model)
    what = cfg.architecture if plan.model_file is None else str(plan.model_file)
    with replacing(onnx_path, suffix=".onnx") as tmp_path:  # tf2onnx wants the suffix
        t0 = time.perf_counter()
        spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name="input"),)
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=cfg.opset, output_path=str(tmp_path))
        convert_s = time.perf_counter() - t0

        session = _open_session(tmp_path)
        input_name, output_name, output_shape = _single_input_io(session, what)
        embedding_dim = output_shape[-1]
        if len(output_shape) != 2 or not isinstance(embedding_dim, int):
            raise BenchError(f"converted {what} outputs shape {output_shape}, expected "
                             f"(batch, dim): check model.pooling")

        t0 = time.perf_counter()
        parity = _parity(model, session, input_name, output_name, get_preprocessor(cfg.preprocessing), size)
        parity_s = time.perf_counter() - t0
        del session
        if not (parity["max_rel_diff"] <= PARITY_MAX_REL_DIFF and parity["min_cosine"] >= PARITY_MIN_COSINE):
            raise BenchError(
                f"ONNX output of {what} differs from Keras: max_rel_diff={parity['max_rel_diff']:.2e} "
                f"(limit {PARITY_MAX_REL_DIFF:.0e}), min_cosine={parity['min_cosine']:.6f} "
                f"(limit {PARITY_MIN_COSINE}): try another model.opset ({SUPPORTED_OPSETS.start}.."
                f"{SUPPORTED_OPSETS.stop - 1})")

        onnx_sha256 = sha256_file(tmp_path)
        onnx_bytes = tmp_path.stat().st_size

    conversion = {
        # seconds: build + convert + parity; the one-off TensorFlow import is reported apart.
        "seconds": time.perf_counter() - started, "build_s": build_s, "convert_s": convert_s,
        "parity_s": parity_s, "tf_import_s": tf_import_s, "opset": cfg.opset, "onnx_bytes": onnx_bytes,
        "parity": parity,
        "parity_limits": {"max_rel_diff": PARITY_MAX_REL_DIFF, "min_cosine": PARITY_MIN_COSINE},
        "converter": "tf2onnx.convert.from_keras",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
                     "onnxruntime": ort.__version__},
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    weights = plan.provenance(cfg.architecture)
    sidecar = {
        "schema_version": SIDECAR_SCHEMA_VERSION, "name": cfg.name, "source": cfg.source,
        "architecture": cfg.architecture, "output_layer": cfg.output_layer, "input_size": size,
        "pooling": cfg.pooling,
        "preprocessing": cfg.preprocessing, "onnx_file": onnx_path.name, "onnx_sha256": onnx_sha256,
        "input_name": input_name, "output_name": output_name, "embedding_dim": embedding_dim,
        "weights": weights, "conversion": conversion,
    }
    atomic_write_text(sidecar_path, json.dumps(sidecar, indent=2))
    log.info("converted %s in %.1f s -> %s (%.1f MB, parity max_rel_diff %.1e, min_cosine %.7f)",
             cfg.name, conversion["seconds"], onnx_path, onnx_bytes / 1e6, parity["max_rel_diff"],
             parity["min_cosine"])
    # Checked after caching: the file is right, only the config is wrong, so a rerun will hit the cache.
    _check_embedding_dim(cfg, embedding_dim)
    return ConvertedModel(
        name=cfg.name, onnx_path=onnx_path, onnx_sha256=onnx_sha256, input_name=input_name,
        output_name=output_name, input_size=size, embedding_dim=embedding_dim, preprocessing=cfg.preprocessing,
        weights=weights, conversion={**conversion, "cached": False, "sidecar": str(sidecar_path)})


def _parity(model, session: ort.InferenceSession, input_name: str, output_name: str,
            preprocess: Callable[[np.ndarray], np.ndarray], size: int) -> dict:
    """Keras and onnxruntime on the same seeded random batch; the numbers go into provenance."""
    rng = np.random.default_rng(PARITY_SEED)
    batch = preprocess(rng.integers(0, 256, size=(PARITY_BATCH, size, size, 3), dtype=np.uint8))
    expected = np.asarray(model(batch, training=False), dtype=np.float64)
    actual = np.asarray(session.run([output_name], {input_name: batch})[0], dtype=np.float64)
    return parity_metrics(expected, actual)


def parity_metrics(expected: np.ndarray, actual: np.ndarray) -> dict:
    """max |diff|, that relative to the largest |expected|, and the worst per-row cosine."""
    expected = np.asarray(expected, dtype=np.float64).reshape(len(expected), -1)
    actual = np.asarray(actual, dtype=np.float64).reshape(len(actual), -1)
    max_abs_diff = float(np.max(np.abs(expected - actual)))
    scale = float(np.max(np.abs(expected)))
    if scale > 0:
        max_rel_diff = max_abs_diff / scale
    else:
        max_rel_diff = 0.0 if max_abs_diff == 0 else float("inf")
    norms = np.linalg.norm(expected, axis=1) * np.linalg.norm(actual, axis=1)
    dots = np.sum(expected * actual, axis=1)
    both_zero = (np.linalg.norm(expected, axis=1) == 0) & (np.linalg.norm(actual, axis=1) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = np.where(norms > 0, dots / norms, np.where(both_zero, 1.0, 0.0))
    return {"max_abs_diff": max_abs_diff, "max_rel_diff": float(max_rel_diff),
            "min_cosine": float(np.min(cosines)), "max_abs_output": scale, "batch": int(len(expected)),
            "seed": PARITY_SEED}


# ---------------------------------------------------------------------------------------------
# onnxruntime helpers and user-supplied ONNX files


def _open_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _single_input_io(session: ort.InferenceSession, what: str) -> tuple[str, str, list]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise BenchError(f"ONNX graph of {what} has {len(inputs)} inputs ({names}), expected 1: this is the "
                         f"known EfficientNet export trap (Model.export / from_function add inputs); convert "
                         f"with tf2onnx.convert.from_keras")
    output = session.get_outputs()[0]
    return inputs[0].name, output.name, list(output.shape)


def _load_user_onnx(cfg: ModelConfig) -> ConvertedModel:
    if not cfg.path:
        raise BenchError("model.source=onnx needs model.path=/path/to/model.onnx")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise BenchError(f"model.path={cfg.path!r} does not exist: pass an existing .onnx file")
    path = path.resolve()
    try:
        session = _open_session(path)
    except Exception as err:  # onnxruntime raises its own exception types for corrupt models
        raise BenchError(f"onnxruntime cannot load {path}: {' '.join(str(err).split())[:300]}") from err
    input_name, output_name, output_shape = _single_input_io(session, str(path))
    input_shape = list(session.get_inputs()[0].shape)
    if len(input_shape) != 4 or input_shape[1] == 3 and input_shape[3] != 3:
        raise BenchError(f"{path} takes input shape {input_shape}: bench feeds NHWC float32 RGB batches "
                         f"(batch, size, size, 3); re-export the model with that layout")
    if isinstance(input_shape[0], int):
        raise BenchError(f"{path} has a fixed batch size {input_shape[0]}: re-export it with a dynamic batch "
                         f"dimension")
    height, width = input_shape[1], input_shape[2]
    if isinstance(height, int) and isinstance(width, int):
        if height != width:
            raise BenchError(f"{path} takes {height}x{width} images: bench feeds square images")
        input_size = height
        if input_size != cfg.input_size:
            log.warning("model.input_size=%d ignored: %s takes %dpx images", cfg.input_size, path, input_size)
    else:
        input_size = cfg.input_size
    embedding_dim = output_shape[-1] if len(output_shape) == 2 else None
    if not isinstance(embedding_dim, int):
        probe = np.zeros((1, input_size, input_size, 3), dtype=np.float32)
        out = session.run([output_name], {input_name: probe})[0]
        if out.ndim != 2:
            raise BenchError(f"{path} outputs shape {list(out.shape)}, expected (batch, dim): add pooling")
        embedding_dim = int(out.shape[1])
    del session

    onnx_sha256 = sha256_file(path)
    _check_embedding_dim(cfg, embedding_dim)
    log.info("using ONNX file %s as is (no conversion, no parity check)", path)
    return ConvertedModel(
        name=cfg.name, onnx_path=path, onnx_sha256=onnx_sha256, input_name=input_name, output_name=output_name,
        input_size=input_size, embedding_dim=embedding_dim, preprocessing=cfg.preprocessing,
        weights={"kind": "file", "seed": None, "sha256": onnx_sha256, "source": str(path)},
        conversion={"seconds": None, "cached": False, "converted": False, "opset": _onnx_opset(path),
                    "onnx_bytes": path.stat().st_size, "parity": None,
                    "parity_note": "not checked: a user-supplied ONNX file has no Keras model to compare with"})


def _onnx_opset(path: Path) -> int | None:
    import onnx  # only here: reading the opset needs the protobuf, not a session

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # the session already loaded it; the opset is informative only
        return None
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None
