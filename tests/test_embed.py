"""Embedding: unit-norm vectors aligned with image ids, skips for broken files, stats, and the cache.

Uses the small seeded-random MobileNetV2 that tests/test_convert.py converts, in the same
session-wide folder, so running both files converts it once.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from bench.data.dataset import ImageRecord
from bench.errors import BenchError
from bench.models.convert import ConvertedModel, ensure_onnx
from bench.models.embed import embed_images, embedding_cache_key
from tests.helpers import SMALL_DIM, SMALL_SIZE, small_model_cfg

SIZE, DIM = SMALL_SIZE, SMALL_DIM
small_cfg = small_model_cfg
NUM_GOOD = 9
HOOK_SLEEP_S = 0.05
hook_calls: list[tuple[int, ...]] = []


def slow_hook(batch: np.ndarray) -> np.ndarray:
    """A deliberately slow preprocess hook (see ModelConfig.preprocess_hook)."""
    hook_calls.append(batch.shape)
    time.sleep(HOOK_SLEEP_S)
    return batch


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> ConvertedModel:
    # Same folder name as in test_convert.py: the second file to run gets a cache hit.
    return ensure_onnx(small_cfg(), tmp_path_factory.getbasetemp() / "shared-onnx-models")


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> list[ImageRecord]:
    """NUM_GOOD real JPEGs of different sizes and content, with a corrupt file in the middle."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    result = []
    for i in range(NUM_GOOD):
        h, w = 40 + 13 * i, 90 - 5 * i
        gradient = np.linspace(0, 255, w)[None, :, None] * rng.uniform(0, 1, size=(1, 1, 3))
        noise = rng.integers(0, 256, size=(h, w, 3)) * (i / NUM_GOOD)
        pixels = np.clip(gradient + noise, 0, 255).astype(np.uint8)
        path = folder / f"{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        result.append(ImageRecord(image_id=100 + i, path=path, category_ids=(1,)))
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    result.insert(4, ImageRecord(image_id=999, path=broken, category_ids=()))
    return result


@pytest.fixture(scope="session")
def first(model, records, tmp_path_factory):
    cache = tmp_path_factory.mktemp("emb-cache")
    return embed_images(model, records, small_cfg(), cache), cache


def good_ids(records):
    return [r.image_id for r in records if r.image_id != 999]


def test_vectors_are_unit_norm_and_aligned_with_ids(first, records):
    emb, _ = first
    assert emb.cached is False
    assert emb.image_ids.dtype == np.int64 and emb.vectors.dtype == np.float32
    assert emb.image_ids.tolist() == good_ids(records)
    assert emb.vectors.shape == (NUM_GOOD, DIM)
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(emb.vectors).all()
    # Different pictures give different vectors (rows are not copies of one another).
    assert len({row.tobytes() for row in emb.vectors}) == NUM_GOOD


def test_corrupt_file_is_a_counted_skip(first, records):
    emb, _ = first
    assert [s.path for s in emb.skipped] == [str(records[4].path)]
    assert emb.skipped[0].reason
    assert emb.stats["num_skipped"] == 1 and emb.stats["num_embedded"] == NUM_GOOD
    assert emb.stats["num_images"] == NUM_GOOD + 1


def test_stats(first):
    stats = first[0].stats
    assert stats["from_cache"] is False and stats["measured_at"]
    assert stats["batch_size"] == 4
    seconds = stats["seconds"]
    assert seconds["total_s"] >= seconds["inference_s"] > 0
    assert seconds["decode_preprocess_s"] > 0
    assert stats["images_per_s_end_to_end"] == pytest.approx(NUM_GOOD / seconds["total_s"])
    assert stats["images_per_s_inference"] == pytest.approx(NUM_GOOD / seconds["inference_s"])
    assert stats["images_per_s_inference"] >= stats["images_per_s_end_to_end"]
    latency = stats["batch1_latency"]
    assert latency["count"] == NUM_GOOD and 0 < latency["p50_ms"] <= latency["max_ms"]
    assert stats["onnxruntime_version"] and isinstance(stats["intra_op_threads"], int)
    assert stats["zero_norm_vectors"] == 0


