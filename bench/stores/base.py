"""The small protocol every vector store implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dim: int
    metric: str
    # Identifies the data (model weights, preprocessing, image list): a collection with the
    # same name but another fingerprint holds other vectors and must not be mixed with ours.
    fingerprint: str
    with_paths: bool  # keep image paths in a scalar field (metadata=milvus)


@dataclass
class SearchHits:
    ids: np.ndarray  # (nq, k) int64, -1 where fewer than k results came back
    distances: np.ndarray  # (nq, k) float32, NaN where padded
    paths: Optional[list[list[str]]] = None  # only when asked for as output fields


class VectorStore(Protocol):
    kind: str

    def server_version(self) -> str: ...

    def prepare(self, spec: CollectionSpec, num_rows: int) -> bool:
        """Create the collection, or find an identical one. Returns True when reused (already filled)."""

    def insert(self, ids: np.ndarray, vectors: np.ndarray, paths: Sequence[str],
               labels: Sequence[Sequence[int]]) -> None: ...

    def flush(self) -> None: ...

    def build_index(self, index_type: str, build_params: Mapping[str, Any]) -> dict[str, Any]:
        """Build and wait for the index; return the parameters the store reports back."""

    def load(self) -> None: ...

    def search(self, vectors: np.ndarray, k: int, params: Mapping[str, Any],
               with_paths: bool = False, filter: Optional[str] = None) -> SearchHits:
        """Top-k of each vector; `filter` is a boolean expression over scalar fields (None: no filter),
        e.g. "array_contains(category_ids, 1)"."""

    def drop(self) -> None: ...

    def close(self) -> None: ...
