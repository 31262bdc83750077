"""Index types: which parameters each takes and how they are checked.

Adding an index type is a YAML file in ``conf/index/`` plus one entry here; which stores build it is
each store's to say (``capabilities().index_types``, bench.stores.registry). Milvus accepts
absurd values silently (nprobe > nlist, ef < top_k, a metric the index was not built with),
so every check that can fail later fails here, before any work starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from bench.errors import BenchError
from bench.measure.evaluate import METRICS  # the metrics exact search computes: the ones a store is asked for
from bench.stores import registry


@dataclass(frozen=True)
class IndexType:
    name: str
    # Parameters that must be positive integers, at build and at search time.
    build_ints: tuple[str, ...] = ()
    search_ints: tuple[str, ...] = ()
    # Other parameters passed through as they are (strings, enums).
    build_other: tuple[str, ...] = ()
    search_other: tuple[str, ...] = ()


INDEX_TYPES: dict[str, IndexType] = {t.name: t for t in [
    IndexType("FLAT"),
    IndexType("IVF_FLAT", build_ints=("nlist",), search_ints=("nprobe",)),
    IndexType("IVF_SQ8", build_ints=("nlist",), search_ints=("nprobe",)),
    IndexType("IVF_PQ", build_ints=("nlist", "m", "nbits"), search_ints=("nprobe",)),
    IndexType("HNSW", build_ints=("M", "efConstruction"), search_ints=("ef",)),
    IndexType("HNSW_SQ", build_ints=("M", "efConstruction"), build_other=("sq_type",), search_ints=("ef",)),
    IndexType("SCANN", build_ints=("nlist",), build_other=("with_raw_data",), search_ints=("nprobe", "reorder_k")),
    IndexType("DISKANN", search_ints=("search_list",)),
    IndexType("AUTOINDEX", search_ints=("level",)),
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
    if index_type not in registry.capabilities(store).index_types:
        building = registry.kinds_building(index_type)
        where = " or ".join(f"store={s}" for s in building) or "no store bench knows"
        remote = [s for s in building if not registry.capabilities(s).embedded]
        hint = f" ({remote[0]} needs a running server: `docker compose up -d`, see docs/stores.md)" if remote else ""
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


def format_params(params: Mapping[str, Any], empty: str) -> str:
    """Parameters as 'k=v,k=v' (in config order), or `empty` when there are none."""
    return ",".join(f"{k}={v}" for k, v in params.items()) or empty


def point_label(params: Mapping[str, Any]) -> str:
    """A short, stable name for a search-parameter point, e.g. 'nprobe=8'."""
    return format_params(params, "default")
