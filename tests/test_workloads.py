"""Workloads (bench/measure/workloads/): selectivity buckets, filtered ground truth, the FLAT self-check,
and the streaming loop against an in-memory store, including a rate the store cannot keep."""
from __future__ import annotations

import time

import numpy as np
import pytest

from bench.config import Config, IndexConfig, SearchConfig, WorkloadConfig
from bench.data.dataset import Dataset, ImageRecord
from bench.errors import BenchError
from bench.measure.workloads import filtered, streaming
from bench.measure.workloads.registry import workload_class
from bench.run.corpus import Corpus
from bench.report.tables import to_markdown
from bench.report.workload_tables import filtered_table, run_tables
from bench.stores.base import CollectionSpec, SearchHits
from bench.stores.faiss_store import FaissConfig, FaissStore
from bench.stores.metadata import MilvusFieldMetadata
from tests.helpers import clustered, results_doc


# -- selectivity buckets -------------------------------------------------------------------------
def test_selectivity_is_the_share_of_rows_holding_each_category():
    labels = [{1}, {1, 2}, {1}, {3}, set()]
    assert filtered.category_selectivity(labels) == {1: 0.6, 2: 0.2, 3: 0.2}


def test_each_target_takes_the_nearest_category_in_ratio():
    share = {1: 0.5, 2: 0.12, 3: 0.011, 4: 0.03}
    b1, b10, b50 = filtered.choose_buckets(share, [0.01, 0.1, 0.5], 3.0, 1000, {1: "person"})
    assert (b1.category, b1.selectivity, b1.passing_rows) == (3, 0.011, 11)
    assert b10.category == 2  # 0.12 is 1.2x from 10 %, 0.03 is 3.3x
    assert (b50.category, b50.category_name) == (1, "person") and b50.reached


def test_a_bucket_no_category_reaches_says_so():
    [bucket] = filtered.choose_buckets({1: 0.5, 2: 0.3}, [0.01], 3.0, 100, {2: "car"})
    assert not bucket.reached and bucket.selectivity is None
    assert bucket.note == "not reached: the nearest category is 'car' at 30.00% (more than 3x from 1%)"


def test_ties_go_to_the_smaller_category_id():
    [bucket] = filtered.choose_buckets({7: 0.02, 3: 0.02}, [0.01], 3.0, 100)
    assert bucket.category == 3


# -- filtered ground truth -----------------------------------------------------------------------
def test_filtered_exact_is_brute_force_within_the_passing_rows():
    corpus, queries = clustered(300, 16, seed=1), clustered(7, 16, seed=2)
    passing = np.random.default_rng(0).random(300) < 0.1
    ids, distances = filtered.filtered_exact(corpus, passing, queries, 5, "IP")
    rows = np.flatnonzero(passing)
    scores = queries @ corpus[rows].T
    expected = rows[np.argsort(-scores, axis=1, kind="stable")[:, :5]]
    np.testing.assert_array_equal(ids, expected)
    assert passing[ids].all()
    np.testing.assert_allclose(distances, np.sort(scores, axis=1)[:, ::-1][:, :5], rtol=1e-6)


def test_fewer_passing_rows_than_k_are_padded_and_finding_them_all_is_recall_one():
    corpus, queries = clustered(50, 8), clustered(3, 8, seed=5)
    passing = np.zeros(50, dtype=bool)
    passing[[4, 9, 30]] = True
    ids, distances = filtered.filtered_exact(corpus, passing, queries, 10, "IP")
    assert (ids[:, :3] >= 0).all() and (ids[:, 3:] == -1).all() and np.isnan(distances[:, 3:]).all()
    found = np.full((3, 10), -1)
    found[:, :3] = ids[:, [2, 0, 1]]  # all three, in another order
    assert filtered.filtered_recall(found, ids, 10) == 1.0
    found[:, 0] = 7  # one wrong
    assert filtered.filtered_recall(found, ids, 10) == pytest.approx(2 / 3)


