"""The corpus split that runs on every row of a large corpus, and the per-stage clock."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.data.dataset import ImageRecord
from bench.measure.clock import StageClock
from bench.models.embed import Embeddings
from bench.results import RunResult
from bench.run.corpus import split_embeddings


def _embeddings(ids: list[int]) -> Embeddings:
    vectors = np.array([[i, -i] for i in ids], dtype=np.float32)
    return Embeddings(image_ids=np.array(ids, dtype=np.int64), vectors=vectors, skipped=[], stats={}, cached=False)


def _records(ids: list[int]) -> list[ImageRecord]:
    return [ImageRecord(i, Path(f"{i}.jpg"), ()) for i in ids]


def test_split_embeddings_follows_record_order_and_drops_unembedded():
    emb = _embeddings([30, 10, 20, 50])  # the embedding run's order, not sorted
    ids, vectors = split_embeddings(emb, _records([20, 40, 10, 50, 5, 60]))
    assert ids.tolist() == [20, 10, 50]
    assert vectors.tolist() == [[20, -20], [10, -10], [50, -50]]


def test_split_embeddings_with_nothing_embedded_or_nothing_asked():
    ids, vectors = split_embeddings(_embeddings([]), _records([1, 2]))
    assert ids.shape == (0,) and vectors.shape[0] == 0
    ids, vectors = split_embeddings(_embeddings([1, 2]), [])
    assert ids.shape == (0,) and vectors.shape == (0, 2)


def test_stage_clock_adds_up_stages_into_results(tmp_path: Path):
    result = RunResult(tmp_path, {}, {})
    clock = StageClock(result)
    with clock("search"):
        pass
    with clock("search"):
        pass
    try:
        with clock("insert"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    stages = json.loads((tmp_path / "results.json").read_text())["stages"]
    assert set(stages["seconds"]) == {"search", "insert"}  # a failed stage keeps its time
    assert all(s >= 0 for s in stages["seconds"].values())
    assert stages["peak_rss_mib"] > 10
