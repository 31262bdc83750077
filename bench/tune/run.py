"""One tuning run: check the settings, prepare the corpus, run the studies, write what they found.

Files in the run folder (reports/tune/<study>/ unless hydra.run.dir says otherwise):

=====================  ============================================================================
study.db               the Optuna studies (SQLite): rerun the same command to resume
corpus.json            the prepared corpus: dataset, model, embedding, load, provenance
tuning.md, tuning.csv  every build: parameters, recall and interval, objective and range, build s, memory
recommendation.yaml    the recommended configuration as a conf/index/ file
history.png            the tuner's optimisation history
pareto.png             objective vs build seconds vs index memory, with the Pareto front
bench.log              the log of every run of the study
=====================  ============================================================================
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import optuna
from omegaconf import OmegaConf

from bench import PROJECT_ROOT
from bench.config import Config
from bench.tune import plots, report, study
from bench.tune.corpus import prepared_corpus
from bench.tune.objectives import Objective, get_objective
from bench.tune.report import SideBySide
from bench.tune.settings import check
from bench.tune.spaces import Space, load_space
from bench.tune.study import Outcome
from bench.tune.trial import TrialContext, retime

log = logging.getLogger(__name__)
INDEX_DIR = PROJECT_ROOT / "conf" / "index"


def default_build(index_type: str) -> dict[str, int]:
    """The build parameters of conf/index/<TYPE>.yaml: what `python -m bench index=<TYPE>` builds."""
    data = OmegaConf.to_container(OmegaConf.load(INDEX_DIR / f"{index_type}.yaml"))
    return dict(data.get("build") or {})


def tune(cfg: Config, outdir: Path, overrides: Sequence[str]) -> int:
    """Returns the exit code: 0 with a recommendation, 1 when no configuration reached the target."""
    check(cfg)
    started = time.perf_counter()
    tune_cfg, objective = cfg.tune, get_objective(cfg.tune.objective)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial is logged by on_done, in our words

    def on_done(outcome: Outcome) -> None:
        e, k, label = outcome.evaluation, cfg.search.top_k, objective.label
        row = report.trial_table([outcome], objective, k).iloc[0]
        name = f"{outcome.source} {outcome.number}" if outcome.number >= 0 else outcome.source
        log.info("%s: %s: recall %s (%s), %s %s (%s), build %.1f s, %d probes, %.0f s", name, e.describe(),
                 row[f"recall@{k}"], row["recall 95% CI"], label, row[label], row[f"{label} range"], e.build_s,
                 e.probes, outcome.seconds)

    with prepared_corpus(cfg, outdir, objective, list(tune_cfg.index_types)) as (ctx, info, record):
        spaces = {t: load_space(t, corpus_size=info.corpus_size, top_k=cfg.search.top_k, ranges=tune_cfg.ranges)
                  for t in tune_cfg.index_types}
        for space in spaces.values():
            log.info("search space %s", space.describe())
        settings = {"target_recall": tune_cfg.target_recall, "objective": tune_cfg.objective,
                    "multi_objective": tune_cfg.multi_objective, "spaces": [s.as_dict() for s in spaces.values()],
                    "corpus": info.as_dict(), "top_k": cfg.search.top_k, "metric": cfg.search.metric,
                    "confidence": cfg.stats.confidence,
                    # How the objective is timed: trials timed otherwise are not comparable.
                    "timing": {"repeats": cfg.search.repeats, "min_throughput_s": cfg.search.min_throughput_s,
                               "query_batch_size": cfg.search.query_batch_size,
                               "latency_max_s": cfg.search.latency_max_s, "warmup": cfg.search.warmup}}
        tuner = study.run_tuner(ctx, spaces, tune_cfg, outdir, settings, on_done)
        defaults = {t: study.run_default(ctx, spaces[t], default_build(t), tuner, on_done)
                    for t in spaces} if tune_cfg.measure_default else {}
        grids = {t: study.run_grid(ctx, spaces[t], tune_cfg, outdir, settings, on_done)
                 for t in spaces} if tune_cfg.grid_baseline else {}
        found = Found.of(tuner, defaults, grids, objective)
        side = found.side_by_side()
        if tune_cfg.final_rounds and sum(row.outcome is not None for row in side) > 1:
            _retime_finalists(ctx, spaces, side, tune_cfg.final_rounds, on_done)
        record.set("tune", {"study": tune_cfg.study, "storage": study.storage_url(outdir), "settings": settings})
    return _write_outputs(cfg, outdir, tuner, found, side, overrides, time.perf_counter() - started)


@dataclass
class Found:
    """Every build the studies made, and the bests the outputs compare."""
    tuned: list[Outcome]
    grid: list[Outcome]
    defaults: dict[str, Outcome]
    winner: Optional[Outcome]  # the recommendation: the best of every build (tuner, grid, defaults)
    tuner_best: Optional[Outcome]  # the tuner's own best, to judge the tuner
    grid_best: Optional[Outcome]
    default_best: Optional[Outcome]  # the default of the recommended index type

    @classmethod
    def of(cls, tuner: optuna.Study, defaults: dict[str, Outcome], grids: dict[str, optuna.Study],
           objective: Objective) -> "Found":
        tuned = study.outcomes(tuner, "tuner")
        grid = [o for g in grids.values() for o in study.outcomes(g, "grid")]
        winner = report.best(tuned + grid + list(defaults.values()), objective)
        default_best = (defaults.get(winner.evaluation.index_type) if winner is not None
                        else report.best(list(defaults.values()), objective))
        return cls(tuned, grid, defaults, winner, report.best(tuned, objective), report.best(grid, objective),
                   default_best)

    @property
    def everything(self) -> list[Outcome]:
        return self.tuned + self.grid + list(self.defaults.values())

    def side_by_side(self) -> list[SideBySide]:
        side = [SideBySide("tuner", self.tuner_best, len(self.tuned), sum(o.seconds for o in self.tuned))]
        if self.grid:
            side.append(SideBySide("grid", self.grid_best, len(self.grid), sum(o.seconds for o in self.grid)))
        if self.defaults:
            side.append(SideBySide("default", self.default_best, len(self.defaults),
                                   sum(o.seconds for o in self.defaults.values())))
        return side


def _retime_finalists(ctx: TrialContext, spaces: dict[str, Space], side: list[SideBySide], rounds: int,
                      on_done: Callable[[Outcome], None]) -> None:
    """The tuner's, the grid's and the default's best built and timed again, in turn, ``rounds`` times: the
    studies ran at other times, and a busy machine's drift between them must not decide which is faster.
    A configuration that is the best of two sources is timed once for both."""
    finalists = {row.outcome.evaluation.describe(): row.outcome for row in side if row.outcome is not None}
    timed: dict[str, list] = {key: [] for key in finalists}
    start = time.perf_counter()
    for _ in range(rounds):
        for key, outcome in finalists.items():
            timed[key].append(retime(ctx, spaces[outcome.evaluation.index_type], outcome.evaluation))
    seconds = (time.perf_counter() - start) / len(finalists)
    combined = {key: report.combine_rounds("back to back", finalists[key].number, timed[key], seconds)
                for key in finalists}
    for outcome in combined.values():
        on_done(outcome)
    for row in side:
        if row.outcome is not None:
            row.retimed = combined[row.outcome.evaluation.describe()]


def _write_outputs(cfg: Config, outdir: Path, tuner: optuna.Study, found: Found, side: list[SideBySide],
                   overrides: Sequence[str], session_s: float) -> int:
    tune_cfg, objective, k = cfg.tune, get_objective(cfg.tune.objective), cfg.search.top_k
    tuned, everything, winner = found.tuned, found.everything, found.winner
    table = report.trial_table(everything, objective, k, winner)
    table.to_csv(outdir / "tuning.csv", index=False)
    comparison = report.comparison_table(side, objective)
    ties = report.near_ties(winner, everything, objective) if winner else []
    front = report.pareto_front(tuned, objective)

    lines = [f"# bench.tune: study {tune_cfg.study}", "",
             f"Fastest configuration by {objective.label} whose recall@{k} lower 95 % bound reaches "
             f"{tune_cfg.target_recall:g}. Index memory is estimated from the index layout (bench/tune/memory.py).",
             "", "## Trials", "", report.to_markdown(table), "", "## Tuner, grid and default", "",
             report.to_markdown(comparison), ""]
    if tune_cfg.multi_objective:
        optuna_front = {t.number for t in tuner.best_trials}
        lines += ["## Pareto front of the tuner's trials (objective, build s, index memory; Optuna's)", "",
                  report.to_markdown(report.trial_table([o for o in tuned if o.number in optuna_front],
                                                        objective, k)), ""]
    elif front:
        lines += ["## Pareto front of the tuner's trials (objective, build s, index memory)", "",
                  report.to_markdown(report.trial_table(front, objective, k)), ""]
    lines += report.cost_lines(side, session_s, cfg.tune.final_rounds)
    outcome_lines = report.summary_lines(winner, ties, objective)
    if winner is not None:
        yaml_text = report.recommendation_yaml(winner, default_build(winner.evaluation.index_type),
                                               tune_cfg.target_recall, objective, tune_cfg.study)
        (outdir / "recommendation.yaml").write_text(yaml_text)
        command = report.command_line(winner, overrides)
        outcome_lines += ["", "run it:", f"  {command}", "", "recommendation.yaml, beside the default "
                          f"(conf/index/{winner.evaluation.index_type}.yaml):", "",
                          *_yaml_beside_default(yaml_text, winner.evaluation.index_type)]
    missed = None if winner else report.no_target_message(everything, tune_cfg.target_recall, len(tuned))
    lines += ["", "## Recommendation", "", "```", *(outcome_lines or [missed]), "```"]
    (outdir / "tuning.md").write_text("\n".join(lines) + "\n")
    if tuned:
        plots.write(outdir / "history.png", plots.history(tuned, objective, tune_cfg.target_recall, k,
                                                           found.grid_best, found.default_best))
        plots.write(outdir / "pareto.png", plots.pareto(everything, objective, tune_cfg.target_recall))

    print(f"\n{report.to_markdown(table)}\n\n{report.to_markdown(comparison)}\n")
    print("\n".join(report.cost_lines(side, session_s, cfg.tune.final_rounds)))
    if winner is None:
        print(f"study: {outdir / study.STUDY_FILE}, tables: {outdir / 'tuning.md'}")
        print(f"error: {missed}", file=sys.stderr)
        return 1
    print("\n".join(outcome_lines))
    print(f"\nstudy: {outdir / study.STUDY_FILE}, tables: {outdir / 'tuning.md'}, plots: {outdir / 'history.png'}, "
          f"{outdir / 'pareto.png'}")
    return 0


def _yaml_beside_default(yaml_text: str, index_type: str, width: Optional[int] = None) -> list[str]:
    """The recommended YAML (comments left out) beside the default config file, in two columns."""
    ours = [line for line in yaml_text.splitlines() if not line.startswith("#")]
    theirs = [line for line in (INDEX_DIR / f"{index_type}.yaml").read_text().splitlines()
              if not line.startswith("#")]
    width = width or max(len(line) for line in ours + ["recommended"]) + 4
    rows = [f"{'recommended':<{width}}default"]
    for i in range(max(len(ours), len(theirs))):
        rows.append(f"{(ours[i] if i < len(ours) else ''):<{width}}{theirs[i] if i < len(theirs) else ''}")
    return rows
