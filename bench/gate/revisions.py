"""Run the benchmark on isolated scratch folders, and on a git revision beside the working tree.

Timings from a shared CI runner move 15-25 % between runs, and a baseline measured last week on
another machine says nothing about today's. So timings are compared the way ``asv continuous``
does it: the base revision and the change run in the same job, one after the other, in pairs,
and each timing is judged on the median of the per-pair ratios. The order alternates between
pairs (A B, B A, A B ...) so that a machine that warms up or slows down during the job favours
neither side. Both sides use the same interpreter and venv; only the ``bench`` code and
``conf/`` come from the revision (its own ``git worktree`` in a temporary folder).

Every run writes into its own scratch folder (store, embeddings, outputs), so no run reuses
another's cache and every timing is measured, not copied from a cache hit. Each side converts
its ONNX model and draws its sample once, in its first run, into its own folder: the first pair
then pays that cost on both sides alike.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

from bench import PROJECT_ROOT
from bench.errors import BenchError
from bench.gate.comparison import compare_pairs, load_side
from bench.gate.table import Comparison
from bench.gate.config import GateConfig

REPO = PROJECT_ROOT
RUN_TIMEOUT_S = 600


def bench_overrides(workdir: Path, *, experiment: str, indexes: Sequence[str], overrides: Sequence[str] = (),
                    models_dir: Optional[Path] = None, data_dir: Optional[Path] = None) -> list[str]:
    """`python -m bench -m` arguments that keep everything a run writes inside ``workdir``.

    ``models_dir``/``data_dir`` left None use the tree's own ONNX cache and sample (its
    ``models/`` and ``data/``), which are keyed by everything that changes them.
    """
    args = ["-m", f"experiment={experiment}", f"index={','.join(indexes)}", "report_on_multirun=false",
            f"hydra.sweep.dir={workdir / 'runs'}", f"store.uri={workdir / 'milvus_lite.db'}",
            f"embeddings_dir={workdir / 'embeddings'}"]
    if models_dir is not None:
        args.append(f"cache_dir={models_dir}")
    if data_dir is not None:
        args.append(f"dataset.root={data_dir}")
    return args + list(overrides)


def run_bench(tree: Path, workdir: Path, args: Sequence[str], *, timeout: float = RUN_TIMEOUT_S) -> list[Path]:
    """Run ``python -m bench ARGS`` with the code and configs of ``tree``; return its run folders.

    The output goes to ``workdir/bench.log``; a failed start raises BenchError quoting its end.
    A job that fails inside a sweep is recorded in its results.json, which the comparison reports.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "bench.log"
    # cwd and PYTHONPATH both point at the tree, so `bench` is imported from it and not from the
    # editable install of the main checkout.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "bench", *args]
    with open(log_path, "w") as log:
        log.write(f"$ cd {tree} && {' '.join(command)}\n")
        log.flush()
        try:
            proc = subprocess.run(command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"`python -m bench` in {tree} ran over {timeout:.0f} s: see {log_path}") from None
    runs_dir = workdir / "runs"
    runs = sorted(p.parent for p in runs_dir.rglob("results.json")) if runs_dir.is_dir() else []
    if proc.returncode != 0 or not runs:
        tail = log_path.read_text().strip().splitlines()[-3:]
        raise BenchError(f"`python -m bench` in {tree} exited {proc.returncode} with "
                         f"{len(runs)} run(s): {' | '.join(tail)} (full log: {log_path})")
    return runs


def _git(*args: str, cwd: Path = REPO) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BenchError(f"git {' '.join(args)} failed ({err}): is git installed?") from None
    if proc.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'}")
    return proc.stdout.strip()


