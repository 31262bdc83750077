"""The tuner's corpus: the run's model, dataset and store, prepared once as `python -m bench` prepares them.

The ONNX file, the embeddings and the filled collection come from their caches when an earlier run (of
bench or of the tuner) made them; only the index is rebuilt, once per trial. What was prepared (dataset,
model, embedding stats, load, provenance) is recorded in ``corpus.json`` in the run folder: the record a
benchmark run keeps in results.json, under another name so the report tools do not take the tuning
folder for a benchmark run.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from omegaconf import OmegaConf

from bench import PROJECT_ROOT, provenance
from bench.config import Config
from bench.measure import evaluate
from bench.measure.clock import StageClock
from bench.measure.workloads.registry import open_workload
from bench.results import RunResult
from bench.run import store_stages
from bench.run.validation import validate
from bench.runner import collection_spec, convert_and_embed, open_backends
from bench.stores.urls import redact_config
from bench.tune.objectives import Objective
from bench.tune.trial import TrialContext

CORPUS_FILE = "corpus.json"


class CorpusRecord(RunResult):
    file_name = CORPUS_FILE


@dataclass
class CorpusInfo:
    """What the study is tied to: a resumed study must see the same corpus and queries."""
    model: str
    dataset: str
    corpus_size: int
    num_queries: int
    dim: int
    fingerprint: str
    store: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextmanager
def prepared_corpus(cfg: Config, outdir: Path, objective: Objective, index_types: list[str]
                    ) -> Iterator[tuple[TrialContext, CorpusInfo, CorpusRecord]]:
    """Embeddings, exact top-K and the filled, flushed collection; the store is closed on exit."""
    validate(cfg)
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    record = CorpusRecord(outdir, redact_config(resolved), provenance.collect(PROJECT_ROOT))
    clock = StageClock(record)
    embedded = convert_and_embed(cfg, record, clock, open_workload(cfg.workload.kind))
    corpus, queries, k = embedded.corpus, embedded.queries, cfg.search.top_k
    with clock("exact_ground_truth"):
        exact_rows, _ = evaluate.exact_topk(corpus.vectors, queries.vectors, k, cfg.search.metric)
        exact_ids = corpus.ids[exact_rows]
    store, metadata = open_backends(cfg, embedded, index_types)
    try:
        model = embedded.model
        spec = collection_spec(cfg, embedded, corpus, metadata)

        def fill() -> None:
            store_stages.insert(store, metadata, spec, corpus, cfg.store.insert_batch_size)

        with clock("insert"):
            fill()
        described = store.describe()
        record.data["provenance"]["store"] = described
        record.save()
        info = CorpusInfo(model=model.name, dataset=embedded.dataset, corpus_size=len(corpus),
                          num_queries=len(queries), dim=model.embedding_dim, fingerprint=spec.fingerprint,
                          store=f"{described.get('kind')} {described.get('version')}")
        # A bare index library (not a database) keeps the rows in its index alone: refilled before each rebuild.
        refill = None if type(store).capabilities().database else fill
        ctx = TrialContext(store=store, metadata=metadata, queries=queries.vectors, exact_ids=exact_ids,
                           corpus_size=info.corpus_size, dim=info.dim, search=cfg.search, stats=cfg.stats,
                           target=cfg.tune.target_recall, objective=objective, refill=refill)
        with clock("tune"):
            yield ctx, info, record
    finally:
        metadata.close()
        store.close()
