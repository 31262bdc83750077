"""The quality figures respond to a trained model: the committed Fashion-MNIST CNN (two training seeds)
against the same architecture with random weights (two initialisation seeds), through
`model.source=keras_file` on 2,000 real test images (`experiment=fashion_mnist`), index FLAT.

Every comparison is between 95 % intervals (bootstrap over the 200 queries), never point values.
Run with `-s` to see the table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.measure.statistics import bootstrap_ci
from bench.report.agreement import align_rows, pair_agreement_per_query
from bench.results import find_runs, load_results
from tests import fashion_data
from tests.conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "fashion_cnn"
K = 10
RANDOM_WARNING = "Random weights"


def multirun(out: Path, workspace: Path, *sweep: str) -> list[Path]:
    proc = run_cli(["-m", "experiment=fashion_mnist", "index=FLAT", f"dataset.root={fashion_data.require()}",
                    f"cache_dir={workspace / 'models'}", f"embeddings_dir={workspace / 'embeddings'}",
                    f"store.uri={workspace / 'milvus_lite.db'}", f"hydra.sweep.dir={out}", "search.concurrency=[1]",
                    "search.latency_max_s=0.5", *sweep])
    assert proc.returncode == 0, proc.stderr[-5000:]
    return find_runs([out])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[Path]]:
    fashion_data.require()
    workspace = tmp_path_factory.mktemp("fashion-quality")
    trained = multirun(workspace / "trained", workspace,
                       f"model.path={FIXTURES / 'fashion_cnn_s0.keras'},{FIXTURES / 'fashion_cnn_s1.keras'}")
    random = multirun(workspace / "random", workspace, "model.weights=random", "model.seed=0,1")
    return {"trained": trained, "random": random}


def exact_ids(run: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(run / "topk.npz") as arrays:
        return arrays["query_ids"], arrays["exact_ids"]


def overlap(pair: list[Path]) -> tuple[float, list[float]]:
    """overlap@10 of the two runs' exact top-10 on the same queries, with its bootstrap interval."""
    (queries_a, ids_a), (queries_b, ids_b) = exact_ids(pair[0]), exact_ids(pair[1])
    per_query = pair_agreement_per_query(ids_a, align_rows(queries_a, queries_b, ids_b), K)["overlap"]
    return float(per_query.mean()), bootstrap_ci(per_query, resamples=2000)


def label(result: dict) -> str:
    weights = result["model"]["weights"]
    return f"random, seed {weights['seed']}" if weights["kind"] == "random" else \
        f"trained, {Path(weights['source']).name}"


def test_trained_beats_random_with_intervals_apart(runs):
    results = {kind: [load_results(run) for run in paths] for kind, paths in runs.items()}
    agreement = {kind: overlap(paths) for kind, paths in runs.items()}
    lines = ["| model | precision@10 [95 % CI] | mAP@10 (min(K, R)) [95 % CI] |",
             "|---|---|---|"]
    for result in results["trained"] + results["random"]:
        exact = result["exact"]
        lines.append(f"| {label(result)} | {exact['precision_at_k']:.3f} [{exact['precision_at_k_ci95'][0]:.3f}, "
                     f"{exact['precision_at_k_ci95'][1]:.3f}] | {exact['map_at_k']:.3f} "
                     f"[{exact['map_at_k_ci95'][0]:.3f}, {exact['map_at_k_ci95'][1]:.3f}] |")
    lines += ["", "| pair | overlap@10 of the exact top-10 [95 % CI] |", "|---|---|"]
    for kind, (mean, (low, high)) in agreement.items():
        lines.append(f"| two {kind} seeds | {mean:.3f} [{low:.3f}, {high:.3f}] |")
    print("\n" + "\n".join(lines))

    assert all(r["status"] == "ok" and r["dataset"]["num_queries"] == 200 for v in results.values() for r in v)
    for trained in results["trained"]:
        assert trained["model"]["weights"]["kind"] == "file"
        for random in results["random"]:
            for metric in ("precision_at_k", "map_at_k"):
                low, high = trained["exact"][f"{metric}_ci95"][0], random["exact"][f"{metric}_ci95"][1]
                assert low > high, (metric, label(trained), label(random), low, high)
    # Two trained seeds agree more on the neighbours than two random initialisations do.
    assert agreement["trained"][1][0] > agreement["random"][1][1], agreement


def test_the_random_weights_warning_is_in_the_random_summary_only(runs):
    trained = (runs["trained"][0].parent / "report" / "summary.txt").read_text()
    random = (runs["random"][0].parent / "report" / "summary.txt").read_text()
    assert RANDOM_WARNING not in trained
    assert RANDOM_WARNING in random
