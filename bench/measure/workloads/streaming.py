"""Streaming search (read while write): search latency, insert rate and freshness while rows arrive.

Like VectorDBBench 1.0's streaming cases: half of the corpus is inserted and indexed first (by the
runner, every other row: both halves keep the corpus's mix of categories), then the other half is
inserted at a fixed rate (``workload.insert_rows_per_s``) while a client searches at a fixed rate
(``workload.search_qps``). VectorDBBench runs search tests at stages of the insert (50 %, 60 %, ...);
here one client searches throughout, and its latencies are summarised per phase (before, during,
after the inserts) and kept as a time series for the plot.

Measured:
- search latency p50/p99 and the search rate reached, per phase;
- the insert rate reached vs asked (a rate the store cannot keep is a number, never a hang: the
  insert phase stops at ``workload.max_insert_s``);
- freshness: for a sample of inserted rows, the time from the insert call's return until a search
  with the row's own vector returns its id (polled every ``freshness_poll_s``, given up after
  ``freshness_timeout_s``);
- recall at the end, against exact search over every row inserted by then.

The paths of every result are resolved through the metadata backend as an application would; the
path is written before the vector, so a row is never found before its path exists.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from bench.config import Config, SearchConfig, WorkloadConfig
from bench.errors import BenchError
from bench.measure.clock import Stopwatch, timed
from bench.measure.evaluate import exact_topk, recall_at_k
from bench.measure.timing import summarize_latencies
from bench.measure.workloads.base import BEFORE_SWEEP, Workload
from bench.run.context import RunContext
from bench.run.corpus import Corpus
from bench.stores.base import VectorStore
from bench.stores.indexes import point_label
from bench.stores.metadata import MetadataStore

log = logging.getLogger(__name__)

PHASES = ("before", "during", "after")
# Upper bound on the whole measurement beyond its configured phases (joins, the last polls).
GRACE_S = 5.0


@dataclass
class _Clock:
    """Shared state of one measurement: when the inserts started and ended (seconds since its start)."""
    watch: Stopwatch = field(default_factory=Stopwatch)
    insert_start: float | None = None
    insert_end: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)

    def now(self) -> float:
        return self.watch.elapsed()

    def phase(self, t: float) -> str:
        if self.insert_start is None or t < self.insert_start:
            return "before"
        return "during" if self.insert_end is None or t < self.insert_end else "after"

    def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            self.stop.wait(delay)


@dataclass
class _Probe:
    id: int
    vector: np.ndarray
    inserted_at: float
    seen_at: float | None = None


def _guard(clock: _Clock, fn, *args) -> None:
    """Run a thread's body; an exception stops the whole measurement and is re-raised by the caller."""
    try:
        fn(*args)
    except BaseException as err:  # re-raised in the main thread
        clock.errors.append(err)
        clock.stop.set()


def _search_client(clock: _Clock, store: VectorStore, metadata: MetadataStore, queries: np.ndarray, k: int,
                   params: Mapping[str, Any], qps: float, samples: list[tuple[float, float, float]]) -> None:
    """Open-loop client: query n is due at n / qps; a slow search delays the next one, never piles up."""
    n = 0
    while not clock.stop.is_set():
        clock.sleep_until(n / qps)
        if clock.stop.is_set():
            break
        start = clock.now()
        hits = store.search(queries[n % len(queries)][None, :], k, params, with_paths=metadata.paths_in_search)
        searched = clock.now()
        metadata.resolve(hits)  # every path resolves (raises otherwise), streamed rows included
        samples.append((start, searched - start, clock.now() - searched))
        n += 1


def _freshness_poller(clock: _Clock, store: VectorStore, probes: list[_Probe], lock: threading.Lock, k: int,
                      params: Mapping[str, Any], cfg: WorkloadConfig) -> None:
    """Polls every pending probe with one batched search per round until it shows up or times out."""
    while not clock.stop.is_set():
        with lock:
            pending = [p for p in probes
                       if p.seen_at is None and clock.now() - p.inserted_at <= cfg.freshness_timeout_s]
            done = clock.insert_end is not None and not pending
        if done:
            break
        if pending:
            hits = store.search(np.stack([p.vector for p in pending]), k, params)
            seen = clock.now()
            with lock:
                for probe, row in zip(pending, hits.ids):
                    if probe.id in row:
                        probe.seen_at = seen
        clock.stop.wait(cfg.freshness_poll_s)