def test_no_passing_row_at_all_gives_nan_not_a_fake_figure():
    assert np.isnan(filtered.filtered_recall(np.full((2, 3), -1), np.full((2, 3), -1), 3))


def test_flat_self_check_fails_loudly_and_tolerates_only_ties():
    bucket = filtered.Bucket(0.01, 5, "clock", 0.012, 12, "")
    exact = np.array([[0.9, 0.8, 0.8]], dtype=np.float32)
    tie = SearchHits(ids=np.array([[1, 3, 2]]), distances=np.array([[0.9, 0.8, 0.8]], dtype=np.float32))
    filtered.flat_self_check("FLAT", bucket, tie, exact, recall=2 / 3)  # another id at an equal distance
    wrong = SearchHits(ids=np.array([[1, 2, 9]]), distances=np.array([[0.9, 0.8, 0.5]], dtype=np.float32))
    with pytest.raises(BenchError, match=r"self-check failed: FLAT's filtered recall is 0.6667, not 1.0, for "
                                         r"category_ids contains 5 \(clock, 1.20%"):
        filtered.flat_self_check("FLAT", bucket, wrong, exact, recall=2 / 3)
    filtered.flat_self_check("HNSW", bucket, wrong, exact, recall=2 / 3)  # ANN may miss


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    ({"kind": "filterd"}, "workload.kind='filterd' is unknown: choose one of none, filtered, streaming"),
    ({"kind": "filtered", "selectivities": [0.0]}, "must be shares of the corpus in (0, 1]"),
    ({"kind": "filtered", "selectivity_tolerance": 0.5}, "must be a factor >= 1"),
    ({"kind": "streaming", "insert_rows_per_s": 0}, "workload.insert_rows_per_s=0 must be positive"),
    ({"kind": "streaming", "insert_batch_size": 0}, "workload.insert_batch_size=0 must be a positive integer"),
    ({"kind": "streaming", "search_point": 4}, "workload.search_point=4 is not a point of index.search (4 points)"),
])
def test_bad_workload_values_are_one_line_errors(overrides, message):
    cfg = Config(workload=WorkloadConfig(**overrides), index=IndexConfig(type="FLAT", search=[{}] * 4))
    with pytest.raises(BenchError) as err:
        workload_class(cfg.workload.kind).validate(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_filter_on_a_dataset_without_labels_is_refused():
    photos = Dataset("photos", [ImageRecord(1, "a.jpg", ()), ImageRecord(2, "b.jpg", ())], {}, [])
    with pytest.raises(BenchError, match="workload=filtered needs category labels, but no image of dataset 'photos'"):
        workload_class("filtered").check_dataset(Config(), photos)
    workload_class("streaming").check_dataset(Config(), photos)  # streaming needs none


# -- streaming against the in-process faiss store -------------------------------------------------
class FaissFlat(FaissStore):
    """store=faiss with a FLAT index (exact, so recall at the end must be 1.0); insert can be made slow."""

    def __init__(self, dim: int, insert_delay_s: float = 0.0):
        super().__init__(FaissConfig())
        self.insert_delay_s = insert_delay_s
        self.prepare(CollectionSpec("stream", dim, "IP", "f", with_paths=True, scratch=True), 0)

    def insert(self, ids, vectors, paths, labels):
        time.sleep(self.insert_delay_s)
        super().insert(ids, vectors, paths, labels)

    @property
    def ids(self) -> np.ndarray:
        return self._ids


def _stream(store, cfg, n=120, dim=16):
    corpus, queries = clustered(n, dim, seed=3), clustered(8, dim, seed=4)
    ids = np.arange(1000, 1000 + n)
    images = Corpus(ids, corpus, labels={int(i): frozenset({1}) for i in ids}, paths={int(i): f"{i}.jpg" for i in ids})
    initial, arriving = images.rows(slice(None, None, 2)), images.rows(slice(1, None, 2))
    store.insert(initial.ids, initial.vectors, initial.row_paths(), initial.row_labels())
    store.build_index("FLAT", {})
    start = time.perf_counter()
    section = streaming.measure(store, MilvusFieldMetadata(), cfg, SearchConfig(top_k=5), {}, "default", initial,
                                arriving, queries)
    return section, time.perf_counter() - start


def test_streaming_measures_every_phase_freshness_and_recall():
    cfg = WorkloadConfig(kind="streaming", insert_rows_per_s=200, insert_batch_size=10, search_qps=50, window_s=0.3,
                         freshness_samples=4)
    section, seconds = _stream(FaissFlat(16), cfg)
    ins = section["insert"]
    assert ins["complete"] and ins["rows_inserted"] == 60 and ins["rows_inserted_after_deadline"] == 0
    assert 100 <= ins["rows_reached_per_s"] <= 200  # 60 rows in slots of 50 ms: never faster than asked
    assert [w["phase"] for w in section["windows"]] == ["before", "during", "after"]
    assert all(w["latency"]["count"] > 0 for w in section["windows"])
    fresh = section["freshness"]
    assert fresh["probes"] == 4 and fresh["seen"] == 4 and 0 <= fresh["max_s"] < 2
    assert section["recall_at_end"] == 1.0  # an exact store
    assert seconds < 0.3 + 60 / 200 + 0.3 + 2


def test_a_rate_the_store_cannot_keep_is_reached_vs_asked_and_bounded_in_time():
    cfg = WorkloadConfig(kind="streaming", insert_rows_per_s=10_000, insert_batch_size=5, search_qps=20, window_s=0.1,
                         max_insert_s=0.5, freshness_samples=2)
    store = FaissFlat(16, insert_delay_s=0.1)  # at most ~50 rows/s
    section, seconds = _stream(store, cfg)
    ins = section["insert"]
    assert not ins["complete"] and ins["rows_inserted"] < 60
    assert ins["rows_reached_per_s"] < 100 and ins["rows_asked_per_s"] == 10_000
    assert ins["rows_inserted"] + ins["rows_inserted_after_deadline"] == 60
    assert len(store.ids) == 120  # the rest was inserted afterwards, so the plain sweep sees the whole corpus
    assert seconds < 0.1 + 0.5 + 0.2 + 0.1 + 3


def test_a_failing_store_stops_the_measurement_with_its_error():
    class Broken(FaissFlat):
        def search(self, *args, **kwargs):
            raise BenchError("store went away")

    cfg = WorkloadConfig(kind="streaming", window_s=0.2, insert_rows_per_s=100)
    with pytest.raises(BenchError, match="store went away"):
        _stream(Broken(16), cfg)


# -- tables ----------------------------------------------------------------------------------------
def test_an_unreached_bucket_is_one_row_saying_why():
    result = results_doc({"model": {"name": "m"}, "index": {"type": "FLAT", "build_params": {}},
              "provenance": {"store": {"kind": "milvus_lite", "version": "x"}}, "dataset": {"num_corpus": 10},
              "search": {"top_k": 5, "points": [{"label": "default", "recall_at_k": 1.0, "latency": {"p50_ms": 1,
                                                                                                     "p99_ms": 2}}]},
              "filtered": {"top_k": 5, "buckets": [{"target": 0.01, "reached": False, "category_name": None,
                                                    "selectivity": None, "passing_rows": 0, "points": [],
                                                    "note": "not reached: the nearest category is 'car' at 30.00%"}]}})
    table = filtered_table([result])
    assert list(table["bucket"]) == ["100%", "~1%"]
    row = table.iloc[1]
    assert row["category"].startswith("not reached") and row["recall@5"] is None
    assert set(run_tables(result)) == {"filtered"}
    assert "nan" not in to_markdown(table)
