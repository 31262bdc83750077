"""The stages that fill the store: insert the corpus (with its paths in the metadata backend), then build the
index and load it into memory. Each returns what it measured.

"insert" is this run's stage of writing rows; "load" is the store's own step of bringing an indexed
collection into memory (Milvus's load_collection), timed with the build.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
from tqdm import tqdm

from bench.measure.clock import Stopwatch, timed
from bench.models.convert import ConvertedModel
from bench.run.corpus import Corpus
from bench.stores.base import CollectionSpec, VectorStore
from bench.stores.insert import insert_batches
from bench.stores.metadata import MetadataStore

log = logging.getLogger(__name__)


def fingerprint(model: ConvertedModel, corpus_ids: np.ndarray, with_paths: bool) -> str:
    """Identifies what a collection holds: the model's vectors of these images, with or without paths."""
    h = hashlib.sha256(f"{model.onnx_sha256}|{model.preprocessing}|{model.input_size}|{with_paths}".encode())
    h.update(np.ascontiguousarray(corpus_ids, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def paths_namespace(dataset: str, corpus: Corpus) -> str:
    """id -> path belongs to the images, not the model: one metadata namespace per distinct image list."""
    digest = hashlib.sha256("\n".join(f"{int(i)}={corpus.paths[int(i)]}" for i in corpus.ids).encode()).hexdigest()
    return f"{dataset}_{digest[:8]}"


def collection_name(model: str, dataset: str, fingerprint: str) -> str:
    """One name per distinct data, so runs of other configs (another input size, sample size or metadata
    backend) never collide with this one; a store with its own naming setting may override it."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"bench_{model}_{dataset}_{fingerprint[:8]}")


@dataclass(frozen=True)
class InsertTimes:
    rows: int
    reused: bool  # the store already held these rows (same fingerprint and count): nothing inserted
    insert_s: Optional[float]  # None when reused
    insert_rows_per_s: Optional[float]
    metadata_put_s: float
    flush_s: float


@dataclass(frozen=True)
class BuildTimes:
    described: dict[str, Any]  # the index as the store reports it (its params, checked against the config)
    build_s: float
    load_s: float  # the store's load into memory (Milvus's load_collection)


def insert(store: VectorStore, metadata: MetadataStore, spec: CollectionSpec, corpus: Corpus,
           batch_size: int) -> InsertTimes:
    """Fill the collection (unless the store already holds the same rows), put the paths, flush."""
    paths = corpus.row_paths()
    reused = store.prepare(spec, len(corpus))
    insert_s = None
    if not reused:
        watch = Stopwatch()
        with tqdm(total=len(corpus), desc="insert", unit="row", disable=None) as bar:
            insert_batches(store, corpus.ids, corpus.vectors, paths, corpus.row_labels(), batch_size,
                           store.insert_threads, progress=bar.update)
        insert_s = watch.elapsed()
    metadata_put_s, _ = timed(metadata.put, corpus.ids, paths)
    flush_s, _ = timed(store.flush)  # before the index build: build what is sealed, not a growing segment
    return InsertTimes(rows=len(corpus), reused=reused, insert_s=insert_s,
                       insert_rows_per_s=len(corpus) / insert_s if insert_s else None,
                       metadata_put_s=metadata_put_s, flush_s=flush_s)


def build(store: VectorStore, index_type: str, build_params: Mapping[str, Any]) -> BuildTimes:
    log.info("building %s %s", index_type, dict(build_params))
    build_s, described = timed(store.build_index, index_type, dict(build_params))
    load_s, _ = timed(store.load)
    return BuildTimes(described=described, build_s=build_s, load_s=load_s)
