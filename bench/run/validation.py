"""Each config group's value checks, in one place, run before any work starts.

Hydra's structured configs (bench.config) check keys and types; these check what types cannot express
(positive sizes, known kinds, settings that fit together). All run at the start of a run, so a bad
``model.shard_images`` is a one-line error before the model's conversion (minutes), not after it.
A group whose checks need domain knowledge asks the module that has it (index types, precisions, the
workload and store registries, onnxruntime's providers).
"""
from __future__ import annotations

from collections.abc import Callable

from bench.config import Config
from bench.errors import BenchError
from bench.measure.clients import validate_clients
from bench.measure.workloads.registry import workload_class
from bench.models.engines import validate_engine
from bench.models.loader import resolve_workers
from bench.models.runtime import validate_runtime
from bench.models.variants import validate_precision
from bench.stores.indexes import validate_index
from bench.stores.metadata import check_kind as check_metadata_kind
from bench.stores.registry import store_class


def _positive(name: str, value: float, what: str = "a positive integer") -> None:
    if value is None or value <= 0:
        raise BenchError(f"{name}={value} must be {what}")


def check_model(cfg: Config) -> None:
    model = cfg.model
    _positive("model.batch_size", model.batch_size)
    _positive("model.shard_images", model.shard_images)
    _positive("model.shard_seconds", model.shard_seconds, "a positive number of seconds")
    resolve_workers(model.decode_workers)  # null (auto), 0 or a positive thread count
    validate_precision(model)


def check_dataset(cfg: Config) -> None:
    _positive("dataset.num_queries", cfg.dataset.num_queries)
    if cfg.dataset.limit is not None:
        _positive("dataset.limit", cfg.dataset.limit, "a positive integer (or null for all images)")


def check_index(cfg: Config) -> None:
    """The index type against the store's capabilities, the metric and the search settings."""
    validate_index(cfg.index.type, cfg.index.build, list(cfg.index.search), store=cfg.store.kind,
                   metric=cfg.search.metric, top_k=cfg.search.top_k)


def check_store(cfg: Config) -> None:
    store_class(cfg.store.kind)  # a known kind
    _positive("store.insert_batch_size", cfg.store.insert_batch_size)


def check_metadata(cfg: Config) -> None:
    check_metadata_kind(cfg.metadata.kind)
    _positive("metadata.connect_timeout_s", cfg.metadata.connect_timeout_s, "a positive number of seconds")


def check_search(cfg: Config) -> None:
    search = cfg.search
    _positive("search.query_batch_size", search.query_batch_size)
    _positive("search.repeats", search.repeats)
    _positive("search.latency_max_s", search.latency_max_s, "a positive number of seconds")
    if search.warmup < 0:
        raise BenchError(f"search.warmup={search.warmup} must not be negative")
    if search.latency_min_samples is not None:
        _positive("search.latency_min_samples", search.latency_min_samples, "a positive integer (or null)")
    if any(c <= 0 for c in search.concurrency):
        raise BenchError(f"search.concurrency={list(search.concurrency)} must hold positive thread counts")
    validate_clients(search, cfg.store.kind)  # several client processes need a store they can all reach


def check_stats(cfg: Config) -> None:
    if not 0 < cfg.stats.confidence < 1:
        raise BenchError(f"stats.confidence={cfg.stats.confidence} must lie between 0 and 1, e.g. 0.95")
    _positive("stats.bootstrap_resamples", cfg.stats.bootstrap_resamples)


def check_workload(cfg: Config) -> None:
    """A known workload kind, and that workload's own settings (its class's ``validate``)."""
    workload_class(cfg.workload.kind).validate(cfg)


def check_runtime(cfg: Config) -> None:
    validate_runtime(cfg.runtime)
    validate_engine(cfg.runtime)  # a known engine; for Ray: installed, a valid address, a positive pool


GROUPS: dict[str, Callable[[Config], None]] = {
    "model": check_model, "dataset": check_dataset, "index": check_index, "store": check_store,
    "metadata": check_metadata, "search": check_search, "stats": check_stats, "workload": check_workload,
    "runtime": check_runtime,
}


def validate(cfg: Config) -> None:
    """Every group's checks; the first problem is a :class:`BenchError` naming the setting and the fix."""
    for check in GROUPS.values():
        check(cfg)
