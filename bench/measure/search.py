"""Search measurements for one search-parameter point.

Each point is measured three ways, all over the same held-out queries:
- serial nq=1 calls after a warm-up: latency percentiles, and the top-K kept for evaluation;
- batched calls (search.query_batch_size queries each): batch QPS;
- nq=1 calls from several client threads: QPS at each concurrency level.
Path resolution (the id -> image path lookup a real application needs) is timed beside the
search, so the cost of each metadata backend is visible.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from tqdm import tqdm

from bench.config import SearchConfig
from bench.measure.timing import summarize_latencies
from bench.stores.base import SearchHits, VectorStore
from bench.stores.metadata import MetadataStore


@dataclass
class PointMeasurement:
    params: dict[str, Any]
    hits: SearchHits  # serial nq=1 results, one row per query
    latency: dict[str, float]  # search alone
    end_to_end_latency: dict[str, float]  # search plus paths
    resolve_latency: dict[str, float]  # paths alone (where it is a separate call)
    batch_qps: float
    concurrent_qps: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {"params": self.params, "latency": self.latency, "end_to_end_latency": self.end_to_end_latency,
                "resolve_latency": self.resolve_latency, "batch_qps": self.batch_qps,
                "concurrent_qps": self.concurrent_qps}


def _timed(fn, *args, **kwargs) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def measure_point(store: VectorStore, metadata: MetadataStore, queries: np.ndarray,
                  params: Mapping[str, Any], cfg: SearchConfig, label: str) -> PointMeasurement:
    k, nq = cfg.top_k, len(queries)
    for i in range(cfg.warmup):
        store.search(queries[i % nq: i % nq + 1], k, params, with_paths=metadata.paths_in_search)

    # Serial nq=1: search alone, keeping every query's top-K.
    n_latency = nq if cfg.latency_queries is None else min(cfg.latency_queries, nq)
    search_s, ids, distances = [], [], []
    for i in tqdm(range(nq), desc=f"search {label}", unit="q", leave=False, disable=None):
        seconds, hits = _timed(store.search, queries[i:i + 1], k, params)
        if i < n_latency:
            search_s.append(seconds)
        ids.append(hits.ids[0])
        distances.append(hits.distances[0])

    # Serial nq=1 again, the way an application queries: search, then the image paths.
    e2e_s, resolve_s = [], []
    for i in range(n_latency):
        start = time.perf_counter()
        hits = store.search(queries[i:i + 1], k, params, with_paths=metadata.paths_in_search)
        resolve_start = time.perf_counter()
        metadata.resolve(hits)
        end = time.perf_counter()
        e2e_s.append(end - start)
        resolve_s.append(end - resolve_start)

    # Enough passes over the queries that each throughput figure covers min_throughput_s.
    one_pass_s = max(float(np.mean(search_s)) * nq, 1e-6)
    passes = max(1, math.ceil(cfg.min_throughput_s / one_pass_s))
    batch_seconds = 0.0
    for _ in range(passes):
        for start in range(0, nq, cfg.query_batch_size):
            seconds, _ = _timed(store.search, queries[start:start + cfg.query_batch_size], k, params)
            batch_seconds += seconds

    concurrent = {str(threads): _concurrent_qps(store, queries, k, params, threads, passes)
                  for threads in cfg.concurrency}
    return PointMeasurement(
        params=dict(params),
        hits=SearchHits(ids=np.stack(ids), distances=np.stack(distances)),
        latency=summarize_latencies(search_s),
        end_to_end_latency=summarize_latencies(e2e_s),
        resolve_latency=summarize_latencies(resolve_s),
        batch_qps=nq * passes / batch_seconds if batch_seconds > 0 else float("nan"),
        concurrent_qps=concurrent,
    )


def _concurrent_qps(store: VectorStore, queries: np.ndarray, k: int, params: Mapping[str, Any],
                    threads: int, passes: int) -> float:
    """Every query `passes` times, nq=1 per call, spread over `threads` client threads."""
    nq = len(queries)

    def one(i: int) -> None:
        store.search(queries[i % nq:i % nq + 1], k, params)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        start = time.perf_counter()
        list(pool.map(one, range(nq * passes)))
        seconds = time.perf_counter() - start
    return nq * passes / seconds
