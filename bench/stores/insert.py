"""Filling a collection in batches, with the client's work overlapped with the store's.

A pymilvus insert is two halves: turning rows into protobuf in Python (holding the GIL), then
waiting for the store's answer (GIL released). Against a Milvus server, a profile of 20k rows
of 1280-d spent ~60 % of the time in the first half, so with ``threads`` = 2 one batch is
serialised while the previous one is in flight. Rows have explicit primary keys, so the order in
which batches land does not matter.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from bench.errors import BenchError
from bench.stores.base import VectorStore


def insert_batches(store: VectorStore, ids: np.ndarray, vectors: np.ndarray, paths: Sequence[str],
                   labels: Sequence[Sequence[int]], batch_size: int, threads: int,
                   progress: Callable[[int], object] = lambda rows: None) -> None:
    """Insert every row in batches of ``batch_size``, at most ``threads`` batches in flight."""
    if batch_size <= 0 or threads <= 0:
        raise BenchError(f"store.insert_batch_size={batch_size} and store.insert_threads={threads} "
                         "must be positive integers")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        in_flight: deque[tuple[Future, int]] = deque()
        for start in range(0, len(ids), batch_size):
            stop = min(start + batch_size, len(ids))
            in_flight.append((pool.submit(store.insert, ids[start:stop], vectors[start:stop],
                                          paths[start:stop], labels[start:stop]), stop - start))
            if len(in_flight) >= threads:
                _finish(in_flight.popleft(), progress)
        while in_flight:
            _finish(in_flight.popleft(), progress)


def _finish(item: tuple[Future, int], progress: Callable[[int], object]) -> None:
    future, rows = item
    future.result()  # re-raises the batch's error here, in the caller's thread
    progress(rows)
