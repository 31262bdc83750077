"""The sections every run writes: config, provenance, stages, model, dataset, exact, metadata, index,
search and fidelity. Each model declares what the report and the gate read; units are in the names."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from bench.schema.base import Interval, Section

# -------------------------------------------------------------------------------------------------
# Shared shapes


class TrialSpread(Section):
    """A figure over repeated trials or batches: the median and its min–max."""
    median: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    n: Optional[int] = None

    @property
    def range(self) -> Interval:
        """(min, max), or None where a trial failed to measure."""
        return None if self.min is None or self.max is None else (float(self.min), float(self.max))

    @property
    def relative_noise(self) -> Optional[float]:
        """max/min − 1 of a positive spread (0 = the trials agree exactly)."""
        low_high = self.range
        return None if low_high is None or low_high[0] <= 0 else low_high[1] / low_high[0] - 1.0


class Latency(Section):
    """Latency percentiles in ms over ``count`` calls; a percentile the samples cannot support is null."""
    count: Optional[int] = None
    mean_ms: Optional[float] = None
    p50_ms: Optional[float] = None
    p95_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    max_ms: Optional[float] = None
    min_samples: dict[str, int] = Field(default_factory=dict, description="percentile -> samples it needs")

    def percentile(self, p: int) -> Optional[float]:
        return getattr(self, f"p{p}_ms", None) if p in (50, 95, 99) else self.extra(f"p{p}_ms")


class Quality(Section):
    """Quality of result ids over the held-out queries, each with its bootstrap interval (``<name>_ci95``)."""
    recall_at_k: Optional[float] = Field(None, description="against exact search; absent on exact search itself")
    precision_at_k: Optional[float] = Field(None, description="null when no query has a category label")
    map_at_k: Optional[float] = None
    num_queries: Optional[int] = Field(None, description="labelled queries")
    num_unlabelled: Optional[int] = None


# -------------------------------------------------------------------------------------------------
# config: the resolved Hydra config (bench.config), secrets redacted


class ModelConfigRecord(Section):
    name: Optional[str] = None
    precision: str = "fp32"
    preprocessing: Optional[str] = None
    input_size: Optional[int] = None


class DatasetConfigRecord(Section):
    split: Optional[str] = None
    limit: Optional[int] = None


class IndexConfigRecord(Section):
    type: Optional[str] = None


class KindRecord(Section):
    kind: Optional[str] = None


class SearchConfigRecord(Section):
    top_k: Optional[int] = None
    query_batch_size: Optional[int] = None


class StatsRecord(Section):
    confidence: float = 0.95
    bootstrap_resamples: int = 2000
    seed: int = 0


class ConfigRecord(Section):
    """The run's config as resolved (``bench.config.Config``); only what the readers use is declared."""
    model: ModelConfigRecord = Field(default_factory=ModelConfigRecord)
    dataset: DatasetConfigRecord = Field(default_factory=DatasetConfigRecord)
    index: IndexConfigRecord = Field(default_factory=IndexConfigRecord)
    store: KindRecord = Field(default_factory=KindRecord)
    metadata: KindRecord = Field(default_factory=KindRecord)
    search: SearchConfigRecord = Field(default_factory=SearchConfigRecord)
    stats: StatsRecord = Field(default_factory=StatsRecord)


# -------------------------------------------------------------------------------------------------
# provenance


class Hardware(Section):
    cpu: Optional[str] = None
    cpu_class: Optional[str] = Field(None, description="bench.cpu's class; INT8 results depend on it")
    cpu_features: Optional[dict[str, bool]] = None
    cores: Optional[int] = None
    memory_gb: Optional[float] = None
    os: Optional[str] = None
    python: Optional[str] = None

    @property
    def features_label(self) -> str:
        """The INT8-relevant features present, e.g. "avx2" or "avx2 avx512f avx512_vnni"."""
        if self.cpu_features is None:
            return "not recorded"
        return " ".join(name for name, present in self.cpu_features.items() if present) or "none"


class Weights(Section):
    kind: Optional[str] = Field(None, description="imagenet, random or file")
    seed: Optional[int] = None
    sha256: Optional[str] = None

    @property
    def label(self) -> str:
        if self.kind == "random":
            return f"random(seed={self.seed})"
        if self.kind == "file":
            return f"file({str(self.sha256 or '')[:8]})"
        return self.kind or "?"


class RuntimeRecord(Section):
    provider: Optional[str] = None
    device: Optional[str] = None
    threads_in_use: Optional[int] = None


class StoreRecord(Section):
    kind: Optional[str] = None
    version: Optional[str] = None

    @property
    def label(self) -> str:
        return f"{self.kind or '?'} {self.version or ''}".strip()


