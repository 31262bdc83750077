"""Small builders shared by several test modules."""
from __future__ import annotations

import numpy as np

from bench.config import ModelConfig

SMALL_SIZE = 64
SMALL_DIM = 1280  # MobileNetV2 with global pooling


def small_model_cfg(**overrides) -> ModelConfig:
    """MobileNetV2 with seeded random weights at 64 px: converts in seconds."""
    values = dict(name="mnv2", source="keras", architecture="MobileNetV2", weights="random", seed=0,
                  input_size=SMALL_SIZE, preprocessing="tf", pooling="avg", embedding_dim=SMALL_DIM, batch_size=4,
                  opset=17)
    values.update(overrides)
    return ModelConfig(**values)


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    """Gaussian blobs on the unit sphere: like real embeddings (uniform noise makes ANN recall look broken)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def results_doc(data: dict) -> dict:
    """A hand-made results.json document completed with what every run writes (schema version, status, config,
    provenance, the search metric, the dataset name), so that it validates against bench.schema."""
    from bench.schema import SCHEMA_VERSION

    doc = {"schema_version": SCHEMA_VERSION, "status": "ok", "error": None, "config": {}, "provenance": {}, **data}
    if "search" in doc:
        doc["search"] = {"metric": "IP", **doc["search"]}
    if "dataset" in doc:
        doc["dataset"] = {"name": "coco_sample", **doc["dataset"]}
    return doc
