"""The checks on `python -m bench.tune`'s settings that need no corpus, each a one-line error (exit 2).

Kept apart from the modules that run a study, so that bad input is refused before TensorFlow, onnxruntime
and the store are imported (seconds).
"""
from __future__ import annotations

from bench.config import Config, TuneConfig
from bench.errors import BenchError
from bench.stores.indexes import validate_index
from bench.tune.objectives import get_objective
from bench.tune.spaces import SPACES_DIR, available_in

SAMPLERS = ("tpe", "random", "nsga2")


def check_settings(tune: TuneConfig) -> None:
    """The checks that need no corpus: one line and exit 2 each."""
    if not 0 < tune.target_recall <= 1:
        raise BenchError(f"tune.target_recall={tune.target_recall} must lie in (0, 1], e.g. 0.95")
    if not tune.index_types:
        raise BenchError("tune.index_types is empty: name at least one, e.g. tune.index_types=[IVF_FLAT,HNSW]")
    if tune.trials < 1 or tune.startup_trials < 0:
        raise BenchError(f"tune.trials={tune.trials} must be >= 1 and tune.startup_trials={tune.startup_trials} >= 0")
    if tune.timeout_s is not None and tune.timeout_s <= 0:
        raise BenchError(f"tune.timeout_s={tune.timeout_s} must be positive (or null for none)")
    if tune.sampler not in SAMPLERS:
        raise BenchError(f"tune.sampler={tune.sampler!r} is unknown: choose one of {', '.join(SAMPLERS)}")
    if tune.sampler == "nsga2" and not tune.multi_objective:
        raise BenchError("tune.sampler=nsga2 is for tune.multi_objective=true; use tpe or random for one objective")


def check(cfg: Config) -> None:
    """Everything that can fail before the corpus is prepared: one line, exit 2."""
    tune = cfg.tune
    check_settings(tune)
    get_objective(tune.objective)
    known = available_in(SPACES_DIR)
    for index_type in tune.index_types:
        if index_type not in known:
            raise BenchError(f"tune.index_types: no search space for {index_type!r}: choose from "
                             f"{', '.join(known)} (conf/tune/)")
        validate_index(index_type, {}, [{}], store=cfg.store.kind, metric=cfg.search.metric, top_k=cfg.search.top_k)
    for name, bounds in tune.ranges.items():
        if len(bounds) != 2 or not 1 <= bounds[0] <= bounds[1]:
            raise BenchError(f"tune.ranges.{name}={list(bounds)} is empty or inverted: give [low, high] with "
                             f"1 <= low <= high")
