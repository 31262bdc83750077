"""`dataset=fashion_mnist` and `python -m bench.fetch fashion-mnist`, on small files with Fashion-MNIST's
structure that the tests write (the real files are used by tests/test_fashion_quality.py)."""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.config import DatasetConfig
from bench.data import fashion_mnist
from bench.data.dataset import load_dataset
from bench.data.fetch_fashion_mnist import ZALANDO_MD5
from bench.data.images import load_rgb, record_rgb
from bench.errors import BenchError
from tests import fashion_data
from tests.conftest import REPO, run_cli
from tests.test_fetch import ArchiveServer, error_line


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def fake_split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose pixels vary per image, labels cycling through the 10 classes."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[:, 10:18, 10:18] = rng.integers(0, 256, (count, 8, 8), dtype=np.uint8)  # compresses well
    return images, (np.arange(count) % 10).astype(np.uint8)


def write_copy(root: Path, gz: bool = True) -> dict[str, bytes]:
    """The four files with Fashion-MNIST's structure; returns name -> decompressed bytes."""
    root.mkdir(parents=True, exist_ok=True)
    raw = {}
    for split, seed in (("train", 0), ("test", 1)):
        images, labels = fake_split(fashion_mnist.COUNTS[split], seed)
        for name, array in zip(fashion_mnist.file_names(split), (images, labels)):
            raw[name] = idx_bytes(array)
            path = root / (f"{name}.gz" if gz else name)
            path.write_bytes(gzip.compress(raw[name], compresslevel=1) if gz else raw[name])
    return raw


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("fashion") / "copy"
    return root, write_copy(root)


def cfg(root: Path, **overrides) -> DatasetConfig:
    return DatasetConfig(**{"name": "fashion_mnist_test", "kind": "fashion_mnist", "root": str(root),
                            "split": "test", **overrides})


def test_reads_the_split_with_labels_as_categories(copy):
    root, raw = copy
    dataset = load_dataset(cfg(root, limit=25))
    images, labels = fake_split(10_000, 1)
    assert [r.image_id for r in dataset.images] == list(range(1, 26))
    assert [r.category_ids for r in dataset.images] == [(int(label) + 1,) for label in labels[:25]]
    assert dataset.categories == {i + 1: name for i, name in enumerate(fashion_mnist.CLASSES)}
    assert dataset.categories[1] == "T-shirt/top" and dataset.categories[10] == "Ankle boot"
    assert np.array_equal(dataset.images[7].pixels, images[7])
    assert str(dataset.images[7].path).endswith("t10k-images-idx3-ubyte.gz#7")
    # Identified by the decompressed bytes, so a gzipped and a plain copy are the same dataset.
    assert dataset.files == {name: hashlib.sha256(raw[name]).hexdigest()
                             for name in fashion_mnist.file_names("test")}
    plain = root.parent / "plain"
    write_copy(plain, gz=False)
    again = load_dataset(cfg(plain, limit=25))
    assert again.name == dataset.name and again.files == dataset.files
    assert len(load_dataset(cfg(root, split="train")).images) == 60_000


