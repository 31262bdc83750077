"""``dataset=fashion_mnist``: Zalando's Fashion-MNIST read straight from its four IDX files.

The folder (``dataset.root``) holds the files as Zalando publishes them, gzipped or not::

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]    60,000 images, 28x28 grayscale
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]     10,000 images

``python -m bench.fetch fashion-mnist`` puts them in ``data/fashion-mnist``; Debian's
``dataset-fashion-mnist`` package installs the same images under ``/usr/share/datasets/fashion-mnist``.
Debian recompressed the ``.gz`` files, so their md5 sums differ from Zalando's; the decompressed
files are identical, which is why a copy is checked here by structure (magic number, item count,
28x28) and identified by the sha256 of the decompressed bytes, never by the archive's checksum.

An IDX file is a big-endian header (two zero bytes, a type byte, 0x08 = unsigned byte, a byte
with the number of dimensions, one int32 per dimension) followed by the raw array. The whole
split is read with one ``np.frombuffer``: all 70,000 images in well under a second.
"""
from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import BenchError

SIDE = 28
SPLITS = {"train": "train", "test": "t10k"}  # split name -> file prefix
COUNTS = {"train": 60_000, "test": 10_000}
# Label 0..9 in Zalando's README order.
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
UNSIGNED_BYTE = 0x08
IMAGE_DIMS, LABEL_DIMS = 3, 1
FETCH_HINT = ("run `python -m bench.fetch fashion-mnist` (or `python -m bench.fetch fashion-mnist --from "
              "/usr/share/datasets/fashion-mnist` after `apt-get install dataset-fashion-mnist`), or set "
              "dataset.root to a folder holding the four IDX files")


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (n, 28, 28), read-only
    labels: np.ndarray  # uint8 (n,), 0..9
    image_file: Path
    label_file: Path
    sha256: dict[str, str]  # decompressed file name -> sha256 of its bytes


def file_names(split: str) -> tuple[str, str]:
    """(images, labels) file names of ``split`` without the ``.gz``."""
    prefix = SPLITS[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def find_file(root: Path, name: str) -> Path:
    """``root/name.gz`` or ``root/name``, whichever exists (the gzipped one first)."""
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    raise BenchError(f"Fashion-MNIST file {name}[.gz] not found in {root}: {FETCH_HINT}")


def read_split(root: Path | str, split: str) -> Split:
    """Images and labels of ``split`` (train or test), checked for structure and agreement."""
    if split not in SPLITS:
        raise BenchError(f"dataset.split={split!r} for fashion_mnist: choose {' or '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise BenchError(f"Fashion-MNIST folder {root} does not exist: {FETCH_HINT}")
    image_name, label_name = file_names(split)
    image_file, label_file = find_file(root, image_name), find_file(root, label_name)
    images, image_sha = read_idx(image_file, IMAGE_DIMS, COUNTS[split])
    labels, label_sha = read_idx(label_file, LABEL_DIMS, COUNTS[split])
    if labels.max(initial=0) >= len(CLASSES):
        raise BenchError(f"{label_file} holds label {int(labels.max())}, but Fashion-MNIST has classes 0..9: "
                         "the file is not Fashion-MNIST's")
    return Split(images=images, labels=labels, image_file=image_file, label_file=label_file,
                 sha256={image_name: image_sha, label_name: label_sha})


def read_idx(path: Path, dims: int, count: int) -> tuple[np.ndarray, str]:
    """The uint8 array in ``path`` (n, 28, 28) or (n,), and the sha256 of the decompressed bytes."""
    data = _read_bytes(path)
    header = 4 + 4 * dims
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != UNSIGNED_BYTE or data[3] != dims:
        raise BenchError(f"{path} is not an IDX file of unsigned bytes with {dims} dimension(s) (magic number "
                         f"{data[:4].hex() or 'missing'}, expected 0000080{dims}): "
                         f"replace it with Fashion-MNIST's file ({FETCH_HINT})")
    if len(data) < header:
        raise BenchError(f"{path} is truncated inside its header ({len(data)} bytes): {FETCH_HINT}")
    shape = struct.unpack(f">{dims}I", data[4:header])
    wanted = (count, SIDE, SIDE) if dims == IMAGE_DIMS else (count,)
    if shape != wanted:
        raise BenchError(f"{path} holds shape {'x'.join(map(str, shape))}, expected {'x'.join(map(str, wanted))}: "
                         f"it is not Fashion-MNIST's file ({FETCH_HINT})")
    expected_bytes = header + int(np.prod(shape))
    if len(data) != expected_bytes:
        state = "truncated" if len(data) < expected_bytes else "longer than its header says"
        raise BenchError(f"{path} is {state}: {len(data):,} bytes decompressed, its header needs {expected_bytes:,}; "
                         f"download it again ({FETCH_HINT})")
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)  # read-only view, no copy
    return array, hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise BenchError(f"cannot read {path} ({err.strerror}): check its permissions") from None
    if not raw.startswith(b"\x1f\x8b"):  # not gzipped: the IDX bytes themselves
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise BenchError(f"{path} is a damaged or truncated gzip file ({err}): download it again "
                         f"({FETCH_HINT})") from None


def verify_copy(root: Path) -> dict[str, dict]:
    """Check all four files of a copy by structure; file name -> {path, items, sha256 of the decompressed bytes}."""
    found = {}
    for split in SPLITS:
        data = read_split(root, split)
        for name, path, items in ((file_names(split)[0], data.image_file, len(data.images)),
                                  (file_names(split)[1], data.label_file, len(data.labels))):
            found[name] = {"path": str(path), "items": items, "sha256": data.sha256[name]}
    return found
