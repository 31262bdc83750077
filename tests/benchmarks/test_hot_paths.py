"""The harness's hot paths as pytest-benchmark benchmarks.

`make test` runs each once as a plain test (pyproject's addopts has --benchmark-disable), so
they cannot rot; `make benchmarks` times them, saves the result under a machine key and fails on
a median slowdown beyond 25 % against the last saved run of the same machine. Each benchmark
also asserts what it computed, so a fast wrong answer does not pass.

Sizes are small enough for a 2-core runner and large enough that the timed call is not all
Python overhead: 32 images of 224 px, an inference batch of 16 at 64 px, 5000 x 256 exact
search, 1000 x 10 id sets, 32 serial nq=1 searches on milvus-lite.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from bench.config import ModelConfig
from bench.measure import evaluate
from bench.models.convert import ConvertedModel, ensure_onnx
from bench.models.preprocess import get_preprocessor
from bench.stores import CollectionSpec, open_store
from bench.stores.milvus import MilvusConfig

DIM = 256


def clustered(n: int, dim: int = DIM, seed: int = 0, clusters: int = 32) -> np.ndarray:
    """Unit vectors in blobs, like real embeddings (uniform noise makes ANN look broken)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> ConvertedModel:
    # The smoke config's model; the folder is the one tests/test_embed.py uses, so one conversion serves both.
    cfg = ModelConfig(name="mnv2", source="keras", architecture="MobileNetV2", weights="random", seed=0,
                      input_size=64, preprocessing="tf", pooling="avg", embedding_dim=1280, batch_size=16, opset=17)
    return ensure_onnx(cfg, tmp_path_factory.getbasetemp() / "shared-onnx-models")


def test_preprocess_batch(benchmark):
    """caffe preprocessing (VGG16/ResNet50) of 32 decoded 224 px images."""
    images = np.random.default_rng(0).integers(0, 256, size=(32, 224, 224, 3), dtype=np.uint8)
    preprocess = get_preprocessor("caffe")
    out = benchmark(preprocess, images)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out[0, 0, 0, 0] == pytest.approx(images[0, 0, 0, 2] - 103.939, abs=1e-4)  # BGR, mean removed


def test_onnx_inference_batch(benchmark, small_model):
    """One onnxruntime batch of 16 images through the 64 px MobileNetV2."""
    session = ort.InferenceSession(str(small_model.onnx_path), providers=["CPUExecutionProvider"])
    batch = get_preprocessor("tf")(np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8))
    feed = {small_model.input_name: batch}
    session.run([small_model.output_name], feed)  # the first call of a shape allocates and plans
    out = benchmark(session.run, [small_model.output_name], feed)[0]
    assert out.shape == (16, small_model.embedding_dim) and np.isfinite(out).all()


def test_exact_ground_truth(benchmark):
    """Exact top-10 of 100 queries over 5000 vectors (the ground truth every recall uses)."""
    corpus, queries = clustered(5000), clustered(100, seed=1)
    ids, distances = benchmark(evaluate.exact_topk, corpus, queries, 10, "IP")
    expected = np.argsort(-(queries.astype(np.float64) @ corpus.T.astype(np.float64)), axis=1, kind="stable")[:, :10]
    assert (ids == expected).mean() > 0.999  # float32 vs float64 may swap a near tie
    assert (np.diff(distances, axis=1) <= 1e-6).all()


def test_recall_and_overlap(benchmark):
    """recall@10 and overlap@10 of 1000 queries' result ids."""
    rng = np.random.default_rng(0)
    exact = np.stack([rng.permutation(5000)[:10] for _ in range(1000)])
    found = exact.copy()
    found[:, 5:] = -1  # half the slots missing: recall and overlap are exactly 0.5

    def metrics() -> tuple[float, float]:
        return evaluate.recall_at_k(found, exact, 10), evaluate.overlap_at_k(found, exact, 10)

    recall, overlap = benchmark(metrics)
    assert recall == pytest.approx(0.5) and overlap == pytest.approx(0.5)


@pytest.fixture(scope="module")
def lite_ivf(tmp_path_factory):
    """milvus-lite with 2000 clustered vectors in an IVF_FLAT index, loaded."""
    store = open_store(MilvusConfig(uri=str(tmp_path_factory.mktemp("bench-lite") / "lite.db"), index_timeout_s=120))
    corpus = clustered(2000)
    store.prepare(CollectionSpec(name="hot", dim=DIM, metric="IP", fingerprint="hot", with_paths=False), len(corpus))
    ids = np.arange(len(corpus), dtype=np.int64)
    store.insert(ids, corpus, [f"{i}.jpg" for i in ids], [[1]] * len(corpus))
    store.flush()
    store.build_index("IVF_FLAT", {"nlist": 32})
    store.load()
    yield store, corpus
    store.close()


def test_milvus_lite_search_loop(benchmark, lite_ivf):
    """32 serial nq=1 searches at nprobe=8: the loop the latency percentiles come from."""
    store, corpus = lite_ivf
    queries = clustered(32, seed=2)

    def loop() -> np.ndarray:
        return np.concatenate([store.search(queries[i:i + 1], 10, {"nprobe": 8}).ids for i in range(len(queries))])

    found = benchmark(loop)
    exact, _ = evaluate.exact_topk(corpus, queries, 10, "IP")
    assert found.shape == (32, 10)
    assert evaluate.recall_at_k(found, exact, 10) > 0.8
