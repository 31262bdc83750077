"""Search load from several client processes (search.clients): the concurrency sweep without one shared GIL.

With search.clients=1 the concurrent searches come from threads of the run's own process, which share
its GIL: at high levels the client, not the store, can be what limits QPS. With search.clients=N the
run starts N client processes (Ray actors when runtime.engine=ray, else multiprocessing, spawned),
each with its own connection to the store's URI. A concurrency level c runs c closed loops (one search
after the other, nq=1) spread over min(c, N) processes, all in the same time window.

What a level reports:
- QPS: every call completed in the window, over the window;
- latency percentiles over the samples of every client pooled together (not the worst client's p99,
  which is what some tools report: pooling is the distribution a user of the store sees);
- the clients' CPU use, and "client-bound" when it is saturated: a client process busy on the CPU for
  at least CLIENT_BOUND_CPU of the window (its GIL is the limit), or the client processes together using
  that share of the client machine's cores. Then the level measures the client, not the store.

Only a store reached over the network can be shared this way: an embedded one (milvus-lite, faiss) lives
inside the run's process, so search.clients > 1 is refused for it.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from bench.config import Config, SearchConfig
from bench.errors import BenchError
from bench.measure.clock import timed
from bench.stores.base import CollectionSpec
from bench.stores.registry import capabilities, open_store

log = logging.getLogger(__name__)
CLIENT_BOUND_CPU = 0.9  # share of a core (one process) or of all cores (all processes) that counts as saturated
START_DELAY_S = 0.3  # every client starts its loop at the same moment, this long after the level is sent
REPLY_TIMEOUT_S = 120.0


def validate_clients(search: SearchConfig, store_kind: str) -> None:
    if search.clients < 1:
        raise BenchError(f"search.clients={search.clients} must be >= 1 (1: threads of this process)")
    if search.clients > 1 and capabilities(store_kind).embedded:
        raise BenchError(f"search.clients={search.clients} needs a store other processes can reach: store="
                         f"{store_kind} is embedded in this process; use store=milvus_server or search.clients=1")


@dataclass
class ClientTarget:
    """What a client process needs to search the run's collection."""
    store: Any  # the store kind's config dataclass
    spec: CollectionSpec
    queries: np.ndarray
    top_k: int


