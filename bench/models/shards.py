"""The embedding cache on disk: one folder per cache key, filled with atomic shards as embedding goes.

A run writes a shard at least every ``shard_images`` images or ``shard_seconds`` seconds, each to
a temporary name first and then renamed (``os.replace``), so a shard is either whole or absent.
A run that is interrupted (Ctrl-C, SIGTERM, a crash) keeps every shard it saved, and the next run
with the same key embeds only the images no shard holds. Once every image is embedded, a
``manifest.json`` lists the shards with the run's stats: only then is the folder a cache hit.

Each shard holds its rows' image ids and unit-norm vectors, the images it had to skip, and the
writing run's cumulative figures at that moment (``progress``), so the stats of a resumed run can
say which images each run embedded and how fast, even for a run that was killed.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from bench.data.dataset import Skip
from bench.io import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
SHARD_PATTERN = re.compile(r"^shard-(\d{6})\.npz$")


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.npz"


@dataclass
class Shard:
    """One shard's contents (vectors are read separately, when copied into the result)."""
    path: Path
    index: int
    image_ids: np.ndarray  # int64 (k,)
    skipped_ids: np.ndarray  # int64 (m,)
    skipped: list[Skip]
    progress: dict[str, Any]
    zero_norms: int


@dataclass
class Stored:
    """What a cache folder already holds: valid shards in index order, duplicates dropped."""
    shards: list[Shard] = field(default_factory=list)
    manifest: Optional[dict] = None

    @property
    def num_vectors(self) -> int:
        return sum(len(s.image_ids) for s in self.shards)

    @property
    def done_ids(self) -> set[int]:
        """Images already processed: embedded or skipped."""
        done: set[int] = set()
        for s in self.shards:
            done.update(s.image_ids.tolist())
            done.update(s.skipped_ids.tolist())
        return done

    @property
    def skipped(self) -> list[Skip]:
        return [skip for s in self.shards for skip in s.skipped]

    @property
    def zero_norms(self) -> int:
        return sum(s.zero_norms for s in self.shards)


