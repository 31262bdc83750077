"""Search measurements for one search-parameter point.

Each point is searched once for its results, then timed in several trials (search.repeats). The runner
interleaves the trials across points (trial 1 of every point, then trial 2, ...), so drift of a busy
machine hits every point alike instead of favouring the points measured in a quiet moment.

- :func:`search_topk`, once per point: a warm-up, then every query once at nq=1, keeping its top-K for
  evaluation (untimed: the trials time).
- :func:`timing_trial`, ``repeats`` times per point:
  - serial nq=1 calls cycling through the queries until the latency percentiles have enough samples
    (pooled over the trials; bounded by search.latency_max_s): latency percentiles;
  - serial nq=1 calls the way an application queries, search then image paths (the trials share one pass
    over the queries): end-to-end latency and the path lookup alone, so each metadata backend's cost shows;
  - batched calls (search.query_batch_size queries each): batch QPS;
  - nq=1 calls from several client threads, or from client processes (search.clients, bench.measure.clients):
    QPS at each concurrency level; with processes also the latency percentiles pooled over every client and
    whether the clients' CPU was saturated ("client-bound").
- :func:`summarize_trials`: latency percentiles over the pooled samples (with their sample counts and
  intervals), and the median and min–max across trials of QPS and of each trial's percentiles.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from bench.config import SearchConfig
from bench.measure.clients import ClientPool
from bench.measure.clock import Stopwatch, timed
from bench.measure.statistics import min_samples_for_percentile, trial_spread
from bench.measure.timing import PERCENTILES, summarize_latencies
from bench.stores.base import SearchHits, VectorStore
from bench.stores.metadata import MetadataStore

MIN_CLIENT_WINDOW_S = 0.5  # a client-process level runs at least this long per trial


def _warm_up(store: VectorStore, metadata: MetadataStore, queries: np.ndarray, params: Mapping[str, Any],
             cfg: SearchConfig) -> None:
    nq = len(queries)
    for i in range(cfg.warmup):
        store.search(queries[i % nq: i % nq + 1], cfg.top_k, params, with_paths=metadata.paths_in_search)


@dataclass
class PointResults:
    """What one pass over the queries gives: the top-K of every query and the mean seconds per call."""
    params: dict[str, Any]
    hits: SearchHits
    seconds_per_query: float


def search_topk(store: VectorStore, metadata: MetadataStore, queries: np.ndarray, params: Mapping[str, Any],
                cfg: SearchConfig, label: str) -> PointResults:
    """A warm-up, then every query once at nq=1, keeping each query's top-K (serial, in query order)."""
    _warm_up(store, metadata, queries, params, cfg)
    ids, distances, seconds = [], [], 0.0
    for i in tqdm(range(len(queries)), desc=f"search {label}", unit="q", leave=False, disable=None):
        took, hits = timed(store.search, queries[i:i + 1], cfg.top_k, params)
        seconds += took
        ids.append(hits.ids[0])
        distances.append(hits.distances[0])
    return PointResults(params=dict(params), hits=SearchHits(ids=np.stack(ids), distances=np.stack(distances)),
                        seconds_per_query=seconds / max(len(queries), 1))


def latency_target(cfg: SearchConfig, confidence: float = 0.95) -> int:
    """Serial latency samples a point needs over all its trials: search.latency_min_samples, or by default
    enough for a bounded interval of every reported percentile (368 for p99 at 95 %)."""
    if cfg.latency_min_samples is not None:
        return int(cfg.latency_min_samples)
    return max(min_samples_for_percentile(p, confidence) for p in PERCENTILES)


