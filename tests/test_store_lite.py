"""MilvusStore on the embedded milvus-lite, for real: the traps it must not fall into."""
from __future__ import annotations

import numpy as np
import pytest
from pymilvus.exceptions import MilvusException

from bench.errors import BenchError
from bench.measure.evaluate import exact_topk, recall_at_k
from bench.stores import CollectionSpec, open_store
from bench.stores.milvus import MilvusConfig
from tests.helpers import clustered as make_clustered

DIM = 32


def clustered(n: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    return make_clustered(n, DIM, seed, clusters)


@pytest.fixture
def store(tmp_path):
    s = open_store(MilvusConfig(uri=str(tmp_path / "lite.db"), index_timeout_s=60))
    yield s
    s.close()


def fill(store, vectors, name="c", fingerprint="f1", with_paths=True):
    spec = CollectionSpec(name=name, dim=DIM, metric="IP", fingerprint=fingerprint, with_paths=with_paths)
    reused = store.prepare(spec, len(vectors))
    if not reused:
        ids = np.arange(1000, 1000 + len(vectors))
        store.insert(ids, vectors, [f"img{i}.jpg" for i in ids], [[1, 2]] * len(vectors))
        store.flush()
    return reused


def test_build_params_reach_milvus_and_search_params_change_results(store):
    corpus, queries = clustered(2000), clustered(50, seed=1)
    fill(store, corpus)
    described = store.build_index("IVF_FLAT", {"nlist": 64})
    assert described["params"] == {"nlist": 64}  # flat params would have been dropped silently
    store.load()
    exact_rows, _ = exact_topk(corpus, queries, 10, "IP")
    exact_ids = exact_rows + 1000
    recalls = [recall_at_k(store.search(queries, 10, {"nprobe": n}).ids, exact_ids, 10) for n in (1, 8, 64)]
    assert recalls[0] < recalls[1] <= recalls[2]
    assert recalls[2] == pytest.approx(1.0)


def test_flat_agrees_with_numpy_brute_force(store):
    corpus, queries = clustered(500), clustered(20, seed=2)
    fill(store, corpus)
    store.build_index("FLAT", {})
    store.load()
    hits = store.search(queries, 10, {}, with_paths=True)
    exact_rows, exact_dist = exact_topk(corpus, queries, 10, "IP")
    assert recall_at_k(hits.ids, exact_rows + 1000, 10) == pytest.approx(1.0)
    np.testing.assert_allclose(hits.distances, exact_dist, atol=1e-5)
    assert hits.paths[0][0] == f"img{hits.ids[0, 0]}.jpg"


def test_failed_build_leaves_no_phantom_index(store):
    fill(store, clustered(200))
    with pytest.raises(MilvusException):
        store.build_index("IVF_FLAT", {"nlist": "many"})
    # The next build and load work: no half-made index is left behind.
    store.build_index("HNSW", {"M": 8, "efConstruction": 32})
    store.load()
    assert store.search(clustered(1, seed=3), 5, {"ef": 16}).ids.shape == (1, 5)


def test_collection_with_other_data_is_refused_and_identical_data_reused(tmp_path):
    cfg = MilvusConfig(uri=str(tmp_path / "lite.db"))
    store = open_store(cfg)
    vectors = clustered(100)
    assert fill(store, vectors) is False
    assert fill(store, vectors) is True  # identical data: reused
    with pytest.raises(BenchError, match="store.recreate=true"):
        fill(store, vectors, fingerprint="other-model")
    store.close()
    cfg.recreate = True
    store = open_store(cfg)
    assert fill(store, vectors, fingerprint="other-model") is False
    store.close()


def test_lite_uri_must_be_a_db_file(tmp_path):
    with pytest.raises(BenchError, match="ending in .db"):
        open_store(MilvusConfig(uri=str(tmp_path / "lite")))
