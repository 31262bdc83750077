"""One benchmark run: config -> convert -> embed -> insert -> index -> search (and a workload) -> evaluate -> write.

Each stage adds its section to the RunResult as soon as it is done, so a failure leaves everything measured
up to that point on disk, marked as failed. What the stages share after the embedding is one
:class:`bench.run.context.RunContext`; a workload (bench.measure.workloads) reads it and nothing else.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from bench import PROJECT_ROOT, provenance
from bench.config import Config
from bench.data.dataset import load_dataset, split_queries
from bench.errors import BenchError
from bench.measure import evaluate, fidelity
from bench.measure.clients import ClientPool, search_clients
from bench.measure.clock import StageClock
from bench.measure.quality import CategoryQuality
from bench.measure.search import interleaved_trials, search_topk
from bench.measure.workloads.base import AFTER_SWEEP, BEFORE_SWEEP, Workload
from bench.measure.workloads.registry import open_workload
from bench.models.convert import ConvertedModel
from bench.models.embed import Embeddings, embed_images
from bench.models.engines import engine_provenance
from bench.models.runtime import describe_runtime
from bench.models.variants import ensure_model
from bench.report.tables import load_table, model_table, search_table, to_markdown, write_tables
from bench.report.workload_tables import run_tables as workload_tables
from bench.results import RunResult
from bench.run import store_stages
from bench.run.context import GroundTruth, RunContext
from bench.run.corpus import Corpus
from bench.run.validation import validate
from bench.stores import CollectionSpec, SearchHits, VectorStore, open_store
from bench.stores.indexes import check_dim, point_label
from bench.stores.metadata import MetadataStore, open_metadata
from bench.stores.urls import redact_config

log = logging.getLogger(__name__)
# Random pairs sampled for the baseline distance distribution.
RANDOM_PAIRS = 2000


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
        err.stage = result.stage  # what a rerun reuses depends on it (bench.run.resume)
        raise
    except Exception as err:  # recorded, then re-raised with its traceback: a bug, not bad input
        result.fail(f"{type(err).__name__}: {err}")
        raise
    result.finish()
    return result


@dataclass(frozen=True)
class Embedded:
    """What the convert and embed stages give: the model, the corpus and queries embedded, and for a variant
    (INT8, FP16) its FP32 reference with its embedding of the same images (the fidelity section)."""
    model: ConvertedModel
    dataset: str
    corpus: Corpus
    queries: Corpus
    categories: dict[int, str]  # category id -> name
    embeddings: Embeddings
    reference: Optional[ConvertedModel] = None
    reference_embeddings: Optional[Embeddings] = None


def _run_stages(cfg: Config, result: RunResult) -> None:
    validate(cfg)
    workload = open_workload(cfg.workload.kind)
    clock = StageClock(result)
    embedded = convert_and_embed(cfg, result, clock, workload)
    k, metric, corpus = cfg.search.top_k, cfg.search.metric, embedded.corpus
    with clock("exact_ground_truth"):
        rows, distances = evaluate.exact_topk(corpus.vectors, embedded.queries.vectors, k, metric)
        exact = GroundTruth(ids=corpus.ids[rows], distances=distances)
        quality = CategoryQuality(corpus.labels, embedded.queries.ids, corpus.ids, k, cfg.stats)
        result.set("exact", quality(exact.ids))
        random_pairs = evaluate.random_pair_distances(corpus.vectors, metric, RANDOM_PAIRS, seed=0)
    found = _store_stages(cfg, result, clock, embedded, exact, quality, workload)
    topk = {"query_ids": embedded.queries.ids, "exact_ids": exact.ids, "exact_distances": exact.distances,
            "random_pair_distances": random_pairs}
    for i, hits in enumerate(found):
        topk[f"ids_{i}"], topk[f"distances_{i}"] = hits.ids, hits.distances
    result.save_topk(topk)
    if embedded.reference is not None:
        result.set("fidelity", _fidelity(cfg, result, embedded, exact, found, quality))


def convert_and_embed(cfg: Config, result: RunResult, clock: StageClock, workload: Workload) -> Embedded:
    """The dataset loaded and split, the model converted (and its variant made), every image embedded."""
    k = cfg.search.top_k
    with clock("dataset"):  # includes generating the sample on first use
        dataset = load_dataset(cfg.dataset)
        workload.check_dataset(cfg, dataset)
        corpus_records, query_records = split_queries(dataset.images, cfg.dataset.num_queries, cfg.dataset.query_seed)

    with clock("convert"):
        model, reference = ensure_model(cfg.model, corpus_records, Path(cfg.cache_dir))
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

    labels = {r.image_id: frozenset(r.category_ids) for r in dataset.images}
    paths = {r.image_id: str(r.path) for r in dataset.images}
    corpus = Corpus.of(emb, corpus_records, labels, paths)
    queries = Corpus.of(emb, query_records, labels, paths)
    if len(queries) == 0 or len(corpus) < k:
        raise BenchError(f"only {len(corpus)} corpus and {len(queries)} query images could be embedded "
                         f"(top_k={k}): check the skipped images listed in results.json")
    skipped = [asdict(s) for s in dataset.skipped] + [asdict(s) for s in emb.skipped]
    result.set("dataset", {"name": dataset.name, "num_images": len(dataset.images) + len(dataset.skipped),
                           "num_corpus": len(corpus), "num_queries": len(queries), "skipped": skipped,
                           "num_skipped": len(skipped), "query_image_ids": queries.ids,
                           **({"files_sha256": dataset.files} if dataset.files else {})})
    return Embedded(model=model, dataset=dataset.name, corpus=corpus, queries=queries,
                    categories=dict(dataset.categories), embeddings=emb, reference=reference,
                    reference_embeddings=reference_emb)


def _store_stages(cfg: Config, result: RunResult, clock: StageClock, embedded: Embedded, exact: GroundTruth,
                  quality: CategoryQuality, workload: Workload) -> list[SearchHits]:
    """Insert, build, the workload at its phase and the plain sweep; returns each sweep point's top-K."""
    model = embedded.model
    store, metadata = open_backends(cfg, embedded, [cfg.index.type])
    spec: Optional[CollectionSpec] = None
    try:
        result.data["provenance"]["store"] = store.describe()
        result.set("metadata", metadata.describe())
        loaded = workload.loaded(embedded.corpus)  # workload=streaming: half now, the rest while searching
        spec = collection_spec(cfg, embedded, loaded, metadata, scratch=workload.scratch)
        with clock("insert"):
            inserted = store_stages.insert(store, metadata, spec, loaded, cfg.store.insert_batch_size)
        with clock("build_and_load_index"):
            built = store_stages.build(store, cfg.index.type, cfg.index.build)
        result.set("index", {"type": cfg.index.type, "build_params": dict(cfg.index.build),
                             "described_params": built.described,
                             "load": {**asdict(inserted), "build_s": built.build_s, "load_s": built.load_s}})
        context = RunContext(cfg=cfg, result=result, clock=clock, model=model, dataset=embedded.dataset,
                             corpus=embedded.corpus, queries=embedded.queries, categories=embedded.categories,
                             exact=exact, quality=quality, store=store, metadata=metadata)
        _run_workload(workload, context, BEFORE_SWEEP)
        with clock("search"), search_clients(cfg, spec, embedded.queries.vectors) as clients:
            found = _sweep(context, clients)
        _run_workload(workload, context, AFTER_SWEEP)
        return found
    finally:
        if spec is not None and spec.scratch:
            _drop_scratch(store)
        metadata.close()
        store.close()


