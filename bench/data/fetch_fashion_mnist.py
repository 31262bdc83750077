"""`python -m bench.fetch fashion-mnist`: the four Fashion-MNIST IDX files where ``dataset=fashion_mnist`` reads them.

    python -m bench.fetch fashion-mnist [--root data/fashion-mnist] [--mirror URL] [--retries N]
    python -m bench.fetch fashion-mnist --from /usr/share/datasets/fashion-mnist [--root data/fashion-mnist]

Downloading: each ``.gz`` file Zalando publishes is fetched into ``ROOT/downloads/NAME.part``,
resuming a partial file as the COCO fetch does (:func:`bench.data.fetch.download`), checked against
the md5 sum in Zalando's README (github.com/zalandoresearch/fashion-mnist, "Get the Data"), then
moved into ``ROOT``. A mismatch stops the command and keeps the file in ``ROOT/downloads`` to inspect.

``--from DIR``: a local copy, such as Debian's ``dataset-fashion-mnist`` package. Debian recompressed
the files, so their md5 sums differ from Zalando's although the images are the same; a copy is
therefore checked by structure (IDX magic numbers, 60,000 and 10,000 items, 28x28 images, labels
0..9), then copied into ``ROOT``.

Either way ``ROOT/provenance.json`` records where the files came from and the sha256 of each
decompressed file, which is the same for Zalando's and Debian's copies. A second call with every
file in place downloads nothing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Optional, Sequence

from bench.data import fashion_mnist
from bench.data.fetch import DOWNLOADS, Checksum, download, load_manifest, run_command, verify
from bench.errors import BenchError
from bench.io import replacing

log = logging.getLogger(__name__)

HOST = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
# md5 of the .gz files, from Zalando's README.
ZALANDO_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
PROVENANCE = "provenance.json"


def fetch_download(root: Path, mirror: Optional[str] = None, manifest: Optional[Path] = None, retries: int = 3,
                   timeout_s: float = 60.0) -> dict:
    """Download and md5-check every file missing from ``root``; returns the provenance written."""
    sums = load_manifest(manifest) if manifest else {n: Checksum("md5", s) for n, s in ZALANDO_MD5.items()}
    base = (mirror or HOST).rstrip("/")
    downloads = root / DOWNLOADS
    for name in ZALANDO_MD5:
        if name not in sums:
            raise BenchError(f"--manifest {manifest} has no checksum for {name}: add it")
        if (root / name).exists():
            log.info("%s: already in %s", name, root)
            continue
        _mkdir(downloads)
        complete = downloads / name
        if not complete.exists():
            part = downloads / f"{name}.part"
            download(f"{base}/{name}", part, retries=retries, timeout_s=timeout_s)
            part.replace(complete)
        verify(complete, sums[name])
        complete.replace(root / name)
    _remove_if_empty(downloads)
    return _write_provenance(root, {"source": base, "checksums": {n: str(sums[n]) for n in ZALANDO_MD5}})


def fetch_copy(source: Path, root: Path) -> dict:
    """Check a local copy by structure and copy its four files into ``root``; returns the provenance written."""
    if not source.is_dir():
        raise BenchError(f"--from {source} is not a folder: point it at the folder holding the four IDX files "
                         "(Debian: /usr/share/datasets/fashion-mnist, after `apt-get install dataset-fashion-mnist`)")
    found = fashion_mnist.verify_copy(source)
    if source.resolve() != root.resolve():
        _mkdir(root)
        for entry in found.values():
            path = Path(entry["path"])
            target = root / path.name
            try:
                with replacing(target) as tmp:  # a copy interrupted half-way never looks complete
                    shutil.copyfile(path, tmp)
            except OSError as err:
                raise BenchError(f"cannot copy {path} into {root} ({err.strerror}): choose another --root") from None
    return _write_provenance(root, {"source": f"local copy of {source.resolve()} (checked by structure; its .gz "
                                              "md5 sums may differ from Zalando's)"})


def _write_provenance(root: Path, record: dict) -> dict:
    files = fashion_mnist.verify_copy(root)  # what dataset=fashion_mnist will read, checked once more
    record = {**record, "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "files": {name: {"file": Path(entry["path"]).name, "items": entry["items"],
                               "sha256_decompressed": entry["sha256"]} for name, entry in files.items()}}
    (root / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchError(f"cannot create {path} ({err.strerror}): choose another --root") from None


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # absent, or holds a partial download kept for the resume


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.fetch fashion-mnist", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("data/fashion-mnist"),
                   help="where dataset=fashion_mnist looks: data/fashion-mnist under the folder you run bench from")
    p.add_argument("--from", dest="source", type=Path, metavar="DIR",
                   help="copy a local copy (e.g. /usr/share/datasets/fashion-mnist) instead of downloading")
    p.add_argument("--mirror", metavar="URL", help=f"base URL instead of {HOST}, the four .gz files below it")
    p.add_argument("--manifest", type=Path, metavar="FILE", help="JSON of file name -> md5 or sha256, replacing "
                   "Zalando's md5 sums")
    p.add_argument("--retries", type=int, default=3, help="retries after a dropped connection (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry (default 60)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)

    def work() -> str:
        if args.source is not None:
            record = fetch_copy(args.source, args.root)
        else:
            record = fetch_download(args.root, mirror=args.mirror, manifest=args.manifest, retries=args.retries,
                                    timeout_s=args.timeout)
        where = "" if args.root.resolve() == Path("data/fashion-mnist").resolve() else f" dataset.root={args.root}"
        return (f"Fashion-MNIST ready under {args.root} ({len(record['files'])} files verified, {PROVENANCE} "
                f"written): python -m bench dataset=fashion_mnist{where}")

    return run_command(args.root, args.retries, work)
