"""The per-run results: one schema-versioned JSON file plus the top-K arrays.

Every stage adds its section as soon as it has it, and the file is rewritten then, so a run
that fails half-way still leaves what it measured, marked ``status: failed``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
TOPK_FILE = "topk.npz"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunResult:
    """Accumulates a run's sections and keeps ``results.json`` in step with them."""

    def __init__(self, outdir: Path, config: dict, provenance: dict):
        self.outdir = outdir
        outdir.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "status": "running", "error": None,
                                     "config": config, "provenance": provenance}
        self.stage = "setup"  # the stage running now (bench.measure.clock.StageClock sets it), named if the run is interrupted
        self.save()

    def set(self, section: str, value: Any) -> None:
        self.data[section] = value
        self.save()

    def fail(self, message: str) -> None:
        self.data["status"] = "failed"
        self.data["error"] = message
        self.save()

    def interrupt(self, stage: str, signal_name: str = "SIGINT") -> None:
        """A signal stopped the run during ``stage``; what was measured so far stays, marked as such."""
        self.data["status"] = "interrupted"
        self.data["interrupted"] = {"stage": stage, "signal": signal_name}
        self.data["error"] = f"interrupted by {signal_name} during {stage}"
        self.save()

    def finish(self) -> None:
        self.data["status"] = "ok"
        self.save()

    def save(self) -> None:
        _write_atomically(self.outdir / RESULTS_FILE, json.dumps(_jsonable(self.data), indent=2) + "\n")

    def save_topk(self, arrays: dict[str, np.ndarray]) -> None:
        tmp = self.outdir / (TOPK_FILE + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, self.outdir / TOPK_FILE)


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...``, or None where a level is missing (older or failed runs lack sections)."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def load_results(path: Path) -> dict:
    """Read a results.json (or the one inside a run directory)."""
    if path.is_dir():
        path = path / RESULTS_FILE
    data = json.loads(path.read_text())
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {data.get('schema_version')} is not {SCHEMA_VERSION}")
    return data


def find_runs(paths: list[Path]) -> list[Path]:
    """Every run directory (one holding results.json) under the given files or folders, sorted."""
    runs: set[Path] = set()
    for path in paths:
        if path.is_file() and path.name == RESULTS_FILE:
            runs.add(path.parent)
        elif path.is_dir():
            runs.update(p.parent for p in path.rglob(RESULTS_FILE))
    return sorted(runs)