class Provenance(Section):
    git_commit: Optional[str] = None
    created_at: Optional[str] = None
    hardware: Hardware = Field(default_factory=Hardware)
    versions: dict[str, Optional[str]] = Field(default_factory=dict, description="package -> version")
    weights: Optional[Weights] = None
    runtime: Optional[RuntimeRecord] = None
    store: StoreRecord = Field(default_factory=StoreRecord)


# -------------------------------------------------------------------------------------------------
# stages, model, dataset, metadata


class Stages(Section):
    seconds: dict[str, float] = Field(default_factory=dict, description="stage -> wall seconds")
    peak_rss_mib: Optional[float] = None


class Parity(Section):
    """Outputs of two models on the same inputs (Keras against ONNX, or a variant against FP32)."""
    max_abs_diff: Optional[float] = None
    max_rel_diff: Optional[float] = None
    min_cosine: Optional[float] = None


class Conversion(Section):
    seconds: Optional[float] = None
    parity: Optional[Parity] = Field(None, description="Keras against ONNX")


class VariantSettings(Section):
    """How a variant was made (bench.models.variants); the fields of a quantization recipe."""
    precision: Optional[str] = None
    quant_format: Optional[str] = None
    per_channel: Optional[bool] = None
    activation_type: Optional[str] = None
    weight_type: Optional[str] = None
    calibrate_method: Optional[str] = None
    reduce_range: Optional[bool] = Field(None, description="absent in variants made before the setting existed")
    reduce_range_setting: Optional[str] = None


class Variant(Section):
    """An INT8/FP16 variant of the FP32 model: its recipe, cost and parity against FP32."""
    precision: Optional[str] = None
    settings: VariantSettings = Field(default_factory=VariantSettings)
    seconds: Optional[float] = Field(None, description="making it (0 when read from the cache)")
    onnx_bytes: Optional[int] = None
    parent: Optional[str] = None
    parity: Optional[Parity] = None


class EmbeddingSpread(Section):
    batches: Optional[int] = None
    images_per_s_end_to_end: Optional[TrialSpread] = None
    images_per_s_inference: Optional[TrialSpread] = None


class EmbeddingSeconds(Section):
    decode_preprocess_s: Optional[float] = None
    inference_s: Optional[float] = None


class Embedding(Section):
    """How the corpus was embedded (bench.models.embed); a cache hit carries the timings of the run that
    computed the vectors (``from_cache``)."""
    num_embedded: Optional[int] = None
    num_skipped: Optional[int] = None
    num_embedded_this_run: Optional[int] = None
    images_per_s_end_to_end: Optional[float] = None
    images_per_s_inference: Optional[float] = None
    seconds: EmbeddingSeconds = Field(default_factory=EmbeddingSeconds)
    batch1_latency: Latency = Field(default_factory=Latency)
    spread: Optional[EmbeddingSpread] = None
    from_cache: bool = False
    execution_provider: Optional[str] = None
    device: Optional[str] = None
    threads_in_use: Optional[int] = None


class ModelSection(Section):
    name: str
    source: Optional[str] = None
    embedding_dim: Optional[int] = None
    onnx_sha256: Optional[str] = None
    onnx_bytes: Optional[int] = None
    weights: Optional[Weights] = None
    conversion: Conversion = Field(default_factory=Conversion)
    embedding: Embedding = Field(default_factory=Embedding)
    precision: str = "fp32"
    variant: Optional[Variant] = Field(None, description="an INT8/FP16 variant (null for the FP32 model)")
    embedding_spread: Optional[EmbeddingSpread] = None


class DatasetSection(Section):
    name: str
    num_images: Optional[int] = None
    num_corpus: Optional[int] = None
    num_queries: Optional[int] = None
    num_skipped: Optional[int] = None
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    query_image_ids: list[int] = Field(default_factory=list)


class MetadataSection(Section):
    kind: Optional[str] = None
    method: Optional[str] = None


# -------------------------------------------------------------------------------------------------
# index and search


class Load(Section):
    """Filling the collection and building its index, in seconds."""
    rows: Optional[int] = None
    reused: bool = False
    insert_s: Optional[float] = None
    insert_rows_per_s: Optional[float] = None
    metadata_put_s: Optional[float] = None
    flush_s: Optional[float] = None
    build_s: Optional[float] = None
    load_s: Optional[float] = None


class IndexSection(Section):
    type: str
    build_params: dict[str, Any] = Field(default_factory=dict)
    described_params: Optional[dict[str, Any]] = None
    load: Load = Field(default_factory=Load)


class PointSpread(Section):
    """The point's figures across its timing trials (search.repeats)."""
    batch_qps: Optional[TrialSpread] = None
    concurrent_qps: dict[str, Optional[TrialSpread]] = Field(default_factory=dict)
    latency: dict[str, Optional[TrialSpread]] = Field(default_factory=dict, description="p50_ms ... -> spread")


