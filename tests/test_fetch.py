"""`python -m bench.fetch` against a local HTTP server (127.0.0.1) that serves small COCO-format
archives the tests build, with HTTP Range support written here (the stdlib handler has none)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from bench.config import DatasetConfig
from bench.data.dataset import load_dataset
from bench.data.fetch import parse_checksum
from bench.errors import BenchError

REPO = Path(__file__).resolve().parent.parent
NUM_IMAGES = 6
CATEGORIES = [{"id": 1, "name": "red thing"}, {"id": 2, "name": "blue thing"}]


def coco_archives() -> dict[str, bytes]:
    """URL path -> zip bytes: val2017.zip (JPEGs) and the annotations archive (instances JSON)."""
    images, annotations, files = [], [], {}
    for i in range(1, NUM_IMAGES + 1):
        name = f"{i:012d}.jpg"
        buffer = io.BytesIO()
        colour = (200, 30, 30) if i % 2 else (30, 30, 200)
        Image.new("RGB", (48, 40), colour).save(buffer, "JPEG", quality=90)
        files[f"val2017/{name}"] = buffer.getvalue()
        images.append({"id": i, "file_name": name, "width": 48, "height": 40})
        annotations.append({"id": 100 + i, "image_id": i, "category_id": 1 if i % 2 else 2,
                            "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0})
    instances = json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}).encode()
    return {"/zips/val2017.zip": _zip(files),
            "/annotations/annotations_trainval2017.zip": _zip({"annotations/instances_val2017.json": instances,
                                                               "annotations/captions_val2017.json": b"{}"})}


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:  # stored: the body is as long as the files
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


class ArchiveServer:
    """ThreadingHTTPServer on 127.0.0.1 with byte ranges; can drop a transfer or ignore Range."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.drop_first: set[str] = set()  # paths whose first GET closes the connection mid-body
        self.ignore_range = False
        self.requests: list[tuple[str, str | None, int]] = []  # (path, Range header, status)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.handle(self)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body, wanted = self.files.get(h.path), h.headers.get("Range")
        if body is None:
            self.requests.append((h.path, wanted, 404))
            h.send_error(404)
            return
        start, status = 0, 200
        if wanted and not self.ignore_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.requests.append((h.path, wanted, 416))
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(body)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            status = 206
        self.requests.append((h.path, wanted, status))
        h.send_response(status)
        h.send_header("Content-Length", str(len(body) - start))
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        h.end_headers()
        if h.path in self.drop_first:
            self.drop_first.discard(h.path)
            h.wfile.write(body[start:start + (len(body) - start) // 2])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-body
            h.close_connection = True
            return
        h.wfile.write(body[start:])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ArchiveServer(coco_archives())
    yield s
    s.close()


def manifest(tmp_path: Path, server: ArchiveServer, algorithm: str = "sha256", **override: str) -> Path:
    sums = {Path(p).name: f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}" for p, body in server.files.items()}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({**sums, **override}))
    return path


def fetch(root: Path, *args: str, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.fetch", "coco", "--split", "val2017", "--root", str(root),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=120, preexec_fn=preexec_fn)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one-line error that ends a failed fetch (progress lines may come before it)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("error: ") and sum(line.startswith("error") for line in lines) == 1, proc.stderr
    return lines[-1]


def val_requests(server: ArchiveServer) -> list[tuple[str | None, int]]:
    return [(rng, status) for path, rng, status in server.requests if path == "/zips/val2017.zip"]


def test_dropped_connection_resumes_and_the_folder_loads_as_coco(server, tmp_path):
    server.drop_first.add("/zips/val2017.zip")
    root = tmp_path / "coco"
    proc = fetch(root, "--mirror", server.url, "--manifest", str(manifest(tmp_path, server)))
    assert proc.returncode == 0, proc.stderr
    # The second request asked for the rest only, and got it as a 206.
    (first, first_status), (resumed, resumed_status) = val_requests(server)
    half = len(server.files["/zips/val2017.zip"]) // 2
    assert first is None and first_status == 200
    assert resumed == f"bytes={half}-" and resumed_status == 206
    assert "connection lost" in proc.stderr
    # The layout dataset=coco reads; nothing of the download or the unpack is left behind.
    assert sorted(p.name for p in root.iterdir()) == ["annotations", "val2017"]
    dataset = load_dataset(DatasetConfig(name="coco_val2017", kind="coco", root=str(root / "val2017"),
                                         annotations=str(root / "annotations" / "instances_val2017.json")))
    assert [r.image_id for r in dataset.images] == list(range(1, NUM_IMAGES + 1)) and not dataset.skipped
    assert dataset.images[0].category_ids == (1,) and dataset.images[1].category_ids == (2,)
    assert dataset.categories == {1: "red thing", 2: "blue thing"}

    # A second call is a no-op: no request, nothing changed.
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    again = fetch(root, "--mirror", server.url, "--manifest", str(manifest(tmp_path, server)))
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == 3 and "already unpacked" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_partial_download_is_kept_and_the_next_call_resumes(server, tmp_path):
    server.drop_first.add("/zips/val2017.zip")
    root, sums = tmp_path / "coco", manifest(tmp_path, server, algorithm="md5")  # md5 manifests work too
    proc = fetch(root, "--mirror", server.url, "--manifest", str(sums), "--retries", "0")
    line = error_line(proc)
    assert "broke off" in line and "run the command again to resume" in line
    part = root / "downloads" / "val2017.zip.part"
    kept = part.stat().st_size
    assert kept == len(server.files["/zips/val2017.zip"]) // 2
    proc = fetch(root, "--mirror", server.url, "--manifest", str(sums))
    assert proc.returncode == 0, proc.stderr
    assert val_requests(server)[-1] == (f"bytes={kept}-", 206)
    assert len(list((root / "val2017").iterdir())) == NUM_IMAGES and not part.exists()


def test_a_complete_partial_file_is_not_downloaded_again(server, tmp_path):
    """Killed between the last byte and the rename: the server answers the Range with 416."""
    root = tmp_path / "coco"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "val2017.zip.part").write_bytes(server.files["/zips/val2017.zip"])
    proc = fetch(root, "--mirror", server.url, "--manifest", str(manifest(tmp_path, server)))
    assert proc.returncode == 0, proc.stderr
    assert val_requests(server) == [(f"bytes={len(server.files['/zips/val2017.zip'])}-", 416)]
    assert len(list((root / "val2017").iterdir())) == NUM_IMAGES


def test_server_ignoring_range_restarts_the_file_cleanly(server, tmp_path):
    server.drop_first.add("/zips/val2017.zip")
    server.ignore_range = True
    root = tmp_path / "coco"
    proc = fetch(root, "--mirror", server.url, "--manifest", str(manifest(tmp_path, server)))
    assert proc.returncode == 0, proc.stderr
    assert [status for _, status in val_requests(server)] == [200, 200]
    assert "ignored the Range request" in proc.stderr
    assert len(list((root / "val2017").iterdir())) == NUM_IMAGES


def test_corrupt_archive_is_refused_and_nothing_is_deleted(server, tmp_path):
    sums = manifest(tmp_path, server)  # the true sums, then the server sends damaged bytes
    body = bytearray(server.files["/zips/val2017.zip"])
    body[len(body) // 3] ^= 0xFF
    server.files["/zips/val2017.zip"] = bytes(body)
    root = tmp_path / "coco"
    (root / "val2014").mkdir(parents=True)  # the user's own files beside it
    (root / "val2014" / "mine.jpg").write_bytes(b"user data")
    proc = fetch(root, "--mirror", server.url, "--manifest", str(sums))
    expected = json.loads(sums.read_text())["val2017.zip"]
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    line = error_line(proc)
    assert line.startswith("error: checksum mismatch for ") and str(root / "downloads" / "val2017.zip") in line
    assert f"expected {expected}" in line and f"got {actual}" in line
    # Nothing unpacked, nothing deleted: the bad download stays for inspection, the user's files too.
    assert (root / "downloads" / "val2017.zip").read_bytes() == bytes(body)
    assert not (root / "val2017").exists() and not list(root.glob(".unpack-*"))
    assert (root / "val2014" / "mine.jpg").read_bytes() == b"user data"
    assert (root / "annotations" / "instances_val2017.json").exists()


def test_interrupted_unpack_is_redone_not_used(server, tmp_path):
    root = tmp_path / "coco"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "val2017.zip").write_bytes(server.files["/zips/val2017.zip"])  # downloaded earlier
    half = root / ".unpack-val2017.zip" / "val2017"
    half.mkdir(parents=True)
    (half / "000000000001.jpg").write_bytes(b"trunc")  # what an interrupted unpack left
    proc = fetch(root, "--mirror", server.url, "--manifest", str(manifest(tmp_path, server)))
    assert proc.returncode == 0, proc.stderr
    assert val_requests(server) == []  # the complete archive was verified and used, not fetched again
    assert "left by an interrupted unpack" in proc.stderr
    assert not (root / ".unpack-val2017.zip").exists()
    with zipfile.ZipFile(io.BytesIO(server.files["/zips/val2017.zip"])) as zf:
        assert (root / "val2017" / "000000000001.jpg").read_bytes() == zf.read("val2017/000000000001.jpg")


def test_refusing_host_is_one_line_and_keeps_the_partial_file(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "coco"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "annotations_trainval2017.zip.part").write_bytes(b"x" * 1000)
    proc = fetch(root, "--mirror", f"http://127.0.0.1:{port}")
    line = error_line(proc)
    assert "cannot reach" in line and "1,000 bytes kept" in line
    assert (root / "downloads" / "annotations_trainval2017.zip.part").stat().st_size == 1000


def _small_file_limit() -> None:
    """In the child: files may not grow past 4 KiB (EFBIG, as a full disk gives ENOSPC)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_write_failure_is_one_line_and_keeps_the_partial_file(server, tmp_path):
    root = tmp_path / "coco"
    big = os.urandom(64 * 1024)
    server.files["/annotations/annotations_trainval2017.zip"] = big
    proc = fetch(root, "--mirror", server.url, "--manifest", str(manifest(tmp_path, server)),
                 preexec_fn=_small_file_limit)
    line = error_line(proc)
    assert line.startswith("error: cannot write ") and "free disk space" in line and "resumes" in line
    part = root / "downloads" / "annotations_trainval2017.zip.part"
    assert 0 < part.stat().st_size <= 4096 and big.startswith(part.read_bytes())


def test_missing_coco_error_names_the_fetch_command(tmp_path):
    with pytest.raises(BenchError, match=r"python -m bench\.fetch coco --split val2017"):
        load_dataset(DatasetConfig(name="coco_val2017", kind="coco", root=str(tmp_path / "val2017"),
                                   annotations=str(tmp_path / "annotations" / "instances_val2017.json")))


@pytest.mark.parametrize("text, algorithm", [
    ("0" * 32, "md5"), ("A" * 64, "sha256"), ("md5:" + "b" * 32, "md5"), ("sha256:" + "c" * 64, "sha256")])
def test_checksums_are_md5_or_sha256(text, algorithm):
    assert parse_checksum(text, "x").algorithm == algorithm


@pytest.mark.parametrize("text", ["0" * 40, "md5:" + "0" * 64, "sha1:" + "0" * 40, "z" * 32])
def test_other_checksums_are_refused(text):
    with pytest.raises(BenchError, match="is not a checksum"):
        parse_checksum(text, "--manifest m.json, val2017.zip")