def test_row_matches_embedding_the_image_alone(first, model, records, tmp_path):
    emb, _ = first
    alone = embed_images(model, [records[7]], small_cfg(), tmp_path)
    row = emb.image_ids.tolist().index(records[7].image_id)
    np.testing.assert_allclose(alone.vectors[0], emb.vectors[row], atol=1e-5)


def test_deterministic_and_batch_size_independent(first, model, records, tmp_path):
    emb, _ = first
    again = embed_images(model, records, small_cfg(), tmp_path / "a")
    assert again.cached is False
    np.testing.assert_array_equal(again.image_ids, emb.image_ids)
    np.testing.assert_allclose(again.vectors, emb.vectors, rtol=0, atol=1e-6)
    other_batches = embed_images(model, records, small_cfg(batch_size=3), tmp_path / "b")
    np.testing.assert_allclose(other_batches.vectors, emb.vectors, rtol=0, atol=1e-5)


def test_second_call_is_a_cache_hit_with_the_original_stats(first, model, records):
    emb, cache = first
    hit = embed_images(model, records, small_cfg(), cache)
    assert hit.cached is True
    np.testing.assert_array_equal(hit.image_ids, emb.image_ids)
    np.testing.assert_array_equal(hit.vectors, emb.vectors)
    assert hit.skipped == emb.skipped
    assert hit.stats["from_cache"] is True
    assert hit.stats["measured_at"] == emb.stats["measured_at"]
    assert hit.stats["seconds"] == emb.stats["seconds"]
    (folder,) = cache.iterdir()  # one cache folder: its shards and manifest, no temporary files left
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "shard-000000.npz"]


def test_changed_inputs_miss_the_cache(first, model, records, tmp_path):
    emb, cache = first
    fewer = embed_images(model, records[:-1], small_cfg(), cache)
    assert fewer.cached is False and len(fewer.image_ids) == NUM_GOOD - 1

    key = embedding_cache_key(model, records, None)
    touched = records[0].path.stat()
    os.utime(records[0].path, ns=(touched.st_atime_ns, touched.st_mtime_ns + 1_000_000))
    try:
        assert embedding_cache_key(model, records, None) != key
    finally:
        os.utime(records[0].path, ns=(touched.st_atime_ns, touched.st_mtime_ns))
    assert embedding_cache_key(model, records, None) == key
    assert embedding_cache_key(replace(model, preprocessing="caffe"), records, None) != key
    assert embedding_cache_key(replace(model, onnx_sha256="0" * 64), records, None) != key


def test_preprocess_hook_is_applied_and_counted_as_preprocessing(first, model, records, tmp_path):
    emb, _ = first
    hook_calls.clear()
    cfg = small_cfg(preprocess_hook=f"{__name__}:slow_hook")
    slowed = embed_images(model, records, cfg, tmp_path)
    batches = math.ceil(NUM_GOOD / 4)
    assert len(hook_calls) == batches
    assert all(shape[1:] == (SIZE, SIZE, 3) for shape in hook_calls)
    assert slowed.cached is False  # the hook is part of the cache key
    assert slowed.stats["preprocess_hook"] == cfg.preprocess_hook
    # time.sleep guarantees at least this much; the time goes to preprocessing, not inference.
    assert slowed.stats["seconds"]["decode_preprocess_s"] >= batches * HOOK_SLEEP_S
    np.testing.assert_allclose(slowed.vectors, emb.vectors, atol=1e-6)


def test_bad_hook_is_a_user_error(model, records, tmp_path):
    with pytest.raises(BenchError, match="module:function"):
        embed_images(model, records, small_cfg(preprocess_hook="no_colon"), tmp_path)
    with pytest.raises(BenchError, match="cannot import"):
        embed_images(model, records, small_cfg(preprocess_hook="no_such_module_xyz:f"), tmp_path)


