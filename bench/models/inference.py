"""One model call and the normalisation of its output: what every embedding engine and the serving pipeline share."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

from bench.errors import BenchError
from bench.models.convert import ConvertedModel


def infer(session: ort.InferenceSession, model: ConvertedModel, batch: np.ndarray) -> np.ndarray:
    output = session.run([model.output_name], {model.input_name: batch})[0]
    if output.ndim != 2 or output.shape[1] != model.embedding_dim:
        raise BenchError(f"{model.onnx_path} returned shape {list(output.shape)}, expected (batch, "
                         f"{model.embedding_dim}): check model.embedding_dim and model.pooling")
    return np.asarray(output, dtype=np.float32)


def l2_normalise(raw: np.ndarray) -> tuple[np.ndarray, int]:
    # float64 norms: random-weight models can output values near 1e-12, whose squares are
    # close to float32's smallest normal numbers.
    as64 = raw.astype(np.float64)
    norms = np.linalg.norm(as64, axis=1, keepdims=True)
    usable = np.isfinite(norms) & (norms > 0)
    vectors = np.where(usable, as64 / np.where(usable, norms, 1.0), as64)
    return vectors.astype(np.float32), int(np.count_nonzero(~usable))
