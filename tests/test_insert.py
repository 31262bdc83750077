"""Batched inserts with batches in flight on threads: every row once, errors surface, bounded."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bench.errors import BenchError
from bench.stores.insert import insert_batches


class FakeStore:
    def __init__(self, fail_at: int | None = None):
        self.lock = threading.Lock()
        self.batches: list[list[int]] = []
        self.in_flight = self.most_in_flight = 0
        self.fail_at = fail_at

    def insert(self, ids, vectors, paths, labels):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.01)  # the store's side of the call: other batches may be sent meanwhile
        assert len(ids) == len(vectors) == len(paths) == len(labels)
        assert [p for p in paths] == [f"{i}.jpg" for i in ids]
        with self.lock:
            self.in_flight -= 1
            if self.fail_at is not None and self.fail_at in ids:
                raise RuntimeError("store refused the batch")
            self.batches.append([int(i) for i in ids])


def _rows(n: int):
    ids = np.arange(n, dtype=np.int64)
    return ids, np.zeros((n, 4), dtype=np.float32), [f"{i}.jpg" for i in ids], [[1]] * n


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_row_once_and_at_most_threads_batches_in_flight(threads):
    store, done = FakeStore(), []
    insert_batches(store, *_rows(1001), batch_size=100, threads=threads, progress=done.append)
    assert sorted(i for batch in store.batches for i in batch) == list(range(1001))
    assert sorted(len(b) for b in store.batches) == [1] + [100] * 10
    assert sum(done) == 1001
    assert store.most_in_flight <= threads
    if threads > 1:
        assert store.most_in_flight > 1  # batches really overlapped


def test_a_failed_batch_raises_in_the_caller():
    with pytest.raises(RuntimeError, match="refused"):
        insert_batches(FakeStore(fail_at=450), *_rows(1000), batch_size=100, threads=2)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(BenchError, match="insert_threads=0"):
        insert_batches(FakeStore(), *_rows(10), batch_size=5, threads=0)
