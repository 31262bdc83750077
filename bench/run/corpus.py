"""Embedded images as one object: ids and vectors in row order, with each image's labels and path.

The corpus searched and the held-out queries are both a :class:`Corpus` (the queries share the labels and
paths of the whole dataset). Workloads and stages take rows of it (:meth:`Corpus.rows`) instead of passing
ids, vectors, labels and paths as four arguments that must stay aligned.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from bench.data.dataset import ImageRecord
from bench.models.embed import Embeddings


@dataclass(frozen=True)
class Corpus:
    ids: np.ndarray  # int64 (n,): image ids, in row order
    vectors: np.ndarray  # float32 (n, dim), L2-normalised: row i is image ids[i]
    labels: Mapping[int, frozenset[int]]  # image id -> COCO category ids (empty: unlabelled), for every image
    paths: Mapping[int, str]  # image id -> file, for every image

    @classmethod
    def of(cls, embeddings: Embeddings, records: Sequence[ImageRecord], labels: Mapping[int, frozenset[int]],
           paths: Mapping[int, str]) -> Corpus:
        """The embedded rows of ``records``, in their order; records that failed to embed are left out."""
        ids, vectors = split_embeddings(embeddings, records)
        return cls(ids=ids, vectors=vectors, labels=labels, paths=paths)

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, selection: slice | np.ndarray) -> Corpus:
        """These rows (a slice, indices or a mask), with the same labels and paths."""
        return replace(self, ids=self.ids[selection], vectors=self.vectors[selection])

    def row_labels(self) -> list[list[int]]:
        """Each row's category ids, sorted (what a store's insert takes)."""
        return [sorted(self.labels[int(i)]) for i in self.ids]

    def row_paths(self) -> list[str]:
        return [self.paths[int(i)] for i in self.ids]


def split_embeddings(emb: Embeddings, records: Sequence[ImageRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``emb`` for the given records, in their order; records that failed to embed are left out."""
    # Vectorised (argsort + searchsorted): a dict and a Python list of rows took seconds at 100k images.
    wanted = np.fromiter((r.image_id for r in records), dtype=np.int64, count=len(records))
    order = np.argsort(emb.image_ids, kind="stable")
    sorted_ids = emb.image_ids[order]
    at = np.minimum(np.searchsorted(sorted_ids, wanted), max(len(sorted_ids) - 1, 0))
    found = sorted_ids[at] == wanted if len(sorted_ids) else np.zeros(len(wanted), dtype=bool)
    return wanted[found], emb.vectors[order[at[found]]]
