"""Images -> L2-normalised embeddings with onnxruntime, with throughput stats and an on-disk cache.

Embedding the corpus is the slowest step after conversion, so results are cached under a key that
changes whenever anything that could change a vector changes: the ONNX file's hash, the
preprocessing, the preprocess hook, the JPEG decoding mode, the input size, and every image's id,
path, size and mtime. A cache hit returns the stats measured by the run that computed the vectors,
marked as such.

The cache is written in shards as embedding goes (bench.models.shards), so an interrupted run
resumes where it stopped, and the vectors go straight into one preallocated array: memory grows
with the result alone, never with per-image Python objects. Decoding and preprocessing run ahead
of inference in worker threads (bench.models.loader).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from bench.config import ModelConfig, RuntimeConfig
from bench.data.dataset import ImageRecord, Skip
from bench.errors import BenchError
from bench.measure.clock import Stopwatch, current_rss_mib, peak_rss_mib, timed
from bench.measure.statistics import embedding_spread
from bench.measure.timing import summarize_latencies
from bench.models.convert import ConvertedModel
from bench.models.loader import BATCHES_AHEAD_PER_WORKER, BatchDecoder, BatchLoader, LoaderTimes, resolve_workers
from bench.models.preprocess import get_preprocessor
from bench.models.runtime import cache_tag, describe_session, make_session
from bench.models.shards import ShardStore, ShardWriter, Stored, run_segments

log = logging.getLogger(__name__)

LATENCY_SAMPLES = 16  # batch-1 inferences timed after the main pass
LATENCY_WARMUP = 2

Hook = Callable[[np.ndarray], Optional[np.ndarray]]


@dataclass
class Embeddings:
    image_ids: np.ndarray  # int64 (n,), in the order the computing runs saw the images; map rows by id
    vectors: np.ndarray  # float32 (n, d), unit L2 norm (an all-zero model output stays zero)
    skipped: list[Skip]  # images that could not be decoded, with the reason
    stats: dict
    cached: bool


def embed_images(model: ConvertedModel, images: Sequence[ImageRecord], cfg: ModelConfig,
                 cache_dir: Path, runtime: Optional[RuntimeConfig] = None) -> Embeddings:
    """Embed ``images`` with ``model``: the cached result of an identical earlier run, or the rest
    of an interrupted one, or all of them."""
    preprocess = get_preprocessor(model.preprocessing)
    hook = load_preprocess_hook(cfg.preprocess_hook)
    workers = resolve_workers(cfg.decode_workers)
    key = embedding_cache_key(model, images, cfg.preprocess_hook, cfg.jpeg_draft, cache_tag(runtime))
    store = ShardStore(_cache_folder(model.name, key, Path(cache_dir)), key, model.embedding_dim)
    stored = store.read()
    if stored.manifest is not None:
        hit = _cache_hit(store, stored)
        log.info("embedding cache hit: %s (%d vectors, stats measured %s)", store.folder, len(hit.image_ids),
                 hit.stats.get("measured_at"))
        return hit
    if stored.shards:
        done = len(stored.done_ids)
        log.info("resuming: %s of %s images already embedded (%d shards in %s)", f"{done:,}", f"{len(images):,}",
                 len(stored.shards), store.folder)
    return _embed(model, images, cfg, preprocess, hook, store, stored, workers, runtime)


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
                        jpeg_draft: bool = False, runtime_tag: str = "") -> str:
    """Changes whenever the model, preprocessing, decoding, runtime or any image (a file by path, size and mtime;
    in-memory pixels by content) changes."""
    files = []
    for record in images:
        if record.pixels is not None:  # held in memory (Fashion-MNIST): identified by content
            files.append((int(record.image_id), str(record.path), record.pixels_sha256(), 0))
            continue
        try:
            st = os.stat(record.path)
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime_ns = -1, -1  # missing now: becomes a skip, and the key notices when it appears
        files.append((int(record.image_id), str(record.path), size, mtime_ns))
    payload = json.dumps([model.onnx_sha256, model.preprocessing, hook, int(model.input_size), sorted(files),
                          {"jpeg_draft": bool(jpeg_draft)}]
                         + ([runtime_tag] if runtime_tag else []))  # the default runtime adds nothing
    return hashlib.sha256(payload.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------


def _embed(model: ConvertedModel, images: Sequence[ImageRecord], cfg: ModelConfig,
           preprocess: Callable[[np.ndarray], np.ndarray], hook: Optional[Hook], store: ShardStore,
           stored: Stored, workers: int, runtime: Optional[RuntimeConfig] = None) -> Embeddings:
    session = make_session(model.onnx_path, runtime)
    size = model.input_size
    batch_size = max(1, int(cfg.batch_size))

    # One untimed run first: onnxruntime allocates and plans on the first call of a shape.
    warmup_s, _ = timed(infer, session, model, np.zeros((batch_size, size, size, 3), dtype=np.float32))

    rss_before_mb = current_rss_mib()
    done = stored.done_ids
    todo = [r for r in images if int(r.image_id) not in done]
    writer = ShardWriter(store, stored, capacity=len(images), dim=model.embedding_dim,
                         max_images=cfg.shard_images, max_seconds=cfg.shard_seconds)
    loader = BatchLoader(todo, batch_size, BatchDecoder(size, preprocess, hook, cfg.jpeg_draft), workers)
    run = _RunClock()
    latency_inputs: list[np.ndarray] = []  # preprocessed single images for the batch-1 latency run
    per_batch: list[dict[str, float]] = []  # for the spread of images/s across batches
    batch_watch = Stopwatch()
    with loader, tqdm(total=len(images), initial=len(images) - len(todo), unit="img", desc=f"embed {model.name}",
                      disable=None) as bar:
        try:
            for batch in loader:
                vectors, zero_norms = np.empty((0, model.embedding_dim), dtype=np.float32), 0
                if len(batch.image_ids):
                    inference_s, output = timed(infer, session, model, batch.pixels)
                    run.inference_s += inference_s
                    vectors, zero_norms = l2_normalise(output)
                    per_batch.append({"images": len(batch.image_ids), "wall_s": batch_watch.lap(),
                                      "inference_s": inference_s})
                writer.add(batch.image_ids, vectors, batch.skipped, zero_norms)
                for row in batch.pixels[: LATENCY_SAMPLES - len(latency_inputs)]:
                    latency_inputs.append(row[np.newaxis].copy())
                bar.update(batch.num_records)
                if writer.due():
                    writer.save(run.progress(writer, loader.times))
        except BaseException:
            # Interrupted (signal, crash): keep every batch already inferred, then let it propagate.
            try:
                writer.save(run.progress(writer, loader.times))
            except Exception as err:  # never hide the interrupt behind a failed save
                log.warning("could not save the last embedding shard (%s)", err)
            raise
        writer.save(run.progress(writer, loader.times))
    total_s = run.elapsed()
    latencies = _batch1_latencies(session, model, latency_inputs)

    skipped = stored.skipped + [s for shard in writer.saved for s in shard.skipped]
    zero_norms = stored.zero_norms + writer.zero_norms
    if skipped:
        log.warning("%d of %d images could not be read and were skipped (first: %s: %s)", len(skipped),
                    len(images), skipped[0].path, skipped[0].reason)
    if zero_norms:
        log.warning("%d embeddings are all zeros (or not finite) and stay unnormalised", zero_norms)

    n, mine, times = writer.rows, writer.embedded, loader.times
    shards = stored.shards + writer.saved
    stats = {
        "num_images": len(images), "num_embedded": n, "num_skipped": len(skipped),
        "batch_size": batch_size,
        # This run's own images over this run's own time: a resumed run is not credited with earlier runs' work.
        "images_per_s_end_to_end": mine / total_s if mine and total_s > 0 else None,
        "images_per_s_inference": mine / run.inference_s if mine and run.inference_s > 0 else None,
        "seconds": {"decode_preprocess_s": times.decode_s + times.preprocess_s, "inference_s": run.inference_s,
                    "total_s": total_s, "warmup_s": warmup_s, "decode_s": times.decode_s,
                    "preprocess_s": times.preprocess_s, "loader_wait_s": times.wait_s},
        "batch1_latency": summarize_latencies(latencies),
        "spread": embedding_spread(per_batch),
        "zero_norm_vectors": zero_norms,
        "preprocessing": model.preprocessing, "preprocess_hook": cfg.preprocess_hook,
        "input_size": size, "embedding_dim": model.embedding_dim,
        **describe_session(session, runtime),  # provider, device, threads, onnxruntime version
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "from_cache": False,
        "num_embedded_this_run": mine,
        "resumed": {"images_done_before": len(done), "vectors_before": stored.num_vectors} if stored.shards else None,
        "runs": run_segments(shards),
        # decode and preprocess seconds are summed over worker threads, overlapping inference;
        # loader_wait_s is the part inference had to wait for.
        "loader": {"decode_workers": workers, "batches_ahead": BATCHES_AHEAD_PER_WORKER * workers,
                   "jpeg_draft": bool(cfg.jpeg_draft)},
        "shards": {"count": len(shards), "max_images": cfg.shard_images, "max_seconds": cfg.shard_seconds},
        "rss_before_mb": rss_before_mb, "peak_rss_mb": peak_rss_mib(),
        "cache_key": store.key, "cache_path": str(store.folder),
    }
    store.write_manifest([s.path.name for s in shards], stats, skipped, model.name, model.onnx_sha256)
    return Embeddings(image_ids=writer.image_ids[:n], vectors=writer.vectors[:n], skipped=skipped, stats=stats,
                      cached=False)


class _RunClock:
    """This run's identity and cumulative timings, saved with every shard it writes."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._watch = Stopwatch()
        self.inference_s = 0.0

    def elapsed(self) -> float:
        return self._watch.elapsed()

    def progress(self, writer: ShardWriter, times: LoaderTimes) -> dict[str, Any]:
        return {"run_id": self.run_id, "started_at": self.started_at, "embedded": writer.embedded,
                "skipped": writer.skipped,
                "seconds": {"total_s": self.elapsed(), "inference_s": self.inference_s, "decode_s": times.decode_s,
                            "preprocess_s": times.preprocess_s, "loader_wait_s": times.wait_s}}


