"""Store kinds by name: ``store=<kind>`` picks conf/store/<kind>.yaml, and this table picks its class.

Adding a store is one module (its class and config dataclass), one YAML file in conf/store/ and one
line here (docs/stores.md). Classes are named as "module:Class" and imported on first use, so a
store's client library is imported only by runs that use it.
"""
from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from bench.errors import BenchError
from bench.stores.base import Capabilities, VectorStore

STORES: dict[str, str] = {
    "milvus_lite": "bench.stores.milvus:MilvusLiteStore",
    "milvus_server": "bench.stores.milvus:MilvusServerStore",
    "faiss": "bench.stores.faiss_store:FaissStore",
}

# conf/config.yaml's store: the report labels runs on any other kind with it (bench.report.cross_run_tables).
DEFAULT_KIND = "milvus_lite"


def kinds() -> list[str]:
    return list(STORES)


@cache
def store_class(kind: str) -> Any:
    """The class registered as ``kind``; an unknown kind is a one-line error listing the known ones."""
    if kind not in STORES:
        raise BenchError(f"unknown store.kind {kind!r}: choose one of {', '.join(STORES)} (conf/store/)")
    module, _, name = STORES[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def capabilities(kind: str) -> Capabilities:
    return store_class(kind).capabilities()


def known_capabilities(kind: str) -> Capabilities | None:
    """Capabilities of a store kind recorded in some results.json, or None for a kind this code does not know."""
    return capabilities(kind) if kind in STORES else None


def kinds_building(index_type: str) -> list[str]:
    """The store kinds whose capabilities include ``index_type``."""
    return [kind for kind in STORES if index_type in capabilities(kind).index_types]


def open_store(cfg: Any) -> VectorStore:
    """The store for ``cfg`` (its kind's config class, as Hydra composed it from conf/store/)."""
    cls = store_class(cfg.kind)
    if not isinstance(cfg, cls.config):
        raise BenchError(f"store.kind={cfg.kind}: expected a {cls.config.__name__} config, got "
                         f"{type(cfg).__name__} (conf/store/{cfg.kind}.yaml names its schema in its defaults list)")
    return cls(cfg)


def register_schemas(config_store: Any) -> None:
    """Each kind's config class as ``store_schema/<kind>``, for conf/store/<kind>.yaml's defaults list."""
    for kind in STORES:
        config_store.store(group="store_schema", name=kind, node=store_class(kind).config)
