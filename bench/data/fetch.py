"""`python -m bench.fetch coco --split val2017`: download COCO 2017 into the layout ``dataset=coco`` reads.

    python -m bench.fetch coco [--split val2017|train2017 ...] [--root data/coco] [--mirror URL]
                               [--manifest FILE] [--retries N] [--keep-archives]

Each split's image archive and the annotations archive are, in turn:

1. skipped if what ``dataset=coco`` reads from them is already under ``--root`` (a second call is a no-op);
2. downloaded to ``ROOT/downloads/NAME.part``, resuming a partial file with an HTTP Range request
   (a server that ignores Range sends the whole file, which then replaces the partial one);
   a dropped connection is retried ``--retries`` times, each resuming where the last stopped;
3. checked against its published checksum before anything is unpacked; a mismatch stops the
   command and removes nothing;
4. unpacked into ``ROOT/.unpack-NAME/``, then renamed into place: an interrupted unpack leaves only
   that staging folder, which the next call deletes and redoes, never a half-filled ``val2017/``.

Checksums: the sha256 sums and sizes TensorFlow Datasets publishes for these exact URLs, in
``tensorflow_datasets/url_checksums/coco.txt`` (github.com/tensorflow/datasets); the COCO site itself
publishes none. The same files' md5 sums, as PaddleDetection (``ppdet/utils/download.py``) and
torchvision-style loaders list them, are 442b8da7639aecaf257c1dceb8ba8c80 (val2017.zip),
cced6f7f71b7629ddf16f17bbcfab6b2 (train2017.zip) and f4bbac642086de4f52a3fdda2de5fa2c
(annotations_trainval2017.zip). ``--manifest FILE`` (JSON: archive name -> sum) replaces the
built-in sums, for mirrors and tests; a sum is ``md5:HEX`` or ``sha256:HEX``, or bare hex told
apart by its length (32 digits md5, 64 sha256).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from bench.errors import BenchError

log = logging.getLogger(__name__)

COCO_HOST = "http://images.cocodataset.org"
SPLITS = ("val2017", "train2017")
CHUNK = 1 << 20  # bytes per read, write and hash update
DOWNLOADS = "downloads"  # under --root: partial and complete archives
STAGING_PREFIX = ".unpack-"  # under --root: an archive being unpacked


@dataclass(frozen=True)
class Checksum:
    algorithm: str  # md5 | sha256
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


@dataclass(frozen=True)
class Archive:
    name: str  # file name, and the manifest's key
    path: str  # on the host, below the base URL
    provides: tuple[str, ...]  # paths under --root that dataset=coco reads and this archive unpacks


# sha256 from TensorFlow Datasets' url_checksums/coco.txt (see the module docstring), with sizes for
# the record: annotations_trainval2017.zip 252,907,541 B; val2017.zip 815,585,330 B;
# train2017.zip 19,336,861,798 B.
COCO_SHA256 = {
    "annotations_trainval2017.zip": "113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268",
    "val2017.zip": "4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05",
    "train2017.zip": "69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929",
}


def coco_archives(splits: Sequence[str]) -> list[Archive]:
    """The annotations archive (providing each split's instances JSON), then one image archive per split."""
    annotations = Archive("annotations_trainval2017.zip", "annotations/annotations_trainval2017.zip",
                          tuple(f"annotations/instances_{split}.json" for split in splits))
    return [annotations] + [Archive(f"{split}.zip", f"zips/{split}.zip", (split,)) for split in splits]


def parse_checksum(value: str, where: str) -> Checksum:
    """``md5:HEX``, ``sha256:HEX``, or bare hex (32 digits: md5, 64: sha256)."""
    algorithm, _, digest = value.strip().lower().rpartition(":")
    lengths = {"md5": 32, "sha256": 64}
    if not algorithm:
        algorithm = {32: "md5", 64: "sha256"}.get(len(digest), "")
    if lengths.get(algorithm) != len(digest) or not re.fullmatch(r"[0-9a-f]+", digest):
        raise BenchError(f"{where}: {value!r} is not a checksum: give md5:HEX (32 digits) or sha256:HEX (64 digits)")
    return Checksum(algorithm, digest)


def load_manifest(path: Path) -> dict[str, Checksum]:
    """A JSON object, archive name -> checksum."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise BenchError(f"cannot read --manifest {path} ({err.strerror})") from None
    except ValueError as err:
        raise BenchError(f"--manifest {path} is not valid JSON ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise BenchError(f"--manifest {path} must be a JSON object of archive name -> checksum string")
    return {name: parse_checksum(value, f"--manifest {path}, {name}") for name, value in data.items()}


def fetch_coco(root: Path, splits: Sequence[str], mirror: Optional[str] = None, manifest: Optional[Path] = None,
               retries: int = 3, keep_archives: bool = False, timeout_s: float = 60.0) -> None:
    """Download, verify and unpack what ``dataset=coco`` needs for ``splits`` into ``root``."""
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise BenchError(f"unknown split {', '.join(unknown)}: choose {' or '.join(SPLITS)}")
    sums = load_manifest(manifest) if manifest else {n: Checksum("sha256", s) for n, s in COCO_SHA256.items()}
    base = (mirror or COCO_HOST).rstrip("/")
    for archive in coco_archives(list(dict.fromkeys(splits))):
        if archive.name not in sums:
            raise BenchError(f"--manifest {manifest} has no checksum for {archive.name}: add it")
        fetch_archive(archive, Path(root), f"{base}/{archive.path}", sums[archive.name], retries=retries,
                      keep_archive=keep_archives, timeout_s=timeout_s)


def fetch_archive(archive: Archive, root: Path, url: str, checksum: Checksum, *, retries: int = 3,
                  keep_archive: bool = False, timeout_s: float = 60.0) -> bool:
    """Make ``archive.provides`` exist under ``root``; False if they already did (nothing done)."""
    if all((root / p).exists() for p in archive.provides):
        log.info("%s: already unpacked (%s under %s)", archive.name, ", ".join(archive.provides), root)
        return False
    downloads = root / DOWNLOADS
    complete = downloads / archive.name
    if not complete.exists():
        part = downloads / f"{archive.name}.part"
        try:
            downloads.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BenchError(f"cannot create {downloads} ({err.strerror}): choose another --root") from None
        download(url, part, retries=retries, timeout_s=timeout_s)
        part.replace(complete)
    verify(complete, checksum)
    unpack(complete, root, archive)
    if not keep_archive:
        complete.unlink()
        with contextlib.suppress(OSError):  # only if empty: another archive may still be partial
            downloads.rmdir()
    return True


# -- download ------------------------------------------------------------------------------------------


class _Dropped(Exception):
    """The connection broke off mid-transfer: worth another try that resumes."""


def download(url: str, part: Path, *, retries: int = 3, timeout_s: float = 60.0) -> None:
    """Complete ``part`` from ``url``, resuming what it holds; a dropped connection is retried ``retries`` times."""
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout_s)
            return
        except _Dropped as err:
            have = part.stat().st_size if part.exists() else 0
            if attempt == retries:
                raise BenchError(f"download of {url} broke off {retries + 1} times (last: {err}); {have:,} bytes are "
                                 f"kept in {part}: run the command again to resume") from None
            wait = min(2 ** attempt, 30)
            log.warning("%s: connection lost (%s); resuming at %s bytes in %d s (retry %d of %d)",
                        part.name.removesuffix(".part"), err, f"{have:,}", wait, attempt + 1, retries)
            time.sleep(wait)


def _download_once(url: str, part: Path, timeout_s: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "bench-fetch", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout_s)
    except HTTPError as err:
        if err.code == 416 and have:  # Range starts at or past the end: maybe the part is complete
            total = _range_total(err.headers.get("Content-Range"))
            if total == have:
                return
            log.warning("%s: the server refuses to resume at %s bytes (file has %s): starting again", part.name,
                        f"{have:,}", total)
            part.unlink()
            return _download_once(url, part, timeout_s)
        raise BenchError(f"{url}: HTTP {err.code} {err.reason}: check the URL or --mirror"
                         + (f" ({have:,} bytes kept in {part} for the resume)" if have else "")) from None
    except (URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, (TimeoutError, ConnectionResetError)):
            raise _Dropped(f"connecting: {reason}") from None
        raise BenchError(f"cannot reach {url} ({reason}): check the network or --mirror"
                         + (f" ({have:,} bytes kept in {part} for the resume)" if have else "")) from None
    with response:
        offset, total = _start_of(response, have, part)
        _stream(response, part, offset, total)


def _start_of(response, have: int, part: Path) -> tuple[int, Optional[int]]:
    """(offset the body starts at, full file size or None) from the status and headers."""
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "").strip())
        if match and int(match.group(1)) == have:
            total = match.group(3)
            return have, int(total) if total.isdigit() else None
        # A range other than the one asked for: start the file again rather than splice it wrongly.
        part.unlink()
        raise _Dropped(f"the server answered the Range request with {response.headers.get('Content-Range')!r}")
    if have:
        log.warning("%s: the server ignored the Range request; downloading the whole file again", part.name)
    return 0, length


def _stream(response, part: Path, offset: int, total: Optional[int]) -> None:
    """Write the body into ``part`` at ``offset`` (truncating what follows), with a progress bar."""
    written = offset
    try:
        with open(part, "r+b" if offset else "wb") as out, \
                tqdm(total=total, initial=offset, desc=part.name.removesuffix(".part"), unit="B", unit_scale=True,
                     unit_divisor=1024, disable=None) as bar:
            out.seek(offset)
            out.truncate()
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as err:  # reading: the connection broke
                    raise _Dropped(f"{type(err).__name__}: {err}") from None
                if not chunk:
                    break
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    except OSError as err:  # writing: a full disk, a file size limit, a folder removed under us
        kept = part.stat().st_size if part.exists() else 0
        raise BenchError(f"cannot write {part} ({err.strerror}): free disk space (or choose another --root) and run "
                         f"again; the {kept:,} bytes downloaded are kept and the download resumes") from None
    if total is not None and written != total:
        raise _Dropped(f"got {written:,} of {total:,} bytes")


def _range_total(content_range: Optional[str]) -> Optional[int]:
    match = re.fullmatch(r"bytes \*/(\d+)", (content_range or "").strip())
    return int(match.group(1)) if match else None


# -- verify and unpack ---------------------------------------------------------------------------------


def file_checksum(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, desc=f"verify {path.name}", unit="B",
                                     unit_scale=True, unit_divisor=1024, disable=None) as bar:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify(path: Path, expected: Checksum) -> None:
    actual = file_checksum(path, expected.algorithm)
    if actual != expected.hexdigest:
        raise BenchError(f"checksum mismatch for {path}: expected {expected}, got {expected.algorithm}:{actual}; "
                         "nothing was unpacked or deleted (delete the file to download it again, or check --mirror)")
    log.info("%s: %s verified", path.name, expected.algorithm)


def unpack(path: Path, root: Path, archive: Archive) -> None:
    """Extract into a staging folder under ``root``, then rename each top-level entry into place."""
    staging = root / f"{STAGING_PREFIX}{archive.name}"
    if staging.exists():
        log.info("%s: removing %s, left by an interrupted unpack", archive.name, staging)
        shutil.rmtree(staging)
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            for member in tqdm(members, desc=f"unpack {archive.name}", unit="file", disable=None):
                zf.extract(member, staging)  # zipfile drops absolute paths and '..' components
    except zipfile.BadZipFile as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise BenchError(f"{path} is not a valid zip archive ({err}), although its checksum matched: "
                         "check the --manifest") from None
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise BenchError(f"cannot unpack {path} into {root} ({err.strerror}): free disk space and run again; "
                         "the verified archive is kept") from None
    kept = _move_into(staging, root)
    shutil.rmtree(staging)
    if kept:
        log.warning("%s: %d file(s) already under %s were kept, not replaced", archive.name, kept, root)
    missing = [p for p in archive.provides if not (root / p).exists()]
    if missing:
        raise BenchError(f"{path} unpacked, but it holds no {', '.join(missing)}: is --mirror serving the right "
                         "file?")
    log.info("%s: unpacked into %s", archive.name, root)


def _move_into(source: Path, target: Path) -> int:
    """Rename every entry of ``source`` into ``target``; existing files are never replaced. Returns how many
    were kept. A directory that does not exist yet moves in one rename, so it appears complete or not at all."""
    kept = 0
    for entry in sorted(source.iterdir()):
        dest = target / entry.name
        if not dest.exists():
            os.rename(entry, dest)
        elif dest.is_dir() and entry.is_dir():
            kept += _move_into(entry, dest)
        else:
            kept += 1
    return kept


# -- command line --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.fetch", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    # fashion-mnist is dispatched before this parser (bench/fetch.py); listed so --help names it.
    p.add_argument("dataset", choices=["coco", "fashion-mnist"],
                   help="what to fetch (`fashion-mnist --help` lists its own options)")
    p.add_argument("--split", action="append", choices=SPLITS, help="image split, repeatable (default: val2017); "
                   "the annotations archive comes with any split")
    p.add_argument("--root", type=Path, default=Path("data/coco"),
                   help="where dataset=coco looks: data/coco under the folder you run bench from (default)")
    p.add_argument("--mirror", metavar="URL", help=f"base URL instead of {COCO_HOST}, same layout below it "
                   "(zips/val2017.zip, annotations/annotations_trainval2017.zip)")
    p.add_argument("--manifest", type=Path, metavar="FILE",
                   help="JSON of archive name -> md5 or sha256, replacing the built-in checksums")
    p.add_argument("--retries", type=int, default=3, help="retries after a dropped connection (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry (default 60)")
    p.add_argument("--keep-archives", action="store_true", help="keep the .zip files after unpacking")
    return p


def run_command(root: Path, retries: int, work: Callable[[], str]) -> int:
    """Run a fetch command's ``work``, which returns the line to print when done: a BenchError becomes one
    ``error:`` line and exit 2, Ctrl-C exit 130 with a word on resuming."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if retries < 0:
            raise BenchError("--retries must be 0 or more")
        done = work()
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: partial downloads stay in {root / DOWNLOADS}; run the same command to resume",
              file=sys.stderr)
        return 130
    print(done)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    splits = args.split or ["val2017"]

    def work() -> str:
        fetch_coco(args.root, splits, mirror=args.mirror, manifest=args.manifest, retries=args.retries,
                   keep_archives=args.keep_archives, timeout_s=args.timeout)
        split = splits[0]
        where = "" if args.root.resolve() == Path("data/coco").resolve() else (
            f" dataset.root={args.root / split} dataset.annotations={args.root / 'annotations'}/instances_{split}.json")
        return (f"COCO {', '.join(splits)} ready under {args.root}: "
                f"python -m bench dataset=coco dataset.split={split}{where}")

    return run_command(args.root, args.retries, work)

if __name__ == "__main__":
    sys.exit(main())
