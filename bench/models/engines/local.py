"""runtime.engine=local: one onnxruntime session in this process, fed by decoding threads (bench.models.loader)."""
from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from bench.measure.clock import Stopwatch, timed
from bench.measure.statistics import embedding_spread
from bench.measure.timing import summarize_latencies
from bench.models.engines.base import EmbedJob, EngineRun, RunClock, ShardSaving
from bench.models.inference import infer, l2_normalise
from bench.models.loader import BATCHES_AHEAD_PER_WORKER, BatchDecoder, BatchLoader, LoaderTimes, resolve_workers
from bench.models.runtime import describe_session, make_session

log = logging.getLogger(__name__)

LATENCY_SAMPLES = 16  # batch-1 inferences timed after the main pass
LATENCY_WARMUP = 2


def run(job: EmbedJob) -> EngineRun:
    model, cfg = job.model, job.cfg
    workers = resolve_workers(cfg.decode_workers)
    session = make_session(model.onnx_path, job.runtime)
    size, batch_size = model.input_size, job.batch_size

    # One untimed run first: onnxruntime allocates and plans on the first call of a shape.
    warmup_s, _ = timed(infer, session, model, np.zeros((batch_size, size, size, 3), dtype=np.float32))

    todo = job.todo
    writer = job.writer()
    loader = BatchLoader(todo, batch_size, BatchDecoder(size, job.preprocess, job.hook, cfg.jpeg_draft), workers)
    clock = RunClock(job.engine)
    progress = lambda: clock.progress(writer, _loader_seconds(loader.times))  # noqa: E731
    latency_inputs: list[np.ndarray] = []  # preprocessed single images for the batch-1 latency run
    per_batch: list[dict[str, float]] = []  # for the spread of images/s across batches
    batch_watch = Stopwatch()
    with loader, tqdm(total=len(job.images), initial=len(job.images) - len(todo), unit="img",
                      desc=f"embed {model.name}", disable=None) as bar, ShardSaving(writer, progress, log) as saving:
        for batch in loader:
            vectors, zero_norms = np.empty((0, model.embedding_dim), dtype=np.float32), 0
            if len(batch.image_ids):
                inference_s, output = timed(infer, session, model, batch.pixels)
                clock.inference_s += inference_s
                vectors, zero_norms = l2_normalise(output)
                per_batch.append({"images": len(batch.image_ids), "wall_s": batch_watch.lap(),
                                  "inference_s": inference_s})
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
    return [timed(infer, session, model, single)[0] for single in inputs]
