"""The two original models at full size, converted for real (about a minute, up to ~7 GiB).

Each runs in its own subprocess so TensorFlow's memory is returned between them and to the rest
of the suite. Marked `slow`: `pytest -m "not slow"` skips them.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
from pathlib import Path
import onnxruntime as ort
from bench.config import ModelConfig
from bench.models.convert import ensure_onnx
cfg = ModelConfig(**json.loads(sys.argv[1]))
model = ensure_onnx(cfg, Path(sys.argv[2]))
session = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
print(json.dumps({"inputs": [i.shape for i in session.get_inputs()], "dim": model.embedding_dim,
                  "parity": model.conversion["parity"], "weights": model.weights}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name, dim", [("vgg16", 512), ("resnet50", 2048)])
def test_full_size_conversion_with_parity(name, dim, tmp_path):
    values = yaml.safe_load((REPO / "conf" / "model" / f"{name}.yaml").read_text())
    values["weights"] = "random"  # ImageNet weights cannot be fetched here; the graph is the same
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(values), str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["inputs"]) == 1 and out["inputs"][0][1:] == [224, 224, 3]
    assert out["dim"] == dim
    assert out["parity"]["max_rel_diff"] < 1e-4 and out["parity"]["min_cosine"] > 0.9999
    assert out["weights"] == {**out["weights"], "kind": "random", "seed": 0}