def open_backends(cfg: Config, embedded: Embedded, index_types: list[str]) -> tuple[VectorStore, MetadataStore]:
    """The store (checked to build every one of ``index_types``) and the metadata backend, both open."""
    store = open_store(cfg.store)
    try:
        for index_type in index_types:
            store.check_index(index_type)
        return store, open_metadata(cfg.metadata, namespace=store_stages.paths_namespace(embedded.dataset,
                                                                                         embedded.corpus))
    except BaseException:
        store.close()
        raise


def collection_spec(cfg: Config, embedded: Embedded, loaded: Corpus, metadata: MetadataStore,
                    scratch: bool = False) -> CollectionSpec:
    """The collection of ``loaded``'s rows of this model's vectors: named by what it holds, so it is reused."""
    model = embedded.model
    fingerprint = store_stages.fingerprint(model, loaded.ids, metadata.paths_in_search)
    return CollectionSpec(name=store_stages.collection_name(model.name, embedded.dataset, fingerprint),
                          dim=model.embedding_dim, metric=cfg.search.metric, fingerprint=fingerprint,
                          with_paths=metadata.paths_in_search, scratch=scratch)


def _run_workload(workload: Workload, context: RunContext, phase: str) -> None:
    if workload.phase != phase:
        return
    with context.clock(workload.name):
        workload.prepare(context)
        context.publish(workload.name, workload.run(context))


