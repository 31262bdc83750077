"""The real Fashion-MNIST for the tests: Debian's `dataset-fashion-mnist` package, which `make fashion-mnist`
installs. Without it the tests that need it skip, except in CI (BENCH_REQUIRE_FASHION_MNIST=1), where a
missing copy fails them: the quality checks on a trained model must run there."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.data import fashion_mnist

ROOT = Path("/usr/share/datasets/fashion-mnist")
REQUIRED = os.environ.get("BENCH_REQUIRE_FASHION_MNIST") == "1"


def available() -> bool:
    names = [name for split in fashion_mnist.SPLITS for name in fashion_mnist.file_names(split)]
    return all((ROOT / f"{name}.gz").is_file() or (ROOT / name).is_file() for name in names)


def require() -> Path:
    """The folder holding the real files; skips the test (fails it in CI) when they are missing."""
    if not available():
        message = f"Fashion-MNIST is not in {ROOT}: `make fashion-mnist` installs Debian's dataset-fashion-mnist"
        if REQUIRED:
            pytest.fail(f"BENCH_REQUIRE_FASHION_MNIST=1 but {message}")
        pytest.skip(message)
    return ROOT