def test_onnx_source_model_embeds_the_same(first, model, records, tmp_path):
    emb, _ = first
    cfg = small_cfg(source="onnx", architecture="", path=str(model.onnx_path))
    user_model = ensure_onnx(cfg, tmp_path)
    out = embed_images(user_model, records, cfg, tmp_path)
    np.testing.assert_allclose(out.vectors, emb.vectors, atol=1e-6)


def test_no_images(model, tmp_path):
    out = embed_images(model, [], small_cfg(), tmp_path)
    assert out.vectors.shape == (0, DIM) and out.image_ids.shape == (0,)
    assert out.stats["num_embedded"] == 0 and out.stats["images_per_s_end_to_end"] is None


# -- shards, interruption and resume -------------------------------------------------------------

interrupt_on: dict[str, object] = {"rows": 0, "error": KeyboardInterrupt}


def interrupting_hook(batch: np.ndarray) -> np.ndarray:
    """Raises KeyboardInterrupt (what Ctrl-C or bench's SIGTERM handler raise) on a batch of ``rows`` images.

    Keyed on the batch, not on a call count: decode threads may prepare batches in any order.
    """
    if len(batch) == interrupt_on["rows"]:
        raise interrupt_on["error"]("test interrupt")
    return batch


def interrupted_run(model, records, cache, error: type[BaseException] = KeyboardInterrupt, **overrides):
    """Embed with one shard per batch of 4, interrupted while preparing the 3rd batch (the only one of 2 images)."""
    cfg = small_cfg(preprocess_hook=f"{__name__}:interrupting_hook", shard_images=4, **overrides)
    interrupt_on.update(rows=2, error=error)
    try:
        with pytest.raises(error):
            embed_images(model, records, cfg, cache)
    finally:
        interrupt_on.update(rows=0, error=KeyboardInterrupt)
    return cfg


def shard_files(cache):
    return sorted(p.name for p in cache.glob("*/shard-*.npz"))


def test_interrupted_run_keeps_its_shards_and_the_rerun_resumes(first, model, records, tmp_path, caplog):
    emb, _ = first
    for workers in (0, 2):  # the inline loop and the threaded loader alike
        cache = tmp_path / f"w{workers}"
        cfg = interrupted_run(model, records, cache, decode_workers=workers)
        # Batches 1 and 2 (8 records, 7 good + the broken one) were inferred and saved; the 3rd never was.
        assert shard_files(cache) == ["shard-000000.npz", "shard-000001.npz"]
        assert not list(cache.glob("*/manifest.json")) and not list(cache.glob("*/.*"))
        caplog.clear()
        with caplog.at_level("INFO", logger="bench.models.embed"):
            resumed = embed_images(model, records, cfg, cache)
        assert "resuming: 8 of 10 images already embedded" in caplog.text
        assert resumed.cached is False
        np.testing.assert_array_equal(resumed.image_ids, emb.image_ids)
        np.testing.assert_allclose(resumed.vectors, emb.vectors, atol=1e-6)
        assert [s.path for s in resumed.skipped] == [str(records[4].path)]
        stats = resumed.stats
        assert stats["num_embedded"] == NUM_GOOD and stats["num_embedded_this_run"] == 2
        assert stats["resumed"] == {"images_done_before": 8, "vectors_before": 7}
        # Throughput is this run's own: its 2 images over its own time.
        assert stats["images_per_s_end_to_end"] == pytest.approx(2 / stats["seconds"]["total_s"])
        runs = stats["runs"]
        assert [r["num_embedded"] for r in runs] == [7, 2] and [r["num_skipped"] for r in runs] == [1, 0]
        assert [(r["first_shard"], r["last_shard"]) for r in runs] == [(0, 1), (2, 2)]
        assert runs[0]["run_id"] != runs[1]["run_id"]
        assert runs[1]["first_image_id"] == records[8].image_id
        assert all(r["seconds"]["total_s"] > 0 for r in runs)
        # Complete now: the next call is a cache hit over all three shards.
        hit = embed_images(model, records, cfg, cache)
        assert hit.cached is True and hit.stats["runs"] == runs
        np.testing.assert_array_equal(hit.vectors, resumed.vectors)


