"""Milvus, embedded (milvus-lite) or a server, through pymilvus's MilvusClient.

The traps this class guards against (each measured on milvus-lite 3.2.2 and Milvus 2.3.5):
- milvus-lite drops build params passed flat; they are nested under "params" and read back
  with describe_index, and a mismatch is an error.
- a failed create_index leaves a phantom index that breaks load; it is dropped on failure.
- an index that never finishes (DISKANN on Milvus 2.3.5) is a timeout error naming the index,
  never a silent fallback to a temporary index.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import numpy as np

from bench.config import StoreConfig
from bench.errors import BenchError
from bench.stores.base import Capabilities, CollectionSpec, LabelFilter, SearchHits
from bench.stores.urls import public_url

log = logging.getLogger(__name__)


class _NoRpcErrorTraceback(logging.Filter):
    """pymilvus logs every failed call at ERROR with its full traceback, then raises the error. The error
    reaches bench either way: expected ones (a clean-up, a refused parameter) become one-line messages, and
    anything else propagates with its own traceback; the log record only repeats it, third-party frames
    and all, so it is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.funcName != "_log_rpc_error"


_RPC_ERROR_FILTER = _NoRpcErrorTraceback()

VECTOR_FIELD = "vector"
MAX_PATH_LENGTH = 4096
MAX_LABELS = 256
FINGERPRINT_PROPERTY = "bench.fingerprint"
DEFAULT_PORT = 19530
# Milvus servers build no index for a segment under this many rows (indexCoord's
# minSegmentNumRowsToEnableIndex default); they report the index "Finished" all the same.
MIN_ROWS_TO_INDEX = 1024
LABEL_FIELD = "category_ids"
# The scratch collection of workload=streaming is kept apart from the reusable one of the same data.
SCRATCH_SUFFIX = "_stream"

# Index types each flavour builds (measured: milvus-lite 3.2.2 refuses IVF_PQ, SCANN and DISKANN).
LITE_INDEXES = frozenset({"FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW", "HNSW_SQ", "AUTOINDEX"})
SERVER_INDEXES = LITE_INDEXES | {"IVF_PQ", "SCANN", "DISKANN"}
# Oldest Milvus server that builds an index type, where newer than the oldest server bench supports (2.3).
MINIMUM_SERVER = {"HNSW_SQ": (2, 5)}


@dataclass
class MilvusConfig(StoreConfig):
    """store=milvus_lite | milvus_server (conf/store/)."""
    kind: str = "milvus_lite"  # or milvus_server
    uri: str = "${hydra:runtime.cwd}/reports/milvus_lite.db"
    # Name of the environment variable holding a token or "user:password".
    token_env: str = "MILVUS_TOKEN"
    consistency_level: str = "Bounded"
    # Collection name; null derives one per model, dataset and data fingerprint. A name you set
    # is checked: a collection of that name holding other data is refused (or replaced with recreate).
    collection: Optional[str] = None
    recreate: bool = False
    index_timeout_s: float = 600.0
    connect_timeout_s: float = 5.0
    # Batches in flight at once while inserting (bench/stores/insert.py): 2 overlaps the client's
    # serialisation of one batch with a server's work on the previous one (conf/store/).
    insert_threads: int = 1


def milvus_filter(label_filter: LabelFilter | None) -> str:
    """The boolean expression Milvus evaluates for a LabelFilter ("" for none)."""
    if label_filter is None:
        return ""
    if len(label_filter.categories) == 1:
        return f"array_contains({LABEL_FIELD}, {int(label_filter.categories[0])})"
    return f"array_contains_any({LABEL_FIELD}, {[int(c) for c in label_filter.categories]})"