def _insert(clock: _Clock, store: VectorStore, metadata: MetadataStore, cfg: WorkloadConfig, arriving: Corpus,
            probes: list[_Probe], lock: threading.Lock) -> int:
    """Insert batch j at the end of its slot, (j + 1) * batch / rate after the start; stop at max_insert_s.
    Returns the number of rows inserted."""
    batch, rate = cfg.insert_batch_size, cfg.insert_rows_per_s
    ids, vectors = arriving.ids, arriving.vectors
    starts = range(0, len(ids), batch)
    # Probe the first row of evenly spaced batches.
    probe_batches = set(np.linspace(0, len(starts) - 1, min(cfg.freshness_samples, len(starts))).astype(int).tolist())
    clock.insert_start = start = clock.now()
    inserted = 0
    for j, s in enumerate(starts):
        clock.sleep_until(start + min(s + batch, len(ids)) / rate)
        if clock.stop.is_set() or clock.now() - start > cfg.max_insert_s:
            break
        rows = arriving.rows(slice(s, s + batch))
        _put(store, metadata, rows)
        inserted_at = clock.now()
        inserted += len(rows)
        if j in probe_batches:
            with lock:
                probes.append(_Probe(int(ids[s]), vectors[s], inserted_at))
    clock.insert_end = clock.now()
    return inserted


def _put(store: VectorStore, metadata: MetadataStore, rows: Corpus) -> None:
    paths = rows.row_paths()
    metadata.put(rows.ids, paths)  # the path first: a found row always resolves
    store.insert(rows.ids, rows.vectors, paths, rows.row_labels())


def measure(store: VectorStore, metadata: MetadataStore, cfg: WorkloadConfig, search: SearchConfig,
            params: Mapping[str, Any], label: str, initial: Corpus, arriving: Corpus,
            queries: np.ndarray) -> dict[str, Any]:
    """The streaming measurement on a store already holding (and indexing) ``initial``; inserts ``arriving``
    and returns results.json's "streaming" section. Rows left when ``max_insert_s`` runs out are inserted
    afterwards, unthrottled and outside the measurement, so the store ends up holding the whole corpus as
    the plain sweep that follows expects."""
    k = search.top_k
    clock = _Clock()
    samples: list[tuple[float, float, float]] = []
    probes: list[_Probe] = []
    lock = threading.Lock()
    client = threading.Thread(target=_guard, args=(clock, _search_client, clock, store, metadata, queries, k, params,
                                                    cfg.search_qps, samples), name="stream-search", daemon=True)
    poller = threading.Thread(target=_guard, args=(clock, _freshness_poller, clock, store, probes, lock, k, params,
                                                    cfg), name="stream-freshness", daemon=True)
    client.start()
    poller.start()
    inserted = 0
    try:
        clock.sleep_until(cfg.window_s)
        if not clock.stop.is_set():
            inserted = _insert(clock, store, metadata, cfg, arriving, probes, lock)
        clock.sleep_until(clock.insert_end + cfg.window_s if clock.insert_end is not None else 0)
        poller.join(timeout=cfg.freshness_timeout_s + GRACE_S)
    finally:
        clock.stop.set()
        client.join(timeout=GRACE_S)
        poller.join(timeout=GRACE_S)
    if clock.errors:
        raise clock.errors[0]
    end = clock.now()

    # Recall over everything inserted by now, with the same search point.
    present = np.concatenate([initial.vectors, arriving.vectors[:inserted]])
    present_ids = np.concatenate([initial.ids, arriving.ids[:inserted]])
    exact_rows, _ = exact_topk(present, queries, k, search.metric)
    found = np.concatenate([store.search(queries[i:i + search.query_batch_size], k, params).ids
                            for i in range(0, len(queries), search.query_batch_size)])
    recall_end = recall_at_k(found, present_ids[exact_rows], k)

    left = len(arriving) - inserted
    if left:
        log.warning("streaming: %d of %d rows were not inserted within workload.max_insert_s=%g s; inserting "
                    "them now, outside the measurement", left, len(arriving), cfg.max_insert_s)
        _put(store, metadata, arriving.rows(slice(inserted, None)))
    return _summary(cfg, label, clock, samples, probes, inserted, len(arriving), len(initial), end, recall_end, left)


