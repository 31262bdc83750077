"""What a study found, as tables: every trial, the recommendation with its near-ties, the tuner beside the
grid and the defaults, and the cost.

A configuration is better than another only outside the noise: when two objective ranges overlap
(bench.measure.statistics.significantly_different is False), neither wins and the table marks them ``≈``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from bench.measure.statistics import APPROX, as_interval, significantly_different
from bench.tune.objectives import Objective
from bench.tune.study import Outcome
from bench.tune.trial import Evaluation


def _fmt(value: Optional[float], digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _interval(interval: Optional[Sequence[float]], digits: int) -> str:
    return "–" if not interval else f"{interval[0]:.{digits}f}–{interval[1]:.{digits}f}"


def _digits(objective: Objective) -> int:
    return 2 if objective.name == "p99_ms" else 1


def feasible(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.evaluation.feasible and o.evaluation.objective is not None]


def best(outcomes: Sequence[Outcome], objective: Objective) -> Optional[Outcome]:
    """The feasible outcome with the best objective (the earliest trial among equals)."""
    winner = None
    for outcome in feasible(outcomes):
        if winner is None or objective.better(outcome.evaluation.objective, winner.evaluation.objective):
            winner = outcome
    return winner


def within_noise(a: Outcome, b: Outcome) -> bool:
    """Whether two outcomes' objective ranges overlap: no winner between them."""
    return not significantly_different(as_interval(a.evaluation.objective_range),
                                       as_interval(b.evaluation.objective_range))


def near_ties(winner: Outcome, outcomes: Sequence[Outcome], objective: Objective) -> list[Outcome]:
    """Feasible outcomes other than ``winner`` within its noise, best first."""
    ties = [o for o in feasible(outcomes) if o is not winner and within_noise(o, winner)]
    return sorted(ties, key=lambda o: o.evaluation.objective, reverse=objective.direction == "maximize")


def trial_table(outcomes: Sequence[Outcome], objective: Objective, k: int, winner: Optional[Outcome] = None
                ) -> pd.DataFrame:
    """One row per build: its parameters, recall with its interval, the objective with its range (``≈`` when
    within the noise of the winner's), build seconds and estimated index memory."""
    digits = _digits(objective)
    rows = []
    for o in outcomes:
        e = o.evaluation
        mark = ""
        if winner is not None and e.feasible:
            mark = "best" if o is winner else (APPROX if within_noise(o, winner) else "")
        rows.append({
            "source": o.source, "trial": o.number if o.number >= 0 else "–", "index": e.index_type,
            "build": ", ".join(f"{k_}={v}" for k_, v in e.build.items()),
            "search": (f"{e.search_param}={e.search_value}" if e.feasible
                       else f"none ({e.search_param}≤{e.search_value})"),
            f"recall@{k}": _fmt(e.recall, 3), "recall 95% CI": _interval(e.recall_ci, 3),
            objective.label: _fmt(e.objective, digits) if e.feasible else "infeasible",
            f"{objective.label} range": _interval(e.objective_range, digits),
            "vs best": mark, "build s": _fmt(e.build_s, 1),
            "index MiB (est.)": _fmt(e.memory_bytes / 2**20 if e.memory_bytes is not None else None, 1),
            "probes": e.probes, "trial s": _fmt(o.seconds, 1)})
    return pd.DataFrame(rows)


def pareto_front(outcomes: Sequence[Outcome], objective: Objective, with_memory: bool = True) -> list[Outcome]:
    """Feasible outcomes no other beats on all of objective, build seconds and (``with_memory``) index memory
    (plain dominance: the build time and memory of one build have no trials to give them a range)."""
    def key(o: Outcome) -> tuple[float, ...]:
        sign = -1.0 if objective.direction == "maximize" else 1.0
        memory = (float(o.evaluation.memory_bytes or 0),) if with_memory else ()
        return (sign * o.evaluation.objective, o.evaluation.build_s, *memory)

    candidates = feasible(outcomes)
    front = [o for o in candidates
             if not any(all(a <= b for a, b in zip(key(p), key(o))) and key(p) != key(o) for p in candidates)]
    return sorted(front, key=key)


@dataclass
class SideBySide:
    label: str
    outcome: Optional[Outcome]  # the best this source found, as its study measured it
    builds: int
    seconds: float
    retimed: Optional[Outcome] = None  # the same configuration timed again, back to back with the others


def comparison_table(rows: Sequence[SideBySide], objective: Objective) -> pd.DataFrame:
    """The tuner, the grid and the default at the same target: builds used, the objective as each study measured
    it, and, where the finalists were timed again back to back (:func:`combine_rounds`), that objective and the
    ratios between them (``≈`` where within the noise); otherwise the ratios of the studies' own figures."""
    digits = _digits(objective)
    measured = {row.label: (row.retimed or row.outcome) for row in rows}
    out = []
    for row in rows:
        e = row.outcome.evaluation if row.outcome else None
        mine = measured[row.label]

        def ratio(other_label: str) -> str:
            other = measured.get(other_label)
            if mine is None or other is None or other_label == row.label:
                return "–"
            value = mine.evaluation.objective / other.evaluation.objective
            if objective.direction == "minimize":
                value = 1 / value  # > 1 means better for either direction
            return f"×{value:.2f}" + (f" {APPROX}" if within_noise(mine, other) else "")

        again = row.retimed.evaluation if row.retimed else None
        out.append({"": row.label, "builds": row.builds, "wall s": _fmt(row.seconds, 0),
                    "configuration": e.describe() if e else "none reached the target",
                    "recall@K": _fmt(e.recall, 3) if e else "–",
                    f"{objective.label} in its study": (f"{_fmt(e.objective, digits)} "
                                                        f"({_interval(e.objective_range, digits)})" if e else "–"),
                    f"{objective.label} back to back": (f"{_fmt(again.objective, digits)} "
                                                        f"({_interval(again.objective_range, digits)})"
                                                        if again else "–"),
                    "vs default": ratio("default"), "vs grid best": ratio("grid")})
    return pd.DataFrame(out)