def parse_server_version(version: str) -> tuple[int, ...] | None:
    """(2, 3, 5) from "v2.3.5-lite" or "2.6.0"; None when the string holds no version."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def check_server_version(index_type: str, version: str) -> None:
    """Refuse an index type the connected Milvus server is too old to build (e.g. HNSW_SQ before 2.5)."""
    needed = MINIMUM_SERVER.get(index_type)
    parsed = parse_server_version(version)
    if needed is not None and parsed is not None and parsed[:2] < needed:
        raise BenchError(f"index {index_type} needs Milvus {'.'.join(map(str, needed))} or newer, but the server at "
                         f"store.uri is {version}: upgrade it (docker-compose.yml runs a current one) or choose "
                         "another index")


def _host_port(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri if "://" in uri else f"http://{uri}")
    if not parts.hostname:
        raise BenchError(f"store.uri={public_url(uri)!r}: a Milvus server needs http://host:port "
                         f"(e.g. http://localhost:19530)")
    return parts.hostname, parts.port or DEFAULT_PORT


def _difference(existing: str | None, spec: CollectionSpec) -> str:
    """What differs between an existing collection's fingerprint property and ours, in words."""
    try:
        theirs = json.loads(existing) if existing else None
    except ValueError:
        theirs = None
    if not isinstance(theirs, dict):
        return "it was not created by bench"
    if theirs.get("dim") != spec.dim:
        return f"dim {theirs.get('dim')}, ours is {spec.dim}"
    if theirs.get("with_paths") != spec.with_paths:
        return ("it has a path field, for metadata=milvus" if theirs.get("with_paths")
                else "it has no path field; metadata=milvus needs one")
    return "another model, weights or image list"


def _wire_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Booleans as the strings Milvus expects: SCANN's with_raw_data must be "true", not true."""
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}


