"""The Optuna studies: the tuner itself, the exhaustive grid that checks it, and each index type's default.

All live in one SQLite file in the run folder (``study.db``):

* ``<study>``: the tuner, TPE by default (tune.sampler). Single-objective: the objective alone; with
  tune.multi_objective, the objective, build seconds and index memory together (a Pareto front). A trial
  that reaches no target is infeasible through an Optuna constraint (target − recall's lower bound > 0).
* ``<study>-grid-<TYPE>``: with tune.grid_baseline, Optuna's GridSampler over each type's grid values.
* the defaults (conf/index/<TYPE>.yaml's build parameters) are evaluated the same way and kept in the tuner
  study's user attributes, so a resumed study does not rebuild them.

A rerun with the same study name resumes: trials already complete count toward tune.trials, and trials a
Ctrl-C cut short (left RUNNING, or FAIL) are not counted. The study remembers what it was asked (target,
objective, spaces, corpus), and refuses to resume under other settings.
"""
from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import optuna
from optuna.trial import TrialState

from bench.config import TuneConfig
from bench.errors import BenchError, Interrupted
from bench.measure.statistics import min_samples_for_percentile
from bench.tune.objectives import Objective
from bench.tune.spaces import Space
from bench.tune.trial import Evaluation, TrialContext, evaluate_build

log = logging.getLogger(__name__)

STUDY_FILE = "study.db"
EVALUATION = "evaluation"  # trial user attribute holding the Evaluation
SETTINGS = "settings"  # study user attribute: what the study was asked
DEFAULT_PREFIX = "default:"  # study user attributes holding each index type's default evaluation
OPTUNA_TRIAL_LOG = logging.getLogger("optuna.study._optimize")  # where Optuna logs each trial's outcome


@dataclass
class Outcome:
    """One evaluated configuration, with where it came from."""
    source: str  # tuner | grid | default
    number: int  # the Optuna trial number (-1 for a default)
    evaluation: Evaluation
    seconds: float  # wall time of the trial


class InterruptGate:
    """Ctrl-C (SIGINT) and SIGTERM stop a trial, never Optuna's bookkeeping.

    Inside a trial's own work a signal raises at once: Optuna marks the trial FAIL and passes the interrupt
    on. Between trials (Optuna storing a result, starting the next trial) it is held until the next trial
    begins, or the study ends: an interrupt in the middle of Optuna's storage update is not handled there
    (optuna 5.1 fails with an UnboundLocalError, and the trial stays RUNNING).
    """

    def __init__(self) -> None:
        self.inside = False
        self.received: Optional[int] = None  # the signal that arrived; held until a trial begins if outside one

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: object) -> None:
            self.received = signum
            if self.inside:
                raise Interrupted(signum)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
                    if signal.getsignal(sig) is not signal.SIG_IGN}
        OPTUNA_TRIAL_LOG.addFilter(self._no_failure_lines_after_an_interrupt)
        try:
            yield
            self._raise_received()
        finally:
            OPTUNA_TRIAL_LOG.removeFilter(self._no_failure_lines_after_an_interrupt)
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _no_failure_lines_after_an_interrupt(self, record: logging.LogRecord) -> bool:
        # Optuna logs the trial an interrupt cut short as failed, with the interrupt's traceback; the CLI's own
        # line says what happened and how to resume, and the traceback would bury it.
        return self.received is None

    @contextmanager
    def trial(self) -> Iterator[None]:
        self._raise_received()
        self.inside = True
        try:
            yield
        finally:
            self.inside = False

    def _raise_received(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)


def storage_url(outdir: Path) -> str:
    return f"sqlite:///{(outdir / STUDY_FILE).resolve()}"


def directions(objective: Objective, multi: bool) -> list[str]:
    return [objective.direction] + (["minimize", "minimize"] if multi else [])


def _sampler(tune: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if tune.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    # multivariate: nlist, M and efConstruction interact; TPE models them jointly.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials, multivariate=True)


def open_study(name: str, outdir: Path, sampler: Optional[optuna.samplers.BaseSampler], dirs: list[str],
               settings: Mapping[str, Any]) -> optuna.Study:
    """Create the study, or load it to resume; refuses one created under other settings."""
    storage = optuna.storages.RDBStorage(storage_url(outdir))
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, directions=dirs,
                                load_if_exists=True)
    stored = study.user_attrs.get(SETTINGS)
    wanted = json.loads(json.dumps(settings))  # as stored: tuples become lists
    if stored is None:
        study.set_user_attr(SETTINGS, wanted)
    elif stored != wanted:
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise BenchError(f"study {name!r} in {outdir / STUDY_FILE} was run with other {', '.join(changed)}: "
                         f"resume it with the same settings, or start another with tune.study=NAME")
    # A Ctrl-C or a crash leaves its trial RUNNING; nothing else runs this study now (one process).
    study_id = storage.get_study_id_from_name(name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                                       TrialState.FAIL)
    return study


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if EVALUATION in t.user_attrs]


