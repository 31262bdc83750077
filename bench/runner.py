"""One benchmark run: config -> convert -> embed -> load -> search -> evaluate -> write.

Each stage adds its section to the RunResult as soon as it is done, so a failure leaves
everything measured up to that point on disk, marked as failed.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from tqdm import tqdm

from bench import PROJECT_ROOT, provenance
from bench.config import Config
from bench.data.dataset import ImageRecord, load_dataset, split_queries
from bench.errors import BenchError
from bench.measure import evaluate
from bench.measure.search import measure_point
from bench.measure.stages import StageClock
from bench.models.convert import ConvertedModel, ensure_onnx
from bench.models.embed import Embeddings, embed_images
from bench.report.tables import load_table, model_table, search_table, to_markdown, write_tables
from bench.results import RunResult
from bench.stores import CollectionSpec, VectorStore, open_store
from bench.stores.indexes import check_dim, check_server_version, point_label, validate_index
from bench.stores.insert import insert_batches
from bench.stores.metadata import MetadataStore, open_metadata
from bench.stores.urls import redact_config

log = logging.getLogger(__name__)
# Random pairs sampled for the baseline distance distribution.
RANDOM_PAIRS = 2000


def validate(cfg: Config) -> None:
    """Everything that can be checked before any work starts."""
    validate_index(cfg.index.type, cfg.index.build, list(cfg.index.search), store=cfg.store.kind,
                   metric=cfg.search.metric, top_k=cfg.search.top_k)
    for name, value in (("model.batch_size", cfg.model.batch_size), ("search.query_batch_size", cfg.search.query_batch_size),
                        ("dataset.num_queries", cfg.dataset.num_queries)):
        if value <= 0:
            raise BenchError(f"{name}={value} must be a positive integer")
    if cfg.dataset.limit is not None and cfg.dataset.limit <= 0:
        raise BenchError(f"dataset.limit={cfg.dataset.limit} must be a positive integer (or null for all images)")
    if any(c <= 0 for c in cfg.search.concurrency):
        raise BenchError(f"search.concurrency={list(cfg.search.concurrency)} must hold positive thread counts")


def _fingerprint(model: ConvertedModel, corpus_ids: np.ndarray, with_paths: bool) -> str:
    """Identifies what a collection holds: the model's vectors of these images, with or without paths."""
    h = hashlib.sha256(f"{model.onnx_sha256}|{model.preprocessing}|{model.input_size}|{with_paths}".encode())
    h.update(np.ascontiguousarray(corpus_ids, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def _paths_namespace(dataset: str, ids: np.ndarray, paths: dict[int, str]) -> str:
    digest = hashlib.sha256("\n".join(f"{int(i)}={paths[int(i)]}" for i in ids).encode()).hexdigest()
    return f"{dataset}_{digest[:8]}"


def collection_name(cfg: Config, model: str, dataset: str, fingerprint: str) -> str:
    """store.collection when set; else one name per distinct data, so runs of other configs
    (another input size, sample size or metadata backend) never collide with this one."""
    if cfg.store.collection:
        return cfg.store.collection
    return re.sub(r"[^A-Za-z0-9_]", "_", f"bench_{model}_{dataset}_{fingerprint[:8]}")


def _split_embeddings(emb: Embeddings, records: list[ImageRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `emb` for the given records, in their order; records that failed to embed are left out."""
    # Vectorised (argsort + searchsorted): a dict and a Python list of rows took seconds at 100k images.
    wanted = np.fromiter((r.image_id for r in records), dtype=np.int64, count=len(records))
    order = np.argsort(emb.image_ids, kind="stable")
    sorted_ids = emb.image_ids[order]
    at = np.minimum(np.searchsorted(sorted_ids, wanted), max(len(sorted_ids) - 1, 0))
    found = sorted_ids[at] == wanted if len(sorted_ids) else np.zeros(len(wanted), dtype=bool)
    return wanted[found], emb.vectors[order[at[found]]]


def run(cfg: Config, outdir: Path) -> RunResult:
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg) if not OmegaConf.is_config(cfg) else cfg,
                                      resolve=True)
    # Secrets never reach results.json: tokens live in env vars (named by the config), and a
    # password written into a URL is masked.
    result = RunResult(outdir, redact_config(resolved), provenance.collect(PROJECT_ROOT))
    try:
        _run_stages(cfg, result)
    except BenchError as err:
        result.fail(str(err))
        raise
    except Exception as err:  # recorded, then re-raised with its traceback: a bug, not bad input
        result.fail(f"{type(err).__name__}: {err}")
        raise
    result.finish()
    return result


@dataclass
class _Vectors:
    """The embedded corpus and queries, with what evaluation needs to know about each image."""
    model: ConvertedModel
    dataset_name: str
    corpus_ids: np.ndarray
    corpus_vectors: np.ndarray
    query_ids: np.ndarray
    query_vectors: np.ndarray
    labels: dict[int, set[int]]
    paths: dict[int, str]


def _run_stages(cfg: Config, result: RunResult) -> None:
    validate(cfg)
    clock = StageClock(result)
    vectors = _convert_and_embed(cfg, result, clock)
    k, metric = cfg.search.top_k, cfg.search.metric
    with clock("exact_ground_truth"):
        exact_rows, exact_distances = evaluate.exact_topk(vectors.corpus_vectors, vectors.query_vectors, k, metric)
        exact_ids = vectors.corpus_ids[exact_rows]
        quality_of = _CategoryQuality(vectors.labels, vectors.query_ids, vectors.corpus_ids, k)
        result.set("exact", quality_of(exact_ids))
        topk = {"query_ids": vectors.query_ids, "exact_ids": exact_ids, "exact_distances": exact_distances,
                "random_pair_distances": evaluate.random_pair_distances(vectors.corpus_vectors, metric,
                                                                        RANDOM_PAIRS, seed=0)}
    _load_and_search(cfg, result, vectors, exact_ids, quality_of, topk, clock)
    result.save_topk(topk)


def _convert_and_embed(cfg: Config, result: RunResult, clock: StageClock) -> _Vectors:
    k = cfg.search.top_k
    with clock("dataset"):  # includes generating the sample on first use
        dataset = load_dataset(cfg.dataset)
        corpus, queries = split_queries(dataset.images, cfg.dataset.num_queries, cfg.dataset.query_seed)

    with clock("convert"):
        model = ensure_onnx(cfg.model, Path(cfg.cache_dir))
    check_dim(cfg.index.type, cfg.index.build, model.embedding_dim)
    with clock("embed"):
        emb = embed_images(model, dataset.images, cfg.model, Path(cfg.embeddings_dir))
    result.data["provenance"]["weights"] = model.weights
    result.set("model", {"name": model.name, "source": cfg.model.source, "embedding_dim": model.embedding_dim,
                         "onnx_path": model.onnx_path, "onnx_sha256": model.onnx_sha256,
                         "onnx_bytes": model.conversion.get("onnx_bytes"), "weights": model.weights,
                         "conversion": model.conversion, "embedding": emb.stats})

    corpus_ids, corpus_vectors = _split_embeddings(emb, corpus)
    query_ids, query_vectors = _split_embeddings(emb, queries)
    if len(query_ids) == 0 or len(corpus_ids) < k:
        raise BenchError(f"only {len(corpus_ids)} corpus and {len(query_ids)} query images could be embedded "
                         f"(top_k={k}): check the skipped images listed in results.json")
    skipped = [asdict(s) for s in dataset.skipped] + [asdict(s) for s in emb.skipped]
    result.set("dataset", {"name": dataset.name, "num_images": len(dataset.images) + len(dataset.skipped),
                           "num_corpus": len(corpus_ids), "num_queries": len(query_ids), "skipped": skipped,
                           "num_skipped": len(skipped), "query_image_ids": query_ids})
    return _Vectors(model=model, dataset_name=dataset.name, corpus_ids=corpus_ids, corpus_vectors=corpus_vectors,
                    query_ids=query_ids, query_vectors=query_vectors,
                    labels={r.image_id: set(r.category_ids) for r in dataset.images},
                    paths={r.image_id: str(r.path) for r in dataset.images})


def _load_and_search(cfg: Config, result: RunResult, vectors: _Vectors, exact_ids: np.ndarray,
                     quality_of: _CategoryQuality, topk: dict[str, np.ndarray], clock: StageClock) -> None:
    k, model = cfg.search.top_k, vectors.model
    store = open_store(cfg.store)
    try:
        check_server_version(cfg.index.type, cfg.store.kind, store.server_version())
        # id -> path belongs to the images, not the model: one namespace per distinct image list.
        metadata = open_metadata(cfg.metadata, namespace=_paths_namespace(vectors.dataset_name, vectors.corpus_ids,
                                                                          vectors.paths))
    except BaseException:
        store.close()
        raise
    try:
        result.data["provenance"]["store"] = {"kind": cfg.store.kind, "version": store.server_version(),
                                              "consistency_level": cfg.store.consistency_level}
        result.set("metadata", metadata.describe())
        fingerprint = _fingerprint(model, vectors.corpus_ids, metadata.paths_in_search)
        spec = CollectionSpec(name=collection_name(cfg, model.name, vectors.dataset_name, fingerprint),
                              dim=model.embedding_dim, metric=cfg.search.metric, fingerprint=fingerprint,
                              with_paths=metadata.paths_in_search)
        with clock("load"):
            load = _load(store, metadata, spec, vectors, cfg)
        with clock("build_and_load_index"):
            described = _timed_build(store, cfg, load)
        result.set("index", {"type": cfg.index.type, "build_params": dict(cfg.index.build),
                             "described_params": described, "load": load})

        # Build once, then sweep every search-parameter point over the same index.
        points = []
        for i, params in enumerate(cfg.index.search):
            params = dict(params)
            label = point_label(params)
            with clock("search"):
                m = measure_point(store, metadata, vectors.query_vectors, params, cfg.search, label)
            points.append({"label": label, **m.summary(),
                           "recall_at_k": evaluate.recall_at_k(m.hits.ids, exact_ids, k), **quality_of(m.hits.ids)})
            topk[f"ids_{i}"], topk[f"distances_{i}"] = m.hits.ids, m.hits.distances
            result.set("search", {"top_k": k, "metric": cfg.search.metric, "points": points})
    finally:
        metadata.close()
        store.close()


class _CategoryQuality:
    """precision@K and mAP@K of result ids, relevance being "shares a COCO category with the query"."""

    def __init__(self, labels: dict[int, set[int]], query_ids: np.ndarray, corpus_ids: np.ndarray, k: int):
        self.labels, self.k = labels, k
        self.query_labels = [labels[int(q)] for q in query_ids]
        self.num_relevant = evaluate.num_relevant_in_corpus(self.query_labels, [labels[int(c)] for c in corpus_ids])

    def __call__(self, result_ids: np.ndarray) -> dict[str, Any]:
        # Padded results (-1) have no labels, so they count as not relevant.
        result_labels = [[self.labels.get(int(r), set()) for r in row] for row in result_ids]
        return evaluate.category_quality(self.query_labels, result_labels, self.k, self.num_relevant)


def _load(store: VectorStore, metadata: MetadataStore, spec: CollectionSpec, data: _Vectors,
          cfg: Config) -> dict[str, Any]:
    ids, vectors, labels = data.corpus_ids, data.corpus_vectors, data.labels
    rows = len(ids)
    id_paths = [data.paths[int(i)] for i in ids]
    reused = store.prepare(spec, rows)
    load: dict[str, Any] = {"rows": rows, "reused": reused, "insert_s": None, "insert_rows_per_s": None}
    if not reused:
        start = time.perf_counter()
        with tqdm(total=rows, desc="insert", unit="row", disable=None) as bar:
            insert_batches(store, ids, vectors, id_paths, [sorted(labels[int(i)]) for i in ids],
                           cfg.store.insert_batch_size, cfg.store.insert_threads, progress=bar.update)
        load["insert_s"] = time.perf_counter() - start
        load["insert_rows_per_s"] = rows / load["insert_s"]
    start = time.perf_counter()
    metadata.put(ids, id_paths)
    load["metadata_put_s"] = time.perf_counter() - start
    start = time.perf_counter()
    store.flush()  # before the index build: build what is sealed, not a growing segment
    load["flush_s"] = time.perf_counter() - start
    return load


def _timed_build(store: VectorStore, cfg: Config, load: dict[str, Any]) -> dict[str, Any]:
    log.info("building %s %s", cfg.index.type, dict(cfg.index.build))
    start = time.perf_counter()
    described = store.build_index(cfg.index.type, dict(cfg.index.build))
    load["build_s"] = time.perf_counter() - start
    start = time.perf_counter()
    store.load()
    load["load_s"] = time.perf_counter() - start
    return described


def write_outputs(result: RunResult) -> str:
    """Tables for one run: CSV + Markdown in the run directory; returns the main table as Markdown."""
    data = [result.data]
    tables = {"search": search_table(data), "models": model_table(data), "load": load_table(data)}
    write_tables(tables, result.outdir, header=f"# bench run: {result.data['model']['name']} / "
                                                f"{result.data['index']['type']}\n")
    return to_markdown(tables["search"])
