"""Embedding engines: what turns image records into vectors in the shard cache (runtime.engine).

- ``local``: one onnxruntime session in this process, decoding threads ahead of it (engines/local.py).
- ``ray``: Ray Data's map_batches over a pool of model actors, on this machine or a cluster (engines/ray_data.py).

Both take an :class:`~bench.models.engines.base.EmbedJob` and fill the same shards, so the cache, the
stats and the rest of the run do not depend on which one ran. Engines are imported on first use: a
local run never imports Ray.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from bench.config import RuntimeConfig
from bench.errors import BenchError
from bench.models.engines.base import EmbedJob, EngineRun

ENGINES: dict[str, str] = {
    "local": "bench.models.engines.local",
    "ray": "bench.models.engines.ray_data",
}


def validate_engine(runtime: RuntimeConfig) -> None:
    """runtime.engine and its settings, checked before any work (Ray itself is imported only to run)."""
    if runtime.engine not in ENGINES:
        raise BenchError(f"runtime.engine={runtime.engine!r}: choose one of {', '.join(ENGINES)}")
    if runtime.engine == "ray":
        importlib.import_module(ENGINES["ray"]).validate(runtime)


def engine_runner(name: str) -> Callable[[EmbedJob], EngineRun]:
    if name not in ENGINES:
        raise BenchError(f"runtime.engine={name!r}: choose one of {', '.join(ENGINES)}")
    return importlib.import_module(ENGINES[name]).run


def engine_provenance(runtime: RuntimeConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """For results.json's provenance: the engine asked for, the one that computed the vectors (an earlier run's,
    on a cache hit) and, for Ray, its version and the cluster's resources as that run saw them."""
    computed = stats.get("engine") or {"name": "local"}
    out: dict[str, Any] = {"configured": runtime.engine, "computed_by": computed.get("name"),
                           "from_cache": bool(stats.get("from_cache"))}
    if computed.get("name") == "ray":
        out.update(actors=computed.get("actors"), cpus_per_actor=computed.get("cpus_per_actor"),
                   address=computed.get("address"), **computed.get("cluster", {}))
    return out
