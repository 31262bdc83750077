"""The query path a user's image takes through the service, one batch at a time, each stage timed:
read and decode the image file and preprocess it, run the ONNX model, search the store, resolve the
result ids to image paths through the metadata backend.

It is the same code the rest of bench measures piece by piece (the embedding's decoder, session and
normalisation; the store's search; the metadata backend's lookup), run together. A failure of the
store or of the metadata backend is raised as :class:`BackendFailure` naming which one went away.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.dataset import ImageRecord
from bench.measure.clock import Stopwatch
from bench.models.convert import ConvertedModel
from bench.models.inference import infer, l2_normalise
from bench.models.loader import BatchDecoder
from bench.stores.base import VectorStore
from bench.stores.metadata import MetadataStore

STAGES = ("decode_preprocess", "inference", "search", "lookup")


class BackendFailure(RuntimeError):
    """The vector store or the metadata backend failed while serving (gone away, timed out, refused)."""

    def __init__(self, backend: str, err: BaseException):
        self.backend = backend
        super().__init__(f"{backend} failed while serving: {type(err).__name__}: {' '.join(str(err).split())[:200]}")


@dataclass
class Served:
    """A batch's answers: per input, its top-K ids and distances (-1 / NaN rows where the image did not
    decode) and paths; and the batch's seconds per stage."""
    ids: np.ndarray
    distances: np.ndarray
    paths: list[list[str]]
    seconds: dict[str, float] = field(default_factory=dict)
    undecodable: int = 0


class QueryPipeline:
    """decode+preprocess -> inference -> search -> lookup, for a batch of image paths."""

    def __init__(self, model: ConvertedModel, session: Any, decoder: BatchDecoder, store: VectorStore,
                 metadata: MetadataStore, params: Mapping[str, Any], k: int, store_name: str):
        self.model, self.session, self.decoder = model, session, decoder
        self.store, self.metadata, self.params, self.k = store, metadata, dict(params), k
        self.store_name = store_name

    def __call__(self, paths: Sequence[Path | str]) -> Served:
        n, k = len(paths), self.k
        seconds: dict[str, float] = {}
        watch = Stopwatch()
        # Positions as ids: LoadGen may issue the same image twice in one batch.
        batch = self.decoder([ImageRecord(image_id=i, path=Path(p), category_ids=()) for i, p in enumerate(paths)])
        seconds["decode_preprocess"] = watch.lap()
        ids = np.full((n, k), -1, dtype=np.int64)
        distances = np.full((n, k), np.nan, dtype=np.float32)
        paths_out: list[list[str]] = [[] for _ in range(n)]
        rows = batch.image_ids
        if len(rows):
            vectors, _ = l2_normalise(infer(self.session, self.model, batch.pixels))
            seconds["inference"] = watch.lap()
            try:
                hits = self.store.search(vectors, k, self.params, with_paths=self.metadata.paths_in_search)
            except Exception as err:  # any client error: the store is what failed
                raise BackendFailure(f"vector store {self.store_name}", err) from err
            seconds["search"] = watch.lap()
            try:
                resolved = self.metadata.resolve(hits)
            except Exception as err:
                raise BackendFailure(f"metadata backend {self.metadata.kind}", err) from err
            seconds["lookup"] = watch.lap()
            ids[rows], distances[rows] = hits.ids, hits.distances
            for row, found in zip(rows, resolved):
                paths_out[int(row)] = list(found)
        return Served(ids=ids, distances=distances, paths=paths_out, seconds=seconds, undecodable=n - len(rows))


class NullPipeline:
    """Answers at once with no work: what the client (LoadGen and this harness) costs on its own."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, paths: Sequence[Path | str]) -> Served:
        n = len(paths)
        return Served(ids=np.full((n, self.k), -1, dtype=np.int64), distances=np.full((n, self.k), np.nan, np.float32),
                      paths=[[] for _ in range(n)])


def pack(ids: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """One row of bytes per query, (k int64 ids, k float32 distances): LoadGen's response payload, which its
    accuracy log records as hex."""
    return np.ascontiguousarray(np.concatenate([ids.astype("<i8").view(np.uint8).reshape(len(ids), -1),
                                                distances.astype("<f4").view(np.uint8).reshape(len(ids), -1)], axis=1))


def unpack(payload: bytes, k: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(payload, dtype=np.uint8)
    return raw[:8 * k].view("<i8").copy(), raw[8 * k:12 * k].view("<f4").copy()

