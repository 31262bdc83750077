"""Images -> L2-normalised embeddings with onnxruntime, with throughput stats and an on-disk cache.

Embedding the corpus is the slowest step after conversion, so results are cached under a key that
changes whenever anything that could change a vector changes: the ONNX file's hash, the
preprocessing, the preprocess hook, the JPEG decoding mode, the input size, and every image's id,
path, size and mtime. A cache hit returns the stats measured by the run that computed the vectors,
marked as such.

The cache is written in shards as embedding goes (bench.models.shards), so an interrupted run
resumes where it stopped, and the vectors go straight into one preallocated array: memory grows
with the result alone, never with per-image Python objects. An engine (bench.models.engines:
this process, or Ray Data actors) does the embedding; the cache, its key and the stats are the
same whichever ran, so a run on one engine resumes a run on the other.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from bench.config import ModelConfig, RuntimeConfig
from bench.data.dataset import ImageRecord, Skip
from bench.measure.clock import current_rss_mib, peak_rss_mib
from bench.models.convert import ConvertedModel
from bench.models.engines import engine_runner, validate_engine
from bench.models.engines.base import EmbedJob
from bench.models.loader import resolve_workers
from bench.models.preprocess import get_preprocessor, load_preprocess_hook
from bench.models.runtime import cache_tag
from bench.models.shards import ShardStore, Stored, run_segments

log = logging.getLogger(__name__)

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
    runtime = runtime or RuntimeConfig()
    preprocess = get_preprocessor(model.preprocessing)
    hook = load_preprocess_hook(cfg.preprocess_hook)
    resolve_workers(cfg.decode_workers)  # checked here too: a cache hit must not hide a bad setting
    validate_engine(runtime)
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
    return _embed(EmbedJob(engine=runtime.engine, model=model, images=images, cfg=cfg, runtime=runtime,
                           preprocess=preprocess, hook=hook, store=store, stored=stored))


def embedding_cache_key(model: ConvertedModel, images: Sequence[ImageRecord], hook: Optional[str],
                        jpeg_draft: bool = False, runtime_tag: str = "") -> str:
    """Changes whenever the model, preprocessing, decoding, runtime or any image file (by path, size, mtime) changes."""
    files = []
    for record in images:
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


def _embed(job: EmbedJob) -> Embeddings:
    """Run the configured engine over the images the cache lacks, then write the manifest and the stats."""
    done = job.stored.done_ids
    rss_before_mb = current_rss_mib()
    run = engine_runner(job.engine)(job)
    writer, stored, images, model = run.writer, job.stored, job.images, job.model

    skipped = stored.skipped + [s for shard in writer.saved for s in shard.skipped]
    zero_norms = stored.zero_norms + writer.zero_norms
    if skipped:
        log.warning("%d of %d images could not be read and were skipped (first: %s: %s)", len(skipped),
                    len(images), skipped[0].path, skipped[0].reason)
    if zero_norms:
        log.warning("%d embeddings are all zeros (or not finite) and stay unnormalised", zero_norms)

    n, mine = writer.rows, writer.embedded
    shards = stored.shards + writer.saved
    stats = {
        "num_images": len(images), "num_embedded": n, "num_skipped": len(skipped),
        "batch_size": job.batch_size,
        # This run's own images over this run's own time: a resumed run is not credited with earlier runs' work.
        "images_per_s_end_to_end": mine / run.total_s if mine and run.total_s > 0 else None,
        "images_per_s_inference": mine / run.inference_s if mine and run.inference_s > 0 else None,
        "seconds": run.seconds,
        "batch1_latency": run.batch1_latency,
        "spread": run.spread,
        "zero_norm_vectors": zero_norms,
        "preprocessing": model.preprocessing, "preprocess_hook": job.cfg.preprocess_hook,
        "input_size": model.input_size, "embedding_dim": model.embedding_dim,
        **run.session,  # provider, device, threads, onnxruntime version
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "from_cache": False,
        "num_embedded_this_run": mine,
        "resumed": {"images_done_before": len(done), "vectors_before": stored.num_vectors} if stored.shards else None,
        "runs": run_segments(shards),
        **run.extra,  # the engine's own figures: the local loader, or Ray's actors and overheads
        "shards": {"count": len(shards), "max_images": job.cfg.shard_images, "max_seconds": job.cfg.shard_seconds},
        "rss_before_mb": rss_before_mb, "peak_rss_mb": peak_rss_mib(),
        "cache_key": job.store.key, "cache_path": str(job.store.folder),
    }
    job.store.write_manifest([s.path.name for s in shards], stats, skipped, model.name, model.onnx_sha256)
    return Embeddings(image_ids=writer.image_ids[:n], vectors=writer.vectors[:n], skipped=skipped, stats=stats,
                      cached=False)


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
