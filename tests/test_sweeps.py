"""A multirun over every config in conf/index/: each one either runs on milvus-lite, or fails
before any work with a message naming the store that builds it. (The server tests build the
server-only ones for real.)"""
from __future__ import annotations

from pathlib import Path

from bench.results import find_runs, load_results
from bench.stores.registry import capabilities

INDEX_CONFIGS = sorted(p.stem for p in (Path(__file__).parent.parent / "conf" / "index").glob("*.yaml"))


def test_every_index_config_runs(bench_cli, tmp_path):
    proc = bench_cli("index=glob(*)", run_dir=tmp_path, multirun=True)
    results = {r["config"]["index"]["type"]: r for r in map(load_results, find_runs([tmp_path]))}
    assert sorted(results) == INDEX_CONFIGS
    for index_type, result in results.items():
        if index_type in capabilities("milvus_lite").index_types:
            assert result["status"] == "ok", (index_type, result["error"])
            assert result["search"]["points"], index_type
        else:
            assert result["status"] == "failed"
            assert "not supported by store milvus_lite" in result["error"] and "milvus_server" in result["error"]
            assert "model" not in result  # refused before conversion or embedding
    # The sweep ends with its report, listing the refused runs as failed.
    assert (tmp_path / "report" / "report.md").exists()
    assert f"{sum(r['status'] == 'failed' for r in results.values())} failed" in proc.stdout
