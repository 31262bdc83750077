"""Shared fixtures: a session workspace so the ONNX model, the sample and the embeddings are
made once, and a helper that runs the real CLI (`python -m bench`) as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Workspace:
    root: Path

    @property
    def overrides(self) -> list[str]:
        """Point every cache and store of a CLI run into this workspace."""
        return [f"cache_dir={self.root / 'models'}", f"embeddings_dir={self.root / 'embeddings'}",
                f"store.uri={self.root / 'milvus_lite.db'}", f"dataset.root={self.root / 'sample'}"]


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("bench-workspace"))


def run_cli(args: list[str], *, cwd: Path = REPO, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def bench_cli(workspace):
    """Run `python -m bench` with the smoke experiment and the session's caches."""
    def run(*args: str, run_dir: Path | None = None, multirun: bool = False, expect_rc: int | None = 0,
            experiment: str = "smoke") -> subprocess.CompletedProcess:
        argv = (["-m"] if multirun else []) + [f"experiment={experiment}", *workspace.overrides, *args]
        if run_dir is not None:
            argv.append(f"hydra.sweep.dir={run_dir}" if multirun else f"hydra.run.dir={run_dir}")
        proc = run_cli(argv)
        if expect_rc is not None and proc.returncode != expect_rc:
            raise AssertionError(f"exit {proc.returncode}, expected {expect_rc}\nSTDOUT:\n{proc.stdout}\n"
                                 f"STDERR:\n{proc.stderr[-5000:]}")
        return proc
    return run