@dataclass
class Trial:
    """One timing trial of one point: raw per-call seconds and the throughput figures."""
    search_s: list[float] = field(default_factory=list)  # search alone, nq=1
    e2e_s: list[float] = field(default_factory=list)  # search plus paths
    resolve_s: list[float] = field(default_factory=list)  # paths alone
    batch_qps: float = float("nan")
    concurrent_qps: dict[str, float] = field(default_factory=dict)
    # search.clients > 1: each level's pooled latencies and client CPU (bench.measure.clients.pool_level)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self, confidence: float = 0.95) -> dict[str, Any]:
        summary = {"latency": summarize_latencies(self.search_s, confidence), "batch_qps": self.batch_qps,
                   "concurrent_qps": self.concurrent_qps}
        if self.clients:
            summary["clients"] = {n: {k: v for k, v in level.items() if k != "latency_s"}
                                  for n, level in self.clients.items()}
        return summary


def timing_trial(store: VectorStore, metadata: MetadataStore, queries: np.ndarray, params: Mapping[str, Any],
                 cfg: SearchConfig, seconds_per_query: float, trial_number: int = 0,
                 confidence: float = 0.95, clients: Optional[ClientPool] = None) -> Trial:
    """Trial ``trial_number`` (0-based): 1/repeats of the latency samples, of the end-to-end pass and of
    the throughput time the point gets in all."""
    k, nq, repeats = cfg.top_k, len(queries), max(1, cfg.repeats)
    n_latency = nq if cfg.latency_queries is None else max(1, min(cfg.latency_queries, nq))
    _warm_up(store, metadata, queries, params, cfg)  # other points ran since this point's last trial
    trial = Trial()

    # Serial nq=1, search alone: at least one pass over the latency queries, then cycle through them
    # until this trial's share of the samples is in or its share of search.latency_max_s is spent.
    wanted = math.ceil(latency_target(cfg, confidence) / repeats)
    budget_s, watch = cfg.latency_max_s / repeats, Stopwatch()
    i = 0
    while i < n_latency or (i < wanted and watch.elapsed() < budget_s):
        seconds, _ = timed(store.search, queries[i % n_latency:i % n_latency + 1], k, params)
        trial.search_s.append(seconds)
        i += 1

    # Serial nq=1 again, the way an application queries: search, then the image paths. The trials
    # share one pass over the latency queries (each takes the next slice), as one measurement did before.
    share = math.ceil(n_latency / repeats)
    for i in range(trial_number * share, min((trial_number + 1) * share, n_latency)):
        search_s, hits = timed(store.search, queries[i:i + 1], k, params, with_paths=metadata.paths_in_search)
        resolve_s, _ = timed(metadata.resolve, hits)
        trial.e2e_s.append(search_s + resolve_s)
        trial.resolve_s.append(resolve_s)

    # Throughput: this trial's share of search.min_throughput_s, counted in queries (at least one pass over
    # them), so that three trials cost what one measurement of the whole time did.
    count = max(nq, math.ceil(cfg.min_throughput_s / repeats / max(seconds_per_query, 1e-6)))
    cycled = queries[np.arange(count) % nq]
    batch_seconds = 0.0
    for start in range(0, count, cfg.query_batch_size):
        seconds, _ = timed(store.search, cycled[start:start + cfg.query_batch_size], k, params)
        batch_seconds += seconds
    trial.batch_qps = count / batch_seconds if batch_seconds > 0 else float("nan")
    if clients is None:
        trial.concurrent_qps = {str(threads): _concurrent_qps(store, queries, k, params, threads, count)
                                for threads in cfg.concurrency}
        return trial
    # Client processes run for a fixed window (they start together); this trial's share of the throughput time.
    window_s = max(cfg.min_throughput_s / repeats, MIN_CLIENT_WINDOW_S)
    for level in cfg.concurrency:
        trial.clients[str(level)] = clients.run_level(params, level, window_s)
        trial.concurrent_qps[str(level)] = trial.clients[str(level)]["qps"]
    return trial


