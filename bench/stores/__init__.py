"""Vector stores: where the embeddings are indexed and searched.

A store is one class implementing :class:`bench.stores.base.VectorStore`. The two Milvus
flavours share one implementation, since they speak the same client API.
"""
from __future__ import annotations

from bench.config import StoreConfig
from bench.errors import BenchError
from bench.stores.base import CollectionSpec, SearchHits, VectorStore

__all__ = ["CollectionSpec", "SearchHits", "VectorStore", "open_store"]


def open_store(cfg: StoreConfig) -> VectorStore:
    if cfg.kind in ("milvus_lite", "milvus_server"):
        from bench.stores.milvus import MilvusStore

        return MilvusStore(cfg)
    raise BenchError(f"unknown store.kind {cfg.kind!r}: choose milvus_lite or milvus_server (conf/store/)")
