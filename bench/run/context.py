"""The run context: what the stages after the embedding, and every workload, are given.

A workload's ``prepare(context)`` and ``run(context)`` read this and nothing else of the runner, so a new
workload needs no change to the runner (bench.measure.workloads.registry).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bench.config import Config
from bench.measure.clock import StageClock
from bench.measure.quality import CategoryQuality
from bench.models.convert import ConvertedModel
from bench.results import RunResult
from bench.run.corpus import Corpus
from bench.stores.base import VectorStore
from bench.stores.metadata import MetadataStore


@dataclass(frozen=True)
class GroundTruth:
    """Exact search of every query over the whole corpus (numpy/faiss brute force, the run's metric)."""
    ids: np.ndarray  # int64 (nq, K): image ids of each query's exact top-K
    distances: np.ndarray  # float32 (nq, K)


@dataclass
class RunContext:
    cfg: Config
    result: RunResult  # results.json as measured so far
    clock: StageClock
    model: ConvertedModel
    dataset: str  # the dataset's name
    corpus: Corpus  # the images searched
    queries: Corpus  # the held-out query images
    categories: Mapping[int, str]  # category id -> name
    exact: GroundTruth
    quality: CategoryQuality  # precision@K, mAP@K, recall@K of result ids, with intervals
    store: VectorStore  # open, holding the indexed collection
    metadata: MetadataStore  # open: id -> path

    @property
    def outdir(self) -> Path:
        return self.result.outdir

    @property
    def search_points(self) -> list[dict[str, Any]]:
        """The plain sweep's points, with recall and timings (empty before the sweep)."""
        return self.result.data.get("search", {}).get("points", [])

    def publish(self, section: str, value: Any) -> None:
        """Save a section of results.json now (e.g. a workload's results so far, before an interrupt)."""
        self.result.set(section, value)