def test_a_crash_keeps_the_saved_shards_too(model, records, tmp_path, caplog):
    cfg = interrupted_run(model, records, tmp_path, error=RuntimeError)
    assert shard_files(tmp_path) == ["shard-000000.npz", "shard-000001.npz"]
    with caplog.at_level("INFO", logger="bench.models.embed"):
        resumed = embed_images(model, records, cfg, tmp_path)
    assert "resuming: 8 of 10 images already embedded" in caplog.text
    assert resumed.stats["num_embedded"] == NUM_GOOD


def test_torn_and_corrupt_shards_are_ignored(first, model, records, tmp_path, caplog):
    emb, _ = first
    cache = tmp_path / "c"
    cfg = interrupted_run(model, records, cache)
    (folder,) = cache.iterdir()
    # A write killed half-way leaves its temporary file: never read. A damaged shard is skipped with a warning.
    (folder / ".shard-000002.npz.4242.tmp").write_bytes((folder / "shard-000000.npz").read_bytes()[:100])
    good = (folder / "shard-000001.npz").read_bytes()
    (folder / "shard-000001.npz").write_bytes(good[: len(good) // 2])
    with caplog.at_level("INFO", logger="bench.models"):
        resumed = embed_images(model, records, cfg, cache)
    assert "ignoring unreadable embedding shard" in caplog.text and "shard-000001.npz" in caplog.text
    assert "resuming: 4 of 10 images already embedded" in caplog.text
    assert resumed.stats["num_embedded_this_run"] == NUM_GOOD - 4
    np.testing.assert_array_equal(resumed.image_ids, emb.image_ids)
    np.testing.assert_allclose(resumed.vectors, emb.vectors, atol=1e-6)


@pytest.mark.parametrize("change", ["images", "preprocessing", "hook", "jpeg_draft"])
def test_shards_of_another_key_are_never_reused(model, records, tmp_path, caplog, change):
    cache = tmp_path / "c"
    cfg = interrupted_run(model, records, cache)
    other_model, other_records, other_cfg = model, records, cfg
    if change == "images":
        other_records = records[:-1]
    elif change == "preprocessing":
        other_model = replace(model, preprocessing="torch")
    elif change == "hook":
        other_cfg = replace(cfg, preprocess_hook="tests.slow_hooks:sleep_50ms")
    else:
        other_cfg = replace(cfg, jpeg_draft=True)
    with caplog.at_level("INFO", logger="bench.models.embed"):
        out = embed_images(other_model, other_records, other_cfg, cache)
    assert "resuming" not in caplog.text and out.stats["resumed"] is None
    assert out.stats["num_embedded_this_run"] == len(out.image_ids)
    assert len(list(cache.iterdir())) == 2  # its own folder beside the interrupted one


def test_shards_are_written_as_embedding_goes(model, records, tmp_path):
    out = embed_images(model, records, small_cfg(shard_images=4), tmp_path)
    assert out.stats["shards"]["count"] == 3 == len(shard_files(tmp_path))
    by_time = embed_images(model, records, small_cfg(shard_seconds=1e-9, seed=0, batch_size=5), tmp_path / "t")
    assert by_time.stats["shards"]["count"] == 2  # one per batch: the time limit is always reached


def test_loader_settings_change_nothing_but_speed(first, model, records, tmp_path):
    emb, _ = first
    for workers in (0, 1, 3):
        out = embed_images(model, records, small_cfg(decode_workers=workers), tmp_path / str(workers))
        assert out.stats["loader"]["decode_workers"] == workers and out.stats["loader"]["jpeg_draft"] is False
        np.testing.assert_array_equal(out.image_ids, emb.image_ids)
        np.testing.assert_allclose(out.vectors, emb.vectors, atol=1e-6)
    assert emb.stats["loader"]["decode_workers"] >= 1  # auto


def test_jpeg_draft_is_recorded_and_keyed(model, records, tmp_path):
    out = embed_images(model, records, small_cfg(jpeg_draft=True), tmp_path)
    assert out.stats["loader"]["jpeg_draft"] is True
    assert embedding_cache_key(model, records, None, jpeg_draft=True) != embedding_cache_key(model, records, None)

