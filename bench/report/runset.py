"""A set of finished runs for the comparison report: loading, failed runs, and which runs belong together.

Runs belong together when their numbers can sit in one table: the same dataset, the same held-out
queries, and the same top-K and metric. Runs that differ in any of these are put in separate groups,
and the field that differs is named, so the report never mixes recall@10 with recall@20 or cosine
similarities with squared L2 distances.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.errors import BenchError
from bench.report.cross_run_tables import index_setting
from bench.results import TOPK_FILE, Results, as_results, find_runs, read_results

# What must be equal for two runs to be compared, as (name shown to the user, getter). Runs here are ok
# (bench.schema.Results.ok): their dataset and search sections are there.
COMPATIBILITY_FIELDS: list[tuple[str, Callable[[Results], Any]]] = [
    ("dataset.name", lambda r: r.dataset.name),
    ("dataset.split", lambda r: r.config.dataset.split),
    ("dataset.limit", lambda r: r.config.dataset.limit),
    ("dataset.num_images", lambda r: r.dataset.num_images),
    ("dataset.num_corpus", lambda r: r.dataset.num_corpus),
    # Order-free: the same queries in another order are still the same queries (rows are aligned by id).
    ("dataset.query_image_ids", lambda r: tuple(sorted(r.dataset.query_image_ids))),
    ("search.top_k", lambda r: r.search.top_k),
    ("search.metric", lambda r: str(r.search.metric).upper()),
]


@dataclass
class Run:
    path: Path
    data: Results  # a results.json document given here is validated into one
    # Model name as shown in the report; gets a suffix when one name covers different models.
    model_label: str = ""
    _topk: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.data = as_results(self.data)

    @property
    def ok(self) -> bool:
        return self.data.ok

    @property
    def index_type(self) -> str:
        return self.data.index_type

    @property
    def index_setting(self) -> str:
        return index_setting(self.data)

    @property
    def has_topk(self) -> bool:
        return (self.path / TOPK_FILE).is_file()

    def topk(self) -> dict[str, np.ndarray]:
        if self._topk is None:
            with np.load(self.path / TOPK_FILE) as arrays:
                self._topk = {name: arrays[name] for name in arrays.files}
        return self._topk

    def labelled(self) -> Results:
        """The results with the report's model label as model name, for the table functions."""
        return self.data.model_copy(update={"model": self.data.model.model_copy(update={"name": self.model_label})})


@dataclass
class Group:
    runs: list[Run]
    # The fields that set this group apart from the others, e.g. {"search.top_k": 20}.
    key: dict[str, Any]

    @property
    def top_k(self) -> int:
        return int(self.runs[0].data.search.top_k)

    @property
    def metric(self) -> str:
        return str(self.runs[0].data.search.metric).upper()

    def models(self) -> list[str]:
        return list(dict.fromkeys(r.model_label for r in self.runs))

    def first_with_topk(self) -> dict[str, Run]:
        """One run per model that has top-K arrays (exact results and distances are the same in each)."""
        chosen: dict[str, Run] = {}
        for run in self.runs:
            if run.has_topk and run.model_label not in chosen:
                chosen[run.model_label] = run
        return chosen


@dataclass
class RunSet:
    ok: list[Run]
    not_ok: list[Run]
    unreadable: list[tuple[Path, str]]
    groups: list[Group]
    # Fields whose values differ between groups; empty when everything belongs together.
    differing: list[str]
    # Run folder -> the name the report gives it (load_runset: the shortest trailing path that tells runs apart).
    names: dict[Path, str] = field(default_factory=dict)

    def name(self, run: Run) -> str:
        return self.names.get(run.path, run.path.name)


def load_runset(paths: list[Path]) -> RunSet:
    run_dirs = find_runs(paths)
    if not run_dirs:
        raise BenchError(f"no results.json under {', '.join(map(str, paths))}: pass run or sweep directories")
    runs, unreadable = [], []
    for run_dir in run_dirs:
        try:
            runs.append(Run(run_dir, read_results(run_dir)))
        except (ValueError, OSError, json.JSONDecodeError) as err:
            unreadable.append((run_dir, str(err)))
    ok = [r for r in runs if r.ok]
    _label_models(ok)
    groups, differing = group_compatible(ok)
    return RunSet(ok=ok, not_ok=[r for r in runs if not r.ok], unreadable=unreadable, groups=groups,
                  differing=differing, names=run_names([r.path for r in runs]))


def run_names(run_dirs: list[Path]) -> dict[Path, str]:
    """Shortest trailing path that tells each run apart (usually just the run folder's name)."""
    for depth in range(1, max((len(p.parts) for p in run_dirs), default=1) + 1):
        names = {p: "/".join(p.parts[-depth:]) for p in run_dirs}
        if len(set(names.values())) == len(names):
            return names
    return {p: str(p) for p in run_dirs}


def _model_identity(run: Run) -> tuple:
    config = run.data.config.model
    return run.data.model.onnx_sha256, config.preprocessing, config.input_size


def _label_models(runs: list[Run]) -> None:
    """Label runs by model name; where one name covers several models (other weights, input size or
    ONNX file), append what tells them apart."""
    variants: dict[str, list[tuple]] = defaultdict(list)
    for run in runs:
        identity = _model_identity(run)
        if identity not in variants[run.data.model.name]:
            variants[run.data.model.name].append(identity)
    for run in runs:
        model = run.data.model
        if len(variants[model.name]) == 1:
            run.model_label = model.name
            continue
        weights = model.weights.label if model.weights else "?"
        size = run.data.config.model.input_size
        sha = str(model.onnx_sha256 or "")[:8]
        run.model_label = f"{model.name} [{weights}, {size}px, onnx {sha}]"


def group_compatible(runs: list[Run]) -> tuple[list[Group], list[str]]:
    """Partition runs by the compatibility fields, largest group first; also return the fields that differ."""
    by_key: dict[tuple, list[Run]] = defaultdict(list)
    keys: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        values = {name: get(run.data) for name, get in COMPATIBILITY_FIELDS}
        key = tuple(repr(v) for v in values.values())
        by_key[key].append(run)
        keys[key] = values
    differing = [name for name, _ in COMPATIBILITY_FIELDS if len({repr(k[name]) for k in keys.values()}) > 1]
    groups = [Group(runs=by_key[key], key={name: keys[key][name] for name in differing}) for key in by_key]
    groups.sort(key=lambda g: -len(g.runs))
    return groups, differing


def describe_value(name: str, value: Any) -> str:
    """A short form of a compatibility value for messages (query id lists are long)."""
    if name == "dataset.query_image_ids":
        ids = list(value)
        return f"{len(ids)} ids [{', '.join(map(str, ids[:5]))}{', …' if len(ids) > 5 else ''}]"
    return str(value)
