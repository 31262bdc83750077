"""Index types: which parameters each takes, how they are checked, and which stores build it.

Adding an index type is a YAML file in ``conf/index/`` plus one entry here. Milvus accepts
absurd values silently (nprobe > nlist, ef < top_k, a metric the index was not built with),
so every check that can fail later fails here, before any work starts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.errors import BenchError

METRICS = ("IP", "L2", "COSINE")


@dataclass(frozen=True)
class IndexType:
    name: str
    # Parameters that must be positive integers, at build and at search time.
    build_ints: tuple[str, ...] = ()
    search_ints: tuple[str, ...] = ()
    # Other parameters passed through as they are (strings, enums).
    build_other: tuple[str, ...] = ()
    search_other: tuple[str, ...] = ()
    stores: frozenset[str] = field(default_factory=frozenset)
    minimum_server: tuple[int, int] = (2, 3)  # oldest Milvus server that builds it


LITE, SERVER = "milvus_lite", "milvus_server"

INDEX_TYPES: dict[str, IndexType] = {t.name: t for t in [
    IndexType("FLAT", stores=frozenset({LITE, SERVER})),
    IndexType("IVF_FLAT", build_ints=("nlist",), search_ints=("nprobe",), stores=frozenset({LITE, SERVER})),
    IndexType("IVF_SQ8", build_ints=("nlist",), search_ints=("nprobe",), stores=frozenset({LITE, SERVER})),
    IndexType("IVF_PQ", build_ints=("nlist", "m", "nbits"), search_ints=("nprobe",), stores=frozenset({SERVER})),
    IndexType("HNSW", build_ints=("M", "efConstruction"), search_ints=("ef",), stores=frozenset({LITE, SERVER})),
    IndexType("HNSW_SQ", build_ints=("M", "efConstruction"), build_other=("sq_type",), search_ints=("ef",),
              stores=frozenset({LITE, SERVER}), minimum_server=(2, 5)),
    IndexType("SCANN", build_ints=("nlist",), build_other=("with_raw_data",), search_ints=("nprobe", "reorder_k"),
              stores=frozenset({SERVER})),
    IndexType("DISKANN", search_ints=("search_list",), stores=frozenset({SERVER})),
    IndexType("AUTOINDEX", search_ints=("level",), stores=frozenset({LITE, SERVER})),
]}


def _check_ints(where: str, params: Mapping[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name in params:
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise BenchError(f"{where}: {name}={value!r} must be a positive integer")


def validate_index(index_type: str, build: Mapping[str, Any], search_points: list[Mapping[str, Any]],
                   *, store: str, metric: str, top_k: int, dim: int | None = None) -> IndexType:
    """Check an index config against the store, the metric and the search settings."""
    spec = INDEX_TYPES.get(index_type)
    if spec is None:
        raise BenchError(f"unknown index type {index_type!r}: choose one of {', '.join(INDEX_TYPES)} (conf/index/)")
    if store not in spec.stores:
        where = " or ".join(f"store={s}" for s in sorted(spec.stores))
        hint = " (a Milvus server: `docker compose up -d`, see README)" if SERVER in spec.stores else ""
        raise BenchError(f"index {index_type} is not supported by store {store}: run it with {where}{hint}")
    if metric not in METRICS:
        raise BenchError(f"search.metric={metric!r} is not supported: choose one of {', '.join(METRICS)}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise BenchError(f"search.top_k={top_k!r} must be a positive integer")

    allowed_build = set(spec.build_ints) | set(spec.build_other)
    unknown = set(build) - allowed_build
    if unknown:
        raise BenchError(f"index {index_type}: unknown build parameter(s) {sorted(unknown)}; "
                         f"allowed: {sorted(allowed_build) or 'none'}")
    _check_ints(f"index.build ({index_type})", build, spec.build_ints)

    if not search_points:
        raise BenchError(f"index {index_type}: index.search must list at least one point (use [{{}}] for none)")
    allowed_search = set(spec.search_ints) | set(spec.search_other)
    for point in search_points:
        unknown = set(point) - allowed_search
        if unknown:
            raise BenchError(f"index {index_type}: unknown search parameter(s) {sorted(unknown)}; "
                             f"allowed: {sorted(allowed_search) or 'none'}")
        _check_ints(f"index.search ({index_type})", point, spec.search_ints)
        if "nprobe" in point and "nlist" in build and point["nprobe"] > build["nlist"]:
            raise BenchError(f"index {index_type}: nprobe={point['nprobe']} exceeds nlist={build['nlist']}")
        if "ef" in point and point["ef"] < top_k:
            raise BenchError(f"index {index_type}: ef={point['ef']} must be >= search.top_k={top_k}")
        if "reorder_k" in point and point["reorder_k"] < top_k:
            raise BenchError(f"index {index_type}: reorder_k={point['reorder_k']} must be >= search.top_k={top_k}")
        if "search_list" in point and point["search_list"] < top_k:
            raise BenchError(f"index {index_type}: search_list={point['search_list']} must be >= search.top_k={top_k}")
    if dim is not None:
        check_dim(index_type, build, dim)
    return spec


def check_dim(index_type: str, build: Mapping[str, Any], dim: int) -> None:
    """The one check that needs the embedding dim, known only once the model is converted."""
    if "m" in build and dim % build["m"]:
        raise BenchError(f"index {index_type}: m={build['m']} must divide the embedding dim {dim}")


def parse_server_version(version: str) -> tuple[int, ...] | None:
    """(2, 3, 5) from "v2.3.5-lite" or "2.6.0"; None when the string holds no version."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def check_server_version(index_type: str, store: str, version: str) -> None:
    """Refuse an index type the connected Milvus server is too old to build (e.g. HNSW_SQ before 2.5).

    Only servers are checked: milvus-lite reports its own package version, and its index list is
    already in INDEX_TYPES[...].stores.
    """
    spec = INDEX_TYPES.get(index_type)
    if spec is None or store != SERVER:
        return
    parsed = parse_server_version(version)
    if parsed is not None and parsed[:2] < spec.minimum_server:
        needed = ".".join(map(str, spec.minimum_server))
        raise BenchError(f"index {index_type} needs Milvus {needed} or newer, but the server at store.uri is "
                         f"{version}: upgrade it (docker-compose.yml runs a current one) or choose another index")


def format_params(params: Mapping[str, Any], empty: str) -> str:
    """Parameters as 'k=v,k=v' (in config order), or `empty` when there are none."""
    return ",".join(f"{k}={v}" for k, v in params.items()) or empty


def point_label(params: Mapping[str, Any]) -> str:
    """A short, stable name for a search-parameter point, e.g. 'nprobe=8'."""
    return format_params(params, "default")
