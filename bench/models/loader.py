"""Decoded, preprocessed batches for the embedding loop, prepared ahead of inference by worker threads.

Inference waits for nothing but its own input when decoding keeps ahead of it: each batch of
image records is decoded, resized, stacked and preprocessed by a worker, while the main thread
runs the model on the batch before. At most ``2 * workers`` batches are in flight (decoding or
decoded and waiting), so memory stays bounded whatever the number of images; batches come out in
the order of the records.

Threads, not processes: Pillow releases the GIL while it decodes and resizes, numpy while it
converts and scales, and onnxruntime while it runs, so threads overlap without copying pixels
between processes. ``workers=0`` is the old inline loop: decode a batch, then infer, in turn.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from bench.data.dataset import ImageRecord, Skip
from bench.data.images import ImageError, record_rgb
from bench.errors import BenchError
from bench.measure.clock import Stopwatch, timed

Hook = Callable[[np.ndarray], Optional[np.ndarray]]
BATCHES_AHEAD_PER_WORKER = 2


def resolve_workers(setting: Optional[int]) -> int:
    """``model.decode_workers``: null (auto) is one thread per core beyond the first, at least 1, at most 4.

    onnxruntime already keeps every core busy during inference; decoding is the smaller share of
    the work, so a thread or two overlapping it is enough, and more would only crowd the cores.
    """
    if setting is None:
        return max(1, min(4, (os.cpu_count() or 1) - 1))
    if setting < 0:
        raise BenchError(f"model.decode_workers={setting} must be 0 (decode inline), a positive thread count, "
                         f"or null (auto)")
    return int(setting)


@dataclass
class Batch:
    """One batch ready for the model, with the records it came from."""
    image_ids: np.ndarray  # int64 (b,) of the images that decoded
    pixels: np.ndarray  # float32 (b, size, size, 3), preprocessed
    skipped: list[tuple[int, Skip]]  # (image id, why) for records that did not decode
    num_records: int
    decode_s: float
    preprocess_s: float


@dataclass
class LoaderTimes:
    """Seconds summed over batches: decode and preprocess run in workers (overlapping inference);
    wait is the time the consumer spent blocked on the next batch, i.e. what the pipeline failed to hide."""
    decode_s: float = 0.0
    preprocess_s: float = 0.0
    wait_s: float = 0.0
    batches: int = 0


class BatchDecoder:
    """Records -> one preprocessed batch; safe to call from several threads at once."""

    def __init__(self, size: int, preprocess: Callable[[np.ndarray], np.ndarray], hook: Optional[Hook],
                 jpeg_draft: bool):
        self.size, self.preprocess, self.hook, self.jpeg_draft = size, preprocess, hook, jpeg_draft

    def __call__(self, records: Sequence[ImageRecord]) -> Batch:
        watch = Stopwatch()
        pixels = np.empty((len(records), self.size, self.size, 3), dtype=np.uint8)
        ids: list[int] = []
        skipped: list[tuple[int, Skip]] = []
        for record in records:
            try:
                pixels[len(ids)] = record_rgb(record, self.size, draft=self.jpeg_draft)
                ids.append(int(record.image_id))
            except ImageError as err:
                skipped.append((int(record.image_id), Skip(path=str(record.path), reason=str(err))))
        decode_s = watch.lap()
        batch = self.preprocess(pixels[: len(ids)]) if ids else np.empty((0, self.size, self.size, 3), np.float32)
        if self.hook is not None and ids:
            hooked = self.hook(batch)
            batch = batch if hooked is None else hooked
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return Batch(image_ids=np.asarray(ids, dtype=np.int64), pixels=batch, skipped=skipped,
                     num_records=len(records), decode_s=decode_s, preprocess_s=watch.lap())


class BatchLoader:
    """Iterate ``Batch``es of ``records`` in order; use as a context manager so workers stop on any exit."""

    def __init__(self, records: Sequence[ImageRecord], batch_size: int, decoder: BatchDecoder, workers: int):
        self.chunks = [records[i:i + batch_size] for i in range(0, len(records), batch_size)]
        self.decoder, self.workers = decoder, workers
        self.times = LoaderTimes()
        self._pool: Optional[ThreadPoolExecutor] = None

    def __enter__(self) -> "BatchLoader":
        if self.workers > 0:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            # Queued batches are dropped; the few already decoding finish (one batch each at most).
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __iter__(self) -> Iterator[Batch]:
        if self._pool is None:
            yield from self._inline()
            return
        chunks = iter(self.chunks)
        ahead: deque[Future] = deque(self._pool.submit(self.decoder, c)
                                     for c in islice(chunks, BATCHES_AHEAD_PER_WORKER * self.workers))
        while ahead:
            wait_s, batch = timed(ahead.popleft().result)
            self.times.wait_s += wait_s
            nxt = next(chunks, None)
            if nxt is not None:
                ahead.append(self._pool.submit(self.decoder, nxt))
            yield self._counted(batch)

    def _inline(self) -> Iterator[Batch]:
        for chunk in self.chunks:
            wait_s, batch = timed(self.decoder, chunk)
            self.times.wait_s += wait_s
            yield self._counted(batch)

    def _counted(self, batch: Batch) -> Batch:
        self.times.decode_s += batch.decode_s
        self.times.preprocess_s += batch.preprocess_s
        self.times.batches += 1
        return batch