class MilvusStore:
    """What milvus-lite and a Milvus server share: everything but opening and their limits."""

    config = MilvusConfig

    def __init__(self, cfg: MilvusConfig):
        from pymilvus import MilvusClient

        logging.getLogger("pymilvus.decorators").addFilter(_RPC_ERROR_FILTER)  # adding it again is a no-op
        self.cfg = cfg
        self.kind = cfg.kind
        self.insert_threads = cfg.insert_threads
        self._spec: CollectionSpec | None = None
        self._name = ""
        self._rows = 0
        # The token itself is never logged, put in a message or written to results: only the
        # name of the variable that holds it is part of the config.
        token = os.environ.get(cfg.token_env, "") if cfg.token_env else ""
        address = public_url(cfg.uri)
        self._check_uri(address)
        try:
            # A dedicated connection, closed with the store: pymilvus otherwise keeps a shared channel
            # alive between runs of a multirun, whose keepalive pings during the next run's long
            # conversion made the in-process milvus-lite server answer GOAWAY ("too_many_pings").
            self.client = MilvusClient(uri=cfg.uri, token=token, timeout=cfg.connect_timeout_s, dedicated=True)
            self._version = self.client.get_server_version()
        except Exception as err:  # pymilvus raises several types for the same failure
            if self.capabilities().embedded:
                raise BenchError(f"cannot open milvus-lite at {address} ({type(err).__name__}): "
                                 f"check the file, or delete it if it is damaged") from None
            # The port answered, so the handshake failed: most often credentials (or not Milvus at all).
            where = f"${cfg.token_env}" if cfg.token_env else "store.token_env"
            raise BenchError(f"Milvus at {address} refused the connection ({type(err).__name__}): check the token "
                             f"or user:password in {where} ({'set' if token else 'not set'}) and that the "
                             f"port is Milvus's gRPC port") from None

    def _check_uri(self, address: str) -> None:
        """Fail fast, in one line, on a URI this flavour cannot open."""

    def _check_reachable(self, address: str) -> None:
        """A plain TCP connect first: a clear "cannot reach" within connect_timeout_s, never a hang."""
        host, port = _host_port(self.cfg.uri)
        try:
            socket.create_connection((host, port), timeout=self.cfg.connect_timeout_s).close()
        except OSError as err:
            if isinstance(err, TimeoutError):
                reason = f"no answer within {self.cfg.connect_timeout_s:g} s"
            else:
                reason = type(err).__name__
            raise BenchError(f"cannot reach Milvus at {address} ({reason}): start it (docker compose up -d) "
                             f"or set store.uri") from None

    # -- facts -----------------------------------------------------------------------------
    def server_version(self) -> str:
        return str(self._version)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.server_version(), "consistency_level": self.cfg.consistency_level}

    def check_index(self, index_type: str) -> None:
        """Every index in capabilities() builds on every version of this flavour."""

    # -- collection ------------------------------------------------------------------------
    def prepare(self, spec: CollectionSpec, num_rows: int) -> bool:
        self._spec = spec
        self._rows = num_rows
        self._name = self._name_of(spec)
        identity = json.dumps({"dim": spec.dim, "fingerprint": spec.fingerprint, "with_paths": spec.with_paths})
        if self.client.has_collection(self._name):
            existing = self.client.describe_collection(self._name).get("properties", {}).get(FINGERPRINT_PROPERTY)
            rows = int(self.client.get_collection_stats(self._name).get("row_count", -1))
            if not self.cfg.recreate:
                if existing != identity:
                    raise BenchError(f"collection {self._name!r} at {public_url(self.cfg.uri)} holds other "
                                     f"data ({_difference(existing, spec)}): rerun with store.recreate=true "
                                     f"to replace it")
                if rows == num_rows:
                    log.info("reusing collection %s (%d rows, same data)", self._name, rows)
                    return True
                log.info("collection %s is incomplete (%d of %d rows): recreating it", self._name, rows, num_rows)
            self.client.drop_collection(self._name)
        self._create(spec, identity)
        return False

    def attach(self, spec: CollectionSpec) -> None:
        """Search a collection another process prepared, loaded and keeps (a search client): nothing is changed."""
        self._spec, self._name = spec, self._name_of(spec)
        if not self.client.has_collection(self._name):
            raise BenchError(f"search client: collection {self._name!r} is not at {public_url(self.cfg.uri)}")

    def _name_of(self, spec: CollectionSpec) -> str:
        # store.collection names it when set; else the runner's name, one per distinct data.
        return (self.cfg.collection or spec.name) + (SCRATCH_SUFFIX if spec.scratch else "")

    def _create(self, spec: CollectionSpec, identity: str) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=spec.dim)
        if spec.with_paths:
            schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH_LENGTH)
        schema.add_field(LABEL_FIELD, DataType.ARRAY, element_type=DataType.INT64, max_capacity=MAX_LABELS)
        # A collection property, not the description: milvus-lite does not keep descriptions.
        self.client.create_collection(self._name, schema=schema, consistency_level=self.cfg.consistency_level,
                                      properties={FINGERPRINT_PROPERTY: identity})

    def insert(self, ids: np.ndarray, vectors: np.ndarray, paths: Sequence[str],
               labels: Sequence[Sequence[int]]) -> None:
        spec = self._require_spec()
        rows = []
        for i, image_id in enumerate(ids):
            row: dict[str, Any] = {"id": int(image_id), VECTOR_FIELD: vectors[i].tolist(),
                                   LABEL_FIELD: [int(c) for c in labels[i]][:MAX_LABELS]}
            if spec.with_paths:
                row["path"] = str(paths[i])
            rows.append(row)
        self.client.insert(self._collection(), rows)

    def flush(self) -> None:
        self.client.flush(self._collection())

    # -- index -----------------------------------------------------------------------------
    def build_index(self, index_type: str, build_params: Mapping[str, Any]) -> dict[str, Any]:
        spec = self._require_spec()
        minimum = self.capabilities().min_rows_to_index
        if self._rows < minimum:
            log.warning("%d rows is below the %d a Milvus server needs before it builds any index: it reports %s "
                        "as built and searches by brute force (use a larger dataset to measure the index)",
                        self._rows, minimum, index_type)
        self.client.release_collection(self._name)
        for name in self.client.list_indexes(self._name):
            self.client.drop_index(self._name, name)
        index_params = self.client.prepare_index_params()
        # Nested under "params": milvus-lite silently drops flat build params; servers accept both
        # (Milvus 2.3.5 applies the nested ones: nlist=1 gives recall 1.0 at nprobe=1, measured).
        index_params.add_index(field_name=VECTOR_FIELD, index_name=VECTOR_FIELD, index_type=index_type,
                               metric_type=spec.metric, params={"params": _wire_params(build_params)})
        try:
            # sync=False: we wait ourselves, with a timeout and an indexed-row check (and pymilvus's
            # own wait calls AllocTimestamp, which milvus-lite does not implement).
            self.client.create_index(self._name, index_params, sync=False)
            described = self._wait_for_index(index_type)
        except BaseException:
            # A failed build leaves a phantom index that breaks load() later.
            self._drop_index_quietly()
            raise
        self._check_params_arrived(index_type, build_params, described)
        return described

    def _wait_for_index(self, index_type: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.cfg.index_timeout_s
        while True:
            described = dict(self.client.describe_index(self._name, VECTOR_FIELD) or {})
            state = str(described.get("state", "Finished"))
            total, indexed = described.get("total_rows"), described.get("indexed_rows")
            if state.endswith("Finished") and (total is None or indexed == total):
                return described
            if state.endswith("Failed"):
                raise BenchError(f"index {index_type} failed to build: {described.get('index_state_fail_reason', '')}")
            if time.monotonic() > deadline:
                raise BenchError(f"index {index_type} did not finish building on {self.kind} {self._version} within "
                                 f"{self.cfg.index_timeout_s:g} s (state {state}, {indexed}/{total} rows indexed): "
                                 f"this server may never build it; choose another index, or raise "
                                 f"store.index_timeout_s")
            time.sleep(0.2)

    @staticmethod
    def _check_params_arrived(index_type: str, build_params: Mapping[str, Any], described: Mapping[str, Any]) -> None:
        reported = described.get("params")
        if isinstance(reported, str):
            reported = json.loads(reported)
        if not isinstance(reported, Mapping):
            # Servers report build params flat, as strings, next to index_type and metric_type.
            reported = {k: v for k, v in described.items() if k in build_params}
        for key, value in build_params.items():
            if key in reported and str(reported[key]).lower() != str(value).lower():
                raise BenchError(f"index {index_type}: asked for {key}={value} but Milvus reports "
                                 f"{key}={reported[key]}; refusing to benchmark the wrong index")
            if key not in reported:
                raise BenchError(f"index {index_type}: build parameter {key}={value} did not reach Milvus "
                                 f"(describe_index: {dict(described)})")

    def _drop_index_quietly(self) -> None:
        try:
            # Milvus refuses to drop the index of a loaded collection ("call release() first"): a build
            # interrupted after a load, or one on a server where the collection was loaded meanwhile.
            self.client.release_collection(self._name)
            for name in self.client.list_indexes(self._name):
                self.client.drop_index(self._name, name)
        except Exception as err:  # the original failure matters more than this clean-up
            log.warning("could not drop the failed index: %s", err)

    def load(self) -> None:
        self.client.load_collection(self._collection())

    # -- search ----------------------------------------------------------------------------
    def search(self, vectors: np.ndarray, k: int, params: Mapping[str, Any],
               with_paths: bool = False, filter: LabelFilter | None = None) -> SearchHits:
        spec = self._require_spec()
        results = self.client.search(
            self._name, data=vectors.tolist(), limit=k, anns_field=VECTOR_FIELD, filter=milvus_filter(filter),
            search_params={"metric_type": spec.metric, "params": dict(params)},
            # Ask for the primary key alone: with no output fields milvus-lite returns every field,
            # vectors included, which would make "search alone" slower than search plus paths.
            output_fields=["path"] if with_paths else ["id"],
            consistency_level=self.cfg.consistency_level,
        )
        ids = np.full((len(results), k), -1, dtype=np.int64)
        distances = np.full((len(results), k), np.nan, dtype=np.float32)
        paths: list[list[str]] | None = [] if with_paths else None
        for row, hits in enumerate(results):
            for col, hit in enumerate(hits[:k]):
                ids[row, col] = hit["id"]
                distances[row, col] = hit["distance"]
            if paths is not None:
                paths.append([hit["entity"]["path"] for hit in hits[:k]])
        return SearchHits(ids=ids, distances=distances, paths=paths)

    # -- lifecycle -------------------------------------------------------------------------
    def drop(self) -> None:
        if self.client.has_collection(self._collection()):
            self.client.drop_collection(self._name)

    def close(self) -> None:
        self.client.close()

    def _require_spec(self) -> CollectionSpec:
        if self._spec is None:
            raise RuntimeError("prepare() must be called before using the collection")
        return self._spec

    def _collection(self) -> str:
        self._require_spec()
        return self._name


class MilvusLiteStore(MilvusStore):
    """store=milvus_lite: milvus-lite's engine inside this process, on a local .db file."""

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(index_types=LITE_INDEXES, min_rows_to_index=0, embedded=True, filters=True,
                            caveat="**milvus-lite** (embedded, Python on faiss): its latency and QPS describe "
                                   "milvus-lite, not a Milvus server.")

    def _check_uri(self, address: str) -> None:
        if not self.cfg.uri.endswith(".db"):
            raise BenchError(f"store.uri={address!r}: milvus-lite needs a local file ending in .db "
                             f"(for a server use store=milvus_server store.uri=http://host:19530)")
        Path(self.cfg.uri).parent.mkdir(parents=True, exist_ok=True)


class MilvusServerStore(MilvusStore):
    """store=milvus_server: a Milvus server (standalone or cluster) at http://host:port."""

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(index_types=SERVER_INDEXES, min_rows_to_index=MIN_ROWS_TO_INDEX, embedded=False,
                            filters=True)

    def _check_uri(self, address: str) -> None:
        self._check_reachable(address)

    def check_index(self, index_type: str) -> None:
        check_server_version(index_type, self.server_version())