def _optimize(study: optuna.Study, objective: Callable[[optuna.Trial], Any], n_trials: int,
              timeout: Optional[float] = None) -> None:
    gate = InterruptGate()

    def gated(trial: optuna.Trial) -> Any:
        with gate.trial():
            return objective(trial)

    with gate.installed():
        study.optimize(gated, n_trials=n_trials, timeout=timeout, gc_after_trial=False)


def _objective_fn(ctx: TrialContext, spaces: Mapping[str, Space], multi: bool,
                  on_done: Callable[[Outcome], None]) -> Callable[[optuna.Trial], Any]:
    several = len(spaces) > 1

    def objective(trial: optuna.Trial) -> Any:
        index_type = trial.suggest_categorical("index_type", list(spaces)) if several else next(iter(spaces))
        space = spaces[index_type]
        # With several types, a parameter is named after its type: IVF_FLAT's nlist is not IVF_SQ8's.
        build = {r.name: trial.suggest_int(f"{index_type}.{r.name}" if several else r.name, r.low, r.high, log=r.log)
                 for r in space.build}
        start = time.perf_counter()
        evaluation = evaluate_build(ctx, space, build)
        if evaluation.feasible and evaluation.objective is None:
            raise BenchError(f"tune.objective={ctx.objective.name} was not measured at {evaluation.describe()} "
                             f"(p99 needs {min_samples_for_percentile(99)} latency samples): raise "
                             f"search.latency_max_s")
        trial.set_user_attr(EVALUATION, evaluation.to_dict())
        # Optuna's constraint: > 0 is infeasible. The recall's lower bound must reach the target.
        low = evaluation.recall_ci[0] if evaluation.recall_ci else 0.0
        trial.set_constraint("recall_lower_bound", ctx.target - low)
        on_done(Outcome("tuner", trial.number, evaluation, time.perf_counter() - start))
        value = evaluation.objective if evaluation.feasible else ctx.objective.worst()
        if multi:
            return value, evaluation.build_s, float(evaluation.memory_bytes or 0)
        return value

    return objective


def run_tuner(ctx: TrialContext, spaces: Mapping[str, Space], tune: TuneConfig, outdir: Path,
              settings: Mapping[str, Any], on_done: Callable[[Outcome], None]) -> optuna.Study:
    study = open_study(tune.study, outdir, None, directions(ctx.objective, tune.multi_objective), settings)
    # Seeded by the trials so far: a resumed study does not draw its first trials' parameters again.
    study.sampler = _sampler(tune, tune.seed + len(study.trials))
    done = len(completed(study))
    remaining = tune.trials - done
    if done:
        log.info("resuming study %s: %d of %d trials complete (next trial number %d)", tune.study, done, tune.trials,
                 len(study.trials))
    if remaining > 0:
        _optimize(study, _objective_fn(ctx, spaces, tune.multi_objective, on_done), remaining, tune.timeout_s)
    return study


def run_grid(ctx: TrialContext, space: Space, tune: TuneConfig, outdir: Path, settings: Mapping[str, Any],
             on_done: Callable[[Outcome], None]) -> optuna.Study:
    """The exhaustive grid over one type's space (the check on the tuner); resumable as the tuner is."""
    grid = space.grid()
    sampler = optuna.samplers.GridSampler(grid, seed=tune.seed)
    study = open_study(f"{tune.study}-grid-{space.index_type}", outdir, sampler,
                       directions(ctx.objective, tune.multi_objective), {**settings, "grid": grid})
    remaining = space.grid_size() - len(completed(study))
    if remaining > 0:
        log.info("grid baseline %s: %d of %d builds to go", space.index_type, remaining, space.grid_size())
        tagged = lambda o: on_done(Outcome("grid", o.number, o.evaluation, o.seconds))  # noqa: E731
        _optimize(study, _objective_fn(ctx, {space.index_type: space}, tune.multi_objective, tagged), remaining)
    return study


def run_default(ctx: TrialContext, space: Space, default_build: Mapping[str, int], study: optuna.Study,
                on_done: Callable[[Outcome], None]) -> Outcome:
    """The index type's default build parameters at the same target; kept in the study, built once."""
    key = DEFAULT_PREFIX + space.index_type
    stored = study.user_attrs.get(key)
    if stored is not None:
        return Outcome("default", -1, Evaluation.from_dict(stored["evaluation"]), stored["seconds"])
    start = time.perf_counter()
    evaluation = evaluate_build(ctx, space, default_build)
    outcome = Outcome("default", -1, evaluation, time.perf_counter() - start)
    study.set_user_attr(key, {"evaluation": evaluation.to_dict(), "seconds": outcome.seconds})
    on_done(outcome)
    return outcome


def outcomes(study: optuna.Study, source: str) -> list[Outcome]:
    """Every completed trial of a study as an Outcome, in trial order."""
    return [Outcome(source, t.number, Evaluation.from_dict(t.user_attrs[EVALUATION]),
                    (t.duration.total_seconds() if t.duration else 0.0)) for t in completed(study)]


def defaults(study: optuna.Study) -> list[Outcome]:
    return [Outcome("default", -1, Evaluation.from_dict(v["evaluation"]), v["seconds"])
            for k, v in sorted(study.user_attrs.items()) if k.startswith(DEFAULT_PREFIX)]
