"""Which images a run uses: COCO annotations in, sorted image records and a query split out.

Paths per ``dataset.kind``:

- ``coco``: ``dataset.root`` is the image folder (e.g. ``val2017/``) and
  ``dataset.annotations`` the instances JSON; an image's path is ``root / file_name``.
- ``coco_sample``: ``dataset.root`` is the sample folder that :mod:`bench.data.sample`
  generates on first use (``root/images/`` and ``root/annotations/instances_sample.json``).
  ``dataset.annotations`` may be left unset; if set it must name that same JSON.
- ``folder``: ``dataset.root`` is any folder of images, searched recursively (:mod:`bench.data.folder`);
  categories come from first-level subfolders with ``dataset.labels=subfolders``.
- ``fashion_mnist``: ``dataset.root`` holds Fashion-MNIST's IDX files (:mod:`bench.data.fashion_mnist`);
  ``dataset.split`` is train or test. The pixels are read into memory, so a record's ``path`` is
  ``FILE#INDEX``, a name for the metadata store and the tables, not a file to open.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import MISSING
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue
from pycocotools.coco import COCO

from bench.config import DatasetConfig
from bench.data import fashion_mnist
from bench.data.folder import scan_folder
from bench.data.sample import MAX_SIDE, MIN_ALLOWED_SIDE, MIN_SIDE, ensure_sample
from bench.errors import BenchError

FETCH_COMMAND = "python -m bench.fetch coco --split {split}"


@dataclass(frozen=True)
class ImageRecord:
    image_id: int
    path: Path
    category_ids: tuple[int, ...]  # sorted, unique; empty for an image without annotations
    # The decoded image when the dataset holds pixels rather than files (Fashion-MNIST): a uint8
    # (h, w) or (h, w, 3) view into the dataset's array. Not compared: records are equal by id and path.
    pixels: Optional[np.ndarray] = field(default=None, compare=False, repr=False)

    def pixels_sha256(self) -> str:
        """sha256 of the in-memory pixels: such an image's identity in cache keys (it has no file to stat)."""
        return hashlib.sha256(np.ascontiguousarray(self.pixels).tobytes()).hexdigest()


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str


@dataclass
class Dataset:
    name: str
    images: list[ImageRecord]
    categories: dict[int, str]
    skipped: list[Skip]  # files referenced but missing
    # What the images were read from, by content: file name -> sha256 of its (decompressed) bytes.
    # Only for datasets read from a few fixed files (Fashion-MNIST); goes into results.json.
    files: dict[str, str] = field(default_factory=dict)


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """The images of ``cfg`` sorted by id (first ``cfg.limit`` of them); missing files go to ``skipped``."""
    if cfg.kind == "folder":
        return _load_folder(cfg)
    if cfg.kind == "fashion_mnist":
        return _load_fashion_mnist(cfg)
    image_dir, ann_path = _resolve_paths(cfg)
    coco = _load_coco(ann_path)
    image_ids = sorted(coco.getImgIds())
    if cfg.limit is not None:
        if cfg.limit < 1:
            raise BenchError(f"dataset.limit={cfg.limit} must be positive (or null for all images)")
        image_ids = image_ids[: cfg.limit]

    images, skipped = [], []
    for image_id in image_ids:
        path = image_dir / coco.imgs[image_id]["file_name"]
        if not path.is_file():
            skipped.append(Skip(str(path), "missing file"))
            continue
        category_ids = tuple(sorted({ann["category_id"] for ann in coco.imgToAnns[image_id]}))
        images.append(ImageRecord(image_id, path, category_ids))
    if image_ids and not images:
        raise BenchError(f"none of the {len(image_ids)} images listed in {ann_path} exist under {image_dir}: "
                         "check dataset.root")
    categories = {cat["id"]: cat["name"] for cat in coco.dataset["categories"]}
    return Dataset(name=cfg.name, images=images, categories=categories, skipped=skipped)


def _load_folder(cfg: DatasetConfig) -> Dataset:
    found = scan_folder(_optional(cfg, "root"), _optional(cfg, "labels"))
    images = [ImageRecord(i + 1, path, () if category is None else (category,))
              for i, (path, category) in enumerate(zip(found.paths, found.category_of))]
    # The digest in the name keeps collections of different folders (same ids 1..n) apart.
    return Dataset(name=f"{cfg.name}_{found.digest}", images=images[: cfg.limit], categories=found.categories,
                   skipped=[])


def _load_fashion_mnist(cfg: DatasetConfig) -> Dataset:
    root = _optional(cfg, "root")
    if root is None:
        raise BenchError(f"dataset.root is not set for fashion_mnist: {fashion_mnist.FETCH_HINT}")
    split = fashion_mnist.read_split(root, cfg.split)
    count = len(split.images) if cfg.limit is None else min(cfg.limit, len(split.images))
    # Category ids 1..10 (0 would read as "no category" nowhere, but COCO's ids start at 1 too).
    images = [ImageRecord(i + 1, Path(f"{split.image_file}#{i}"), (int(split.labels[i]) + 1,), split.images[i])
              for i in range(count)]
    categories = {i + 1: label for i, label in enumerate(fashion_mnist.CLASSES)}
    # The content digest in the name keeps collections of differing copies apart, as for folders; the
    # decompressed bytes are hashed, so Debian's recompressed copy and Zalando's files share it.
    digest = hashlib.sha256("".join(sorted(split.sha256.values())).encode()).hexdigest()[:8]
    return Dataset(name=f"{cfg.name}_{digest}", images=images, categories=categories, skipped=[],
                   files=dict(split.sha256))