def test_pixels_become_rgb_as_a_grayscale_png_would(copy, tmp_path):
    root, _ = copy
    record = load_dataset(cfg(root, limit=3)).images[2]
    for size in (28, 64):
        rgb = record_rgb(record, size)
        assert rgb.shape == (size, size, 3) and rgb.dtype == np.uint8
        assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
        png = tmp_path / "gray.png"
        Image.fromarray(record.pixels).save(png)
        assert np.array_equal(rgb, load_rgb(png, size))
    assert np.array_equal(record_rgb(record, 28)[..., 0], record.pixels)  # 28 px: the pixels themselves


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) - 100], "is truncated"),
    (lambda b: b"\0\0\x08\x01" + b[4:], "is not an IDX file"),  # a labels magic number on the images file
    (lambda b: b[:4] + struct.pack(">I", 9_999) + b[8:], "holds shape 9999x28x28, expected 10000x28x28"),
])
def test_bad_idx_files_are_one_line_exit_2(copy, tmp_path, damage, message):
    root, raw = copy
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    name = "t10k-images-idx3-ubyte"
    (bad / f"{name}.gz").write_bytes(gzip.compress(damage(raw[name]), compresslevel=1))
    with pytest.raises(BenchError, match=message):
        load_dataset(cfg(bad))
    proc = run_cli(["dataset=fashion_mnist", f"dataset.root={bad}", f"hydra.run.dir={tmp_path / 'run'}",
                    f"cache_dir={tmp_path / 'models'}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and message in errors[0] and "python -m bench.fetch fashion-mnist" in errors[0]


def test_a_truncated_gzip_and_a_missing_folder_are_refused(copy, tmp_path):
    root, _ = copy
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    path = bad / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(BenchError, match="damaged or truncated gzip"):
        load_dataset(cfg(bad))
    with pytest.raises(BenchError, match="does not exist: run `python -m bench.fetch fashion-mnist`"):
        load_dataset(cfg(tmp_path / "nowhere"))
    with pytest.raises(BenchError, match="choose train or test"):
        load_dataset(cfg(root, split="val2017"))


# -- fetch ---------------------------------------------------------------------------------------------


def fetch(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.fetch", "fashion-mnist", "--root", str(root), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture
def server(copy):
    root, _ = copy
    s = ArchiveServer({f"/{name}": (root / name).read_bytes() for name in ZALANDO_MD5})
    yield s
    s.close()


def test_download_resumes_checks_md5_and_records_provenance(server, copy, tmp_path):
    _, raw = copy
    server.drop_first.add("/t10k-images-idx3-ubyte.gz")
    sums = tmp_path / "md5.json"
    sums.write_text(json.dumps({name: "md5:" + hashlib.md5(body).hexdigest()
                                for name, body in ((p[1:], b) for p, b in server.files.items())}))
    root = tmp_path / "fm"
    proc = fetch(root, "--mirror", server.url, "--manifest", str(sums))
    assert proc.returncode == 0, proc.stderr
    assert "connection lost" in proc.stderr
    assert [rng for path, rng, _ in server.requests if path == "/t10k-images-idx3-ubyte.gz"][1].startswith("bytes=")
    provenance = json.loads((root / "provenance.json").read_text())
    assert provenance["source"] == server.url
    assert {name: entry["sha256_decompressed"] for name, entry in provenance["files"].items()} == {
        name: hashlib.sha256(body).hexdigest() for name, body in raw.items()}
    assert sorted(p.name for p in root.iterdir()) == sorted([*ZALANDO_MD5, "provenance.json"])
    assert len(load_dataset(cfg(root)).images) == 10_000
    again = fetch(root, "--mirror", server.url, "--manifest", str(sums))  # nothing to download
    assert again.returncode == 0 and len(server.requests) == 5, again.stderr


def test_md5_mismatch_is_one_line_exit_2_and_keeps_the_file(server, tmp_path):
    # Zalando's own md5 sums (the default) do not match the test's files.
    root = tmp_path / "fm"
    proc = fetch(root, "--mirror", server.url)
    line = error_line(proc)
    assert line.startswith("error: checksum mismatch for ")
    assert f"expected md5:{ZALANDO_MD5['train-images-idx3-ubyte.gz']}" in line
    assert (root / "downloads" / "train-images-idx3-ubyte.gz").exists()  # kept to inspect
    assert not (root / "train-images-idx3-ubyte.gz").exists()


def test_from_a_local_copy_checks_structure_and_copies(copy, tmp_path):
    root, raw = copy
    target = tmp_path / "fm"
    proc = fetch(target, "--from", str(root))
    assert proc.returncode == 0, proc.stderr
    provenance = json.loads((target / "provenance.json").read_text())
    assert provenance["source"].startswith(f"local copy of {root}")
    assert provenance["files"]["t10k-images-idx3-ubyte"]["sha256_decompressed"] == hashlib.sha256(
        raw["t10k-images-idx3-ubyte"]).hexdigest()
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw["train-labels-idx1-ubyte"][:-1]))
    line = error_line(fetch(tmp_path / "fm2", "--from", str(bad)))
    assert "train-labels-idx1-ubyte.gz is truncated" in line and not (tmp_path / "fm2").exists()


def test_debians_copy_reads_all_70000_images_in_seconds():
    root = fashion_data.require()
    started = time.perf_counter()
    train, test = load_dataset(cfg(root, split="train")), load_dataset(cfg(root))
    seconds = time.perf_counter() - started
    assert len(train.images) == 60_000 and len(test.images) == 10_000
    assert seconds < 10, f"{seconds:.1f} s"
    counts = np.bincount([r.category_ids[0] for r in test.images])
    assert counts[1:].tolist() == [1000] * 10  # Fashion-MNIST's test split is balanced
