"""The study's figures with matplotlib (Agg): the optimisation history and the Pareto front, as PNG files.

Error bars are the objective's range across the interleaved timing trials; infeasible builds (no search
value reached the target) have no objective and are drawn on the recall panel only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from bench.report.plots import _png, plt
from bench.tune.objectives import Objective
from bench.tune.report import feasible, pareto_front
from bench.tune.study import Outcome

SOURCES = {"tuner": ("tab:blue", "o"), "grid": ("tab:gray", "s"), "default": ("tab:red", "*")}


def _errors(outcomes: Sequence[Outcome]) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([o.evaluation.objective for o in outcomes], dtype=float)
    ranges = [o.evaluation.objective_range or [v, v] for o, v in zip(outcomes, values)]
    return values, np.array([[max(v - r[0], 0) for v, r in zip(values, ranges)],
                             [max(r[1] - v, 0) for v, r in zip(values, ranges)]])


def history(tuner: Sequence[Outcome], objective: Objective, target: float, k: int,
            grid_best: Optional[Outcome] = None, default: Optional[Outcome] = None) -> bytes:
    """Top: each feasible trial's objective and the best so far; bottom: the recall every build reached."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=[3, 2])
    ok = feasible(tuner)
    if ok:
        values, errors = _errors(ok)
        top.errorbar([o.number for o in ok], values, yerr=errors, fmt="o", color="tab:blue", capsize=2,
                     label="trial (range across timing trials)")
        best, running = [], None
        for o in sorted(ok, key=lambda o: o.number):
            if running is None or objective.better(o.evaluation.objective, running):
                running = o.evaluation.objective
            best.append((o.number, running))
        top.step(*zip(*best), where="post", color="tab:blue", alpha=0.6, label="best so far")
    for reference, name, colour in ((grid_best, "grid best", "tab:gray"), (default, "default", "tab:red")):
        if reference is not None and reference.evaluation.feasible:
            top.axhline(reference.evaluation.objective, color=colour, linestyle="--",
                        label=f"{name}: {reference.evaluation.describe()}")
    top.set_ylabel(objective.label)
    top.set_title(f"tuner trials at recall@{k} ≥ {target:g} (lower 95 % bound)")
    top.legend(fontsize=8, loc="best")
    numbers = [o.number for o in tuner]
    recalls = [o.evaluation.recall or 0.0 for o in tuner]
    colours = ["tab:blue" if o.evaluation.feasible else "tab:red" for o in tuner]
    lows = [max(r - (o.evaluation.recall_ci or [r, r])[0], 0) for o, r in zip(tuner, recalls)]
    highs = [max((o.evaluation.recall_ci or [r, r])[1] - r, 0) for o, r in zip(tuner, recalls)]
    bottom.errorbar(numbers, recalls, yerr=[lows, highs], fmt="none", ecolor="gray", capsize=2)
    bottom.scatter(numbers, recalls, c=colours, zorder=3)
    bottom.axhline(target, color="black", linestyle=":", label=f"target {target:g}")
    bottom.set_ylabel(f"recall@{k} (red: infeasible)")
    bottom.set_xlabel("trial (one index build each)")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.legend(fontsize=8, loc="lower right")
    return _png(fig)


def pareto(outcomes: Sequence[Outcome], objective: Objective, target: float) -> bytes:
    """Objective against build seconds, marker area by index memory; the Pareto front over all three joined."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for source, (colour, marker) in SOURCES.items():
        own = [o for o in feasible(outcomes) if o.source == source]
        if not own:
            continue
        values, errors = _errors(own)
        builds = [o.evaluation.build_s for o in own]
        sizes = [20 + 80 * (o.evaluation.memory_bytes or 0) / max(_max_memory(outcomes), 1) for o in own]
        ax.errorbar(builds, values, yerr=errors, fmt="none", ecolor=colour, alpha=0.5, capsize=2)
        ax.scatter(builds, values, s=sizes, color=colour, marker=marker, alpha=0.8, label=source, zorder=3)
    # The front of what is drawn (objective against build seconds): a staircase; tuning.md lists the front
    # with memory as a third objective.
    front = pareto_front(outcomes, objective, with_memory=False)
    if front:
        ordered = sorted(front, key=lambda o: o.evaluation.build_s)
        ax.step([o.evaluation.build_s for o in ordered], [o.evaluation.objective for o in ordered], where="post",
                color="black", linewidth=0.8, linestyle="--", label="Pareto front (objective, build s)")
        for o in ordered:
            ax.annotate(o.evaluation.describe().split(" ", 1)[1], (o.evaluation.build_s, o.evaluation.objective),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("index build + load seconds")
    ax.set_ylabel(objective.label)
    ax.set_title(f"feasible builds at recall ≥ {target:g}; marker area: estimated index memory")
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _max_memory(outcomes: Sequence[Outcome]) -> int:
    return max((o.evaluation.memory_bytes or 0) for o in outcomes) if outcomes else 0


def write(path: Path, png: bytes) -> Path:
    path.write_bytes(png)
    return path