@contextmanager
def worktree(rev: str, parent: Path, repo: Path = REPO) -> Iterator[tuple[Path, str]]:
    """A detached ``git worktree`` of ``rev`` under ``parent``, removed afterwards; yields (path, sha)."""
    try:
        sha = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=repo)
    except BenchError:
        raise BenchError(f"--against {rev}: no such commit here (for a PR base: git fetch origin, "
                         "or actions/checkout with fetch-depth: 0)") from None
    path = parent / f"rev-{sha[:12]}"
    _git("worktree", "add", "--detach", "--quiet", str(path), sha, cwd=repo)
    try:
        yield path, sha
    finally:
        try:
            _git("worktree", "remove", "--force", str(path), cwd=repo)
        except BenchError:
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=repo, capture_output=True)


def interleaved_runs(rev: str, cfg: GateConfig, workdir: Path, *, pairs: Optional[int] = None,
                     current_overrides: Sequence[str] = (), repo: Path = REPO,
                     progress=print) -> tuple[list[tuple[list[Path], list[Path]]], str]:
    """Run ``rev`` and the working tree in ``pairs`` interleaved pairs; return their run folders and rev's sha."""
    spec = cfg.against
    pairs = pairs if pairs is not None else spec.pairs
    if pairs < 1:
        raise BenchError(f"--pairs={pairs} must be at least 1")
    results: list[tuple[list[Path], list[Path]]] = []
    with worktree(rev, workdir, repo) as (base_tree, sha):
        trees = {"baseline": base_tree, "current": repo}
        extra = {"baseline": list(spec.overrides), "current": list(spec.overrides) + list(current_overrides)}

        def run(side: str, name: str) -> list[Path]:
            folder = workdir / f"{name}-{side}"
            models = (repo / "models") if spec.share_models else workdir / f"{side}-models"
            args = bench_overrides(folder, experiment=spec.experiment, indexes=spec.indexes, overrides=extra[side],
                                   models_dir=models, data_dir=workdir / f"{side}-sample")
            started = time.perf_counter()
            runs = run_bench(trees[side], folder, args)
            label = sha[:12] if side == "baseline" else "working tree"
            progress(f"{name}: {side:8s} ({label}) {time.perf_counter() - started:5.1f} s")
            return runs

        if spec.warmup:
            _check_revision(run("baseline", "warmup"), sha)
            run("current", "warmup")
        for n in range(pairs):
            order = ("baseline", "current") if n % 2 == 0 else ("current", "baseline")
            runs = {side: run(side, f"pair{n + 1}") for side in order}
            results.append((runs["baseline"], runs["current"]))
        _check_revision(results[0][0], sha)
    return results, sha


def _check_revision(runs: list[Path], sha: str) -> None:
    """The baseline runs must have run REV's code, not the main checkout's (an import-path mistake)."""
    for result in load_side(runs):
        commit = result.provenance.git_commit or ""
        if not commit.startswith(sha):
            raise BenchError(f"the baseline run recorded commit {commit or 'none'}, not {sha[:12]}: "
                             "bench was imported from the wrong tree")


def compare_against(rev: str, cfg: GateConfig, *, pairs: Optional[int] = None, only: str = "all",
                    current_overrides: Sequence[str] = (), keep: bool = False, repo: Path = REPO,
                    progress=None) -> Comparison:
    """``python -m bench.compare --against REV``: interleaved runs of REV and the working tree, compared."""
    progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    workdir = Path(tempfile.mkdtemp(prefix="bench-against-"))
    try:
        progress(f"running {rev} and the working tree interleaved in {workdir}")
        pair_dirs, sha = interleaved_runs(rev, cfg, workdir, pairs=pairs, current_overrides=current_overrides,
                                          repo=repo, progress=progress)
        loaded = [(load_side(base), load_side(cur)) for base, cur in pair_dirs]
        comparison = compare_pairs(loaded, cfg, only=only, baseline=f"{rev} ({sha[:12]})",
                                   current="working tree" + (f" with {' '.join(current_overrides)}"
                                                             if current_overrides else ""))
        if len(pair_dirs) > 1:
            comparison.mode = "interleaved"
        return comparison
    finally:
        if keep:
            progress(f"kept the runs in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
