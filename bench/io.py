"""Writing files so that a reader never sees half of one: write a hidden temporary file beside the target,
then rename it into place (``os.replace`` is atomic on one file system). A run killed mid-write leaves the
old file or none, never a torn one; the temporary name (``.<name>.<pid>.tmp``) matches no cache pattern."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


def temporary_path(path: Path, suffix: str = "") -> Path:
    """The hidden name a file is written under before it replaces ``path`` (``suffix`` for tools that need
    one, e.g. ".onnx")."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


@contextmanager
def replacing(path: Path, suffix: str = "") -> Iterator[Path]:
    """``with replacing(path) as tmp: write tmp`` -> tmp replaces ``path`` if the block succeeds; removed if not."""
    tmp = temporary_path(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(file)`` into a temporary file that then replaces ``path`` (a file object, so that e.g.
    ``np.savez`` does not append its own suffix)."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        write(f)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
