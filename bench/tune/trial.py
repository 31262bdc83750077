"""One trial: build an index, find the smallest search parameter that reaches the recall target, time it there.

1. Build with the sampled build parameters (the collection is already filled: only the index changes).
2. Search the parameter (nprobe, ef, ...) between its bounds for the smallest value whose recall@K has a
   lower 95 % bound at or above the target: galloping up from the low bound, then bisecting. Recall is
   assumed to grow with the parameter, which is what these parameters are for. Recall is exact and cheap
   on a built index, so each probe searches every query in batches; the bound is the bootstrap interval
   over queries (bench.measure.statistics).
3. At that value, search the queries once at nq=1 (the results the table reports) and time it with the
   interleaved timing trials (bench.measure.search), as `python -m bench` times a search point.

A build that even the largest search value does not take to the target is infeasible; it keeps the best
recall it reached, and is not timed.

The tuner speaks to the store through :class:`TunableStore`, three calls that any store of
bench.stores implements, so it does not depend on which store is configured.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Protocol

import numpy as np

from bench.config import SearchConfig, StatsConfig
from bench.measure import evaluate
from bench.measure.search import interleaved_trials, search_topk
from bench.measure.statistics import bootstrap_ci
from bench.stores.base import SearchHits
from bench.stores.indexes import point_label, validate_index
from bench.stores.metadata import MetadataStore
from bench.tune.memory import estimate_index_bytes
from bench.tune.objectives import Objective
from bench.tune.spaces import Space, check_search_bounds

log = logging.getLogger(__name__)


class TunableStore(Protocol):
    """What the tuner needs from a store: build an index with parameters (replacing the previous one), load
    it, search it with parameters."""

    kind: str

    def build_index(self, index_type: str, build_params: Mapping[str, Any]) -> dict[str, Any]: ...

    def load(self) -> None: ...

    def search(self, vectors: np.ndarray, k: int, params: Mapping[str, Any], with_paths: bool = False,
               filter: Optional[str] = None) -> SearchHits: ...


@dataclass
class TrialContext:
    """Everything a trial reuses: the loaded collection, the queries and their exact top-K."""
    store: TunableStore
    metadata: MetadataStore
    queries: np.ndarray
    exact_ids: np.ndarray
    corpus_size: int
    dim: int
    search: SearchConfig
    stats: StatsConfig
    target: float
    objective: Objective
    # Refills the collection before a rebuild, for a store whose index holds the rows alone (a bare index
    # library such as faiss builds once per fill); None where build_index replaces the index in place.
    refill: Optional[Callable[[], None]] = None
    builds: int = 0


@dataclass
class Evaluation:
    """One build's outcome; stored with its Optuna trial (user attribute "evaluation")."""
    index_type: str
    build: dict[str, int]
    search_param: str
    feasible: bool
    search_value: Optional[int] = None  # the smallest value reaching the target; for infeasible, the largest tried
    recall: Optional[float] = None
    recall_ci: Optional[list[float]] = None
    objective: Optional[float] = None
    objective_range: Optional[list[float]] = None
    build_s: float = 0.0
    memory_bytes: Optional[int] = None
    probes: int = 0  # searches of every query during the bisection
    timing: dict[str, Any] = field(default_factory=dict)  # p50 ms, batch QPS, QPS 1 thread at the chosen value

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Evaluation":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def params(self) -> dict[str, int]:
        """Build and search parameters together, e.g. {"M": 24, "efConstruction": 300, "ef": 64}."""
        chosen = {self.search_param: self.search_value} if self.search_value is not None else {}
        return {**self.build, **chosen}

    def describe(self) -> str:
        return f"{self.index_type} " + ", ".join(f"{k}={v}" for k, v in self.params().items())


def timing_search_config(search: SearchConfig, objective: Objective) -> SearchConfig:
    """The timing trials measure what the objective reads: client threads only where it needs them."""
    return dataclasses.replace(search, concurrency=list(objective.needs_threads))


def evaluate_build(ctx: TrialContext, space: Space, build: Mapping[str, int]) -> Evaluation:
    """Build, search for the smallest search value reaching the target, time it: one trial (module docstring)."""
    build = {k: int(v) for k, v in build.items()}
    low, high = space.search.bounds(build, ctx.search.top_k, ctx.corpus_size)
    check_search_bounds(space, low, high, build)
    evaluation = _build(ctx, space, build, [low, high])
    value, recall, interval, probes = smallest_reaching_target(ctx, space.search.name, low, high)
    evaluation.probes = probes
    evaluation.search_value, evaluation.recall, evaluation.recall_ci = value, recall, interval
    if interval is None or interval[0] < ctx.target:
        log.info("%s: recall %.3f [%.3f, %.3f] at %s=%d, below the target %.3f", evaluation.describe(), recall,
                 *(interval or [recall, recall]), space.search.name, value, ctx.target)
        return evaluation
    evaluation.feasible = True
    _time_point(ctx, evaluation)
    return evaluation


