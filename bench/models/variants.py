"""Model variants: INT8 and FP16 ONNX files derived from the cached FP32 file, and cached themselves.

``model.precision``:

* ``fp32``: the converted file as is (no variant).
* ``int8``: onnxruntime static quantization: ``quant_pre_process`` (shape inference and graph
  optimisation, as onnxruntime's documentation asks), then ``quantize_static`` in QDQ format,
  calibrated on ``model.calibration_images`` corpus images drawn with ``model.calibration_seed``
  (never the query images, which would leak the evaluation set into the model). ``model.quant``
  sets the rest: by default per-channel, QUInt8 activations, QInt8 weights, MinMax calibration,
  and ``reduce_range=auto`` (7-bit weights on an x86 CPU without VNNI, see :mod:`bench.cpu`).
* ``int8_dynamic``: ``quant_pre_process``, then ``quantize_dynamic`` (``model.quant.weight_type``
  and ``reduce_range``, per tensor; activation ranges computed per batch at run time, so no calibration).
* ``fp16``: float16 weights and compute with float32 inputs and outputs
  (``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)``, the same
  converter as onnxconverter-common's, shipped with onnxruntime).

A variant's cache key is the parent file's hash plus every setting that changes the result: the
precision and its quantization settings, the calibration images' contents, the preprocessing and
input size, and the onnxruntime/onnx versions that did the work. Making a variant records its
seconds, its size and its parity with the parent (same seeded random batch through both).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from bench import cpu
from bench.config import ModelConfig, QuantConfig
from bench.data.dataset import ImageRecord
from bench.data.images import ImageError, record_rgb
from bench.errors import BenchError
from bench.io import atomic_write_text, safe_name, temporary_path
from bench.models.convert import PARITY_BATCH, PARITY_SEED, ConvertedModel, ensure_onnx, parity_metrics, sha256_file
from bench.models.preprocess import get_preprocessor

log = logging.getLogger(__name__)

PRECISIONS = {
    "fp32": "the converted FP32 file as is",
    "int8": "static INT8 (QDQ, per-channel, calibrated on corpus images)",
    "int8_dynamic": "dynamic INT8 (weights quantized, activations at run time)",
    "fp16": "float16 weights and compute, float32 inputs and outputs",
}
QUANT_TYPES = ("QUInt8", "QInt8")
CALIBRATE_METHODS = ("MinMax", "Entropy", "Percentile")
REDUCE_RANGE_CHOICES = ("auto", "true", "false")
CALIBRATION_BATCH = 8  # images per calibration run: MinMax keeps only per-tensor min/max, so memory stays small
SIDECAR_SCHEMA_VERSION = 1


def validate_precision(cfg: ModelConfig) -> None:
    """Checks that need no data: a known precision, a positive calibration set for int8."""
    if cfg.precision not in PRECISIONS:
        raise BenchError(f"model.precision={cfg.precision!r} is not a precision: choose one of "
                         f"{', '.join(PRECISIONS)}")
    if cfg.precision == "int8" and cfg.calibration_images < 1:
        raise BenchError(f"model.calibration_images={cfg.calibration_images} must be at least 1 for "
                         "model.precision=int8")
    validate_quant(cfg.quant)


def validate_quant(quant: QuantConfig) -> None:
    _reduce_range_choice(quant.reduce_range)
    for name, value, choices in (("activation_type", quant.activation_type, QUANT_TYPES),
                                 ("weight_type", quant.weight_type, QUANT_TYPES),
                                 ("calibrate_method", quant.calibrate_method, CALIBRATE_METHODS)):
        if value not in choices:
            raise BenchError(f"model.quant.{name}={value!r} is not one of {', '.join(choices)}")


def _reduce_range_choice(value: Any) -> str:
    choice = str(value).strip().lower()
    if choice not in REDUCE_RANGE_CHOICES:
        raise BenchError(f"model.quant.reduce_range={value!r} must be auto, true or false")
    return choice


def resolve_reduce_range(quant: QuantConfig) -> bool:
    """``auto``: true where the CPU has no INT8 dot product (x86 without VNNI/AMX), whose kernels saturate."""
    choice = _reduce_range_choice(quant.reduce_range)
    if choice == "auto":
        return not cpu.detect()["int8_dot_product"]
    return choice == "true"


def ensure_model(cfg: ModelConfig, corpus: Sequence[ImageRecord],
                 cache_dir: Path) -> tuple[ConvertedModel, Optional[ConvertedModel]]:
    """(the model to run, its FP32 parent or None): the FP32 file for fp32, else its cached variant."""
    validate_precision(cfg)
    calibration = calibration_records(cfg, corpus)  # too many asked for: fail before converting
    parent = ensure_onnx(cfg, cache_dir)
    if cfg.precision == "fp32":
        return parent, None
    return ensure_variant(parent, cfg, calibration, Path(cache_dir)), parent


def calibration_records(cfg: ModelConfig, corpus: Sequence[ImageRecord]) -> list[ImageRecord]:
    """The seeded draw of ``calibration_images`` corpus images (int8 only), sorted by id."""
    if cfg.precision != "int8":
        return []
    n = int(cfg.calibration_images)
    if n > len(corpus):
        raise BenchError(f"model.calibration_images={n} is more than the {len(corpus)} corpus images (queries "
                         f"are never used for calibration): lower model.calibration_images or use more images")
    chosen = np.random.default_rng(cfg.calibration_seed).choice(len(corpus), size=n, replace=False)
    return sorted((corpus[i] for i in chosen.tolist()), key=lambda record: record.image_id)


def variant_settings(cfg: ModelConfig) -> dict[str, Any]:
    """Every setting that shapes the variant file: goes into its cache key and its provenance."""
    precision, quant = cfg.precision, cfg.quant
    if precision in ("int8", "int8_dynamic"):
        # reduce_range as resolved (a bool): the file depends on it, not on how it was chosen.
        reduce_range = {"reduce_range": resolve_reduce_range(quant), "reduce_range_setting": _reduce_range_choice(
            quant.reduce_range)}
    if precision == "int8":
        return {"precision": precision, "method": "quantize_static", "pre_process": "quant_pre_process",
                "quant_format": "QDQ", "per_channel": bool(quant.per_channel), **reduce_range,
                "activation_type": quant.activation_type, "weight_type": quant.weight_type,
                "calibrate_method": quant.calibrate_method, "calibration_images": int(cfg.calibration_images),
                "calibration_seed": int(cfg.calibration_seed), "calibration_batch": CALIBRATION_BATCH}
    if precision == "int8_dynamic":
        return {"precision": precision, "method": "quantize_dynamic", "pre_process": "quant_pre_process",
                "per_channel": False, **reduce_range, "weight_type": quant.weight_type}
    if precision == "fp16":
        return {"precision": precision, "method": "onnxruntime.transformers.float16.convert_float_to_float16",
                "keep_io_types": True}
    return {"precision": precision}


def ensure_variant(parent: ConvertedModel, cfg: ModelConfig, calibration: Sequence[ImageRecord],
                   cache_dir: Path) -> ConvertedModel:
    """The ``cfg.precision`` variant of ``parent``: from the cache when present, else made and cached."""
    settings = variant_settings(cfg)
    calibration_files = [_file_identity(record) for record in calibration]
    key = _cache_key(parent, settings, calibration_files)
    stem = f"{parent.onnx_path.stem}-{safe_name(cfg.precision)}-{key[:12]}"
    onnx_path, sidecar_path = cache_dir / f"{stem}.onnx", cache_dir / f"{stem}.json"
    cached = _load_cached(parent, onnx_path, sidecar_path, key)
    if cached is not None:
        log.info("variant cache hit: %s", onnx_path)
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    return _make_variant(parent, cfg, settings, calibration, calibration_files, key, onnx_path, sidecar_path)


# ---------------------------------------------------------------------------------------------
# Making a variant


def _make_variant(parent: ConvertedModel, cfg: ModelConfig, settings: dict, calibration: Sequence[ImageRecord],
                  calibration_files: list[dict], key: str, onnx_path: Path, sidecar_path: Path) -> ConvertedModel:
    step = _Steps(parent.name, cfg.precision)
    work = temporary_path(onnx_path)  # a scratch folder beside the target, renamed from on success
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        made = work / "variant.onnx"
        seconds = _write_variant(parent, settings, calibration, work, made, step)
        t0 = time.perf_counter()
        parity = step("the parity check against the FP32 model", _parity, parent, made)
        seconds["parity_s"] = time.perf_counter() - t0
        onnx_sha256, onnx_bytes = sha256_file(made), made.stat().st_size
        os.replace(made, onnx_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    variant = {
        "precision": cfg.precision, "settings": settings, "key": key, "seconds": time.perf_counter() - started,
        "steps_s": seconds, "onnx_bytes": onnx_bytes, "parent": parent.name,
        "parent_onnx_sha256": parent.onnx_sha256, "parent_onnx_bytes": parent.onnx_path.stat().st_size,
        "size_ratio": onnx_bytes / parent.onnx_path.stat().st_size, "parity": parity,
        "calibration": calibration_files,
        "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__},
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    sidecar = {"schema_version": SIDECAR_SCHEMA_VERSION, "onnx_file": onnx_path.name, "onnx_sha256": onnx_sha256,
               "variant": variant}
    atomic_write_text(sidecar_path, json.dumps(sidecar, indent=2))
    log.info("made the %s variant of %s in %.1f s -> %s (%.1f MB, %.2fx the FP32 size; parity vs FP32: "
             "max_rel_diff %.1e, min_cosine %.5f)", cfg.precision, parent.name, variant["seconds"], onnx_path,
             onnx_bytes / 1e6, variant["size_ratio"], parity["max_rel_diff"], parity["min_cosine"])
    _warn_on_zero_outputs(parent, cfg.precision, parity)
    return _as_model(parent, onnx_path, onnx_sha256, {**variant, "cached": False, "sidecar": str(sidecar_path)})


def _write_variant(parent: ConvertedModel, settings: dict, calibration: Sequence[ImageRecord], work: Path,
                   out: Path, step: "_Steps") -> dict[str, float]:
    """Write the variant of ``parent`` (as ``settings`` describe it) to ``out``; returns the seconds of each step."""
    # Imported here: the quantization tools load sympy and more, which fp32 runs never need.
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    precision = settings["precision"]
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        def to_fp16() -> None:
            onnx.save(convert_float_to_float16(onnx.load(str(parent.onnx_path)), keep_io_types=True), str(out))

        step("the float16 conversion", to_fp16)
        seconds["convert_s"] = time.perf_counter() - t0
        return seconds

    prepared = work / "pre_processed.onnx"
    step("pre-processing (quant_pre_process)", quant_pre_process, str(parent.onnx_path), str(prepared))
    seconds["pre_process_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if precision == "int8_dynamic":
        step("quantize_dynamic", quantize_dynamic, str(prepared), str(out), per_channel=settings["per_channel"],
             reduce_range=settings["reduce_range"], weight_type=QuantType[settings["weight_type"]])
        seconds["quantize_s"] = time.perf_counter() - t0
        return seconds
    batches = step("decoding the calibration images", _calibration_batches, parent, calibration)
    seconds["calibration_decode_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    step("quantize_static (calibration and quantization)", quantize_static, str(prepared), str(out),
         _BatchReader(parent.input_name, batches), quant_format=QuantFormat.QDQ, per_channel=settings["per_channel"],
         reduce_range=settings["reduce_range"], activation_type=QuantType[settings["activation_type"]],
         weight_type=QuantType[settings["weight_type"]],
         calibrate_method=CalibrationMethod[settings["calibrate_method"]])
    seconds["quantize_s"] = time.perf_counter() - t0
    return seconds


def _calibration_batches(parent: ConvertedModel, records: Sequence[ImageRecord]) -> list[np.ndarray]:
    """The calibration images decoded and preprocessed exactly as the embedding loop does it."""
    preprocess = get_preprocessor(parent.preprocessing)
    images, unreadable = [], []
    for record in records:
        try:
            images.append(record_rgb(record, parent.input_size))
        except ImageError as err:
            unreadable.append(f"{record.path}: {err}")
    if unreadable:
        log.warning("%d of %d calibration images could not be read and are left out (first: %s)",
                    len(unreadable), len(records), unreadable[0])
    if not images:
        raise BenchError("none of the calibration images could be read")
    return [np.ascontiguousarray(preprocess(np.stack(images[i:i + CALIBRATION_BATCH])), dtype=np.float32)
            for i in range(0, len(images), CALIBRATION_BATCH)]


class _BatchReader:
    """onnxruntime's CalibrationDataReader protocol: ``get_next()`` feeds, then None."""

    def __init__(self, input_name: str, batches: list[np.ndarray]):
        self._feeds = iter([{input_name: batch} for batch in batches])

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        return next(self._feeds, None)


