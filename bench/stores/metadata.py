"""Where the id -> image path mapping lives: with the vectors in the store (a Milvus scalar field), or Redis.

An image search application needs paths, not ids, so every measured query resolves them.
Backends are chosen by ``metadata.kind`` (conf/metadata/).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from bench.config import MetadataConfig
from bench.errors import BenchError
from bench.stores.base import SearchHits


class MetadataStore(Protocol):
    kind: str
    # True when the vector store returns paths as output fields of the search itself.
    paths_in_search: bool

    def put(self, ids: np.ndarray, paths: Sequence[str]) -> None: ...

    def resolve(self, hits: SearchHits) -> list[list[str]]: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


class MilvusFieldMetadata:
    """metadata=milvus: paths kept by the vector store with the vectors and returned with each search (Milvus:
    the collection's `path` field, as an output field; an in-process store: its own table)."""

    kind = "milvus"
    paths_in_search = True

    def put(self, ids: np.ndarray, paths: Sequence[str]) -> None:
        """Nothing to do: the store writes the path field together with the vectors."""

    def resolve(self, hits: SearchHits) -> list[list[str]]:
        if hits.paths is None:
            raise RuntimeError("search was run without output fields; paths are missing")
        return hits.paths

    def describe(self) -> dict:
        return {"kind": self.kind, "method": "returned by the vector store with each search (Milvus: output field "
                                             "'path')"}

    def close(self) -> None:
        pass


METADATA_KINDS = ("milvus", "redis")


def check_kind(kind: str) -> None:
    if kind not in METADATA_KINDS:
        raise BenchError(f"unknown metadata.kind {kind!r}: choose {' or '.join(METADATA_KINDS)} (conf/metadata/)")


def open_metadata(cfg: MetadataConfig, namespace: str) -> MetadataStore:
    check_kind(cfg.kind)
    if cfg.kind == "milvus":
        return MilvusFieldMetadata()
    if cfg.kind == "redis":
        from bench.stores.redis_metadata import RedisMetadata

        return RedisMetadata(cfg, namespace)
