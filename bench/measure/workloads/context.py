"""What a workload is given: the run's config, its open store and metadata backend, the embedded data and
the sweep's results, and where to write. A workload's ``prepare(context)`` and ``run(context)`` read
this and nothing else of the runner, and ``run`` returns its results.json section."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.config import Config
from bench.models.convert import ConvertedModel
from bench.stores.base import VectorStore
from bench.stores.metadata import MetadataStore


@dataclass
class WorkloadContext:
    cfg: Config
    store: VectorStore
    metadata: MetadataStore
    model: ConvertedModel
    query_ids: np.ndarray
    query_vectors: np.ndarray
    corpus_ids: np.ndarray
    paths: dict[int, str]  # image id -> file
    exact_ids: np.ndarray  # exact top-K of each query
    search_points: list[dict[str, Any]]  # the sweep's points, with recall and timings
    outdir: Path
    publish: Callable[[dict[str, Any]], None]  # saves the section so far (results.json), e.g. before an interrupt
