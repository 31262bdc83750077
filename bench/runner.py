"""One benchmark run: config -> convert -> embed -> load -> search -> evaluate -> write.

Each stage adds its section to the RunResult as soon as it is done, so a failure leaves
everything measured up to that point on disk, marked as failed.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import OmegaConf
from tqdm import tqdm

from bench import PROJECT_ROOT, provenance
from bench.config import Config, StatsConfig
from bench.data.dataset import ImageRecord, load_dataset, split_queries
from bench.errors import BenchError
from bench.measure import evaluate, fidelity, workloads
from bench.measure.clients import ClientPool, search_clients, validate_clients
from bench.measure.search import interleaved_trials, search_topk
from bench.measure.stages import StageClock
from bench.measure.statistics import with_intervals
from bench.measure.workloads import filtered, streaming
from bench.measure.workloads.context import WorkloadContext
from bench.measure.workloads.serve import ServeWorkload
from bench.models.convert import ConvertedModel
from bench.models.embed import Embeddings, embed_images
from bench.models.engines import engine_provenance, validate_engine
from bench.models.runtime import describe_runtime, validate_runtime
from bench.models.variants import ensure_model, validate_precision
from bench.report.tables import load_table, model_table, search_table, to_markdown, write_tables
from bench.report.workload_tables import run_tables as workload_tables
from bench.results import RunResult
from bench.stores import CollectionSpec, VectorStore, open_store
from bench.stores.indexes import check_dim, point_label, validate_index
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
    if cfg.search.repeats < 1 or cfg.search.latency_max_s <= 0:
        raise BenchError(f"search.repeats={cfg.search.repeats} must be >= 1 and search.latency_max_s="
                         f"{cfg.search.latency_max_s} > 0")
    if not 0 < cfg.stats.confidence < 1 or cfg.stats.bootstrap_resamples < 1:
        raise BenchError(f"stats.confidence={cfg.stats.confidence} must lie between 0 and 1 and "
                         f"stats.bootstrap_resamples={cfg.stats.bootstrap_resamples} be >= 1")
    if any(c <= 0 for c in cfg.search.concurrency):
        raise BenchError(f"search.concurrency={list(cfg.search.concurrency)} must hold positive thread counts")
    workloads.validate(cfg.workload, len(cfg.index.search))
    if cfg.workload.kind == "serve":
        ServeWorkload.validate(cfg)
    validate_precision(cfg.model)
    validate_runtime(cfg.runtime)
    validate_engine(cfg.runtime)
    validate_clients(cfg.search, cfg.store.kind)


def _fingerprint(model: ConvertedModel, corpus_ids: np.ndarray, with_paths: bool) -> str:
    """Identifies what a collection holds: the model's vectors of these images, with or without paths."""
    h = hashlib.sha256(f"{model.onnx_sha256}|{model.preprocessing}|{model.input_size}|{with_paths}".encode())
    h.update(np.ascontiguousarray(corpus_ids, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def _paths_namespace(dataset: str, ids: np.ndarray, paths: dict[int, str]) -> str:
    digest = hashlib.sha256("\n".join(f"{int(i)}={paths[int(i)]}" for i in ids).encode()).hexdigest()
    return f"{dataset}_{digest[:8]}"


def collection_name(model: str, dataset: str, fingerprint: str) -> str:
    """One name per distinct data, so runs of other configs (another input size, sample size or metadata
    backend) never collide with this one; a store with its own naming setting may override it."""
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
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM (bench.errors.Interrupted): marked, then passed on
        result.interrupt(result.stage, getattr(err, "signal_name", "SIGINT"))
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
    categories: dict[int, str] = field(default_factory=dict)  # category id -> name
    # A variant's FP32 parent and its embedding of the same images, for the fidelity section.
    reference: Optional[ConvertedModel] = None
    reference_embeddings: Optional[Embeddings] = None
    embeddings: Optional[Embeddings] = None


def _run_stages(cfg: Config, result: RunResult) -> None:
    validate(cfg)
    clock = StageClock(result)
    vectors = _convert_and_embed(cfg, result, clock)
    k, metric = cfg.search.top_k, cfg.search.metric
    with clock("exact_ground_truth"):
        exact_rows, exact_distances = evaluate.exact_topk(vectors.corpus_vectors, vectors.query_vectors, k, metric)
        exact_ids = vectors.corpus_ids[exact_rows]
        quality_of = _CategoryQuality(vectors.labels, vectors.query_ids, vectors.corpus_ids, k, cfg.stats)
        result.set("exact", quality_of(exact_ids))
        topk = {"query_ids": vectors.query_ids, "exact_ids": exact_ids, "exact_distances": exact_distances,
                "random_pair_distances": evaluate.random_pair_distances(vectors.corpus_vectors, metric,
                                                                        RANDOM_PAIRS, seed=0)}
    _load_and_search(cfg, result, vectors, exact_ids, quality_of, topk, clock)
    result.save_topk(topk)
    if vectors.reference is not None:
        result.set("fidelity", _fidelity(cfg, result, vectors, topk, quality_of))


def _convert_and_embed(cfg: Config, result: RunResult, clock: StageClock) -> _Vectors:
    k = cfg.search.top_k
    with clock("dataset"):  # includes generating the sample on first use
        dataset = load_dataset(cfg.dataset)
        workloads.check_labels(cfg.workload, dataset.name, (r.category_ids for r in dataset.images))
        corpus, queries = split_queries(dataset.images, cfg.dataset.num_queries, cfg.dataset.query_seed)

    with clock("convert"):
        model, reference = ensure_model(cfg.model, corpus, Path(cfg.cache_dir))
    check_dim(cfg.index.type, cfg.index.build, model.embedding_dim)
    with clock("embed"):
        emb = embed_images(model, dataset.images, cfg.model, Path(cfg.embeddings_dir), cfg.runtime)
    result.data["provenance"]["weights"] = model.weights
    result.data["provenance"]["runtime"] = describe_runtime(cfg.runtime)
    result.data["provenance"]["engine"] = engine_provenance(cfg.runtime, emb.stats)
    result.set("model", {"name": model.name, "source": cfg.model.source, "embedding_dim": model.embedding_dim,
                         "onnx_path": model.onnx_path, "onnx_sha256": model.onnx_sha256,
                         "onnx_bytes": (model.variant or model.conversion).get("onnx_bytes"), "weights": model.weights,
                         "conversion": model.conversion, "embedding": emb.stats, "precision": cfg.model.precision,
                         "variant": model.variant, "embedding_spread": emb.stats.get("spread")})
    # The FP32 reference on the same images and runtime: usually an embedding cache hit.
    reference_emb = embed_images(reference, dataset.images, cfg.model, Path(cfg.embeddings_dir),
                                 cfg.runtime) if reference is not None else None

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
                    paths={r.image_id: str(r.path) for r in dataset.images}, categories=dict(dataset.categories),
                    reference=reference, reference_embeddings=reference_emb, embeddings=emb)


def _fidelity(cfg: Config, result: RunResult, vectors: _Vectors, topk: dict[str, np.ndarray],
              quality_of: _CategoryQuality) -> dict[str, Any]:
    """The variant against its FP32 reference on the same images and queries (bench.measure.fidelity)."""
    points = result.data.get("search", {}).get("points", [])
    section = fidelity.fidelity_section(
        reference_ids=vectors.reference_embeddings.image_ids, reference_vectors=vectors.reference_embeddings.vectors,
        corpus_ids=vectors.corpus_ids, corpus_vectors=vectors.corpus_vectors, query_ids=vectors.query_ids,
        query_vectors=vectors.query_vectors, exact_ids=topk["exact_ids"], exact_distances=topk["exact_distances"],
        served={f"{cfg.index.type} {p['label']}": topk[f"ids_{i}"] for i, p in enumerate(points)},
        quality=quality_of, k=cfg.search.top_k, metric=cfg.search.metric)
    section.update(fidelity.speed_and_size(vectors.reference_embeddings.stats, vectors.embeddings.stats,
                                           vectors.reference.conversion.get("onnx_bytes"),
                                           vectors.model.variant.get("onnx_bytes")))
    section["reference"] = {"model": vectors.reference.name, "onnx_sha256": vectors.reference.onnx_sha256,
                            "embedding_from_cache": vectors.reference_embeddings.cached}
    warning = fidelity.saturation_warning(section["cosine"].get("p1"), vectors.model.variant.get("settings") or {},
                                          result.data["provenance"]["hardware"])
    if warning:
        log.warning(warning)
        section["warning"] = warning
    return section


def _load_and_search(cfg: Config, result: RunResult, vectors: _Vectors, exact_ids: np.ndarray,
                     quality_of: _CategoryQuality, topk: dict[str, np.ndarray], clock: StageClock) -> None:
    model = vectors.model
    stream, prepared = cfg.workload.kind == "streaming", False
    store = open_store(cfg.store)
    try:
        store.check_index(cfg.index.type)
        # id -> path belongs to the images, not the model: one namespace per distinct image list.
        metadata = open_metadata(cfg.metadata, namespace=_paths_namespace(vectors.dataset_name, vectors.corpus_ids,
                                                                          vectors.paths))
    except BaseException:
        store.close()
        raise
    try:
        result.data["provenance"]["store"] = store.describe()
        result.set("metadata", metadata.describe())
        # workload=streaming: half the corpus is loaded and indexed, the other half arrives while searching.
        initial = streaming.initial_half(vectors) if stream else vectors
        fingerprint = _fingerprint(model, initial.corpus_ids, metadata.paths_in_search)
        spec = CollectionSpec(name=collection_name(model.name, vectors.dataset_name, fingerprint),
                              dim=model.embedding_dim, metric=cfg.search.metric, fingerprint=fingerprint,
                              with_paths=metadata.paths_in_search, scratch=stream)
        prepared = True
        with clock("load"):
            load = _load(store, metadata, spec, initial, cfg)
        with clock("build_and_load_index"):
            described = _timed_build(store, cfg, load)
        result.set("index", {"type": cfg.index.type, "build_params": dict(cfg.index.build),
                             "described_params": described, "load": load})
        if stream:
            with clock("streaming"):
                result.set("streaming", streaming.run_on(store, metadata, cfg, vectors, initial))

        with clock("search"), search_clients(cfg, spec, vectors.query_vectors) as clients:
            _search_points(cfg, result, store, metadata, vectors.query_vectors, exact_ids, quality_of, topk, clients)
        if cfg.workload.kind == "filtered":
            with clock("filtered"):
                result.set("filtered", filtered.run(store, metadata, cfg.workload, cfg.search, cfg.index.type,
                                                    list(cfg.index.search), vectors.corpus_ids,
                                                    vectors.corpus_vectors, vectors.labels, vectors.categories,
                                                    vectors.query_vectors, quality_of, cfg.stats.confidence))
        if cfg.workload.kind == "serve":
            with clock("serve"):
                context = WorkloadContext(cfg, store, metadata, model, vectors.query_ids, vectors.query_vectors,
                                          vectors.corpus_ids, vectors.paths, exact_ids, result.data["search"]["points"],
                                          result.outdir, publish=lambda section: result.set("serve", section))
                result.set("serve", ServeWorkload().run(context))
    finally:
        if stream and prepared:
            streaming.drop_scratch(store)
        metadata.close()
        store.close()


def _search_points(cfg: Config, result: RunResult, store: VectorStore, metadata: MetadataStore, queries: np.ndarray,
                   exact_ids: np.ndarray, quality_of: _CategoryQuality, topk: dict[str, np.ndarray],
                   clients: Optional[ClientPool] = None) -> None:
    """Build once; search every point once for its results, then time all points in interleaved trials."""
    k = cfg.search.top_k
    points, found, labels = [], [], []
    for i, params in enumerate(cfg.index.search):
        labels.append(point_label(dict(params)))
        found.append(search_topk(store, metadata, queries, dict(params), cfg.search, labels[-1]))
        points.append({"label": labels[-1], "params": found[-1].params, **quality_of(found[-1].hits.ids, exact_ids)})
        topk[f"ids_{i}"], topk[f"distances_{i}"] = found[-1].hits.ids, found[-1].hits.distances
        result.set("search", {"top_k": k, "metric": cfg.search.metric, "points": points})
    timings = interleaved_trials(store, metadata, queries, found, labels, cfg.search, cfg.stats.confidence, clients)
    for point, timing in zip(points, timings):
        point.update(timing)
    result.set("search", {"top_k": k, "metric": cfg.search.metric, "points": points})


class _CategoryQuality:
    """precision@K and mAP@K of result ids, relevance being "shares a COCO category with the query"; with
    the exact ids, recall@K too. Each with its bootstrap interval over queries (``<metric>_ci95``)."""

    def __init__(self, labels: dict[int, set[int]], query_ids: np.ndarray, corpus_ids: np.ndarray, k: int,
                 stats: StatsConfig):
        self.labels, self.k, self.stats = labels, k, stats
        self.query_labels = [labels[int(q)] for q in query_ids]
        self.num_relevant = evaluate.num_relevant_in_corpus(self.query_labels, [labels[int(c)] for c in corpus_ids])

    def __call__(self, result_ids: np.ndarray, exact_ids: np.ndarray | None = None) -> dict[str, Any]:
        # Padded results (-1) have no labels, so they count as not relevant.
        result_labels = [[self.labels.get(int(r), set()) for r in row] for row in result_ids]
        per_query = evaluate.category_quality_per_query(self.query_labels, result_labels, self.k, self.num_relevant)
        if exact_ids is not None:
            per_query = {"recall_at_k": evaluate.recall_per_query(result_ids, exact_ids, self.k), **per_query}
        labelled = int(per_query["precision_at_k"].size)
        return {**with_intervals(per_query, resamples=self.stats.bootstrap_resamples,
                                 confidence=self.stats.confidence, seed=self.stats.seed),
                "num_queries": labelled, "num_unlabelled": len(self.query_labels) - labelled}


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
                           cfg.store.insert_batch_size, store.insert_threads, progress=bar.update)
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
    """Tables for one run: CSV + Markdown in the run directory; returns the main table (and any workload's
    tables) as Markdown."""
    data = [result.data]
    tables = {"search": search_table(data), "models": model_table(data), "load": load_table(data)}
    extra = workload_tables(result.data)
    write_tables({**tables, **extra}, result.outdir, header=f"# bench run: {result.data['model']['name']} / "
                                                         f"{result.data['index']['type']}\n")
    return "\n\n".join([to_markdown(tables["search"])] + [f"{name}:\n{to_markdown(df)}" for name, df in extra.items()])
