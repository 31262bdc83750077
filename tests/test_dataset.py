from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from bench.config import DatasetConfig
from bench.data import sample
from bench.data.dataset import ImageRecord, Skip, load_dataset, split_queries
from bench.data.sample import ANNOTATIONS_FILE, ensure_sample, generate_sample
from bench.errors import BenchError

NUM_IMAGES = 40


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    generate_sample(root, NUM_IMAGES, seed=0)
    return root


def sample_cfg(root: Path, **overrides) -> DatasetConfig:
    fields = dict(name="sample", kind="coco_sample", root=str(root), num_images=NUM_IMAGES, sample_seed=0)
    return DatasetConfig(**{**fields, **overrides})


def coco_cfg(image_dir: Path, annotations: Path, **overrides) -> DatasetConfig:
    fields = dict(name="coco", kind="coco", root=str(image_dir), annotations=str(annotations))
    return DatasetConfig(**{**fields, **overrides})


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_json(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


# --- sample generator -------------------------------------------------------------------------

def test_sample_is_byte_identical_for_same_inputs(tmp_path: Path) -> None:
    generate_sample(tmp_path / "a", 20, seed=3)
    generate_sample(tmp_path / "b", 20, seed=3)
    generate_sample(tmp_path / "c", 20, seed=4)
    a, b, c = (file_bytes(tmp_path / name) for name in "abc")
    assert len(a) == 20 + 2  # images, annotations, marker
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_sample_loads_with_pycocotools(sample_root: Path) -> None:
    coco = COCO(str(sample_root / ANNOTATIONS_FILE))
    assert len(coco.getImgIds()) == NUM_IMAGES
    cats = coco.loadCats(coco.getCatIds())
    assert len(cats) >= 8 and all(cat["supercategory"] for cat in cats)
    assert {(1, "person"), (3, "car"), (17, "cat"), (18, "dog")} <= {(c["id"], c["name"]) for c in cats}
    sizes = set()
    for image in coco.loadImgs(coco.getImgIds()):
        with Image.open(sample_root / "images" / image["file_name"]) as img:
            assert img.size == (image["width"], image["height"])
        sizes.add(img.size)
        assert all(160 <= side <= 480 for side in img.size)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert 1 <= len(anns) <= 3
        for ann in anns:
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and x + w <= image["width"] and y + h <= image["height"]
            assert ann["iscrowd"] == 0 and 0 < ann["area"] <= w * h
            assert len(ann["segmentation"][0]) >= 6  # a polygon of at least 3 points
            assert coco.annToMask(ann).sum() > 0
    assert len(sizes) > NUM_IMAGES // 2  # varied sizes and aspect ratios


def test_sample_contains_odd_but_valid_files(sample_root: Path) -> None:
    modes = {}
    for path in sorted((sample_root / "images").iterdir()):
        with Image.open(path) as img:
            modes.setdefault((img.format, img.mode), path)
    assert {("JPEG", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK"), ("PNG", "RGBA")} <= modes.keys()


def test_sample_main_category_is_visually_consistent(sample_root: Path) -> None:
    # The first annotation is the image's large main object; its mean colour should be
    # close to that of other images with the same main category (what makes embeddings cluster).
    coco = COCO(str(sample_root / ANNOTATIONS_FILE))
    colours: dict[int, list[np.ndarray]] = {}
    for image in coco.loadImgs(coco.getImgIds()):
        with Image.open(sample_root / "images" / image["file_name"]) as img:
            if img.mode not in ("RGB", "RGBA"):
                continue
            pixels = np.asarray(img.convert("RGB"), dtype=np.float32)
        main = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))[0]
        colours.setdefault(main["category_id"], []).append(pixels[coco.annToMask(main) > 0].mean(axis=0))
    means = {cat: np.mean(values, axis=0) for cat, values in colours.items()}
    spread = np.mean([np.linalg.norm(v - means[cat]) for cat, values in colours.items() for v in values])
    between = np.mean([np.linalg.norm(a - b) for a in means.values() for b in means.values() if a is not b])
    assert spread < between / 3


def test_ensure_sample_reuses_matching_sample(sample_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sample, "generate_sample", lambda *args: pytest.fail("regenerated a complete sample"))
    assert ensure_sample(sample_root, NUM_IMAGES, 0) == (sample_root / "images", sample_root / ANNOTATIONS_FILE)


def test_ensure_sample_regenerates_on_other_seed_or_incomplete(tmp_path: Path) -> None:
    _, ann_path = ensure_sample(tmp_path, 10, seed=0)
    first = ann_path.read_bytes()
    ensure_sample(tmp_path, 10, seed=1)
    assert ann_path.read_bytes() != first
    (tmp_path / sample.MARKER_FILE).unlink()  # as if interrupted
    ensure_sample(tmp_path, 10, seed=0)
    assert ann_path.read_bytes() == first
    assert json.loads((tmp_path / sample.MARKER_FILE).read_text())["seed"] == 0


# --- load_dataset -----------------------------------------------------------------------------

def test_load_sample_dataset(sample_root: Path) -> None:
    dataset = load_dataset(sample_cfg(sample_root))
    assert dataset.name == "sample" and dataset.skipped == []
    assert len(dataset.images) == NUM_IMAGES
    ids = [record.image_id for record in dataset.images]
    assert ids == sorted(ids)
    assert len(dataset.categories) >= 8 and dataset.categories[1] == "person"
    for record in dataset.images:
        assert record.path.is_file()
        assert 1 <= len(record.category_ids) <= 3
        assert set(record.category_ids) <= dataset.categories.keys()


def test_load_dataset_generates_sample_on_first_use(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    dataset = load_dataset(sample_cfg(root, num_images=12, annotations=str(root / ANNOTATIONS_FILE)))
    assert len(dataset.images) == 12 and (root / sample.MARKER_FILE).is_file()


def test_limit_takes_first_images_by_id(sample_root: Path) -> None:
    everything = load_dataset(sample_cfg(sample_root)).images
    limited = load_dataset(sample_cfg(sample_root, limit=7)).images
    assert limited == everything[:7]
    with pytest.raises(BenchError, match="dataset.limit"):
        load_dataset(sample_cfg(sample_root, limit=0))


def test_missing_image_is_counted_as_skipped(sample_root: Path, tmp_path: Path) -> None:
    image_dir = tmp_path / "images"
    shutil.copytree(sample_root / "images", image_dir)
    victim = sorted(image_dir.iterdir())[4]
    victim.unlink()
    dataset = load_dataset(coco_cfg(image_dir, sample_root / ANNOTATIONS_FILE))
    assert dataset.skipped == [Skip(str(victim), "missing file")]
    assert len(dataset.images) == NUM_IMAGES - 1
    assert victim not in {record.path for record in dataset.images}


def test_image_without_annotations_keeps_empty_categories(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.jpg")
    ann = write_json(tmp_path / "instances.json", {
        "images": [{"id": 9, "file_name": "b.jpg"}, {"id": 5, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 9, "category_id": 3, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0}],
        "categories": [{"id": 3, "name": "car"}],
    })
    dataset = load_dataset(coco_cfg(tmp_path, ann))
    assert dataset.images == [ImageRecord(5, tmp_path / "a.jpg", ()), ImageRecord(9, tmp_path / "b.jpg", (3,))]
    assert dataset.categories == {3: "car"}


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ([1, 2], "top level is a list"),
    ({"annotations": [], "categories": []}, "'images' is missing"),
    ({"images": {}, "annotations": [], "categories": []}, "'images' is missing or not a list"),
    ({"images": [{"id": "1", "file_name": "a.jpg"}], "annotations": [], "categories": []}, r"images\[0\]"),
    ({"images": [{"id": 1}], "annotations": [], "categories": []}, "file_name"),
    ({"images": [], "annotations": [{"image_id": 1}], "categories": []}, "category_id"),
    ({"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}], "annotations": [],
      "categories": []}, "duplicate image ids"),
])
def test_malformed_annotations_raise_bench_error(tmp_path: Path, content, message: str) -> None:
    ann = write_json(tmp_path / "bad.json", content)
    with pytest.raises(BenchError, match=message) as info:
        load_dataset(coco_cfg(tmp_path, ann))
    assert str(ann) in str(info.value) and "\n" not in str(info.value)


def test_missing_annotations_file_names_path_and_fix(tmp_path: Path) -> None:
    missing = tmp_path / "instances_val2017.json"
    with pytest.raises(BenchError, match="dataset.annotations=") as info:
        load_dataset(coco_cfg(tmp_path, missing))
    assert str(missing) in str(info.value) and "python -m bench.fetch coco --split val2017" in str(info.value)


def test_missing_image_folder_and_unset_fields(tmp_path: Path, sample_root: Path) -> None:
    with pytest.raises(BenchError, match="dataset.root="):
        load_dataset(coco_cfg(tmp_path / "nowhere", sample_root / ANNOTATIONS_FILE))
    with pytest.raises(BenchError, match="dataset.annotations is not set"):
        load_dataset(DatasetConfig(name="coco", kind="coco", root=str(tmp_path)))
    with pytest.raises(BenchError, match="dataset.kind"):
        load_dataset(coco_cfg(tmp_path, sample_root / ANNOTATIONS_FILE, kind="imagenet"))
    with pytest.raises(BenchError, match="not the generated sample"):
        load_dataset(sample_cfg(sample_root, annotations=str(tmp_path / "other.json")))
    with pytest.raises(BenchError, match="dataset.num_images=0"):
        load_dataset(sample_cfg(tmp_path / "empty", num_images=0))
    (tmp_path / "a_file").write_text("")
    with pytest.raises(BenchError, match="writable folder"):
        load_dataset(sample_cfg(tmp_path / "a_file"))


# --- split_queries ----------------------------------------------------------------------------

def records(n: int) -> list[ImageRecord]:
    return [ImageRecord(100 + 3 * i, Path(f"{i}.jpg"), ()) for i in range(n)]


def test_split_is_disjoint_complete_and_sorted() -> None:
    images = records(30)
    corpus, queries = split_queries(images, 8, seed=0)
    assert len(queries) == 8 and len(corpus) == 22
    assert not set(corpus) & set(queries) and set(corpus) | set(queries) == set(images)
    assert [q.image_id for q in queries] == sorted(q.image_id for q in queries)
    assert corpus == [record for record in images if record not in queries]  # keeps id order


def test_split_is_deterministic_per_seed() -> None:
    images = records(30)
    assert split_queries(images, 8, seed=5) == split_queries(images, 8, seed=5)
    assert split_queries(images, 8, seed=5)[1] != split_queries(images, 8, seed=6)[1]


@pytest.mark.parametrize("num_queries", [0, -1, 10, 11])
def test_split_rejects_impossible_query_count(num_queries: int) -> None:
    with pytest.raises(BenchError, match="with 10 images: lower dataset.num_queries or raise dataset.limit"):
        split_queries(records(10), num_queries, seed=0)


def test_sample_sides_set_image_size_and_mark_the_sample(tmp_path: Path) -> None:
    records = load_dataset(sample_cfg(tmp_path / "small", num_images=6, sample_sides=[40, 48])).images
    for record in records:
        with Image.open(record.path) as img:
            assert 40 <= img.width <= 48 and 40 <= img.height <= 48
    marker = json.loads((tmp_path / "small" / ".complete.json").read_text())
    assert marker["sides"] == [40, 48]


@pytest.mark.parametrize("sides", [[8, 64], [128, 64], [64]])
def test_bad_sample_sides_are_one_line_errors(tmp_path: Path, sides) -> None:
    with pytest.raises(BenchError, match="dataset.sample_sides"):
        load_dataset(sample_cfg(tmp_path, sample_sides=sides))