def combine_rounds(source: str, number: int, rounds: Sequence[Evaluation], seconds: float) -> Outcome:
    """One configuration timed in several rounds: the median of the rounds' objectives, and the range spanning
    every round's range."""
    first = rounds[0]
    ranges = [r.objective_range for r in rounds if r.objective_range]
    combined = Evaluation(**{**first.to_dict(), "objective": float(np.median([r.objective for r in rounds])),
                             "objective_range": [min(r[0] for r in ranges), max(r[1] for r in ranges)] if ranges
                             else None, "build_s": float(np.median([r.build_s for r in rounds]))})
    return Outcome(source, number, combined, seconds)


def recommendation_yaml(winner: Outcome, default_build: dict[str, Any], target: float, objective: Objective,
                        study: str) -> str:
    """conf/index/ YAML for the recommended configuration: drop it in as conf/index/<NAME>.yaml."""
    e = winner.evaluation
    lines = [f"# Tuned by `python -m bench.tune` (study {study}): the fastest {e.index_type} by {objective.label}",
             f"# whose recall@K lower 95 % bound reached {target}: recall {e.recall:.3f} "
             f"[{e.recall_ci[0]:.3f}, {e.recall_ci[1]:.3f}], "
             f"{objective.label} {_fmt(e.objective, _digits(objective))}.",
             f"# The default (conf/index/{e.index_type}.yaml) builds with "
             + (", ".join(f"{k}={v}" for k, v in default_build.items()) or "no parameters") + ".",
             f"type: {e.index_type}", "build:"]
    lines += [f"  {k}: {v}" for k, v in e.build.items()]
    lines += ["search:", f"  - {{{e.search_param}: {e.search_value}}}"]
    return "\n".join(lines) + "\n"


def command_line(winner: Outcome, overrides: Sequence[str]) -> str:
    """`python -m bench` with the run's own overrides (model, dataset, store) and the recommended index."""
    e = winner.evaluation
    parts = ["python -m bench", *(_quote(o) for o in overrides), f"index={e.index_type}"]
    parts += [f"index.build.{k}={v}" for k, v in e.build.items()]
    parts.append(f"'index.search=[{{{e.search_param}:{e.search_value}}}]'")
    return " ".join(parts)


def _quote(override: str) -> str:
    return f"'{override}'" if any(c in override for c in "[]{}$ ,*") else override


def no_target_message(outcomes: Sequence[Outcome], target: float, trials: int) -> str:
    """One line: nothing reached the target, and the best recall any build reached, where."""
    reached = [o for o in outcomes if o.evaluation.recall is not None]
    if not reached:
        return f"no configuration reached recall ≥ {target:g} in {trials} trials"
    top = max(reached, key=lambda o: o.evaluation.recall)
    return (f"no configuration reached recall ≥ {target:g} (lower 95 % bound) in {trials} trials; the best reached "
            f"{top.evaluation.recall:.3f} at {top.evaluation.describe()}")


def cost_lines(rows: Sequence[SideBySide], session_s: float, rounds: int) -> list[str]:
    parts = [f"{row.label}: {row.builds} build{'s' if row.builds != 1 else ''}, {_fmt(row.seconds, 0)} s"
             for row in rows if row.builds]
    retimed = {id(row.retimed): row.retimed for row in rows if row.retimed is not None}
    if retimed:
        parts.append(f"back-to-back check: {rounds * len(retimed)} builds, "
                     f"{_fmt(sum(o.seconds for o in retimed.values()), 0)} s")
    return [f"tuning cost: {'; '.join(parts)} (trial wall times, all runs of the study); this run {session_s:.0f} s"]


def to_markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False) if not df.empty else "(none)"


def summary_lines(winner: Optional[Outcome], ties: Sequence[Outcome], objective: Objective) -> list[str]:
    if winner is None:
        return []
    digits = _digits(objective)
    e = winner.evaluation
    source = f"{winner.source} trial {winner.number}" if winner.number >= 0 else winner.source
    lines = [f"recommended ({source}): {e.describe()}: {objective.label} {_fmt(e.objective, digits)} "
             f"({_interval(e.objective_range, digits)}), recall {e.recall:.3f} ({_interval(e.recall_ci, 3)})"]
    for tie in ties:
        t = tie.evaluation
        lines.append(f"  {APPROX} {t.describe()} ({tie.source}): {objective.label} {_fmt(t.objective, digits)} "
                     f"({_interval(t.objective_range, digits)}) within the noise")
    return lines
