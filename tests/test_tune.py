"""`python -m bench.tune`: spaces, the search for the smallest search parameter, and real studies through the
CLI on the smoke config (64 vectors, 16 queries: about a second per trial)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from bench.config import SearchConfig, StatsConfig, TuneConfig
from bench.errors import BenchError
from bench.stores.base import SearchHits
from bench.stores.indexes import validate_index
from bench.tune import report
from bench.tune.objectives import get_objective
from bench.tune.settings import check_settings
from bench.tune.spaces import load_space
from bench.tune.study import STUDY_FILE, Outcome
from bench.tune.trial import Evaluation, TrialContext, smallest_reaching_target
from tests.conftest import REPO

# -- spaces -----------------------------------------------------------------------------------

def test_spaces_are_sized_by_the_corpus():
    space = load_space("IVF_FLAT", corpus_size=20_000, top_k=10)
    (nlist,) = space.build
    assert (nlist.low, nlist.high, nlist.log) == (8, int(16 * np.sqrt(20_000)), True)
    assert space.search.bounds({"nlist": 300}, 10, 20_000) == (1, 300)  # nprobe up to nlist
    # Never more lists than vectors: k-means cannot train them.
    assert load_space("IVF_FLAT", corpus_size=64, top_k=10).build[0].high == 64
    hnsw = load_space("HNSW", corpus_size=20_000, top_k=10)
    assert hnsw.search.bounds({"M": 8, "efConstruction": 64}, 10, 20_000)[0] == 10  # ef >= top_k
    grid = hnsw.grid()
    assert set(grid) == {"M", "efConstruction"} and hnsw.grid_size() == len(grid["M"]) * len(grid["efConstruction"])
    assert grid["M"][0] == 4 and grid["M"][-1] == 48 and grid["M"] == sorted(set(grid["M"]))


@pytest.mark.parametrize("index_type, ranges, message", [
    ("IVF_FLAT", {"nlist": [64, 8]}, "nlist range [64, 8] is empty or inverted"),
    ("HNSW", {"ef": [50, 20]}, "ef range [50, 20] is empty or inverted"),
    ("NOPE", {}, "no search space for 'NOPE' (not an index type)"),
])
def test_bad_spaces_are_one_line_errors(index_type, ranges, message):
    with pytest.raises(BenchError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        load_space(index_type, corpus_size=1000, top_k=10, ranges=ranges)


# -- the smallest search value reaching the target -----------------------------------------------

class ThresholdStore:
    """Returns the exact top-K when the search parameter is at least `threshold`, nothing otherwise; records
    the parameter of every call (one call per probe: the context batches all queries together)."""
    kind = "milvus_lite"

    def __init__(self, exact: np.ndarray, threshold: int):
        self.exact, self.threshold, self.values = exact, threshold, []

    def search(self, vectors, k, params, with_paths=False, filter=None) -> SearchHits:
        value = params["nprobe"]
        self.values.append(value)
        rows = [int(v[0]) for v in vectors]  # each query vector carries its own row number
        ids = self.exact[rows] if value >= self.threshold else np.full((len(rows), k), -1)
        return SearchHits(ids=ids, distances=np.zeros(ids.shape, dtype=np.float32))


def _context(store, queries=40, k=5, target=0.95) -> TrialContext:
    exact = np.arange(queries * k).reshape(queries, k)
    store.exact = exact
    vectors = np.arange(queries, dtype=np.float32).reshape(queries, 1)
    return TrialContext(store=store, metadata=None, queries=vectors, exact_ids=exact, corpus_size=1000, dim=1,
                        search=SearchConfig(top_k=k, query_batch_size=64), stats=StatsConfig(bootstrap_resamples=200),
                        target=target, objective=get_objective("batch_qps"))


@pytest.mark.parametrize("threshold", [1, 2, 7, 100, 513, 1000])
def test_the_search_finds_the_smallest_value_reaching_the_target(threshold):
    store = ThresholdStore(np.zeros((1, 1)), threshold)
    value, recall, interval, probes = smallest_reaching_target(_context(store), "nprobe", 1, 1000)
    assert value == threshold and recall == 1.0 and interval == [1.0, 1.0]
    # Galloping then bisecting: about 2·log2(threshold) probes, and never a value far above the answer.
    assert probes == len(store.values) <= 2 * int(np.log2(threshold)) + 2
    assert max(store.values) <= min(1000, 2 * threshold)


def test_a_target_no_value_reaches_returns_the_largest_tried():
    store = ThresholdStore(np.zeros((1, 1)), threshold=10**6)
    value, recall, interval, _ = smallest_reaching_target(_context(store), "nprobe", 1, 300)
    assert value == 300 and recall == 0.0 and interval == [0.0, 0.0]


# -- the CLI, on the smoke config ----------------------------------------------------------------

def tune_cli(workspace, run_dir: Path, *args: str, background: bool = False):
    # store=faiss has no store.uri: the workspace's Milvus file is left out there.
    overrides = [o for o in workspace.overrides if not ("store=faiss" in args and o.startswith("store.uri="))]
    argv = [sys.executable, "-m", "bench.tune", "experiment=smoke", *overrides,
            f"hydra.run.dir={run_dir}", "tune.startup_trials=2", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if background:
        log = open(run_dir.parent / f"{run_dir.name}.log", "w")
        # Its own session with the default SIGINT handler, like a terminal's foreground job.
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def trial_numbers(run_dir: Path, study: str, state=optuna.trial.TrialState.COMPLETE) -> list[int]:
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{run_dir / STUDY_FILE}")
    return [t.number for t in loaded.get_trials(states=(state,))]


@pytest.mark.parametrize("changes, message", [
    ({"target_recall": 0.0}, "tune.target_recall=0.0 must lie in (0, 1]"),
    ({"target_recall": 1.01}, "tune.target_recall=1.01 must lie in (0, 1]"),
    ({"index_types": []}, "tune.index_types is empty"),
    ({"trials": 0}, "tune.trials=0 must be >= 1"),
    ({"sampler": "nsga2"}, "tune.sampler=nsga2 is for tune.multi_objective=true"),
])
def test_settings_are_checked(changes, message):
    with pytest.raises(BenchError) as err:
        check_settings(TuneConfig(**changes))
    assert message in str(err.value)


@pytest.mark.parametrize("args, message", [
    (["tune.target_recall=1.5"], "tune.target_recall=1.5 must lie in (0, 1]"),
    (["+tune.ranges.nlist=[64,8]"], "tune.ranges.nlist=[64, 8] is empty or inverted"),
    (["tune.index_types=[IVF_FLAT,FOO]"], "no search space for 'FOO'"),
])
def test_bad_input_is_one_line_and_exit_2(workspace, tmp_path, args, message):
    proc = tune_cli(workspace, tmp_path / "run", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()  # refused before any work, and the folder Hydra made is gone


def test_bad_input_on_an_existing_study_keeps_its_folder(workspace, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / STUDY_FILE).write_bytes(b"a study's results")
    (run_dir / "bench.log").write_text("the log of its earlier runs\n")
    assert tune_cli(workspace, run_dir, "tune.target_recall=0").returncode == 2
    assert (run_dir / STUDY_FILE).read_bytes() == b"a study's results"
    assert (run_dir / "bench.log").read_text().startswith("the log of its earlier runs")


@pytest.fixture(scope="module")
def study_run(workspace, tmp_path_factory):
    """A small IVF_FLAT study with its grid baseline and default, on the smoke corpus."""
    run_dir = tmp_path_factory.mktemp("tune") / "study"
    proc = tune_cli(workspace, run_dir, "tune.trials=3", "tune.study=small", "tune.grid_baseline=true",
                    "tune.final_rounds=1", "+tune.ranges.nlist=[8,10]")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir, proc


def test_a_small_study_recommends_a_feasible_configuration(study_run):
    run_dir, proc = study_run
    recommended = yaml.safe_load((run_dir / "recommendation.yaml").read_text())
    # The best of every build: the tuner's or the grid's (nlist 8..10), or the default's (16).
    assert recommended["type"] == "IVF_FLAT" and recommended["build"]["nlist"] in (8, 9, 10, 16)
    validate_index("IVF_FLAT", recommended["build"], recommended["search"], store="milvus_lite", metric="IP",
                   top_k=10)
    # The recommended recall's lower bound reaches the target, as the table says.
    table = (run_dir / "tuning.csv").read_text().splitlines()
    best = next(row for row in table if ",best," in row)
    low = float(best.split(",")[6].split("–")[0])
    assert low >= 0.95
    assert "python -m bench experiment=smoke" in proc.stdout and "index=IVF_FLAT index.build.nlist=" in proc.stdout
    for name in ("tuning.md", "history.png", "pareto.png", "corpus.json", STUDY_FILE):
        assert (run_dir / name).stat().st_size > 0, name
    assert "tuning cost: tuner: 3 builds" in proc.stdout


def test_the_grid_baseline_builds_every_grid_value(study_run):
    run_dir, proc = study_run
    grid_values = sorted({int(round(v)) for v in np.geomspace(8, 10, 12)})  # conf/tune/IVF_FLAT.yaml: grid 12
    grid = optuna.load_study(study_name="small-grid-IVF_FLAT", storage=f"sqlite:///{run_dir / STUDY_FILE}")
    built = sorted(t.params["nlist"] for t in grid.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    assert built == grid_values
    assert f"grid: {len(grid_values)} builds" in proc.stdout
    assert "| grid " in proc.stdout and "vs grid best" in proc.stdout
    # The three bests (tuner, grid, default; fewer when one configuration is the best of two) timed again.
    assert "batch QPS back to back" in proc.stdout
    assert re.search(r"back-to-back check: [1-3] builds", proc.stdout)


def test_nothing_reaching_the_target_is_one_line(workspace, tmp_path):
    # One probe per list of up to 64 never finds all of the top 10 for every one of 16 queries.
    proc = tune_cli(workspace, tmp_path / "run", "tune.trials=2", "tune.target_recall=1.0",
                    "+tune.ranges.nlist=[32,64]", "+tune.ranges.nprobe=[1,1]", "tune.measure_default=false")
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: no configuration reached recall ≥ 1 (lower 95 % bound) in 2 trials; "
                           "the best reached 0."), line
    assert "at IVF_FLAT nlist=" in line and "nprobe=1" in line


def test_ctrl_c_then_the_same_command_resumes_the_numbering(workspace, tmp_path):
    run_dir = tmp_path / "run"
    args = ("tune.study=resumed", "tune.measure_default=false")
    first = tune_cli(workspace, run_dir, "tune.trials=40", *args, background=True)
    log = tmp_path / "run.log"
    deadline = time.monotonic() + 180
    while "tuner 1:" not in log.read_text():  # two trials complete, the third under way
        assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 130, log.read_text()[-3000:]
    assert "rerun the same command to resume it" in log.read_text()
    assert "Traceback" not in log.read_text() and "failed with" not in log.read_text()  # Optuna's own lines
    done = trial_numbers(run_dir, "resumed")
    assert len(done) >= 2 and done == list(range(len(done)))

    second = tune_cli(workspace, run_dir, f"tune.trials={len(done) + 2}", *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming study resumed: {len(done)} of {len(done) + 2} trials complete" in second.stderr
    resumed = trial_numbers(run_dir, "resumed")
    # The interrupted trial stays FAIL under its number; the new ones come after it.
    assert resumed[:len(done)] == done and len(resumed) == len(done) + 2 and resumed[-1] > resumed[-2] > done[-1]


def test_multi_objective_mode_gives_a_pareto_front(workspace, tmp_path):
    run_dir = tmp_path / "run"
    proc = tune_cli(workspace, run_dir, "tune.trials=2", "tune.multi_objective=true", "tune.measure_default=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / STUDY_FILE}")
    assert len(loaded.directions) == 3 and loaded.best_trials  # objective, build seconds, index memory
    assert "## Pareto front of the tuner's trials (objective, build s, index memory; Optuna's)" in \
        (run_dir / "tuning.md").read_text()


# -- the report ----------------------------------------------------------------------------------

def _outcome(number: int, qps: float, spread: float, nlist: int = 64, feasible: bool = True, source: str = "tuner"):
    evaluation = Evaluation(index_type="IVF_FLAT", build={"nlist": nlist}, search_param="nprobe", feasible=feasible,
                            search_value=8, recall=0.97, recall_ci=[0.955, 0.98],
                            objective=qps if feasible else None,
                            objective_range=[qps - spread, qps + spread] if feasible else None,
                            build_s=1.0 + number, memory_bytes=1000 * nlist)
    return Outcome(source, number, evaluation, 2.0)


def test_the_best_and_its_near_ties_within_the_noise():
    objective = get_objective("batch_qps")
    outcomes = [_outcome(0, 100, 5), _outcome(1, 180, 10), _outcome(2, 172, 5), _outcome(3, 150, 5),
                _outcome(4, 0, 0, feasible=False)]
    winner = report.best(outcomes, objective)
    assert winner.number == 1
    assert [o.number for o in report.near_ties(winner, outcomes, objective)] == [2]  # 167–177 overlaps 170–190
    table = report.trial_table(outcomes, objective, 10, winner)
    assert list(table["vs best"]) == ["", "best", "≈", "", ""]
    assert table["batch QPS"].iloc[4] == "infeasible"
    # Trial 0 builds fastest, 1 searches fastest; 2 and 3 search slower than 1 and take longer to build (same
    # memory): dominated. The infeasible trial is never on the front.
    front = {o.number for o in report.pareto_front(outcomes, objective)}
    assert front == {0, 1}


def test_the_recommendation_is_a_command_line_and_an_index_config():
    objective = get_objective("batch_qps")
    winner = _outcome(1, 180, 10, nlist=290)
    command = report.command_line(winner, ["experiment=smoke", "dataset.sample_sides=[64,128]"])
    assert command == ("python -m bench experiment=smoke 'dataset.sample_sides=[64,128]' index=IVF_FLAT "
                       "index.build.nlist=290 'index.search=[{nprobe:8}]'")
    config = yaml.safe_load(report.recommendation_yaml(winner, {"nlist": 16}, 0.95, objective, "s"))
    assert config == {"type": "IVF_FLAT", "build": {"nlist": 290}, "search": [{"nprobe": 8}]}


def test_a_bare_index_library_is_refilled_before_each_rebuild(workspace, tmp_path):
    """store=faiss builds once per fill: the tuner refills it, so every trial is a fresh build."""
    run_dir = tmp_path / "run"
    proc = tune_cli(workspace, run_dir, "store=faiss", "tune.trials=2", "tune.final_rounds=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(trial_numbers(run_dir, "mobilenet_v2_coco_sample_faiss_IVF_FLAT_batch_qps_r0.95")) == 2
    assert "back-to-back check:" in proc.stdout and "recommended (" in proc.stdout
