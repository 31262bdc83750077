"""LoadGen's system under test: queries go into the dynamic batcher, worker threads run the pipeline on
each batch and complete its samples.

Every issued query is completed, whatever happens: when the pipeline fails (the store or the metadata
backend went away) or the run is interrupted, the SUT drains, answering each query at once with no
work, so LoadGen finishes its schedule and writes its logs instead of waiting forever. The failure is
kept and raised by the caller once LoadGen has returned.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional, Sequence

from bench.measure import clock
from bench.measure.workloads.serve.batcher import Batcher, Pending
from bench.measure.workloads.serve.pipeline import Served, pack
from bench.measure.workloads.serve.stages import StageLog

log = logging.getLogger(__name__)

Pipeline = Callable[[Sequence[str]], Served]


class ServingSUT:
    """``with ServingSUT(...) as handle:`` pass ``handle`` to LoadGen; workers stop and the SUT is destroyed
    afterwards."""

    def __init__(self, pipeline: Pipeline, sample_paths: Sequence[str], *, max_batch: int, max_queue_delay_s: float,
                 workers: int, stage_log: Optional[StageLog] = None):
        self.pipeline, self.paths = pipeline, list(sample_paths)
        self.batcher = Batcher(max_batch, max_queue_delay_s)
        self.workers = workers
        self.stage_log = stage_log if stage_log is not None else StageLog()
        self.failure: Optional[BaseException] = None
        self.drained: Optional[str] = None  # why the SUT stopped doing work, if it did
        self._threads: list[threading.Thread] = []
        self.handle: Any = None

    def __enter__(self) -> Any:
        import mlperf_loadgen as lg

        self._threads = [threading.Thread(target=self._work, name=f"serve-worker-{i}", daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()
        self.handle = lg.ConstructSUT(self.issue, self.flush)
        return self.handle

    def __exit__(self, kind, err, tb) -> None:
        import mlperf_loadgen as lg

        if getattr(err, "loadgen_running", False):  # a test still running calls it (see harness.run_test)
            return
        self.batcher.close()
        for thread in self._threads:
            thread.join()
        lg.DestroySUT(self.handle)

    # -- LoadGen's callbacks (its issue thread) ----------------------------------------------------
    def issue(self, query_samples: list[Any]) -> None:
        issued = clock.now()
        self.batcher.put([Pending(s.id, s.index, issued) for s in query_samples])

    def flush(self) -> None:
        """LoadGen's hint that no more queries come soon; the batcher's delay already bounds any wait."""

    def drain(self, reason: str) -> None:
        if self.drained is None:
            self.drained = reason
            log.warning("serve: the system under test drains (%s): remaining queries complete at once", reason)

    # -- workers -----------------------------------------------------------------------------------
    def _work(self) -> None:
        import mlperf_loadgen as lg

        while (batch := self.batcher.take()) is not None:
            if not batch:
                continue
            if self.drained is not None:
                lg.QuerySamplesComplete([lg.QuerySampleResponse(p.response_id, 0, 0) for p in batch])
                continue
            started = clock.now()
            try:
                served = self.pipeline([self.paths[p.sample_index] for p in batch])
            except Exception as err:  # noqa: BLE001 - kept, then raised once LoadGen has finished
                if self.failure is None:
                    self.failure = err
                self.drain(f"failed: {err}")
                lg.QuerySamplesComplete([lg.QuerySampleResponse(p.response_id, 0, 0) for p in batch])
                continue
            payload = pack(served.ids, served.distances)  # alive until QuerySamplesComplete has copied it
            base, stride = payload.ctypes.data, payload.strides[0]
            lg.QuerySamplesComplete([lg.QuerySampleResponse(p.response_id, base + i * stride, payload.shape[1])
                                     for i, p in enumerate(batch)])
            finished = clock.now()
            self.stage_log.add_batch([p.issued_at for p in batch], started, served.seconds, finished)


class BareSUT:
    """The reference loop: LoadGen's issue callback completes each sample at once, with no queue, thread
    or payload. Its QPS is what LoadGen alone can drive on this machine."""

    def __enter__(self) -> Any:
        import mlperf_loadgen as lg

        def issue(query_samples: list[Any]) -> None:
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in query_samples])

        self.handle = lg.ConstructSUT(issue, lambda: None)
        return self.handle

    def __exit__(self, kind, err, tb) -> None:
        import mlperf_loadgen as lg

        if not getattr(err, "loadgen_running", False):
            lg.DestroySUT(self.handle)

    def drain(self, reason: str) -> None:
        """Nothing to drain: every sample completes inside the issue call."""