def _summary(cfg: WorkloadConfig, label: str, clock: _Clock, samples: list[tuple[float, float, float]],
             probes: list[_Probe], inserted: int, asked_rows: int, initial_rows: int, end: float,
             recall_end: float, caught_up: int) -> dict[str, Any]:
    insert_s = (clock.insert_end or 0.0) - (clock.insert_start or 0.0)
    bounds = {"before": (0.0, clock.insert_start or end),
              "during": (clock.insert_start or end, clock.insert_end or end),
              "after": (clock.insert_end or end, end)}
    windows = []
    for phase in PHASES:
        mine = [s for s in samples if clock.phase(s[0]) == phase]
        lo, hi = bounds[phase]
        windows.append({"phase": phase, "start_s": lo, "end_s": hi,
                        "latency": summarize_latencies([s[1] for s in mine]),
                        "resolve_latency": summarize_latencies([s[2] for s in mine]),
                        "search_qps_reached": len(mine) / (hi - lo) if hi > lo else None})
    seen = [p.seen_at - p.inserted_at for p in probes if p.seen_at is not None]
    return {
        "search_point": label,
        "initial_rows": initial_rows,
        "insert": {"rows_asked": asked_rows, "rows_inserted": inserted, "rows_asked_per_s": cfg.insert_rows_per_s,
                   "rows_reached_per_s": inserted / insert_s if insert_s > 0 else None, "seconds": insert_s,
                   "batch_size": cfg.insert_batch_size, "complete": inserted == asked_rows,
                   "rows_inserted_after_deadline": caught_up},
        "search_qps_asked": cfg.search_qps,
        "windows": windows,
        "freshness": {"probes": len(probes), "seen": len(seen), "timeout_s": cfg.freshness_timeout_s,
                      "poll_s": cfg.freshness_poll_s, "not_seen_within_timeout": len(probes) - len(seen),
                      **{f"{name}_s": (float(fn(seen)) if seen else None)
                         for name, fn in (("p50", np.median), ("max", np.max), ("mean", np.mean))}},
        "recall_at_end": recall_end,
        "timeline": {"t_s": [s[0] for s in samples], "latency_ms": [1e3 * s[1] for s in samples],
                     "insert_start_s": clock.insert_start, "insert_end_s": clock.insert_end},
    }


class StreamingWorkload(Workload):
    """workload=streaming: the runner inserts and indexes every other row of the corpus; between the index
    build and the plain sweep, the other rows arrive while a client searches. The collection's rows change,
    so it is a scratch collection: never reused, dropped at the end of the run."""
    name = "streaming"
    phase = BEFORE_SWEEP
    scratch = True

    @classmethod
    def validate(cls, cfg: Config) -> None:
        workload, points = cfg.workload, len(cfg.index.search)
        for name in ("insert_rows_per_s", "search_qps", "max_insert_s", "freshness_timeout_s", "freshness_poll_s"):
            if getattr(workload, name) <= 0:
                raise BenchError(f"workload.{name}={getattr(workload, name)} must be positive")
        if workload.insert_batch_size <= 0:
            raise BenchError(f"workload.insert_batch_size={workload.insert_batch_size} must be a positive integer")
        if workload.window_s < 0 or workload.freshness_samples < 0:
            raise BenchError("workload.window_s and workload.freshness_samples must not be negative")
        if not -points <= workload.search_point < points:
            raise BenchError(f"workload.search_point={workload.search_point} is not a point of index.search "
                             f"({points} points)")

    def loaded(self, corpus: Corpus) -> Corpus:
        return corpus.rows(slice(None, None, 2))

    def run(self, context: RunContext) -> dict[str, Any]:
        """:func:`measure` with the corpus's other half arriving; flushes at the end, so the plain sweep that
        follows searches sealed segments (VectorDBBench's "optimize after write")."""
        cfg = context.cfg
        params = dict(cfg.index.search[cfg.workload.search_point])
        section = measure(context.store, context.metadata, cfg.workload, cfg.search, params, point_label(params),
                          self.loaded(context.corpus), context.corpus.rows(slice(1, None, 2)),
                          context.queries.vectors)
        section["flush_after_s"], _ = timed(context.store.flush)
        return section
