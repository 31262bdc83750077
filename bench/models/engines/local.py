"""runtime.engine=local: one onnxruntime session in this process, fed by decoding threads (bench.models.loader)."""
from __future__ import annotations

import logging
import time

import numpy as np
from tqdm import tqdm

from bench.models.engines.base import EmbedJob, EngineRun, RunClock, ShardSaving
from bench.models.inference import infer, l2_normalise
from bench.models.loader import BATCHES_AHEAD_PER_WORKER, BatchDecoder, BatchLoader, LoaderTimes, resolve_workers
from bench.models.runtime import describe_session, make_session
from bench.measure.statistics import embedding_spread
from bench.measure.timing import summarize_latencies

log = logging.getLogger(__name__)

LATENCY_SAMPLES = 16  # batch-1 inferences timed after the main pass
LATENCY_WARMUP = 2


def run(job: EmbedJob) -> EngineRun:
    model, cfg = job.model, job.cfg
    workers = resolve_workers(cfg.decode_workers)
    session = make_session(model.onnx_path, job.runtime)
    size, batch_size = model.input_size, job.batch_size

    # One untimed run first: onnxruntime allocates and plans on the first call of a shape.
    t0 = time.perf_counter()
    infer(session, model, np.zeros((batch_size, size, size, 3), dtype=np.float32))
    warmup_s = time.perf_counter() - t0

    todo = job.todo
    writer = job.writer()
    loader = BatchLoader(todo, batch_size, BatchDecoder(size, job.preprocess, job.hook, cfg.jpeg_draft), workers)
    clock = RunClock(job.engine)
    progress = lambda: clock.progress(writer, _loader_seconds(loader.times))  # noqa: E731
    latency_inputs: list[np.ndarray] = []  # preprocessed single images for the batch-1 latency run
    per_batch: list[dict[str, float]] = []  # for the spread of images/s across batches
    batch_start = time.perf_counter()
    with loader, tqdm(total=len(job.images), initial=len(job.images) - len(todo), unit="img",
                      desc=f"embed {model.name}", disable=None) as bar, ShardSaving(writer, progress, log) as saving:
        for batch in loader:
            vectors, zero_norms = np.empty((0, model.embedding_dim), dtype=np.float32), 0
            if len(batch.image_ids):
                t1 = time.perf_counter()
                output = infer(session, model, batch.pixels)
                inference_s = time.perf_counter() - t1
                clock.inference_s += inference_s
                vectors, zero_norms = l2_normalise(output)
                now = time.perf_counter()
                per_batch.append({"images": len(batch.image_ids), "wall_s": now - batch_start,
                                  "inference_s": inference_s})
                batch_start = now
            writer.add(batch.image_ids, vectors, batch.skipped, zero_norms)
            for row in batch.pixels[: LATENCY_SAMPLES - len(latency_inputs)]:
                latency_inputs.append(row[np.newaxis].copy())
            bar.update(batch.num_records)
            saving.step()
    total_s = clock.elapsed()
    times = loader.times
    return EngineRun(
        writer=writer, total_s=total_s, inference_s=clock.inference_s,
        seconds={"decode_preprocess_s": times.decode_s + times.preprocess_s, "inference_s": clock.inference_s,
                 "total_s": total_s, "warmup_s": warmup_s, **_loader_seconds(times)},
        batch1_latency=summarize_latencies(_batch1_latencies(session, model, latency_inputs)),
        spread=embedding_spread(per_batch), session=describe_session(session, job.runtime),
        # decode and preprocess seconds are summed over worker threads, overlapping inference;
        # loader_wait_s is the part inference had to wait for.
        extra={"loader": {"decode_workers": workers, "batches_ahead": BATCHES_AHEAD_PER_WORKER * workers,
                          "jpeg_draft": bool(cfg.jpeg_draft)},
               "engine": {"name": "local"}})


def _loader_seconds(times: LoaderTimes) -> dict[str, float]:
    return {"decode_s": times.decode_s, "preprocess_s": times.preprocess_s, "loader_wait_s": times.wait_s}


def _batch1_latencies(session, model, inputs: list[np.ndarray]) -> list[float]:
    if not inputs:
        return []
    for _ in range(LATENCY_WARMUP):
        infer(session, model, inputs[0])
    latencies = []
    for single in inputs:
        t0 = time.perf_counter()
        infer(session, model, single)
        latencies.append(time.perf_counter() - t0)
    return latencies