class ShardStore:
    """The shard folder of one cache key."""

    def __init__(self, folder: Path, key: str, dim: int):
        self.folder, self.key, self.dim = Path(folder), key, dim
        self.next_index = 0

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> Stored:
        """Every readable shard of this key (a torn or foreign one is logged and ignored)."""
        stored = Stored(manifest=self._read_manifest())
        if not self.folder.is_dir():
            return stored
        indexed = sorted((int(m.group(1)), p) for p in self.folder.iterdir() if (m := SHARD_PATTERN.match(p.name)))
        seen: set[int] = set()
        for index, path in indexed:
            shard = self._read_shard(path, index)
            self.next_index = max(self.next_index, index + 1)
            if shard is None:
                continue
            ids = shard.image_ids.tolist()
            if seen.intersection(ids):
                # Only possible when an interrupt landed between a shard's rename and the bookkeeping
                # after it, and the same rows were saved again under the next index.
                log.warning("ignoring embedding shard %s: its images are already in an earlier shard", path)
                continue
            seen.update(ids)
            stored.shards.append(shard)
        if stored.manifest is not None:
            names = [s.path.name for s in stored.shards]
            if names != stored.manifest.get("shards"):
                log.warning("embedding cache %s: manifest does not match the shards on disk; resuming instead",
                            self.folder)
                stored.manifest = None
        return stored

    def assemble(self, stored: Stored, image_ids: np.ndarray, vectors: np.ndarray) -> int:
        """Copy every stored shard's rows into the head of the preallocated ``image_ids`` and ``vectors``,
        one shard in memory at a time; returns the number of rows written."""
        rows = 0
        for shard in stored.shards:
            k = len(shard.image_ids)
            image_ids[rows:rows + k] = shard.image_ids
            with np.load(shard.path, allow_pickle=False) as data:
                vectors[rows:rows + k] = data["vectors"]
            rows += k
        return rows

    def _read_manifest(self) -> Optional[dict]:
        path = self.folder / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable embedding manifest %s (%s)", path, err)
            return None
        if manifest.get("key") != self.key or manifest.get("schema_version") != SCHEMA_VERSION:
            return None
        return manifest

    def _read_shard(self, path: Path, index: int) -> Optional[Shard]:
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != self.key:
                    log.warning("ignoring embedding shard %s: written for another cache key", path)
                    return None
                ids = data["image_ids"].astype(np.int64)
                vector_shape = data["vectors"].shape  # reads the array: also proves the file is whole
                skipped_ids = data["skipped_ids"].astype(np.int64)
                skipped = [Skip(path=str(p), reason=str(r))
                           for p, r in zip(data["skipped_paths"], data["skipped_reasons"])]
                progress = json.loads(str(data["progress"]))
                zero_norms = int(data["zero_norms"])
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            log.warning("ignoring unreadable embedding shard %s (%s): its images are embedded again", path, err)
            return None
        if vector_shape != (len(ids), self.dim) or len(skipped) != len(skipped_ids):
            log.warning("ignoring embedding shard %s: shape %s does not fit %d ids of dim %d", path, vector_shape,
                        len(ids), self.dim)
            return None
        return Shard(path=path, index=index, image_ids=ids, skipped_ids=skipped_ids, skipped=skipped,
                     progress=progress, zero_norms=zero_norms)

    # -- writing ---------------------------------------------------------------------------

    def write_shard(self, image_ids: np.ndarray, vectors: np.ndarray, skipped: list[tuple[int, Skip]],
                    zero_norms: int, progress: dict[str, Any]) -> Path:
        """Save one shard atomically; the index advances only once the file is in place."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / shard_name(self.next_index)

        def write(f) -> None:
            np.savez(f, key=np.array(self.key), image_ids=np.asarray(image_ids, dtype=np.int64),
                     vectors=np.asarray(vectors, dtype=np.float32),
                     skipped_ids=np.array([i for i, _ in skipped], dtype=np.int64),
                     skipped_paths=np.array([s.path for _, s in skipped], dtype=np.str_),
                     skipped_reasons=np.array([s.reason for _, s in skipped], dtype=np.str_),
                     progress=np.array(json.dumps(progress)), zero_norms=np.array(zero_norms, dtype=np.int64))

        atomic_write(path, write)  # hidden temporary name: never matches SHARD_PATTERN
        self.next_index += 1
        return path

    def write_manifest(self, shards: list[str], stats: dict, skipped: list[Skip], model: str,
                       onnx_sha256: str) -> None:
        manifest = {
            "schema_version": SCHEMA_VERSION, "key": self.key, "model": model, "onnx_sha256": onnx_sha256,
            "shards": shards, "stats": stats, "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / MANIFEST, json.dumps(manifest, indent=2))


def run_segments(shards: list[Shard]) -> list[dict[str, Any]]:
    """Which run embedded which shards, with each run's own counts and timings.

    Each shard carries its run's cumulative figures when it was saved; a run's segment is
    its last shard's figures (the run may have been killed right after it).
    """
    runs: dict[str, dict[str, Any]] = {}
    for shard in shards:
        p = shard.progress
        seg = runs.setdefault(p["run_id"], {"run_id": p["run_id"], "started_at": p["started_at"],
                                            "first_shard": shard.index, "first_image_id": None})
        if seg["first_image_id"] is None and len(shard.image_ids):
            seg["first_image_id"] = int(shard.image_ids[0])
        if len(shard.image_ids):
            seg["last_image_id"] = int(shard.image_ids[-1])
        seg.update(last_shard=shard.index, engine=p.get("engine", "local"), num_embedded=p["embedded"],
                   num_skipped=p["skipped"],
                   seconds=dict(p["seconds"]),
                   images_per_s_end_to_end=_rate(p["embedded"], p["seconds"]["total_s"]),
                   images_per_s_inference=_rate(p["embedded"], p["seconds"]["inference_s"]))
    return list(runs.values())


def _rate(count: int, seconds: float) -> Optional[float]:
    return count / seconds if count and seconds > 0 else None


class ShardWriter:
    """Collects a run's embedded batches into a preallocated result and saves them as shards.

    ``add`` is cheap (one copy into the result); ``due`` says when the pending rows should become a
    shard (every ``max_images`` images or ``max_seconds`` seconds); ``save`` writes them. After an
    interrupt, ``save`` is called once more, so everything inferred before it is kept.
    """

    def __init__(self, store: ShardStore, stored: Stored, capacity: int, dim: int, max_images: int,
                 max_seconds: float):
        self.store, self.max_images, self.max_seconds = store, max_images, max_seconds
        # The whole result, allocated once: earlier runs' shards, then this run's rows as they come.
        self.image_ids = np.empty(capacity, dtype=np.int64)
        self.vectors = np.empty((capacity, dim), dtype=np.float32)
        self.rows = store.assemble(stored, self.image_ids, self.vectors)
        self.saved: list[Shard] = []  # this run's shards
        self.embedded = self.skipped = self.zero_norms = 0
        self._pending_from = self.rows
        self._pending_skipped: list[tuple[int, Skip]] = []
        self._pending_zero_norms = 0
        self._last_save = time.monotonic()

    def add(self, image_ids: np.ndarray, vectors: np.ndarray, skipped: list[tuple[int, Skip]],
            zero_norms: int) -> None:
        k = len(image_ids)
        self.image_ids[self.rows:self.rows + k] = image_ids
        self.vectors[self.rows:self.rows + k] = vectors
        self._pending_skipped.extend(skipped)
        self._pending_zero_norms += zero_norms
        self.rows += k
        self.embedded += k
        self.skipped += len(skipped)
        self.zero_norms += zero_norms

    @property
    def pending(self) -> int:
        return self.rows - self._pending_from + len(self._pending_skipped)

    def due(self) -> bool:
        return self.pending >= self.max_images or (
            self.pending > 0 and time.monotonic() - self._last_save >= self.max_seconds)

    def save(self, progress: dict[str, Any]) -> None:
        if not self.pending:
            return
        ids = self.image_ids[self._pending_from:self.rows]
        path = self.store.write_shard(ids, self.vectors[self._pending_from:self.rows], self._pending_skipped,
                                      self._pending_zero_norms, progress)
        skipped = list(self._pending_skipped)
        self.saved.append(Shard(path=path, index=self.store.next_index - 1, image_ids=ids.copy(),
                                skipped_ids=np.array([i for i, _ in skipped], dtype=np.int64),
                                skipped=[s for _, s in skipped], progress=progress,
                                zero_norms=self._pending_zero_norms))
        self._pending_from, self._pending_skipped, self._pending_zero_norms = self.rows, [], 0
        self._last_save = time.monotonic()
