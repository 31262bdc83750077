"""`dataset=folder`: any folder of images, recursively, with labels from first-level subfolders."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.config import DatasetConfig
from bench.data.dataset import load_dataset
from bench.data.folder import image_extensions, scan_folder
from bench.errors import BenchError
from bench.results import load_results

COLOURS = {"apples": (200, 40, 40), "leaves": (40, 170, 60), "sky": (60, 90, 210)}
PER_CATEGORY = 10


def make_photo_folder(root: Path) -> Path:
    """Three subfolders of tinted JPEG/PNG/WebP images (one nested a level deeper), plus files to ignore."""
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        for i in range(PER_CATEGORY):
            folder = root / name / ("more" if i >= 7 else "")
            folder.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (40, 48, 3)), 0, 255).astype(np.uint8)
            ext = [".jpg", ".PNG", ".webp"][i % 3]
            Image.fromarray(pixels).save(folder / f"img{i:02d}{ext}")
    (root / "apples" / "broken.jpg").write_bytes(b"not a jpeg at all")  # counted as a skip, not dropped
    (root / "notes.txt").write_text("not an image")
    (root / ".thumbs").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".thumbs" / "hidden.jpg")
    Image.new("RGB", (8, 8)).save(root / "leaves" / "._resource_fork.jpg")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return make_photo_folder(tmp_path_factory.mktemp("photos"))


def folder_cfg(root: Path, **overrides) -> DatasetConfig:
    return DatasetConfig(**{"name": "folder", "kind": "folder", "root": str(root), **overrides})


def test_extensions_are_what_pillow_opens():
    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".bmp", ".gif"} <= image_extensions()
    assert not {".h5", ".grib", ".txt", ".pdf"} & image_extensions()  # stubs and save-only formats


def test_recursive_scan_with_subfolder_labels(photos):
    found = scan_folder(str(photos), "subfolders")
    relative = [p.relative_to(photos).as_posix() for p in found.paths]
    assert relative == sorted(relative) and len(relative) == 3 * PER_CATEGORY + 1  # + broken.jpg
    assert "apples/more/img09.jpg" in relative and "leaves/img01.PNG" in relative
    assert not [r for r in relative if r.endswith(".txt") or "/." in f"/{r}"]
    assert found.categories == {1: "apples", 2: "leaves", 3: "sky"}
    label = dict(zip(relative, found.category_of))
    assert label["apples/more/img09.jpg"] == 1 and label["sky/img00.jpg"] == 3


def test_load_dataset_folder_kind(photos, tmp_path):
    dataset = load_dataset(folder_cfg(photos, labels="subfolders"))
    assert [r.image_id for r in dataset.images] == list(range(1, 3 * PER_CATEGORY + 2))
    assert all(len(r.category_ids) == 1 for r in dataset.images) and not dataset.skipped
    assert dataset.name.startswith("folder_") and len(dataset.name) == len("folder_") + 8
    unlabelled = load_dataset(folder_cfg(photos))
    assert all(r.category_ids == () for r in unlabelled.images) and unlabelled.categories == {}
    assert len(load_dataset(folder_cfg(photos, limit=5)).images) == 5
    # An image directly in the root has no category.
    loose = tmp_path / "loose"
    (loose / "cats").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(loose / "cats" / "a.jpg")
    Image.new("RGB", (8, 8)).save(loose / "b.png")
    assert [r.category_ids for r in load_dataset(folder_cfg(loose, labels="subfolders")).images] == [(), (1,)]


def test_the_name_tells_folders_and_changed_files_apart(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / name / "x.png")
    first = load_dataset(folder_cfg(tmp_path / "a")).name
    assert load_dataset(folder_cfg(tmp_path / "a")).name == first
    os.utime(tmp_path / "b" / "x.png", ns=(1, 1))
    assert load_dataset(folder_cfg(tmp_path / "b")).name != first
    os.utime(tmp_path / "a" / "x.png", ns=(2, 2))
    assert load_dataset(folder_cfg(tmp_path / "a")).name != first


@pytest.mark.parametrize("setup, overrides, message", [
    ("missing", {}, "is not a folder"),
    ("empty", {}, "no images under dataset.root="),
    ("text_only", {}, "no images under dataset.root="),
    ("flat", {"labels": "subfolders"}, "every image sits directly in"),
    ("flat", {"labels": "folders"}, "dataset.labels='folders': choose subfolders"),
])
def test_bad_folders_are_one_line_errors(tmp_path, setup, overrides, message):
    root = tmp_path / setup
    if setup != "missing":
        root.mkdir()
    if setup == "text_only":
        (root / "readme.txt").write_text("x")
    if setup == "flat":
        Image.new("RGB", (8, 8)).save(root / "a.jpg")
    with pytest.raises(BenchError, match=message) as info:
        load_dataset(folder_cfg(root, **overrides))
    assert "\n" not in str(info.value)


def test_cli_run_on_a_folder_with_subfolders(bench_cli, photos, tmp_path):
    run_dir = tmp_path / "labelled"
    proc = bench_cli("dataset=folder", f"dataset.root={photos}", "dataset.labels=subfolders", "dataset.num_queries=9",
                     "index=FLAT", run_dir=run_dir)
    result = load_results(run_dir)
    assert result["status"] == "ok" and result["dataset"]["name"].startswith("folder_")
    assert result["dataset"]["num_images"] == 3 * PER_CATEGORY + 1
    assert [Path(s["path"]).name for s in result["dataset"]["skipped"]] == ["broken.jpg"]
    assert result["dataset"]["num_queries"] + result["dataset"]["num_corpus"] == 3 * PER_CATEGORY  # broken.jpg out
    assert result["exact"]["num_queries"] == result["dataset"]["num_queries"]
    assert 0 <= result["exact"]["precision_at_k"] <= 1
    assert result["search"]["points"][0]["recall_at_k"] == pytest.approx(1.0)  # FLAT is exact
    assert "precision@10" in proc.stdout and "no labels" not in proc.stdout

    # Without labels: the same run, and the quality columns say so.
    bare_dir = tmp_path / "unlabelled"
    bare = bench_cli("dataset=folder", f"dataset.root={photos}", "dataset.num_queries=9", "index=FLAT",
                     run_dir=bare_dir)
    unlabelled = load_results(bare_dir)
    assert unlabelled["status"] == "ok" and unlabelled["exact"]["precision_at_k"] is None
    assert unlabelled["dataset"]["query_image_ids"] == result["dataset"]["query_image_ids"]  # held out the same way
    assert unlabelled["search"]["points"][0]["recall_at_k"] == pytest.approx(1.0)
    assert "no labels" in bare.stdout and "no labels" in (bare_dir / "search.csv").read_text()


def test_cli_empty_folder_is_a_one_line_error(bench_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = bench_cli("dataset=folder", f"dataset.root={tmp_path / 'empty'}", run_dir=tmp_path / "run", expect_rc=2)
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no images under dataset.root=")
    assert "Traceback" not in proc.stderr
