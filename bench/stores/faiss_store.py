"""store=faiss: raw faiss in this process, the library floor under Milvus.

milvus-lite runs on faiss, and Milvus's own engine builds on it, so the same index with the same
parameters on faiss shows what the database costs over the raw index (the report's store table).

- Index types and parameters are those of conf/index/: FLAT, IVF_FLAT (nlist / nprobe), IVF_SQ8,
  IVF_PQ (nlist, m, nbits / nprobe) and HNSW (M, efConstruction / ef), built with faiss.index_factory;
  metric IP or L2 (COSINE: IP on L2-normalised vectors, as Milvus computes it).
- Rows are numbered in insert order inside faiss (add without ids); the image id, path and categories of
  each row live here, in memory. So metadata=milvus (paths returned with the search) works as it does on
  Milvus, and a LabelFilter becomes an IDSelector over the rows carrying the category, made once per
  filter (an application holding its labels in memory would do the same) and passed with each search.
- Rows inserted before build_index are kept and trained on (IVF), then added; rows inserted after it go
  straight into the live index (workload=streaming). Searches share the index, an insert has it alone:
  faiss's add is not safe against searches running meanwhile.
- Nothing is persisted: inserting is a memory copy, so every run builds its index afresh, which is the
  figure the comparison wants anyway; prepare() never reports a collection as reused.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from bench.config import StoreConfig
from bench.errors import BenchError
from bench.stores.base import Capabilities, CollectionSpec, LabelFilter, SearchHits

# index type -> faiss.index_factory string, from the build params of conf/index/<type>.yaml.
FACTORY = {
    "FLAT": lambda p: "Flat",
    "IVF_FLAT": lambda p: f"IVF{p['nlist']},Flat",
    "IVF_SQ8": lambda p: f"IVF{p['nlist']},SQ8",
    "IVF_PQ": lambda p: f"IVF{p['nlist']},PQ{p['m']}x{p['nbits']}",
    "HNSW": lambda p: f"HNSW{p['M']},Flat",
}


@dataclass
class FaissConfig(StoreConfig):
    """store=faiss (conf/store/faiss.yaml)."""
    kind: str = "faiss"
    # OpenMP threads faiss builds and searches with; null: faiss's default (one per core).
    omp_threads: Optional[int] = None


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise BenchError("store=faiss needs the faiss-cpu package: pip install -e . (it is a dependency)") from None
    return faiss


class _SharedOrAlone:
    """A readers-writer lock: searches run together, an insert waits for them and then runs alone. A waiting
    insert holds back new searches, so a steady stream of searches cannot starve it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = self._writers_waiting = 0
        self._writing = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class FaissStore:
    config = FaissConfig
    kind = "faiss"
    # One batch at a time: faiss's add runs alone on the index (see _SharedOrAlone).
    insert_threads = 1

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(index_types=frozenset(FACTORY), min_rows_to_index=0, embedded=True, filters=True,
                            database=False, persistent=False,
                            caveat="**faiss** (raw index in this process, no database): the floor under Milvus's "
                                   "figures, not a store an application would run as is.")

    def __init__(self, cfg: FaissConfig):
        self.faiss = _faiss()
        self.cfg = cfg
        if cfg.omp_threads is not None:
            if cfg.omp_threads <= 0:
                raise BenchError(f"store.omp_threads={cfg.omp_threads} must be a positive integer (or null for "
                                 "faiss's default)")
            self.faiss.omp_set_num_threads(cfg.omp_threads)
        self._lock = _SharedOrAlone()
        self._spec: CollectionSpec | None = None
        self._reset()

    def _reset(self) -> None:
        self._index: Any = None
        self._pending: list[np.ndarray] = []  # vectors inserted before the index is built
        self._ids = np.empty(0, dtype=np.int64)  # faiss row -> image id
        self._paths: list[str] = []
        self._rows_of: dict[int, list[int]] = {}  # category id -> rows carrying it
        self._selectors: dict[LabelFilter, Any] = {}

    # -- facts -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.faiss.__version__, "omp_threads": self.faiss.omp_get_max_threads()}

    def check_index(self, index_type: str) -> None:
        """Every type in capabilities() builds here."""

    # -- collection ------------------------------------------------------------------------
    def prepare(self, spec: CollectionSpec, num_rows: int) -> bool:
        if spec.metric not in ("IP", "L2", "COSINE"):
            raise BenchError(f"search.metric={spec.metric!r} is not supported by store=faiss: choose IP, L2 or COSINE")
        with self._lock.alone():
            self._spec = spec
            self._reset()
        return False  # nothing is persisted, so nothing is reused

    def insert(self, ids: np.ndarray, vectors: np.ndarray, paths: Sequence[str],
               labels: Sequence[Sequence[int]]) -> None:
        spec = self._require_spec()
        rows = self._prepared(vectors)
        with self._lock.alone():
            first = len(self._ids)
            if self._index is None:
                self._pending.append(rows)
            else:
                self._index.add(rows)
            self._ids = np.concatenate([self._ids, np.asarray(ids, dtype=np.int64)])
            if spec.with_paths:
                self._paths.extend(str(p) for p in paths)
            for offset, row_labels in enumerate(labels):
                for category in set(row_labels):
                    self._rows_of.setdefault(int(category), []).append(first + offset)
            self._selectors.clear()  # they list the passing rows of their time

    def flush(self) -> None:
        """Nothing to do: an inserted row is in memory at once."""

    # -- index -----------------------------------------------------------------------------
    def build_index(self, index_type: str, build_params: Mapping[str, Any]) -> dict[str, Any]:
        spec = self._require_spec()
        if index_type not in FACTORY:
            raise BenchError(f"index {index_type} is not supported by store faiss: choose one of {', '.join(FACTORY)}")
        factory = FACTORY[index_type](build_params)
        metric = self.faiss.METRIC_L2 if spec.metric == "L2" else self.faiss.METRIC_INNER_PRODUCT
        with self._lock.alone():
            if self._index is not None:  # the rows now live in it alone; keeping a copy would double the memory
                raise RuntimeError("build_index() is called once per prepare() on store=faiss")
            data = np.concatenate(self._pending) if self._pending else np.empty((0, spec.dim), dtype=np.float32)
            index = self.faiss.index_factory(spec.dim, factory, metric)
            if index_type == "HNSW":
                index.hnsw.efConstruction = int(build_params["efConstruction"])
            if not index.is_trained:
                self._check_trainable(index_type, build_params, len(data))
                index.train(data)
            index.add(data)
            self._index, self._pending = index, []
        return {"index_type": index_type, "metric_type": spec.metric, "params": dict(build_params),
                "faiss_factory": factory, "rows": int(index.ntotal)}

    @staticmethod
    def _check_trainable(index_type: str, build_params: Mapping[str, Any], rows: int) -> None:
        """faiss's k-means needs at least as many rows as centroids: a one-line error instead of its assertion."""
        needed = {"nlist": int(build_params.get("nlist", 0))}
        if index_type == "IVF_PQ":
            needed["nbits"] = 2 ** int(build_params["nbits"])  # one row per PQ centroid of each sub-quantiser
        for name, count in needed.items():
            if rows < count:
                raise BenchError(f"index {index_type}: {name}={build_params[name]} needs at least {count} rows to "
                                 f"train on, the collection has {rows}: lower index.build.{name} or use more images")

    def load(self) -> None:
        """Nothing to do: the built index is in memory."""
        self._require_index()

    # -- search ----------------------------------------------------------------------------
    def search(self, vectors: np.ndarray, k: int, params: Mapping[str, Any],
               with_paths: bool = False, filter: Optional[LabelFilter] = None) -> SearchHits:
        if with_paths and not self._require_spec().with_paths:
            raise RuntimeError("paths were asked for, but the collection was prepared without them")
        queries = self._prepared(vectors)
        with self._lock.shared():
            index = self._require_index()
            found_distances, rows = index.search(queries, k, params=self._search_params(params, filter))
            valid = rows >= 0
            ids = np.where(valid, self._ids[np.maximum(rows, 0)], -1).astype(np.int64)
            paths = [[self._paths[r] for r in row if r >= 0] for row in rows] if with_paths else None
        distances = np.where(valid, found_distances, np.nan).astype(np.float32)
        return SearchHits(ids=ids, distances=distances, paths=paths)

    def _search_params(self, params: Mapping[str, Any], label_filter: LabelFilter | None) -> Any:
        """faiss's per-call search parameters: nprobe (IVF) or efSearch (HNSW), and the filter's selector."""
        selector = self._selector(label_filter) if label_filter is not None else None
        if "nprobe" in params:
            found = self.faiss.SearchParametersIVF(nprobe=int(params["nprobe"]))
        elif "ef" in params:
            found = self.faiss.SearchParametersHNSW(efSearch=int(params["ef"]))
        elif selector is not None:
            found = self.faiss.SearchParameters()
        else:
            return None
        if selector is not None:
            found.sel = selector
        return found

    def _selector(self, label_filter: LabelFilter) -> Any:
        """The rows carrying any of the filter's categories, as an IDSelector (kept until the next insert).
        Called with the lock shared; two searches making the same selector at once make equal ones."""
        selector = self._selectors.get(label_filter)
        if selector is None:
            rows = [r for c in label_filter.categories for r in self._rows_of.get(int(c), ())]
            selector = self.faiss.IDSelectorBatch(np.unique(np.asarray(rows, dtype=np.int64)))
            self._selectors[label_filter] = selector
        return selector

    # -- lifecycle -------------------------------------------------------------------------
    def drop(self) -> None:
        with self._lock.alone():
            self._reset()

    def close(self) -> None:
        self.drop()

    def _prepared(self, vectors: np.ndarray) -> np.ndarray:
        """float32, C-contiguous rows; L2-normalised for COSINE (zero vectors stay zero)."""
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._require_spec().metric == "COSINE":
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            rows = np.ascontiguousarray(rows / np.where(norms > 0, norms, 1.0), dtype=np.float32)
        return rows

    def _require_spec(self) -> CollectionSpec:
        if self._spec is None:
            raise RuntimeError("prepare() must be called before using the collection")
        return self._spec

    def _require_index(self) -> Any:
        if self._index is None:
            raise RuntimeError("build_index() must be called before searching")
        return self._index
