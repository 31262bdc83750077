"""A real run interrupted mid-embedding (SIGTERM, SIGINT), through the CLI as a user would see it.

The embedding is slowed down with ``model.preprocess_hook`` (250 ms per batch of 16), and the
cache saves a shard per batch, so the test can wait for two shards on disk and then signal.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

SLOW = ["model.preprocess_hook=tests.slow_hooks:sleep_250ms", "model.shard_images=16"]


def start(workspace, embeddings: Path, args: list[str], log: Path, new_session: bool = False) -> subprocess.Popen:
    overrides = [o for o in workspace.overrides if not o.startswith("embeddings_dir=")]
    argv = [sys.executable, "-m", "bench", *args[:1], "experiment=smoke", *overrides,
            f"embeddings_dir={embeddings}", *SLOW, *args[1:]]

    def own_session() -> None:
        # Like a terminal's foreground job: SIGINT is delivered and handled, even when pytest itself
        # was started in the background (which makes children inherit an ignored SIGINT).
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with open(log, "w") as out:
        return subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                preexec_fn=own_session if new_session else None)


def signal_after_shards(proc: subprocess.Popen, embeddings: Path, sig: int, shards: int = 2,
                        timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while len(list(embeddings.glob("*/shard-*.npz"))) < shards:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {shards} shards before the run ended (rc {proc.returncode})")
        time.sleep(0.05)
    proc.send_signal(sig)
    return proc.wait(timeout=120)


def test_sigterm_mid_embedding_then_the_rerun_resumes(workspace, tmp_path):
    embeddings = tmp_path / "embeddings"
    first = start(workspace, embeddings, [f"hydra.run.dir={tmp_path / 'run1'}"], tmp_path / "run1.log")
    t0 = time.monotonic()
    rc = signal_after_shards(first, embeddings, signal.SIGTERM)
    output = (tmp_path / "run1.log").read_text()
    assert rc == 143, output[-3000:]
    assert "interrupted (SIGTERM)" in output
    result = json.loads((tmp_path / "run1" / "results.json").read_text())
    assert result["status"] == "interrupted"
    assert result["interrupted"] == {"stage": "embed", "signal": "SIGTERM"}
    saved = len(list(embeddings.glob("*/shard-*.npz")))
    assert 2 <= saved < 5 and not list(embeddings.glob("*/manifest.json"))

    second = start(workspace, embeddings, [f"hydra.run.dir={tmp_path / 'run2'}"], tmp_path / "run2.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "run2.log").read_text()[-3000:]
    output = (tmp_path / "run2.log").read_text()
    assert f"resuming: {16 * saved} of 80 images already embedded" in output
    result = json.loads((tmp_path / "run2" / "results.json").read_text())
    assert result["status"] == "ok"
    emb = result["model"]["embedding"]
    assert emb["num_embedded"] == 80 and emb["num_embedded_this_run"] == 80 - 16 * saved
    runs = emb["runs"]
    assert [r["num_embedded"] for r in runs] == [16 * saved, 80 - 16 * saved]
    assert runs[0]["last_shard"] == saved - 1 and runs[1]["first_shard"] == saved
    assert emb["images_per_s_end_to_end"] == pytest.approx(emb["num_embedded_this_run"] / emb["seconds"]["total_s"])
    timings = [(r["num_embedded"], r["seconds"]["total_s"]) for r in runs]
    print(f"killed after {time.monotonic() - t0:.1f} s; runs: {timings}")


def test_sigint_stops_a_multirun_sweep(workspace, tmp_path):
    embeddings, sweep = tmp_path / "embeddings", tmp_path / "sweep"
    proc = start(workspace, embeddings, ["-m", "index=FLAT,HNSW", f"hydra.sweep.dir={sweep}"], tmp_path / "log",
                 new_session=True)
    rc = signal_after_shards(proc, embeddings, signal.SIGINT)
    output = (tmp_path / "log").read_text()
    assert rc == 130, output[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "results.json").exists())
    assert jobs == ["0_mobilenet_v2_FLAT"], output[-3000:]  # the second job never started
    result = json.loads((sweep / jobs[0] / "results.json").read_text())
    assert result["status"] == "interrupted" and result["interrupted"]["signal"] == "SIGINT"


def signal_in_stage(proc: subprocess.Popen, run_dir: Path, section: str, sig: int, timeout: float = 300) -> int:
    """Signal once results.json has ``section`` (written as the stage that fills it starts measuring)."""
    deadline = time.monotonic() + timeout
    results = run_dir / "results.json"
    while not (results.exists() and section in json.loads(results.read_text() or "{}")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run ended before its {section!r} section (rc {proc.returncode})")
        time.sleep(0.05)
    proc.send_signal(sig)
    return proc.wait(timeout=120)


def test_sigint_mid_sweep_names_what_a_rerun_reuses_without_a_traceback(workspace, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(workspace, tmp_path / "embeddings", [f"hydra.run.dir={run_dir}"], tmp_path / "log", new_session=True)
    rc = signal_in_stage(proc, run_dir, "search", signal.SIGINT)
    output = (tmp_path / "log").read_text()
    assert rc == 130, output[-3000:]
    interrupted = json.loads((run_dir / "results.json").read_text())["interrupted"]
    assert interrupted == {"stage": "search", "signal": "SIGINT"}
    reuses = ("a rerun reuses the generated sample images, the converted ONNX model, the cached embeddings and the "
              "filled milvus_lite collection (the index is built again)")
    assert "interrupted (SIGINT) during search: " in output and reuses in output, output[-3000:]
    assert "resumes the embedding" not in output
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.parametrize("stage, store, workload, expected", [
    ("setup", "milvus_lite", "none", "a rerun starts from the beginning"),
    ("convert", "milvus_lite", "none", "a rerun reuses the generated sample images"),
    ("embed", "milvus_lite", "none", "a rerun reuses the generated sample images, the converted ONNX model and the "
                                     "embedding shards saved so far (it resumes the embedding)"),
    ("insert", "milvus_lite", "none", "the converted ONNX model and the cached embeddings"),
    ("build_and_load_index", "milvus_lite", "none", "the cached embeddings and the filled milvus_lite collection "
                                                    "(the index is built again)"),
    ("serve", "milvus_lite", "serve", "and the filled milvus_lite collection (the index is built again)"),
    ("search", "faiss", "none", "the converted ONNX model and the cached embeddings"),  # faiss keeps nothing
    ("search", "milvus_lite", "streaming", "the converted ONNX model and the cached embeddings"),  # dropped
])
def test_what_a_rerun_reuses_depends_on_the_stage_and_the_store(stage, store, workload, expected):
    from bench.config import Config, DatasetConfig, StoreConfig, WorkloadConfig
    from bench.run.resume import rerun_reuses

    cfg = Config(dataset=DatasetConfig(kind="coco_sample"), store=StoreConfig(kind=store),
                 workload=WorkloadConfig(kind=workload))
    phrase = rerun_reuses(stage, cfg)
    assert phrase.endswith(expected) and "\n" not in phrase


def test_an_interrupted_build_cleans_up_without_a_third_party_traceback(tmp_path, caplog):
    """Milvus refuses to drop the index of a loaded collection; the clean-up after an interrupted build
    releases it first, and pymilvus's own ERROR log of a failed call (with its traceback) never shows."""
    import numpy as np

    from bench.stores import CollectionSpec, open_store
    from bench.stores.milvus import MilvusConfig
    from tests.helpers import clustered

    store = open_store(MilvusConfig(uri=str(tmp_path / "lite.db"), index_timeout_s=60))
    vectors = clustered(300, 16)
    store.prepare(CollectionSpec(name="c", dim=16, metric="IP", fingerprint="f", with_paths=True), len(vectors))
    store.insert(np.arange(300), vectors, ["p.jpg"] * 300, [[1]] * 300)
    store.flush()

    def loaded_then_interrupted(index_type):
        store.client.load_collection("c")  # the state a server can be in when the signal comes
        raise KeyboardInterrupt

    store._wait_for_index = loaded_then_interrupted
    with pytest.raises(KeyboardInterrupt):
        store.build_index("HNSW", {"M": 8, "efConstruction": 32})
    assert store.client.list_indexes("c") == []  # no phantom index left behind
    store._wait_for_index = type(store)._wait_for_index.__get__(store)
    store.build_index("HNSW", {"M": 8, "efConstruction": 32})
    store.load()
    # A refused call logs nothing of pymilvus's either: the error itself carries what matters.
    with pytest.raises(Exception, match="call release"):
        store.client.drop_index("c", "vector")
    store.close()
    # pymilvus prints its traceback through logging (the record the filter drops); caplog sees every record.
    # No fd-level capture: after test_embed.py in one process, capfd's teardown crashed pytest (lost sys.stderr).
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("pymilvus")]