class SearchClient:
    """One client process: its own store connection, closed loops of nq=1 searches on command."""

    def __init__(self, target: ClientTarget):
        self.target = target
        self.store = open_store(target.store)
        self.store.attach(target.spec)

    def loop(self, params: Mapping[str, Any], threads: int, start_at: float, seconds: float,
             offset: int) -> dict[str, Any]:
        """``threads`` closed loops from ``start_at`` (wall clock) for ``seconds``; each call's latency, and
        this process's CPU seconds over the window."""
        queries, k = self.target.queries, self.target.top_k
        nq = len(queries)
        end_at = start_at + seconds
        samples: list[list[float]] = [[] for _ in range(threads)]

        def closed_loop(t: int) -> None:
            i = offset + t
            while time.time() < end_at:  # wall-clock time: the window is shared by every client process
                seconds, _ = timed(self.store.search, queries[i % nq:i % nq + 1], k, params)
                if time.time() <= end_at:  # a call that ends after the window is not counted
                    samples[t].append(seconds)
                i += threads

        time.sleep(max(start_at - time.time(), 0.0))
        cpu0 = time.process_time()
        workers = [threading.Thread(target=closed_loop, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return {"latency_s": [s for per in samples for s in per], "cpu_s": time.process_time() - cpu0,
                "seconds": seconds, "threads": threads, "pid": os.getpid(), "cores": os.cpu_count() or 1}

    def close(self) -> None:
        self.store.close()


def split_level(level: int, processes: int) -> list[int]:
    """Closed loops per process for a concurrency level: as even as possible over min(level, processes)."""
    used = min(level, processes)
    return [level // used + (1 if p < level % used else 0) for p in range(used)]


def pool_level(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's figures from its clients' replies: QPS, pooled latencies and the client-bound mark."""
    seconds = replies[0]["seconds"]
    latencies = [s for r in replies for s in r["latency_s"]]
    per_process = [r["cpu_s"] / seconds for r in replies]
    cores = replies[0]["cores"]
    total = sum(per_process)
    bound = max(per_process) >= CLIENT_BOUND_CPU or total >= CLIENT_BOUND_CPU * cores
    return {"qps": len(latencies) / seconds, "latency_s": latencies, "processes": len(replies),
            "loops": sum(r["threads"] for r in replies), "client_cpu_max": max(per_process),
            "client_cpu_cores": total, "client_bound": bool(bound)}


class ClientPool:
    """N client processes kept for the whole search stage; ``run_level`` drives one concurrency level."""

    def __init__(self, handles: list[Any], call, kind: str):
        self.handles, self._call, self.kind = handles, call, kind

    @property
    def size(self) -> int:
        return len(self.handles)

    def run_level(self, params: Mapping[str, Any], level: int, seconds: float) -> dict[str, Any]:
        start_at = time.time() + START_DELAY_S
        plan = split_level(level, self.size)
        offsets = np.cumsum([0] + plan[:-1])
        replies = self._call([(h, (dict(params), threads, start_at, seconds, int(off)))
                              for h, threads, off in zip(self.handles, plan, offsets)])
        return {**pool_level(replies), "kind": self.kind}


# -- multiprocessing ----------------------------------------------------------------------------


def _process_main(conn, target: ClientTarget) -> None:
    """A spawned client: build the client, then answer loop commands until told to stop."""
    try:
        client = SearchClient(target)
        conn.send(("ready", None))
    except Exception as err:  # reported to the run, which fails in one line
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    try:
        while True:
            command = conn.recv()
            if command is None:
                return
            try:
                conn.send(("ok", client.loop(*command)))
            except Exception as err:
                conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        client.close()


def _answer(conn) -> Any:
    if not conn.poll(REPLY_TIMEOUT_S):
        raise BenchError(f"a search client process did not answer within {REPLY_TIMEOUT_S:g} s")
    status, value = conn.recv()
    if status == "error":
        raise BenchError(f"search client: {value}")
    return value


@contextlib.contextmanager
def _process_pool(target: ClientTarget, n: int) -> Iterator[ClientPool]:
    # Spawned, not forked: the run's process holds gRPC channels and onnxruntime threads that a fork would copy.
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    try:
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_process_main, args=(child, target), daemon=True)
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        for conn in pipes:
            _answer(conn)

        def call(jobs):
            for conn, args in jobs:
                conn.send(args)
            return [_answer(conn) for conn, _ in jobs]

        yield ClientPool(pipes, call, kind="processes")
    finally:
        for conn in pipes:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


# -- Ray actors ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _ray_pool(target: ClientTarget, n: int, cfg: Config) -> Iterator[ClientPool]:
    import ray

    from bench.models.engines.ray_cluster import connected

    with connected(cfg.runtime.ray):
        # num_cpus=0: a client waits on the store most of the time and must not queue behind a CPU reservation;
        # SPREAD puts the clients on different nodes of a cluster.
        actor = ray.remote(num_cpus=0, scheduling_strategy="SPREAD")(SearchClient)
        handles = [actor.remote(target) for _ in range(n)]
        try:
            def call(jobs):
                return ray.get([h.loop.remote(*args) for h, args in jobs], timeout=REPLY_TIMEOUT_S)

            ray.get([h.__ray_ready__.remote() for h in handles], timeout=REPLY_TIMEOUT_S)
            yield ClientPool(handles, call, kind="ray actors")
        finally:
            for h in handles:
                ray.kill(h)


@contextlib.contextmanager
def search_clients(cfg: Config, spec: CollectionSpec, queries: np.ndarray) -> Iterator[Optional[ClientPool]]:
    """The client processes for the concurrency sweep, or None when search.clients=1 (threads of this process)."""
    n = int(cfg.search.clients)
    if n <= 1:
        yield None
        return
    target = ClientTarget(store=cfg.store, spec=spec, queries=np.ascontiguousarray(queries), top_k=cfg.search.top_k)
    pool = _ray_pool(target, n, cfg) if cfg.runtime.engine == "ray" else _process_pool(target, n)
    with pool as clients:
        log.info("concurrency sweep from %d client %s", n, clients.kind)
        yield clients
