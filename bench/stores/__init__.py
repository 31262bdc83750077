"""Vector stores: where the embeddings are indexed and searched.

A store is one class implementing :class:`bench.stores.base.VectorStore`, registered by name in
:mod:`bench.stores.registry` with its own config class. The two Milvus flavours share one
implementation, since they speak the same client API.
"""
from __future__ import annotations

from bench.stores.base import Capabilities, CollectionSpec, LabelFilter, SearchHits, VectorStore
from bench.stores.registry import capabilities, open_store

__all__ = ["Capabilities", "CollectionSpec", "LabelFilter", "SearchHits", "VectorStore", "capabilities",
           "open_store"]