def split_queries(images: Sequence[ImageRecord], num_queries: int,
                  seed: int) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(corpus, queries): a seeded random held-out set of queries, sorted by id; the corpus is the rest."""
    if not 0 < num_queries < len(images):
        raise BenchError(f"dataset.num_queries={num_queries} needs 1..{len(images) - 1} with {len(images)} "
                         "images: lower dataset.num_queries or raise dataset.limit")
    chosen = set(np.random.default_rng(seed).choice(len(images), size=num_queries, replace=False).tolist())
    queries = sorted((images[i] for i in chosen), key=lambda record: record.image_id)
    corpus = [record for i, record in enumerate(images) if i not in chosen]
    return corpus, queries


def _resolve_paths(cfg: DatasetConfig) -> tuple[Path, Path]:
    """(image folder, annotations JSON) for ``cfg``, generating the sample first if that is the kind."""
    root, annotations = _optional(cfg, "root"), _optional(cfg, "annotations")
    if root is None:
        raise BenchError("dataset.root is not set: set dataset.root=/path/to/images (or the sample folder)")
    if cfg.kind == "coco_sample":
        if cfg.num_images < 1:
            raise BenchError(f"dataset.num_images={cfg.num_images} must be positive")
        sides = _sample_sides(cfg)
        try:
            image_dir, ann_path = ensure_sample(Path(root), cfg.num_images, cfg.sample_seed, sides)
        except OSError as err:
            raise BenchError(f"cannot write the sample dataset to {root} ({err}): "
                             "set dataset.root to a writable folder") from None
        if annotations is not None and Path(annotations).resolve() != ann_path.resolve():
            raise BenchError(f"dataset.annotations={annotations} is not the generated sample's {ann_path}: "
                             "unset it or set dataset.annotations=${dataset.root}/annotations/instances_sample.json")
        return image_dir, ann_path
    if cfg.kind != "coco":
        raise BenchError(f"unknown dataset.kind={cfg.kind!r}: choose coco, coco_sample, folder or fashion_mnist")
    fetch = FETCH_COMMAND.format(split=cfg.split)
    if annotations is None:
        raise BenchError("dataset.annotations is not set: set dataset.annotations=/path/to/instances_val2017.json "
                         f"(`{fetch}` downloads it)")
    ann_path, image_dir = Path(annotations), Path(root)
    if not ann_path.is_file():
        raise BenchError(f"annotations file not found: {ann_path}; run `{fetch}` to download COCO into data/coco, "
                         "or set dataset.annotations=/path/to/instances_val2017.json")
    if not image_dir.is_dir():
        raise BenchError(f"image folder not found: {image_dir}; run `{fetch}` to download COCO into data/coco, "
                         "or set dataset.root=/path/to/val2017")
    return image_dir, ann_path


def _sample_sides(cfg: DatasetConfig) -> tuple[int, int]:
    sides = list(getattr(cfg, "sample_sides", None) or [MIN_SIDE, MAX_SIDE])
    if len(sides) != 2 or not all(isinstance(s, int) for s in sides) or not MIN_ALLOWED_SIDE <= sides[0] <= sides[1]:
        raise BenchError(f"dataset.sample_sides={sides} must be [min, max] pixels with "
                         f"{MIN_ALLOWED_SIDE} <= min <= max, e.g. [64, 128]")
    return sides[0], sides[1]


def _optional(cfg: Any, key: str) -> str | None:
    """``cfg.key``, or None where unset: works for the dataclass and for Hydra's DictConfig."""
    try:
        value = getattr(cfg, key)
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        return None
    return None if value in (None, "", MISSING) else str(value)


def _load_coco(ann_path: Path) -> COCO:
    """Parse and check the instances JSON, then index it with pycocotools."""
    try:
        data = json.loads(ann_path.read_text())
    except FileNotFoundError:
        raise BenchError(f"annotations file not found: {ann_path}; set dataset.annotations=...") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BenchError(f"annotations file {ann_path} is not valid JSON ({err}); "
                         "point dataset.annotations at a COCO instances_*.json") from None
    problem = _coco_problem(data)
    if problem:
        raise BenchError(f"annotations file {ann_path} is not COCO instances format: {problem}; "
                         "point dataset.annotations at a COCO instances_*.json")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress chatter
        coco.createIndex()
    return coco


# Keys each entry needs, with their types; pycocotools itself checks none of this.
_REQUIRED = {
    "images": {"id": int, "file_name": str},
    "annotations": {"image_id": int, "category_id": int},
    "categories": {"id": int, "name": str},
}


def _coco_problem(data: Any) -> str | None:
    """What is wrong with ``data`` as COCO instances, in a few words; None if nothing."""
    if not isinstance(data, dict):
        return f"top level is a {type(data).__name__}, not an object"
    for section, fields in _REQUIRED.items():
        entries = data.get(section)
        if not isinstance(entries, list):
            return f"'{section}' is missing or not a list"
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict):
                return f"{section}[{position}] is not an object"
            for key, kind in fields.items():
                # bool is an int subclass; an id of true is still a mistake.
                if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
                    return f"{section}[{position}] has no {kind.__name__} '{key}'"
    image_ids = [image["id"] for image in data["images"]]
    if len(set(image_ids)) != len(image_ids):
        return "duplicate image ids"
    return None
