"""Files on disk: the one name sanitiser for names made from user input, and writes that a reader never
sees half of.

A write goes to a hidden temporary file beside the target, which is then renamed into place (``os.replace``
is atomic on one file system): a run killed mid-write leaves the old file or none, never a torn one, and the
temporary name (``.<name>.<pid>.tmp``) matches no cache pattern."""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


def safe_name(text: str, keep: str = "_.-") -> str:
    """``text`` (a model name, an architecture, a CPU model) fit for a file or folder name: each run of
    characters other than letters, digits and ``keep`` becomes one "_"."""
    return re.sub(f"[^A-Za-z0-9{re.escape(keep)}]+", "_", text)


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