def summarize_trials(params: Mapping[str, Any], trials: list[Trial], confidence: float = 0.95) -> dict[str, Any]:
    """A point's timing section of results.json.

    ``latency`` / ``end_to_end_latency`` / ``resolve_latency``: percentiles of the samples pooled over
    every trial (count, intervals, None where unsupported). ``batch_qps`` and ``concurrent_qps``: the
    median across trials. ``spread``: median, min and max across trials of each QPS and of each trial's
    own latency percentiles (where that trial's samples support them). ``trials``: each trial's figures.
    """
    per_trial = [t.summary(confidence) for t in trials]
    pooled = lambda attr: [s for t in trials for s in getattr(t, attr)]  # noqa: E731
    threads = list(trials[0].concurrent_qps) if trials else []
    spread = {"batch_qps": trial_spread(t.batch_qps for t in trials),
              "concurrent_qps": {n: trial_spread(t.concurrent_qps.get(n) for t in trials) for n in threads},
              "latency": {f"p{p}_ms": trial_spread(s["latency"][f"p{p}_ms"] for s in per_trial) for p in PERCENTILES}}
    median = lambda s: None if s is None else s["median"]  # noqa: E731
    summary = {"params": dict(params), "latency": summarize_latencies(pooled("search_s"), confidence),
               "end_to_end_latency": summarize_latencies(pooled("e2e_s"), confidence),
               "resolve_latency": summarize_latencies(pooled("resolve_s"), confidence),
               "batch_qps": median(spread["batch_qps"]),
               "concurrent_qps": {n: median(s) for n, s in spread["concurrent_qps"].items()},
               "repeats": len(trials), "spread": spread, "trials": per_trial}
    if trials and trials[0].clients:
        summary["concurrent_clients"] = _clients_summary(trials, confidence)
    return summary


def _clients_summary(trials: list[Trial], confidence: float) -> dict[str, Any]:
    """Per level, over every trial: latency percentiles of all clients' samples pooled, the clients' CPU at
    its highest, and client-bound when any trial's clients were saturated."""
    out = {}
    for n, first in trials[0].clients.items():
        levels = [t.clients[n] for t in trials]
        out[n] = {"kind": first["kind"], "processes": first["processes"], "loops": first["loops"],
                  "latency": summarize_latencies([s for lv in levels for s in lv["latency_s"]], confidence),
                  "client_cpu_max": max(lv["client_cpu_max"] for lv in levels),
                  "client_cpu_cores": max(lv["client_cpu_cores"] for lv in levels),
                  "client_bound": any(lv["client_bound"] for lv in levels)}
    return out


def interleaved_trials(store: VectorStore, metadata: MetadataStore, queries: np.ndarray, points: list[PointResults],
                       labels: list[str], cfg: SearchConfig, confidence: float = 0.95,
                       clients: Optional[ClientPool] = None) -> list[dict[str, Any]]:
    """Time every point in search.repeats trials, trial 1 of every point first, then trial 2, ...;
    returns each point's :func:`summarize_trials`."""
    repeats = max(1, cfg.repeats)
    trials: list[list[Trial]] = [[] for _ in points]
    with tqdm(total=repeats * len(points), desc="timing trials", unit="point", leave=False, disable=None) as bar:
        for trial_number in range(repeats):
            for point, label, done in zip(points, labels, trials):
                bar.set_postfix_str(label)
                done.append(timing_trial(store, metadata, queries, point.params, cfg, point.seconds_per_query,
                                         trial_number, confidence, clients))
                bar.update(1)
    return [summarize_trials(point.params, done, confidence) for point, done in zip(points, trials)]


def _concurrent_qps(store: VectorStore, queries: np.ndarray, k: int, params: Mapping[str, Any],
                    threads: int, count: int) -> float:
    """``count`` nq=1 calls cycling through the queries, spread over `threads` client threads."""
    nq = len(queries)

    def one(i: int) -> None:
        store.search(queries[i % nq:i % nq + 1], k, params)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        seconds, _ = timed(lambda: list(pool.map(one, range(count))))
    return count / seconds