def infer(session: ort.InferenceSession, model: ConvertedModel, batch: np.ndarray) -> np.ndarray:
    output = session.run([model.output_name], {model.input_name: batch})[0]
    if output.ndim != 2 or output.shape[1] != model.embedding_dim:
        raise BenchError(f"{model.onnx_path} returned shape {list(output.shape)}, expected (batch, "
                         f"{model.embedding_dim}): check model.embedding_dim and model.pooling")
    return np.asarray(output, dtype=np.float32)


def l2_normalise(raw: np.ndarray) -> tuple[np.ndarray, int]:
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
        infer(session, model, inputs[0])
    return [timed(infer, session, model, single)[0] for single in inputs]


# ---------------------------------------------------------------------------------------------
# Cache


def _cache_folder(model_name: str, key: str, cache_dir: Path) -> Path:
    return cache_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', model_name)}-{key[:16]}"


def _cache_hit(store: ShardStore, stored: Stored) -> Embeddings:
    manifest = stored.manifest
    image_ids = np.empty(stored.num_vectors, dtype=np.int64)
    vectors = np.empty((stored.num_vectors, store.dim), np.float32)
    store.assemble(stored, image_ids, vectors)
    stats = dict(manifest["stats"])
    stats["from_cache"] = True  # the timings describe the run(s) at measured_at, not this one
    stats["cache_path"] = str(store.folder)
    skipped = [Skip(path=s["path"], reason=s["reason"]) for s in manifest["skipped"]]
    return Embeddings(image_ids=image_ids, vectors=vectors, skipped=skipped, stats=stats, cached=True)