class ClientLevel(Section):
    """One concurrency level driven from client processes (search.clients > 1, bench.measure.clients)."""
    kind: str = Field(description="processes | ray actors")
    processes: int
    loops: int = Field(description="closed loops (concurrent searches) over the processes")
    latency: Latency = Field(default_factory=Latency, description="every client's samples pooled, every trial")
    client_cpu_max: float = Field(description="the busiest client process's CPU, in cores, highest trial")
    client_cpu_cores: float = Field(description="all client processes' CPU together, in cores, highest trial")
    client_bound: bool = Field(description="the clients' CPU was saturated in some trial: the level measured them")


class SearchPoint(Quality):
    """One search-parameter point: its quality against exact search and its timings."""
    label: str
    params: dict[str, Any] = Field(default_factory=dict)
    latency: Latency = Field(default_factory=Latency, description="serial nq=1 search alone")
    end_to_end_latency: Latency = Field(default_factory=Latency, description="search + path lookup")
    resolve_latency: Latency = Field(default_factory=Latency, description="the path lookup alone")
    batch_qps: Optional[float] = None
    concurrent_qps: dict[str, Optional[float]] = Field(default_factory=dict, description="threads -> QPS")
    concurrent_clients: dict[str, ClientLevel] = Field(default_factory=dict,
                                                       description="level -> figures, with search.clients > 1")
    repeats: int = 1
    spread: PointSpread = Field(default_factory=PointSpread)
    trials: list[dict[str, Any]] = Field(default_factory=list)

    def qps(self, threads: Optional[str] = None) -> Optional[float]:
        """Batch QPS (``threads`` None) or the QPS with that many client threads."""
        return self.batch_qps if threads is None else self.concurrent_qps.get(str(threads))

    def qps_range(self, threads: Optional[str] = None) -> Interval:
        """min–max across trials of :meth:`qps`."""
        spread = self.spread.batch_qps if threads is None else self.spread.concurrent_qps.get(str(threads))
        return spread.range if spread is not None else None


class SearchSection(Section):
    top_k: int
    metric: str
    points: list[SearchPoint] = Field(default_factory=list)


# -------------------------------------------------------------------------------------------------
# fidelity: a variant against its FP32 reference (bench.measure.fidelity)


class FidelityExact(Section):
    overlap_at_k: Optional[float] = None
    jaccard_at_k: Optional[float] = None
    rbo: Optional[float] = None
    recall_at_k: Optional[float] = None


class FidelityPoint(Section):
    label: str
    recall_at_k: Optional[float] = None


class Cosine(Section):
    """Cosine similarity between the variant's and the FP32 model's embedding of each image."""
    count: Optional[int] = None
    min: Optional[float] = None
    p1: Optional[float] = None
    p50: Optional[float] = None
    mean: Optional[float] = None


class Shift(Section):
    """How far a distance distribution moved (two-sample statistics)."""
    ks_statistic: Optional[float] = None
    ks_pvalue: Optional[float] = None
    wasserstein: Optional[float] = None


class Distances(Section):
    top1: Optional[Shift] = None
    topk: Optional[Shift] = None


class Change(Section):
    """A figure of the FP32 reference and of the variant, with variant − reference or variant / reference."""
    reference: Optional[float] = None
    variant: Optional[float] = None
    change: Optional[float] = None
    ratio: Optional[float] = None


class Speed(Section):
    images_per_s_inference: Optional[Change] = None
    images_per_s_end_to_end: Optional[Change] = None


class FidelityQuality(Section):
    precision_at_k: Optional[Change] = None
    map_at_k: Optional[Change] = None


class Size(Section):
    reference_onnx_bytes: Optional[int] = None
    variant_onnx_bytes: Optional[int] = None
    ratio: Optional[float] = None


class Reference(Section):
    model: Optional[str] = Field(None, description="the FP32 model's name")
    onnx_sha256: Optional[str] = None
    embedding_from_cache: Optional[bool] = None


class FidelitySection(Section):
    top_k: Optional[int] = None
    metric: Optional[str] = None
    cosine: Cosine = Field(default_factory=Cosine)
    exact: FidelityExact = Field(default_factory=FidelityExact)
    points: list[FidelityPoint] = Field(default_factory=list)
    distances: Distances = Field(default_factory=Distances)
    quality: FidelityQuality = Field(default_factory=FidelityQuality)
    speed: Speed = Field(default_factory=Speed)
    size: Size = Field(default_factory=Size)
    reference: Reference = Field(default_factory=Reference)
    warning: Optional[str] = None


class Interrupted(Section):
    stage: str
    signal: str


class TuneSection(Section):
    """python -m bench.tune's record of the corpus it tuned on (corpus.json, not a benchmark run's file)."""
    study: str = Field(description="the Optuna study's name")
    storage: Optional[str] = Field(None, description="where the study lives (SQLite URL)")
    settings: dict[str, Any] = Field(default_factory=dict, description="what a resumed study must match")
