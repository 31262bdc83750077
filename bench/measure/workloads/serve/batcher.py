"""Dynamic batching, as Triton's dynamic batcher does it: waiting queries are taken up to a batch size,
waiting at most a delay after the first one for more to arrive.

``max_batch=1`` is batching off: each worker takes one query at a time, and never waits.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Optional

from bench.measure import clock


@dataclass(frozen=True)
class Pending:
    """One issued query: LoadGen's response id, its sample index, and when it was issued (``clock.now()``)."""
    response_id: int
    sample_index: int
    issued_at: float


class Batcher:
    """A queue that hands workers batches of up to ``max_batch`` queries.

    A worker that finds fewer than ``max_batch`` waiting takes the first and waits until
    ``max_queue_delay_s`` after that query was issued for more to arrive, then takes what is there.
    """

    def __init__(self, max_batch: int, max_queue_delay_s: float):
        self.max_batch, self.delay_s = max(1, int(max_batch)), max(0.0, float(max_queue_delay_s))
        self._queue: deque[Pending] = deque()
        self._ready = threading.Condition()
        self._closed = False

    def put(self, items: list[Pending]) -> None:
        with self._ready:
            self._queue.extend(items)
            self._ready.notify_all()

    def close(self) -> None:
        """Wake every worker: :meth:`take` returns what is left, then None."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def take(self) -> Optional[list[Pending]]:
        """The next batch, blocking until one is due; None once closed and empty."""
        with self._ready:
            while not self._queue:
                if self._closed:
                    return None
                self._ready.wait()
            if self.max_batch > 1 and len(self._queue) < self.max_batch and not self._closed:
                deadline = self._queue[0].issued_at + self.delay_s
                while len(self._queue) < self.max_batch and not self._closed:
                    left = deadline - clock.now()
                    if left <= 0 or not self._queue:
                        break
                    self._ready.wait(left)
                if not self._queue:  # another worker took them while this one waited
                    return [] if not self._closed else None
            n = min(self.max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]