def _parity(parent: ConvertedModel, variant_path: Path) -> dict:
    """Parent and variant on the same seeded random batch (onnxruntime CPU, default settings)."""
    rng = np.random.default_rng(PARITY_SEED)
    pixels = rng.integers(0, 256, size=(PARITY_BATCH, parent.input_size, parent.input_size, 3), dtype=np.uint8)
    batch = np.ascontiguousarray(get_preprocessor(parent.preprocessing)(pixels), dtype=np.float32)
    outputs = []
    for path in (parent.onnx_path, variant_path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        if names != [parent.input_name]:
            raise BenchError(f"the variant's inputs are {names}, the FP32 model's [{parent.input_name}]")
        outputs.append(np.asarray(session.run([parent.output_name], {parent.input_name: batch})[0], np.float64))
    expected, actual = outputs
    if actual.shape != expected.shape:
        raise BenchError(f"the variant outputs shape {list(actual.shape)}, the FP32 model {list(expected.shape)}")
    if not np.all(np.isfinite(actual)):
        raise BenchError("the variant's outputs are not finite (NaN or inf)")
    parity = parity_metrics(expected, actual)
    parity["zero_rows"] = int(np.count_nonzero(~np.any(actual != 0, axis=1)))
    return parity


def _warn_on_zero_outputs(parent: ConvertedModel, precision: str, parity: dict) -> None:
    if parity.get("zero_rows"):
        log.warning("the %s variant of %s outputs all-zero embeddings for %d of %d parity inputs (the FP32 model's "
                    "largest output is %.2g: float16 cannot hold values below 6e-8); its fidelity will show it",
                    precision, parent.name, parity["zero_rows"], parity["batch"], parity["max_abs_output"])


class _Steps:
    """Runs one step of making a variant; any failure becomes a BenchError naming model and step."""

    def __init__(self, model: str, precision: str):
        self.model, self.precision = model, precision

    def __call__(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as err:  # onnx, onnxruntime and the quantizer raise many types
            detail = " ".join(str(err).split())[:300] or type(err).__name__
            raise BenchError(f"making the {self.precision} variant of {self.model} failed at {what}: {detail}") from err


# ---------------------------------------------------------------------------------------------
# Cache


def _file_identity(record: ImageRecord) -> dict:
    """A calibration image by content, so a regenerated identical sample keeps its cache hit."""
    if record.pixels is not None:
        return {"image_id": int(record.image_id), "name": Path(record.path).name, "sha256": record.pixels_sha256()}
    try:
        digest = sha256_file(Path(record.path))
    except OSError:
        digest = None  # unreadable now: decoding will say so; the key still changes when it appears
    return {"image_id": int(record.image_id), "name": Path(record.path).name, "sha256": digest}


def _cache_key(parent: ConvertedModel, settings: dict, calibration_files: list[dict]) -> str:
    payload = {"parent": parent.onnx_sha256, "settings": settings, "preprocessing": parent.preprocessing,
               "input_size": int(parent.input_size),
               "calibration": [[f["image_id"], f["sha256"]] for f in calibration_files],
               "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _load_cached(parent: ConvertedModel, onnx_path: Path, sidecar_path: Path, key: str) -> Optional[ConvertedModel]:
    if not (onnx_path.exists() and sidecar_path.exists()):
        return None
    try:
        sidecar = json.loads(sidecar_path.read_text())
        variant = dict(sidecar["variant"])
        onnx_sha256 = str(sidecar["onnx_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("ignoring unreadable variant sidecar %s (%s)", sidecar_path, err)
        return None
    if variant.get("key") != key or variant.get("parent_onnx_sha256") != parent.onnx_sha256:
        return None
    if onnx_path.stat().st_size != variant.get("onnx_bytes"):
        log.warning("ignoring %s: its size does not match its sidecar (interrupted write?)", onnx_path)
        return None
    return _as_model(parent, onnx_path, onnx_sha256, {**variant, "cached": True, "sidecar": str(sidecar_path)})


def _as_model(parent: ConvertedModel, onnx_path: Path, onnx_sha256: str, variant: dict) -> ConvertedModel:
    # Same inputs, outputs, preprocessing and weights as the parent; its own name, file and hash, so
    # embeddings, collections and report rows never mix it up with the FP32 model.
    return replace(parent, name=f"{parent.name}-{variant['precision']}", onnx_path=onnx_path,
                   onnx_sha256=onnx_sha256, variant=variant)
