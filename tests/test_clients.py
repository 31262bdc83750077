"""search.clients: how a concurrency level is spread over client processes, how their samples are pooled,
when a level is marked client-bound, and the refusal for embedded stores. The processes themselves run
against the Milvus server in tests/test_server.py."""
from __future__ import annotations

import json

import pytest

from bench.config import SearchConfig
from bench.errors import BenchError
from bench.measure.clients import CLIENT_BOUND_CPU, pool_level, split_level, validate_clients


def test_a_level_is_spread_over_at_most_n_processes():
    assert split_level(1, 4) == [1]
    assert split_level(4, 4) == [1, 1, 1, 1]
    assert split_level(4, 2) == [2, 2]
    assert split_level(5, 2) == [3, 2]


def reply(latencies, cpu_s, seconds=2.0, cores=2):
    return {"latency_s": latencies, "cpu_s": cpu_s, "seconds": seconds, "threads": 1, "pid": 1, "cores": cores}


def test_samples_of_every_client_are_pooled_not_the_worst_p99():
    fast, slow = [0.001] * 300, [0.010] * 100
    level = pool_level([reply(fast, 0.2), reply(slow, 0.2)])
    assert level["qps"] == 400 / 2.0
    assert sorted(level["latency_s"]) == sorted(fast + slow)
    assert level["processes"] == 2 and level["client_bound"] is False
    assert level["client_cpu_max"] == pytest.approx(0.1) and level["client_cpu_cores"] == pytest.approx(0.2)


def test_a_saturated_client_process_or_all_cores_mark_the_level_client_bound():
    assert pool_level([reply([0.001], CLIENT_BOUND_CPU * 2.0)])["client_bound"] is True  # one process, one core
    # Four processes at 0.5 core each on 2 cores: none alone is saturated, together they use every core.
    assert pool_level([reply([0.001], 1.0) for _ in range(4)])["client_bound"] is True
    assert pool_level([reply([0.001], 0.5) for _ in range(2)])["client_bound"] is False


@pytest.mark.parametrize("kind", ["milvus_lite", "faiss"])
def test_embedded_stores_refuse_several_clients_in_one_line(kind):
    with pytest.raises(BenchError, match=rf"search.clients=4 needs a store other processes can reach: store={kind}"
                                         r" is embedded") as err:
        validate_clients(SearchConfig(clients=4), kind)
    assert "\n" not in str(err.value)
    validate_clients(SearchConfig(clients=1), kind)  # threads of this process: fine
    validate_clients(SearchConfig(clients=4), "milvus_server")
    with pytest.raises(BenchError, match="search.clients=0"):
        validate_clients(SearchConfig(clients=0), "milvus_server")


@pytest.mark.parametrize("args, message", [
    (["search.clients=2"], "error: search.clients=2 needs a store other processes can reach: store=milvus_lite"),
    (["runtime.engine=ray", "runtime.ray.actors=0"], "error: runtime.ray.actors=0"),
], ids=["clients-on-milvus-lite", "ray-actors-0"])
def test_cli_refuses_bad_client_and_engine_settings_before_any_work(bench_cli, tmp_path, args, message):
    proc = bench_cli(*args, run_dir=tmp_path / "run", expect_rc=2)
    assert proc.stderr.strip().splitlines()[-1].startswith(message)
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["status"] == "failed" and "model" not in result  # refused before conversion and embedding
