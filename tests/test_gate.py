"""The regression gate catches real regressions and passes an unchanged tree.

Three end-to-end checks on the smoke config, as the issue asks:
- a deliberately slowed preprocessing (tests/slow_hooks.py through model.preprocess_hook) fails
  the timing comparison against HEAD, both measured in this test;
- a deliberately worse index parameter (nprobe=1 in place of 16) fails the recall check against
  the committed baseline;
- the unchanged tree passes `python -m bench.gate` (exit status 0).
The comparison rules themselves are checked on real results.json files with edited numbers.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.gate.baseline import run_gate_config, write_baseline
from bench.gate.comparison import compare_pairs, compare_paths
from bench.gate.config import load_gate_config
from bench.gate.judge import judge
from bench.gate.matching import match_points
from bench.gate.metrics import Metric
from bench.gate.table import Comparison
from bench.results import load_results
from tests import fashion_data

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "reports" / "baseline"
IVF_BASELINE = BASELINE / "mobilenet_v2_IVF_FLAT"
SLOW_HOOK = "model.preprocess_hook=tests.slow_hooks:sleep_50ms"
# nprobe=1 in place of nprobe=16, the sweep's last point; the other points are unchanged.
WORSE_SWEEP = "index.search=[{nprobe:1},{nprobe:2},{nprobe:4},{nprobe:8},{nprobe:1}]"


def python_module(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def row(comparison: Comparison, metric: str, point: str = "—", run: str | None = None):
    matches = [r for r in comparison.rows if r.metric == metric and r.point == point and (run is None or r.run == run)]
    assert len(matches) == 1, (metric, point, [(r.metric, r.point, r.run) for r in comparison.rows])
    return matches[0]


@pytest.fixture(scope="module")
def cfg():
    return load_gate_config()


@pytest.fixture
def ivf_result() -> dict:
    return load_results(IVF_BASELINE)


# ---------------------------------------------------------------------------------------------
# End to end: the three cases of the issue


def test_unchanged_tree_passes_the_gate(tmp_path):
    # The trained Fashion-MNIST run needs the real images: without them (and outside CI) it is left out.
    with_fashion = fashion_data.available() or fashion_data.REQUIRED
    proc = python_module("bench.gate", "--out", str(tmp_path), *([] if with_fashion else ["--set", "gate.extra=[]"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "PASS" in proc.stdout and "REGRESSION" not in proc.stdout
    report = json.loads((tmp_path / "gate.json").read_text())
    # On a machine of another CPU class than the baseline's, INT8 rows without a floor read "not compared".
    assert report["passed"] and report["counts"]["ok"] + report["counts"]["not compared"] == len(report["rows"]) > 30
    assert all(r["verdict"] == "ok" for r in report["rows"] if "int8" not in r["run"])
    assert {r["run"] for r in report["rows"]} == {"mobilenet_v2/FLAT", "mobilenet_v2/IVF_FLAT", "mobilenet_v2/HNSW",
                                                  "mobilenet_v2-int8/FLAT"} | ({"fashion_cnn/FLAT"} if with_fashion
                                                                              else set())
    assert any(r["metric"] == "fidelity overlap@10" for r in report["rows"])  # the INT8 variant's fidelity is gated
    assert "| recall@10" in (tmp_path / "gate.md").read_text()


def test_worse_index_parameter_fails_the_recall_check(cfg, tmp_path):
    only_ivf = load_gate_config(overrides=["gate.indexes=[IVF_FLAT]", "gate.variants=[]", "gate.extra=[]"])
    runs = run_gate_config(only_ivf, tmp_path / "work", [WORSE_SWEEP])
    comparison = compare_paths([IVF_BASELINE], runs, cfg, only="deterministic")
    swapped = row(comparison, "recall@10", "nprobe=16 → nprobe=1")
    assert swapped.verdict == "REGRESSION" and swapped.fails
    assert swapped.baseline == 1.0 and swapped.current < 0.5
    assert "sweep position 5" in swapped.note
    for label in ("nprobe=1", "nprobe=2", "nprobe=4", "nprobe=8"):  # the untouched points still match
        assert row(comparison, "recall@10", label).verdict == "ok"
    assert not comparison.passed

    # The same through the CLI: exit status 1, the row in the Markdown written for the PR.
    proc = python_module("bench.compare", str(IVF_BASELINE), str(runs[0]), "--only", "deterministic",
                         "--out", str(tmp_path / "out"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "nprobe=16 → nprobe=1" in (tmp_path / "out" / "compare.md").read_text()


def _git_head() -> str | None:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.mark.skipif(_git_head() is None, reason="needs a git checkout with a commit to run as the baseline")
def test_slowed_preprocessing_fails_the_timing_check(cfg):
    """HEAD and the working tree run in this test, the working tree with a 50 ms sleep per batch."""
    from bench.config import ModelConfig
    from bench.gate.revisions import compare_against
    from bench.models.convert import ensure_onnx

    # Kept short for a test: one pair, no warm-up runs, the smoke sample, and both sides on the
    # checkout's ONNX cache, converted here first so that neither timed run has TensorFlow loaded.
    ensure_onnx(ModelConfig(name="mobilenet_v2", architecture="MobileNetV2", weights="random", seed=0, input_size=64,
                            preprocessing="tf", pooling="avg", embedding_dim=1280, batch_size=16, opset=17),
                REPO / "models")
    cfg = load_gate_config(overrides=["against.indexes=[FLAT]", "against.overrides=[]", "against.warmup=false",
                                      "against.share_models=true"])
    comparison = compare_against("HEAD", cfg, pairs=1, current_overrides=[SLOW_HOOK], progress=lambda _: None)
    # The throughput of the stage the sleep is in; end to end it is diluted by decoding and inference.
    throughput = row(comparison, "embed img/s decode+preprocess")
    assert throughput.verdict == "REGRESSION" and throughput.fails, throughput
    assert throughput.change < -cfg.thresholds.throughput
    assert row(comparison, "embed img/s end-to-end").change < 0
    # Nothing is asserted about the stages the sleep is not in: one un-warmed pair times them too loosely. Inference
    # measured 0.65x of HEAD's on a loaded machine and 0.56x on a quiet fresh clone, against 0.93x for the same
    # onnxruntime session timed alone after 50 ms pauses; the gate's noise rules need pairs, not this test.
    assert row(comparison, "recall@10", "default").verdict == "ok"  # the hook changes no vector
    assert comparison.exit_code == 1


# ---------------------------------------------------------------------------------------------
# The comparison rules, on the committed results with edited numbers


def test_identical_results_pass_on_every_metric(cfg, ivf_result):
    comparison = compare_pairs([([ivf_result], [copy.deepcopy(ivf_result)])], cfg)
    assert comparison.passed and {r.verdict for r in comparison.rows} == {"ok"}
    kinds = {r.kind for r in comparison.rows}
    assert kinds == {"quality", "parity", "throughput", "latency", "build"}


def test_thresholds_by_kind(cfg, ivf_result):
    current = copy.deepcopy(ivf_result)
    last = current["search"]["points"][-1]
    last["recall_at_k"] -= 0.05  # quality: an absolute drop beyond 0.01
    current["search"]["points"][0]["recall_at_k"] -= 0.005  # within the tolerance
    last["batch_qps"] *= 0.5  # throughput: -50 %
    current["search"]["points"][1]["batch_qps"] *= 0.8  # -20 %: within 30 %
    last["latency"]["p50_ms"] *= 2.0  # latency: +100 %
    current["model"]["conversion"]["parity"]["max_rel_diff"] += 1e-3  # parity
    current["search"]["points"][2]["latency"]["p50_ms"] *= 0.4  # faster
    comparison = compare_pairs([([ivf_result], [current])], cfg)
    assert row(comparison, "recall@10", "nprobe=16").verdict == "REGRESSION"
    assert row(comparison, "recall@10", "nprobe=1").verdict == "ok"
    assert row(comparison, "batch QPS", "nprobe=16").verdict == "REGRESSION"
    assert row(comparison, "batch QPS", "nprobe=2").verdict == "ok"
    assert row(comparison, "search p50 ms", "nprobe=16").verdict == "REGRESSION"
    assert row(comparison, "parity max rel diff").verdict == "REGRESSION"
    assert row(comparison, "search p50 ms", "nprobe=4").verdict == "improved"
    assert len(comparison.failures) == 4 and comparison.exit_code == 1
    table = comparison.table()
    assert list(table.columns[:8]) == ["metric", "run", "point", "baseline", "current", "change", "threshold",
                                       "verdict"]


def test_per_metric_threshold_and_floor(ivf_result):
    current = copy.deepcopy(ivf_result)
    current["search"]["points"][-1]["batch_qps"] *= 0.5
    current["index"]["load"]["load_s"] = ivf_result["index"]["load"]["load_s"] * 3  # +200 %, but milliseconds
    loose = load_gate_config(overrides=['per_metric={"batch QPS": 0.6}'])
    comparison = compare_pairs([([ivf_result], [current])], loose)
    assert row(comparison, "batch QPS", "nprobe=16").verdict == "ok"
    assert row(comparison, "index load s").verdict == "ok"  # under floors.build_s: never a regression


def test_interleaved_pairs_need_every_pair_to_agree(cfg):
    qps = Metric("batch QPS", "throughput", True)
    # Median -40 %, and every pair slower: a regression.
    assert judge(qps, [100, 100, 100], [55, 60, 70], cfg).verdict == "REGRESSION"
    # Median -40 %, but one pair faster: the spread reaches "no change", so no alarm.
    noisy = judge(qps, [100, 100, 100], [55, 60, 110], cfg)
    assert noisy.verdict == "ok" and (noisy.ratio_min, noisy.ratio_max) == (0.55, 1.1)
    # A single pair is judged on its ratio alone.
    assert judge(qps, [100], [65], cfg).verdict == "REGRESSION"


def test_missing_point_fails_for_quality_only(cfg, ivf_result):
    ivf_result["model"]["embedding"]["from_cache"] = False  # (the committed run's came from the FLAT run)
    current = copy.deepcopy(ivf_result)
    del current["search"]["points"][-1]  # nprobe=16 gone: its recall is missing
    current["model"]["embedding"]["from_cache"] = True  # no embedding timing measured this time
    comparison = compare_pairs([([ivf_result], [current])], cfg)
    assert row(comparison, "recall@10", "nprobe=16").verdict == "missing"
    assert row(comparison, "recall@10", "nprobe=16").fails
    assert row(comparison, "batch QPS", "nprobe=16").verdict == "missing"
    assert not row(comparison, "batch QPS", "nprobe=16").fails
    embed = row(comparison, "embed img/s end-to-end")
    assert embed.verdict == "missing" and not embed.fails and "cache hit" in embed.note
    # The other way round, a point only the current run has is new, and never fails.
    reverse = compare_pairs([([current], [ivf_result])], cfg)
    assert row(reverse, "recall@10", "nprobe=16").verdict == "new" and reverse.passed


def test_failed_current_run_fails(cfg, ivf_result):
    current = copy.deepcopy(ivf_result)
    current["status"], current["error"] = "failed", "BenchError: index build timed out"
    comparison = compare_pairs([([ivf_result], [current])], cfg, only="timing")  # judged even with --only timing
    status = row(comparison, "run status (1 = ok)")
    assert status.verdict == "REGRESSION" and "timed out" in status.note


def test_point_matching():
    assert match_points(["a", "b", "c"], ["a", "b", "c"]) == [(0, 0), (1, 1), (2, 2)]
    # nprobe=16 replaced by nprobe=1, which the sweep already has: same position pairs.
    assert match_points(["n1", "n2", "n16"], ["n1", "n2", "n1"]) == [(0, 0), (1, 1), (2, 2)]
    # A point inserted: the others still pair by label, the new one has no counterpart.
    assert match_points(["n1", "n4"], ["n1", "n2", "n4"]) == [(0, 0), (1, 2), (None, 1)]
    # A point removed: it is missing.
    assert match_points(["n1", "n2", "n4"], ["n1", "n4"]) == [(0, 0), (1, None), (2, 1)]


def test_gate_config_typos_are_errors(tmp_path):
    with pytest.raises(BenchError, match="latncy"):
        load_gate_config(overrides=["thresholds.latncy=0.5"])
    with pytest.raises(BenchError, match="throughput"):
        load_gate_config(overrides=["thresholds.throughput=fast"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds:\n  recal: 0.1\n")
    with pytest.raises(BenchError, match="recal"):
        load_gate_config(str(bad))
    with pytest.raises(BenchError, match="not found"):
        load_gate_config("no_such_gate")
    assert load_gate_config(overrides=["gate.thresholds.latency=0.7"]).thresholds.latency == 0.7
    assert load_gate_config(overrides=["gate.indexes=[FLAT]"]).gate.indexes == ["FLAT"]


def test_outputs_and_baseline_writer(cfg, ivf_result, tmp_path):
    comparison = compare_pairs([([ivf_result], [copy.deepcopy(ivf_result)])], cfg)
    md, js = comparison.write(tmp_path / "out")
    assert md.read_text().startswith("### bench regression gate: PASS")
    assert json.loads(js.read_text())["rows"][0]["verdict"] == "ok"
    # The baseline writer keeps results.json only, named without the sweep's job number.
    run = tmp_path / "runs" / "3_mobilenet_v2_IVF_FLAT"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(ivf_result))
    (run / "topk.npz").write_bytes(b"")
    written = write_baseline([run], tmp_path / "baseline")
    assert written == [tmp_path / "baseline" / "mobilenet_v2_IVF_FLAT" / "results.json"]
    assert sorted(p.name for p in (tmp_path / "baseline").rglob("*") if p.is_file()) == ["results.json"]
    failed = dict(ivf_result, status="failed", error="boom")
    (run / "results.json").write_text(json.dumps(failed))
    with pytest.raises(BenchError, match="failed runs"):
        write_baseline([run], tmp_path / "baseline")
