"""Images -> L2-normalised embeddings with onnxruntime, with throughput stats and an on-disk cache.

Embedding the corpus is the slowest step after conversion, so results are cached under a key that
changes whenever anything that could change a vector changes: the ONNX file's hash, the
preprocessing, the preprocess hook, the input size, and every image's id, path, size and mtime.
A cache hit returns the stats measured by the run that computed the vectors, marked as such.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from bench.config import ModelConfig, RuntimeConfig
from bench.data.dataset import ImageRecord, Skip
from bench.data.images import ImageError, load_rgb
from bench.errors import BenchError
from bench.measure.timing import summarize_latencies
from bench.models.convert import ConvertedModel
from bench.models.preprocess import get_preprocessor
from bench.models.runtime import cache_tag, describe_session, make_session

log = logging.getLogger(__name__)

LATENCY_SAMPLES = 16  # batch-1 inferences timed after the main pass
LATENCY_WARMUP = 2
CACHE_SCHEMA_VERSION = 1

Hook = Callable[[np.ndarray], Optional[np.ndarray]]


@dataclass
class Embeddings:
    image_ids: np.ndarray  # int64 (n,), in the order the computing run saw the images; map rows by id
    vectors: np.ndarray  # float32 (n, d), unit L2 norm (an all-zero model output stays zero)
    skipped: list[Skip]  # images that could not be decoded, with the reason
    stats: dict
    cached: bool


def embed_images(model: ConvertedModel, images: Sequence[ImageRecord], cfg: ModelConfig,
                 cache_dir: Path, runtime: Optional[RuntimeConfig] = None) -> Embeddings:
    """Embed ``images`` with ``model``, or return the cached result of an identical earlier run."""
    cache_dir = Path(cache_dir)
    preprocess = get_preprocessor(model.preprocessing)
    hook = load_preprocess_hook(cfg.preprocess_hook)
    key = embedding_cache_key(model, images, cfg.preprocess_hook, cache_tag(runtime))
    npz_path, sidecar_path = _cache_paths(model.name, key, cache_dir)

    cached = _load_cached(npz_path, sidecar_path, key, model.embedding_dim)
    if cached is not None:
        log.info("embedding cache hit: %s (%d vectors, stats measured %s)", npz_path, len(cached.image_ids),
                 cached.stats.get("measured_at"))
        return cached

    result = _embed(model, images, cfg, preprocess, hook, runtime)
    result.stats["cache_key"] = key
    cache_dir.mkdir(parents=True, exist_ok=True)
    _save(npz_path, sidecar_path, key, model, result)
    return result


def load_preprocess_hook(spec: Optional[str]) -> Optional[Hook]:
    """Import ``"module:function"``; the function gets each preprocessed float32 batch.

    It returns the batch to feed the model (or None to feed the batch it was given). Its time is
    counted as preprocessing. Tests use it to inject a deliberate slowdown and check that the
    stats put the time where it belongs; shipped configs never set it.
    """
    if not spec:
        return None
    module_name, sep, func_name = spec.partition(":")
    if not (sep and module_name and func_name):
        raise BenchError(f"model.preprocess_hook={spec!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BenchError(f"model.preprocess_hook={spec!r}: cannot import {module_name} ({err})") from err
    func = getattr(module, func_name, None)
    if not callable(func):
        raise BenchError(f"model.preprocess_hook={spec!r}: {module_name} has no function {func_name}")
    return func


def embedding_cache_key(model: ConvertedModel, images: Sequence[ImageRecord], hook: Optional[str],
                        runtime_tag: str = "") -> str:
    """Changes whenever the model, preprocessing or any image file (by path, size, mtime) changes."""
    files = []
    for record in images:
        try:
            st = os.stat(record.path)
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime_ns = -1, -1  # missing now: becomes a skip, and the key notices when it appears
        files.append((int(record.image_id), str(record.path), size, mtime_ns))
    payload = json.dumps([model.onnx_sha256, model.preprocessing, hook, int(model.input_size), sorted(files)]
                         + ([runtime_tag] if runtime_tag else []))  # the default runtime keeps the old keys
    return hashlib.sha256(payload.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------


def _embed(model: ConvertedModel, images: Sequence[ImageRecord], cfg: ModelConfig,
           preprocess: Callable[[np.ndarray], np.ndarray], hook: Optional[Hook],
           runtime: Optional[RuntimeConfig] = None) -> Embeddings:
    session = make_session(model.onnx_path, runtime)
    size = model.input_size
    batch_size = max(1, int(cfg.batch_size))

    # One untimed run first: onnxruntime allocates and plans on the first call of a shape.
    t0 = time.perf_counter()
    _infer(session, model, np.zeros((batch_size, size, size, 3), dtype=np.float32))
    warmup_s = time.perf_counter() - t0

    ids: list[int] = []
    chunks: list[np.ndarray] = []
    skipped: list[Skip] = []
    latency_inputs: list[np.ndarray] = []  # preprocessed single images for the batch-1 latency run
    decode_preprocess_s = inference_s = 0.0
    pending_images: list[np.ndarray] = []
    pending_ids: list[int] = []

    def flush() -> None:
        nonlocal decode_preprocess_s, inference_s
        if not pending_images:
            return
        t0 = time.perf_counter()
        batch = preprocess(np.stack(pending_images))
        if hook is not None:
            hooked = hook(batch)
            batch = batch if hooked is None else hooked
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        t1 = time.perf_counter()
        output = _infer(session, model, batch)
        t2 = time.perf_counter()
        decode_preprocess_s += t1 - t0
        inference_s += t2 - t1
        chunks.append(output)
        ids.extend(pending_ids)
        for row in batch[: LATENCY_SAMPLES - len(latency_inputs)]:
            latency_inputs.append(row[np.newaxis].copy())
        pending_images.clear()
        pending_ids.clear()

    started = time.perf_counter()
    with tqdm(total=len(images), unit="img", desc=f"embed {model.name}", disable=None) as bar:
        for record in images:
            t0 = time.perf_counter()
            try:
                pending_images.append(load_rgb(record.path, size))
                pending_ids.append(int(record.image_id))
            except ImageError as err:
                skipped.append(Skip(path=str(record.path), reason=str(err)))
            decode_preprocess_s += time.perf_counter() - t0
            bar.update(1)
            if len(pending_images) >= batch_size:
                flush()
        flush()
    total_s = time.perf_counter() - started

    raw = np.concatenate(chunks) if chunks else np.zeros((0, model.embedding_dim), dtype=np.float32)
    vectors, zero_norms = _l2_normalise(raw)
    latencies = _batch1_latencies(session, model, latency_inputs)
    if skipped:
        log.warning("%d of %d images could not be read and were skipped (first: %s: %s)", len(skipped),
                    len(images), skipped[0].path, skipped[0].reason)
    if zero_norms:
        log.warning("%d embeddings are all zeros (or not finite) and stay unnormalised", zero_norms)

    n = len(ids)
    stats = {
        "num_images": len(images), "num_embedded": n, "num_skipped": len(skipped),
        "batch_size": batch_size,
        "images_per_s_end_to_end": n / total_s if n and total_s > 0 else None,
        "images_per_s_inference": n / inference_s if n and inference_s > 0 else None,
        "seconds": {"decode_preprocess_s": decode_preprocess_s, "inference_s": inference_s, "total_s": total_s,
                    "warmup_s": warmup_s},
        "batch1_latency": summarize_latencies(latencies),
        "zero_norm_vectors": zero_norms,
        "preprocessing": model.preprocessing, "preprocess_hook": cfg.preprocess_hook,
        "input_size": size, "embedding_dim": model.embedding_dim,
        **describe_session(session, runtime),  # provider, device, threads, onnxruntime version
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "from_cache": False,
    }
    return Embeddings(image_ids=np.asarray(ids, dtype=np.int64), vectors=vectors, skipped=skipped, stats=stats,
                      cached=False)


def _infer(session: ort.InferenceSession, model: ConvertedModel, batch: np.ndarray) -> np.ndarray:
    output = session.run([model.output_name], {model.input_name: batch})[0]
    if output.ndim != 2 or output.shape[1] != model.embedding_dim:
        raise BenchError(f"{model.onnx_path} returned shape {list(output.shape)}, expected (batch, "
                         f"{model.embedding_dim}): check model.embedding_dim and model.pooling")
    return np.asarray(output, dtype=np.float32)


def _l2_normalise(raw: np.ndarray) -> tuple[np.ndarray, int]:
    # float64 norms: random-weight models can output values near 1e-12, whose squares are
    # close to float32's smallest normal numbers.
    as64 = raw.astype(np.float64)
    norms = np.linalg.norm(as64, axis=1, keepdims=True)
    usable = np.isfinite(norms) & (norms > 0)
    vectors = np.where(usable, as64 / np.where(usable, norms, 1.0), as64)
    return vectors.astype(np.float32), int(np.count_nonzero(~usable))


def _batch1_latencies(session: ort.InferenceSession, model: ConvertedModel,
                      inputs: list[np.ndarray]) -> list[float]:
    if not inputs:
        return []
    for _ in range(LATENCY_WARMUP):
        _infer(session, model, inputs[0])
    latencies = []
    for single in inputs:
        t0 = time.perf_counter()
        _infer(session, model, single)
        latencies.append(time.perf_counter() - t0)
    return latencies


# ---------------------------------------------------------------------------------------------
# Cache


def _cache_paths(model_name: str, key: str, cache_dir: Path) -> tuple[Path, Path]:
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', model_name)}-{key[:16]}"
    return cache_dir / f"{stem}.npz", cache_dir / f"{stem}.json"


def _load_cached(npz_path: Path, sidecar_path: Path, key: str, embedding_dim: int) -> Embeddings | None:
    if not (npz_path.exists() and sidecar_path.exists()):
        return None
    try:
        sidecar = json.loads(sidecar_path.read_text())
        if sidecar.get("key") != key:
            return None
        with np.load(npz_path) as data:
            image_ids = data["image_ids"].astype(np.int64)
            vectors = data["vectors"].astype(np.float32)
        stats = dict(sidecar["stats"])
        skipped = [Skip(path=s["path"], reason=s["reason"]) for s in sidecar["skipped"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("ignoring unreadable embedding cache %s (%s)", npz_path, err)
        return None
    if vectors.shape != (len(image_ids), embedding_dim):
        log.warning("ignoring embedding cache %s: shape %s does not fit %d ids of dim %d", npz_path,
                    vectors.shape, len(image_ids), embedding_dim)
        return None
    stats["from_cache"] = True  # the timings describe the run at measured_at, not this one
    stats["cache_path"] = str(npz_path)
    return Embeddings(image_ids=image_ids, vectors=vectors, skipped=skipped, stats=stats, cached=True)


def _save(npz_path: Path, sidecar_path: Path, key: str, model: ConvertedModel, result: Embeddings) -> None:
    # Write to temporary names and rename: an interrupted run never leaves a half-written cache.
    # The sidecar goes last, and a hit needs it, so a crash between the two is a miss.
    tmp_npz = npz_path.with_name(f".{npz_path.name}.{os.getpid()}.tmp")
    with open(tmp_npz, "wb") as f:  # a file object keeps np.savez from appending ".npz"
        np.savez(f, image_ids=result.image_ids, vectors=result.vectors)
    os.replace(tmp_npz, npz_path)
    sidecar = {
        "schema_version": CACHE_SCHEMA_VERSION, "key": key, "model": model.name,
        "onnx_sha256": model.onnx_sha256, "stats": result.stats,
        "skipped": [{"path": s.path, "reason": s.reason} for s in result.skipped],
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    tmp_json = sidecar_path.with_name(f".{sidecar_path.name}.{os.getpid()}.tmp")
    tmp_json.write_text(json.dumps(sidecar, indent=2))
    os.replace(tmp_json, sidecar_path)
    result.stats["cache_path"] = str(npz_path)
