"""The per-run results: one schema-versioned JSON file plus the top-K arrays.

Every stage adds its section as soon as it has it, and the file is rewritten then, so a run
that fails half-way still leaves what it measured, marked ``status: failed``. Each section is
validated against its model in :mod:`bench.schema` as it is written, so a misnamed or mistyped field
fails the run that writes it, not the report that reads it weeks later.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from bench.io import atomic_write, atomic_write_text
from bench.schema import SCHEMA_VERSION, SECTIONS, Results, describe_errors, upgrade

__all__ = ["SCHEMA_VERSION", "RESULTS_FILE", "TOPK_FILE", "RunResult", "Results", "as_results", "load_results",
           "read_results", "find_runs"]

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


def _validated(section: str, value: Any) -> Any:
    """``value`` as JSON data, after checking it against the section's model (a wrong shape is a bug in the
    stage that wrote it: it raises, naming the section and the field)."""
    data = _jsonable(value)
    model = SECTIONS.get(section)
    if model is None:
        raise ValueError(f"results.json has no section {section!r}: declare it in bench/schema "
                         f"(sections: {', '.join(SECTIONS)})")
    try:
        model.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"results.json section {section!r} does not match bench.schema: "
                         f"{describe_errors(err)}") from None
    return data


class RunResult:
    """Accumulates a run's sections and keeps ``results.json`` in step with them."""

    file_name = RESULTS_FILE  # another name keeps a record that is not a benchmark run out of the reports

    def __init__(self, outdir: Path, config: dict, provenance: dict):
        self.outdir = outdir
        outdir.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "status": "running", "error": None,
                                     "config": _validated("config", config),
                                     "provenance": _validated("provenance", provenance)}
        # The stage running now (bench.measure.clock.StageClock sets it), named if the run is interrupted.
        self.stage = "setup"
        self.save()

    def set(self, section: str, value: Any) -> None:
        """Add or replace a section, validated against bench.schema, and rewrite results.json."""
        self.data[section] = _validated(section, value)
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
        self.typed()  # the whole file, including what was edited in place (provenance), must match the schema
        self.save()

    def typed(self) -> Results:
        """The results so far as the typed model the report and the gate read."""
        return Results.model_validate(_jsonable(self.data))

    def save(self) -> None:
        atomic_write_text(self.outdir / self.file_name, json.dumps(_jsonable(self.data), indent=2) + "\n")

    def save_topk(self, arrays: dict[str, np.ndarray]) -> None:
        atomic_write(self.outdir / TOPK_FILE, lambda f: np.savez_compressed(f, **arrays))


def _read(path: Path | str) -> tuple[dict, Results]:
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        data = upgrade(json.loads(path.read_text()))
        return data, Results.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"{path} does not match bench.schema: {describe_errors(err)}") from None
    except ValueError as err:  # not JSON, or a schema_version this code cannot read
        raise ValueError(f"{path}: {err}") from None


def load_results(path: Path | str) -> dict:
    """A results.json (or the one inside a run directory) as plain JSON data of the current schema version:
    older files upgraded, every section validated. The report and the gate read :func:`read_results`."""
    return _read(path)[0]


def read_results(path: Path | str) -> Results:
    """A results.json (or the one inside a run directory) as the typed :class:`bench.schema.Results`."""
    return _read(path)[1]


def find_runs(paths: list[Path]) -> list[Path]:
    """Every run directory (one holding results.json) under the given files or folders, sorted."""
    runs: set[Path] = set()
    for path in paths:
        if path.is_file() and path.name == RESULTS_FILE:
            runs.add(path.parent)
        elif path.is_dir():
            runs.update(p.parent for p in path.rglob(RESULTS_FILE))
    return sorted(runs)


def as_results(data: Results | dict) -> Results:
    """Typed results from either form: a :class:`Results` as it is, a results.json document (of any version
    this code reads) upgraded and validated. For readers that are handed data rather than a path."""
    if isinstance(data, Results):
        return data
    try:
        return Results.model_validate(upgrade(data))
    except ValidationError as err:
        raise ValueError(f"results do not match bench.schema: {describe_errors(err)}") from None
