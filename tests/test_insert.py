"""Batched inserts with batches in flight on threads: every row once, errors surface, bounded."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bench.errors import BenchError
from bench.stores.base import CollectionSpec
from bench.stores.faiss_store import FaissConfig, FaissStore
from bench.stores.insert import insert_batches


class CountingFaiss(FaissStore):
    """store=faiss, counting the batches in flight; the store's side of each call takes 10 ms."""

    def __init__(self, fail_at: int | None = None):
        super().__init__(FaissConfig())
        self.prepare(CollectionSpec("c", 4, "IP", "f", with_paths=True), 0)
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.fail_at = fail_at

    def insert(self, ids, vectors, paths, labels):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.01)  # other batches may be sent meanwhile
        with self.lock:
            self.in_flight -= 1
        if self.fail_at is not None and self.fail_at in ids:
            raise RuntimeError("store refused the batch")
        super().insert(ids, vectors, paths, labels)


def _rows(n: int):
    ids = np.arange(n, dtype=np.int64)
    vectors = np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)
    return ids, vectors, [f"{i}.jpg" for i in ids], [[1]] * n


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_row_once_and_at_most_threads_batches_in_flight(threads):
    store, done = CountingFaiss(), []
    insert_batches(store, *_rows(1001), batch_size=100, threads=threads, progress=done.append)
    assert sorted(store._ids.tolist()) == list(range(1001))  # every row once, whatever order batches landed in
    assert sorted(done) == [1] + [100] * 10
    store.build_index("FLAT", {})
    hits = store.search(np.eye(4, dtype=np.float32)[:1], 1, {}, with_paths=True)
    assert hits.paths[0] == [f"{hits.ids[0, 0]}.jpg"]  # each path stayed with its row
    assert store.most_in_flight <= threads
    if threads > 1:
        assert store.most_in_flight > 1  # batches really overlapped


def test_a_failed_batch_raises_in_the_caller():
    with pytest.raises(RuntimeError, match="refused"):
        insert_batches(CountingFaiss(fail_at=450), *_rows(1000), batch_size=100, threads=2)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(BenchError, match="insert_threads=0"):
        insert_batches(CountingFaiss(), *_rows(10), batch_size=5, threads=0)
