"""The report's store table: the same index and search point on two stores, matched and compared."""
from __future__ import annotations

import pytest

from bench.report.cross_run_tables import index_setting
from bench.report.store_comparison import reference_kind, store_comparison_table
from bench.results import as_results
from tests.helpers import results_doc


def _run(kind: str, index: str, build: dict, points: list[tuple[str, float, float, tuple[float, float]]],
         model: str = "m") -> dict:
    return results_doc({"model": {"name": model}, "index": {"type": index, "build_params": build},
            "provenance": {"store": {"kind": kind, "version": "1.0"}},
            "search": {"top_k": 10, "points": [
                {"label": label, "recall_at_k": recall, "batch_qps": qps, "concurrent_qps": {"1": qps / 2},
                 "latency": {"p50_ms": 1000 / qps, "count": 400},
                 "spread": {"batch_qps": {"median": qps, "min": lo, "max": hi, "n": 3}}}
                for label, recall, qps, (lo, hi) in points]}})


def test_points_are_matched_across_stores_against_the_bare_library():
    results = [
        _run("milvus_lite", "HNSW", {"M": 16}, [("ef=10", 0.90, 500.0, (480, 520)),
                                                ("ef=80", 0.99, 200.0, (150, 260))]),
        _run("faiss", "HNSW", {"M": 16}, [("ef=10", 0.92, 5000.0, (4800, 5200)), ("ef=80", 1.0, 230.0, (180, 270))]),
        _run("faiss", "HNSW", {"M": 32}, [("ef=10", 0.95, 4000.0, (3900, 4100))]),  # no Milvus twin: no row
        _run("milvus_lite", "FLAT", {}, [("default", 1.0, 300.0, (290, 310))], model="other"),  # no faiss twin
    ]
    table = store_comparison_table(results)
    assert list(table["search params"]) == ["ef=10", "ef=80"]
    assert set(table["index"]) == {"HNSW(M=16)"} and set(table["store"]) == {"milvus_lite 1.0"}
    assert set(table["reference"]) == {"faiss 1.0"}  # faiss is no database: the floor
    first, second = table.iloc[0], table.iloc[1]
    assert first["batch QPS ratio"] == pytest.approx(0.1) and first["recall diff"] == pytest.approx(-0.02)
    assert first["batch QPS differs"] == "yes" and second["batch QPS differs"] == "≈"  # ranges overlap
    assert first["QPS@1thr ratio"] == pytest.approx(0.1) and first["QPS@1thr differs"] == ""  # no 1-thread spread


def test_one_store_kind_gives_no_table_and_labels_keep_stores_apart():
    run = _run("milvus_lite", "FLAT", {}, [("default", 1.0, 300.0, (290, 310))])
    assert store_comparison_table([run]).empty
    assert index_setting(as_results(run)) == "FLAT"  # the default store: labelled as before
    assert index_setting(as_results(_run("faiss", "FLAT", {}, []))) == "FLAT@faiss"
    assert index_setting(as_results(_run("faiss", "FLAT", {}, [])), with_store=False) == "FLAT"
    assert reference_kind(["milvus_server", "milvus_lite"]) == "milvus_server"  # no library: the first kind
