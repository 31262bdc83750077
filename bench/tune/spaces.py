"""Search spaces: one YAML file per index type in ``conf/tune/``, sized by the corpus.

A space has build parameters, each sampled by the study (an integer range, log-scaled or not), and one
search parameter, which is not sampled: every build is bisected for the smallest value that reaches the
recall target (bench.tune.trial). A bound is written as

* an integer: ``low: 8``;
* ``"<c>*sqrt(N)"``: c times the square root of the corpus's vector count, at most N (``high: 16*sqrt(N)``);
* ``top_k``: search.top_k (HNSW's ef may not be smaller);
* a build parameter's name: its sampled value (IVF's nprobe goes up to nlist).

``grid`` is how many values of a build parameter the exhaustive baseline tries, log-spaced on a log
range, evenly spaced otherwise, rounded to integers.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench import PROJECT_ROOT
from bench.errors import BenchError
from bench.stores.indexes import INDEX_TYPES

SPACES_DIR = PROJECT_ROOT / "conf" / "tune"
_SQRT_N = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*\*\s*sqrt\(N\)\s*$")

Bound = Union[int, str]


@dataclass
class ParamSpec:
    """One parameter's range in a space file."""
    low: Any = 1
    high: Any = None
    log: bool = False
    grid: int = 5


@dataclass
class SpaceFile:
    build: dict[str, ParamSpec] = field(default_factory=dict)
    search: dict[str, ParamSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class IntRange:
    name: str
    low: int
    high: int
    log: bool
    grid: int

    def grid_values(self) -> list[int]:
        spaced = (np.geomspace(self.low, self.high, self.grid) if self.log
                  else np.linspace(self.low, self.high, self.grid))
        return sorted({int(round(v)) for v in spaced})

    def describe(self) -> str:
        return f"{self.name} {self.low}..{self.high}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class SearchRange:
    """The bisected search parameter: its bounds may depend on the build (nprobe <= nlist)."""
    name: str
    low: Bound
    high: Bound

    def bounds(self, build: Mapping[str, int], top_k: int, corpus_size: int) -> tuple[int, int]:
        return (_resolve(self.low, self.name, build, top_k, corpus_size),
                _resolve(self.high, self.name, build, top_k, corpus_size))


@dataclass(frozen=True)
class Space:
    """An index type's space, sized for one corpus."""
    index_type: str
    build: tuple[IntRange, ...]
    search: SearchRange

    def grid(self) -> dict[str, list[int]]:
        return {r.name: r.grid_values() for r in self.build}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def describe(self) -> str:
        return f"{self.index_type}: " + ", ".join(r.describe() for r in self.build) + f"; {self.search.name} bisected"

    def as_dict(self) -> dict[str, Any]:
        return {"index_type": self.index_type,
                "build": {r.name: [r.low, r.high, r.log, r.grid] for r in self.build},
                "search": {self.search.name: [self.search.low, self.search.high]}}


def _resolve(bound: Bound, name: str, build: Mapping[str, int], top_k: int, corpus_size: int) -> int:
    if isinstance(bound, bool):
        raise BenchError(f"tune space: {name} bound {bound!r} must be an integer, '<c>*sqrt(N)', top_k or "
                         f"a build parameter")
    if isinstance(bound, int):
        return bound
    text = str(bound).strip()
    if text == "top_k":
        return top_k
    if text in build:
        return int(build[text])
    match = _SQRT_N.match(text)
    if match:
        # Never more than N: a k-means with more centroids than vectors does not train.
        return max(1, min(corpus_size, int(float(match.group(1)) * math.sqrt(corpus_size))))
    raise BenchError(f"tune space: {name} bound {bound!r} must be an integer, '<c>*sqrt(N)', top_k or "
                     f"a build parameter ({', '.join(build) or 'none'})")


def _read(index_type: str, spaces_dir: Path) -> SpaceFile:
    path = spaces_dir / f"{index_type}.yaml"
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SpaceFile), OmegaConf.load(path))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        where = f"{err.full_key}: " if getattr(err, "full_key", None) else ""
        raise BenchError(f"tune space {path}: {where}{str(err).splitlines()[0]} (schema: bench/tune/spaces.py)") \
            from None


def load_space(index_type: str, *, corpus_size: int, top_k: int, ranges: Optional[Mapping[str, list[int]]] = None,
               spaces_dir: Path = SPACES_DIR) -> Space:
    """The space of ``index_type`` sized for ``corpus_size`` vectors, with ``ranges`` ({name: [low, high]})
    replacing the file's bounds. Raises BenchError on an unknown type or an empty or inverted range."""
    if index_type not in available_in(spaces_dir):
        known = ", ".join(available_in(spaces_dir)) or "none"
        hint = "" if index_type in INDEX_TYPES else " (not an index type)"
        raise BenchError(f"tune.index_types: no search space for {index_type!r}{hint}: choose from {known} "
                         f"(conf/tune/)")
    spec = _read(index_type, spaces_dir)
    ranges = dict(ranges or {})
    if len(spec.search) != 1:
        raise BenchError(f"tune space {index_type}: `search` must name exactly one parameter to bisect")
    build = []
    for name, param in spec.build.items():
        low, high = ranges.get(name, (param.low, param.high))
        low, high = _resolve(low, name, {}, top_k, corpus_size), _resolve(high, name, {}, top_k, corpus_size)
        _check_range(index_type, name, low, high, corpus_size)
        if param.grid < 1:
            raise BenchError(f"tune space {index_type}: {name}.grid={param.grid} must be at least 1")
        build.append(IntRange(name, low, high, bool(param.log), int(param.grid)))
    (search_name, search_param), = spec.search.items()
    low, high = ranges.get(search_name, (search_param.low, search_param.high))
    # Bounds naming a build parameter or top_k are checked per build (check_search_bounds); numbers now.
    numbers = [v for v in (low, high) if isinstance(v, int) and not isinstance(v, bool)]
    if numbers:
        _check_range(index_type, search_name, numbers[0], numbers[-1], corpus_size)
    return Space(index_type, tuple(build), SearchRange(search_name, low, high))


def available_in(spaces_dir: Path) -> list[str]:
    return sorted(p.stem for p in spaces_dir.glob("*.yaml"))


def _check_range(index_type: str, name: str, low: int, high: int, corpus_size: int) -> None:
    if low < 1 or high < low:
        raise BenchError(f"tune space {index_type}: {name} range [{low}, {high}] is empty or inverted "
                         f"(at N={corpus_size} vectors): give 1 <= low <= high, e.g. +tune.ranges.{name}=[low,high]")


def check_search_bounds(space: Space, low: int, high: int, build: Mapping[str, int]) -> None:
    """A build whose search range is empty (e.g. ef's top_k above its high) cannot be bisected."""
    if low < 1 or high < low:
        raise BenchError(f"tune space {space.index_type}: {space.search.name} range [{low}, {high}] is empty "
                         f"for build {dict(build)}: widen it with +tune.ranges.{space.search.name}=[low,high]")
