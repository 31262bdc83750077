"""What an embedding engine is given and what it hands back; the rest of the run never learns which engine ran.

An engine embeds the records of an :class:`EmbedJob` that the cache does not hold yet into the job's
shard writer (bench.models.shards), saving shards as it goes and once more on any interrupt, and
returns an :class:`EngineRun`: its timings and its own figures. bench.models.embed turns that into the
embedding stats and the manifest, the same way for every engine.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from bench.config import ModelConfig, RuntimeConfig
from bench.data.dataset import ImageRecord
from bench.measure.clock import Stopwatch
from bench.models.convert import ConvertedModel
from bench.models.preprocess import Hook
from bench.models.shards import ShardStore, ShardWriter, Stored


@dataclass
class EmbedJob:
    """The images to embed and everything that decides their vectors."""
    engine: str
    model: ConvertedModel
    images: Sequence[ImageRecord]  # all of them, in the dataset's order
    cfg: ModelConfig
    runtime: RuntimeConfig
    preprocess: Callable[[np.ndarray], np.ndarray]
    hook: Optional[Hook]
    store: ShardStore
    stored: Stored  # what earlier runs of the same cache key saved

    @property
    def todo(self) -> list[ImageRecord]:
        done = self.stored.done_ids
        return [r for r in self.images if int(r.image_id) not in done]

    @property
    def batch_size(self) -> int:
        return max(1, int(self.cfg.batch_size))

    def writer(self) -> ShardWriter:
        return ShardWriter(self.store, self.stored, capacity=len(self.images), dim=self.model.embedding_dim,
                           max_images=self.cfg.shard_images, max_seconds=self.cfg.shard_seconds)


@dataclass
class EngineRun:
    """One engine's pass over a job: the filled writer, its timings, and figures only that engine has."""
    writer: ShardWriter
    total_s: float  # wall time of the pass, as the driver saw it
    inference_s: float  # model calls alone (summed over actors for a parallel engine)
    seconds: dict[str, Any]  # the stage split: decode_s, preprocess_s, warmup_s, ...
    batch1_latency: dict[str, Any]
    spread: Optional[dict[str, Any]]
    session: dict[str, Any]  # what ran the model (bench.models.runtime.describe_session)
    extra: dict[str, Any] = field(default_factory=dict)  # top-level stats keys of this engine (e.g. "loader")


class RunClock:
    """This run's identity and cumulative timings, saved with every shard it writes."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.run_id = uuid.uuid4().hex[:12]
        self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._watch = Stopwatch()
        self.inference_s = 0.0

    def elapsed(self) -> float:
        return self._watch.elapsed()

    def progress(self, writer: ShardWriter, seconds: dict[str, float]) -> dict[str, Any]:
        return {"run_id": self.run_id, "started_at": self.started_at, "engine": self.engine,
                "embedded": writer.embedded, "skipped": writer.skipped,
                "seconds": {"total_s": self.elapsed(), "inference_s": self.inference_s, **seconds}}


class ShardSaving:
    """Shards saved as an engine goes (``step`` after each batch), once more at the end, and on any
    interrupt (signal, crash) before it propagates: every batch already inferred is kept."""

    def __init__(self, writer: ShardWriter, progress: Callable[[], dict[str, Any]], log: Any):
        self.writer, self.progress, self.log = writer, progress, log

    def step(self) -> None:
        if self.writer.due():
            self.writer.save(self.progress())

    def __enter__(self) -> ShardSaving:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.writer.save(self.progress())
            return
        try:
            self.writer.save(self.progress())
        except Exception as err:  # never hide the interrupt behind a failed save
            self.log.warning("could not save the last embedding shard (%s)", err)