def retime(ctx: TrialContext, space: Space, earlier: Evaluation) -> Evaluation:
    """An earlier trial's configuration built again and timed at its search value (no search for it)."""
    evaluation = _build(ctx, space, dict(earlier.build), [earlier.search_value])
    evaluation.search_value, evaluation.feasible = earlier.search_value, True
    _time_point(ctx, evaluation)
    return evaluation


def _build(ctx: TrialContext, space: Space, build: dict[str, int], search_values: list[int]) -> Evaluation:
    validate_index(space.index_type, build, [{space.search.name: v} for v in search_values], store=ctx.store.kind,
                   metric=ctx.search.metric, top_k=ctx.search.top_k)
    evaluation = Evaluation(index_type=space.index_type, build=build, search_param=space.search.name, feasible=False,
                            memory_bytes=_index_bytes(ctx, space.index_type, build))
    if ctx.refill is not None and ctx.builds:
        ctx.refill()
    log.info("building %s %s", space.index_type, build)
    start = time.perf_counter()
    ctx.builds += 1
    ctx.store.build_index(space.index_type, build)
    ctx.store.load()
    evaluation.build_s = time.perf_counter() - start
    return evaluation


def _index_bytes(ctx: TrialContext, index_type: str, build: Mapping[str, int]) -> Optional[int]:
    measured = getattr(ctx.store, "index_bytes", None)  # a store that can measure its index says so
    if callable(measured):
        return measured()
    return estimate_index_bytes(index_type, build, ctx.corpus_size, ctx.dim)


def _recall(ctx: TrialContext, params: Mapping[str, Any]) -> tuple[float, list[float]]:
    """Mean recall@K of every query and its bootstrap interval, from batched searches."""
    batch, rows = ctx.search.query_batch_size, []
    for start in range(0, len(ctx.queries), batch):
        rows.append(ctx.store.search(ctx.queries[start:start + batch], ctx.search.top_k, params).ids)
    per_query = evaluate.recall_per_query(np.concatenate(rows), ctx.exact_ids, ctx.search.top_k)
    interval = bootstrap_ci(per_query, resamples=ctx.stats.bootstrap_resamples, confidence=ctx.stats.confidence,
                            seed=ctx.stats.seed)
    return float(per_query.mean()), interval


def smallest_reaching_target(ctx: TrialContext, name: str, low: int,
                             high: int) -> tuple[int, float, list[float], int]:
    """The smallest value in [low, high] whose recall's lower bound reaches the target, with its recall and
    interval and the number of probes; the largest value's figures when none does.

    Galloping, then bisecting: low, 2·low, 4·low, ... until one reaches the target, then bisection between
    the last two. Small values are cheap probes and targets are reached early in wide ranges (nprobe in 1..nlist),
    so this searches far fewer vectors than bisecting [low, high] from its middle.
    """
    probes, below, value = 0, low - 1, low  # invariant: values <= `below` do not reach the target
    while True:
        recall, interval = _recall(ctx, {name: value})
        probes += 1
        if interval[0] >= ctx.target:
            break
        if value >= high:
            return high, recall, interval, probes
        below, value = value, min(high, value * 2)
    best = (value, recall, interval)
    while below + 1 < best[0]:
        middle = (below + 1 + best[0]) // 2
        recall, interval = _recall(ctx, {name: middle})
        probes += 1
        if interval[0] >= ctx.target:
            best = (middle, recall, interval)
        else:
            below = middle
    return (*best, probes)


def _time_point(ctx: TrialContext, evaluation: Evaluation) -> None:
    """Search once at nq=1 for the reported recall, then the interleaved timing trials at that point."""
    params = {evaluation.search_param: evaluation.search_value}
    label = point_label(params)
    search = timing_search_config(ctx.search, ctx.objective)
    found = search_topk(ctx.store, ctx.metadata, ctx.queries, params, search, label)
    per_query = evaluate.recall_per_query(found.hits.ids, ctx.exact_ids, search.top_k)
    evaluation.recall = float(per_query.mean())
    evaluation.recall_ci = bootstrap_ci(per_query, resamples=ctx.stats.bootstrap_resamples,
                                        confidence=ctx.stats.confidence, seed=ctx.stats.seed)
    timing = interleaved_trials(ctx.store, ctx.metadata, ctx.queries, [found], [label], search,
                                ctx.stats.confidence)[0]
    evaluation.objective = ctx.objective.value(timing)
    interval = ctx.objective.range(timing)
    evaluation.objective_range = list(interval) if interval is not None else None
    evaluation.timing = {"p50_ms": timing["latency"].get("p50_ms"), "p99_ms": timing["latency"].get("p99_ms"),
                         "batch_qps": timing.get("batch_qps"), "concurrent_qps": timing.get("concurrent_qps"),
                         "repeats": timing.get("repeats"), "latency_count": timing["latency"].get("count")}
