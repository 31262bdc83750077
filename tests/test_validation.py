"""Each config group checks its own values (bench.run.validation), all before any work starts: a bad setting is
one line naming it, and the model is never converted for a run that would fail on it later."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bench.config import Config, DatasetConfig, IndexConfig, SearchConfig, StatsConfig, WorkloadConfig
from bench.errors import BenchError
from bench.run.validation import GROUPS, validate
from bench.stores.faiss_store import FaissConfig
from tests.conftest import run_cli
from tests.helpers import small_model_cfg


def good() -> Config:
    return Config(model=small_model_cfg(), dataset=DatasetConfig(name="sample", kind="coco_sample", root="r",
                                                                 annotations="a.json"),
                  index=IndexConfig(type="IVF_FLAT", build={"nlist": 8}, search=[{"nprobe": 2}]),
                  store=FaissConfig(), search=SearchConfig(), stats=StatsConfig(), workload=WorkloadConfig())


def test_a_good_config_passes_and_every_group_has_its_check():
    validate(good())
    assert set(GROUPS) == {"model", "dataset", "index", "store", "metadata", "search", "stats", "workload",
                           "runtime"}


@pytest.mark.parametrize("group, change, message", [
    ("model", {"shard_images": 0}, "model.shard_images=0 must be a positive integer"),
    ("model", {"shard_seconds": 0.0}, "model.shard_seconds=0.0 must be a positive number of seconds"),
    ("model", {"decode_workers": -1}, "model.decode_workers=-1 must be 0 (decode inline)"),
    ("model", {"batch_size": 0}, "model.batch_size=0 must be a positive integer"),
    ("model", {"precision": "int4"}, "model.precision='int4' is not a precision"),
    ("dataset", {"num_queries": 0}, "dataset.num_queries=0 must be a positive integer"),
    ("dataset", {"limit": 0}, "dataset.limit=0 must be a positive integer (or null for all images)"),
    ("index", {"type": "IVF_FLAT", "build": {"nlist": 0}}, "nlist=0 must be a positive integer"),
    ("store", {"insert_batch_size": 0}, "store.insert_batch_size=0 must be a positive integer"),
    ("metadata", {"kind": "sqlite"}, "unknown metadata.kind 'sqlite': choose milvus or redis (conf/metadata/)"),
    ("search", {"repeats": 0}, "search.repeats=0 must be a positive integer"),
    ("search", {"concurrency": [1, 0]}, "search.concurrency=[1, 0] must hold positive thread counts"),
    ("stats", {"confidence": 1.5}, "stats.confidence=1.5 must lie between 0 and 1"),
    ("workload", {"kind": "stream"},
     "workload.kind='stream' is unknown: choose one of none, filtered, streaming, serve"),
    ("workload", {"kind": "streaming", "search_point": 3}, "workload.search_point=3 is not a point of index.search"),
])
def test_each_group_refuses_its_bad_values_in_one_line(group, change, message):
    cfg = good()
    setattr(cfg, group, replace(getattr(cfg, group), **change))
    with pytest.raises(BenchError) as err:
        validate(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_serve_settings_are_the_serve_workload_s_check():
    cfg = good()
    cfg.workload = WorkloadConfig(kind="serve")
    cfg.serve = replace(cfg.serve, max_batch=0)
    with pytest.raises(BenchError, match="serve.max_batch=0 must be a positive integer"):
        validate(cfg)


@pytest.mark.parametrize("override, message", [
    ("model.shard_images=0", "error: model.shard_images=0 must be a positive integer"),
    ("model.decode_workers=-2", "error: model.decode_workers=-2 must be 0 (decode inline)"),
])
def test_a_bad_model_setting_fails_before_the_conversion(workspace, tmp_path, override, message):
    """A fresh model cache: had the check come after the conversion, an ONNX file would be there."""
    models = tmp_path / "models"
    overrides = [o for o in workspace.overrides if not o.startswith("cache_dir=")]
    proc = run_cli(["experiment=smoke", *overrides, f"cache_dir={models}", override, f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(message) and "Traceback" not in proc.stderr
    assert not list(models.glob("**/*.onnx"))
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["status"] == "failed" and "stages" not in result
