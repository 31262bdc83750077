"""``dataset=folder``: any folder of images, searched recursively, with optional labels from subfolders.

Which files count: every file whose extension Pillow registers for a format it can open (its stub
formats, such as HDF5 or GRIB, need extra handlers and are left out). Hidden files and folders
(a name starting with ".") are ignored. A file with an image extension that does not decode is
not dropped here: the image loader counts it as a skip, shown in the report like COCO's.

Labels (``dataset.labels``):

- ``null``: none. Precision and mAP are undefined; the tables say "no labels".
- ``subfolders``: an image's category is the first-level subfolder it sits in (the ImageFolder
  convention, ``root/cat/x.jpg`` and ``root/cat/kittens/y.jpg`` are both "cat"). Images directly in
  ``root`` have no category and are left out of precision and mAP, as COCO images without
  annotations are.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from PIL import Image, ImageFile

from bench.errors import BenchError

LABEL_CHOICES = ("subfolders",)


@dataclass(frozen=True)
class FolderImages:
    paths: list[Path]  # sorted by path relative to the root; image id = position + 1
    category_of: list[Optional[int]]  # per path; None: unlabelled
    categories: dict[int, str]  # id -> subfolder name
    digest: str  # changes with any file's path, size, mtime or label: names the exact image set


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Lower-case extensions, with the dot, of every format Pillow can open without an extra handler."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN and not _is_stub(Image.OPEN[fmt][0]))


def _is_stub(factory: object) -> bool:
    return isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)


def scan_folder(root: Optional[str], labels: Optional[str]) -> FolderImages:
    """The images under ``root`` (recursively) and their categories per ``labels``."""
    if labels not in (None, "", *LABEL_CHOICES):
        raise BenchError(f"dataset.labels={labels!r}: choose {' or '.join(LABEL_CHOICES)}, or null for no labels")
    if root is None:
        raise BenchError("dataset.root is not set: dataset=folder dataset.root=/path/to/images")
    base = Path(root)
    if not base.is_dir():
        raise BenchError(f"dataset.root={root} is not a folder: point dataset.root at a folder of images")
    relative = sorted(_image_files(base))
    if not relative:
        raise BenchError(f"no images under dataset.root={root} (searched recursively for .jpg, .png and the "
                         "other formats Pillow reads): point dataset.root at a folder of images")
    if labels:
        names = sorted({rel.parts[0] for rel in relative if len(rel.parts) > 1})
        if not names:
            raise BenchError(f"dataset.labels=subfolders, but every image sits directly in {root}: put each "
                             "category's images in its own subfolder, or set dataset.labels=null")
        category_id = {name: i + 1 for i, name in enumerate(names)}
        category_of = [category_id[rel.parts[0]] if len(rel.parts) > 1 else None for rel in relative]
        categories = {i: name for name, i in category_id.items()}
    else:
        category_of, categories = [None] * len(relative), {}
    return FolderImages(paths=[base / rel for rel in relative], category_of=category_of, categories=categories,
                        digest=_digest(base, relative, category_of))


def _image_files(base: Path) -> list[Path]:
    """Paths relative to ``base`` of the image files below it; hidden entries and symlinked folders skipped."""
    extensions = image_extensions()
    found = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                found.append((Path(folder) / name).relative_to(base))
    return found


def _digest(base: Path, relative: list[Path], category_of: list[Optional[int]]) -> str:
    """Short hash of every file's relative path, size, mtime and category.

    Image ids are positions (1..n), so two folders of the same size would otherwise look alike to
    the collection fingerprint; the dataset name carries this digest to keep their collections apart,
    and to make a changed file give a new collection rather than reuse stale vectors.
    """
    h = hashlib.sha256()
    for rel, category in zip(relative, category_of):
        try:
            st = (base / rel).stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1  # unreadable: the image loader records it as a skip
        h.update(f"{rel.as_posix()}\0{size}\0{mtime}\0{category}\n".encode())
    return h.hexdigest()[:8]