def _drop_scratch(store: VectorStore) -> None:
    """A scratch collection's rows changed during the run, so no later run may reuse it. A failure here is
    logged, not raised, so it never hides the error that ended the run."""
    try:
        store.drop()
    except Exception as err:  # noqa: BLE001 - clean-up after the measurement, whatever went wrong before
        log.warning("could not drop the scratch collection: %s", err)


def _sweep(context: RunContext, clients: Optional[ClientPool] = None) -> list[SearchHits]:
    """The index is built once; every point is searched once for its results, then all points are timed in
    interleaved trials. The points go into results.json as they are measured; returns each point's top-K."""
    cfg, queries = context.cfg, context.queries.vectors
    section: dict[str, Any] = {"top_k": cfg.search.top_k, "metric": cfg.search.metric, "points": []}
    found, labels = [], []
    for params in cfg.index.search:
        labels.append(point_label(dict(params)))
        found.append(search_topk(context.store, context.metadata, queries, dict(params), cfg.search, labels[-1]))
        section["points"].append({"label": labels[-1], "params": found[-1].params,
                                  **context.quality(found[-1].hits.ids, context.exact.ids)})
        context.publish("search", section)
    timings = interleaved_trials(context.store, context.metadata, queries, found, labels, cfg.search,
                                 cfg.stats.confidence, clients)
    for point, timing in zip(section["points"], timings):
        point.update(timing)
    context.publish("search", section)
    return [point.hits for point in found]


def _fidelity(cfg: Config, result: RunResult, embedded: Embedded, exact: GroundTruth, found: list[SearchHits],
              quality: CategoryQuality) -> dict[str, Any]:
    """The variant against its FP32 reference on the same images and queries (bench.measure.fidelity)."""
    points = result.data.get("search", {}).get("points", [])
    reference, reference_emb = embedded.reference, embedded.reference_embeddings
    section = fidelity.fidelity_section(
        reference_ids=reference_emb.image_ids, reference_vectors=reference_emb.vectors,
        corpus_ids=embedded.corpus.ids, corpus_vectors=embedded.corpus.vectors, query_ids=embedded.queries.ids,
        query_vectors=embedded.queries.vectors, exact_ids=exact.ids, exact_distances=exact.distances,
        served={f"{cfg.index.type} {p['label']}": hits.ids for p, hits in zip(points, found)},
        quality=quality, k=cfg.search.top_k, metric=cfg.search.metric)
    section.update(fidelity.speed_and_size(reference_emb.stats, embedded.embeddings.stats,
                                           reference.conversion.get("onnx_bytes"),
                                           embedded.model.variant.get("onnx_bytes")))
    section["reference"] = {"model": reference.name, "onnx_sha256": reference.onnx_sha256,
                            "embedding_from_cache": reference_emb.cached}
    warning = fidelity.saturation_warning(section["cosine"].get("p1"), embedded.model.variant.get("settings") or {},
                                          result.data["provenance"]["hardware"])
    if warning:
        log.warning(warning)
        section["warning"] = warning
    return section


def write_outputs(result: RunResult) -> str:
    """Tables for one run: CSV + Markdown in the run directory; returns the main table (and any workload's
    tables) as Markdown."""
    data = [result.data]
    tables = {"search": search_table(data), "models": model_table(data), "load": load_table(data)}
    extra = workload_tables(result.data)
    write_tables({**tables, **extra}, result.outdir, header=f"# bench run: {result.data['model']['name']} / "
                                                         f"{result.data['index']['type']}\n")
    return "\n\n".join([to_markdown(tables["search"])] + [f"{name}:\n{to_markdown(df)}" for name, df in extra.items()])
