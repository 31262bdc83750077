"""The small protocol every vector store implements, and what a store says about itself.

A store is one module under ``bench/stores/``: a class implementing :class:`VectorStore`, its own
config dataclass (a subclass of :class:`bench.config.StoreConfig`), and one line in
:mod:`bench.stores.registry`. Nothing outside the store's module knows its settings or its limits:
the rest of bench asks the registry for its :class:`Capabilities`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

import numpy as np


@dataclass(frozen=True)
class Capabilities:
    """What a store kind can do, known before it is opened (config validation, report notes)."""
    index_types: frozenset[str]  # the conf/index/ types it builds
    # A store may build no index for fewer rows and search by brute force whatever the index type says
    # (Milvus servers, per segment); 0: it always builds the index asked for.
    min_rows_to_index: int
    embedded: bool  # runs inside this process (True) or is a server reached over the network
    filters: bool  # search(filter=LabelFilter) is supported (workload=filtered)
    # False for a bare index library with no database around it: the floor that the report's store table
    # compares the database stores against (the same index and parameters on both).
    database: bool = True
    # Its collections outlive the process (a file or a server), so a rerun reuses a filled one.
    persistent: bool = True
    # How its timings must be read, shown under the report's load table; "" when there is nothing to say.
    caveat: str = ""


@dataclass(frozen=True)
class CollectionSpec:
    name: str  # derived from model, dataset and data fingerprint; a store with its own naming may override it
    dim: int
    metric: str
    # Identifies the data (model weights, preprocessing, image list): a collection with the
    # same name but another fingerprint holds other vectors and must not be mixed with ours.
    fingerprint: str
    with_paths: bool  # keep image paths with the vectors, returned by search(with_paths=True) (metadata=milvus)
    # A scratch collection's rows change during the run (workload=streaming): it is never reused, and a
    # persistent store keeps it apart from the reusable one of the same data.
    scratch: bool = False


@dataclass(frozen=True)
class LabelFilter:
    """Only rows carrying at least one of these category ids (the labels given to insert) may be returned.

    A typed filter, not an expression string, so every store translates it into its own form
    (Milvus: ``array_contains(category_ids, c)``; faiss: an IDSelector over the passing rows)."""
    categories: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.categories:
            raise ValueError("LabelFilter needs at least one category id")

    def __str__(self) -> str:
        """How the filter is recorded in results.json, the same for every store."""
        if len(self.categories) == 1:
            return f"category_ids contains {self.categories[0]}"
        return f"category_ids contains any of {list(self.categories)}"


@dataclass
class SearchHits:
    ids: np.ndarray  # (nq, k) int64, -1 where fewer than k results came back
    distances: np.ndarray  # (nq, k) float32, NaN where padded
    paths: Optional[list[list[str]]] = None  # only when asked for as output fields


class VectorStore(Protocol):
    """One store kind (conf/store/<kind>.yaml). The runner calls, in order: prepare, insert (in batches,
    ``insert_threads`` at once), flush, build_index, load, then search any number of times (from several
    threads at once; insert may be called again meanwhile, for workload=streaming), and close."""

    kind: str
    # Insert batches the store takes at once (bench.stores.insert); 1 for a store whose insert holds the GIL.
    insert_threads: int

    @classmethod
    def capabilities(cls) -> Capabilities: ...

    def describe(self) -> dict[str, Any]:
        """Provenance of its figures for results.json: at least {"kind", "version"}, plus any setting that
        changes what is measured (consistency level, threads)."""

    def check_index(self, index_type: str) -> None:
        """Refuse an index type this running store cannot build (e.g. a server too old for it), before any
        rows are inserted. Index types outside capabilities().index_types are refused earlier, from config."""

    def prepare(self, spec: CollectionSpec, num_rows: int) -> bool:
        """Create the collection, or find an identical one. Returns True when reused (already filled)."""

    def insert(self, ids: np.ndarray, vectors: np.ndarray, paths: Sequence[str],
               labels: Sequence[Sequence[int]]) -> None: ...

    def flush(self) -> None:
        """Make every inserted row durable and searchable before the index is built."""

    def build_index(self, index_type: str, build_params: Mapping[str, Any]) -> dict[str, Any]:
        """Build and wait for the index; return the parameters the store reports back."""

    def load(self) -> None:
        """Make the built index ready to serve searches (Milvus: load_collection)."""

    def search(self, vectors: np.ndarray, k: int, params: Mapping[str, Any],
               with_paths: bool = False, filter: Optional[LabelFilter] = None) -> SearchHits:
        """Top-k of each vector with the index's search params; only rows passing ``filter`` (None: all)."""

    def attach(self, spec: CollectionSpec) -> None:
        """Remote stores only (capabilities().embedded is False): open the collection that another process
        prepared and loaded, to search it from a client process (search.clients); never changes it."""

    def drop(self) -> None:
        """Delete the collection (the scratch one after workload=streaming)."""

    def close(self) -> None: ...

