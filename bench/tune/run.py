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
from typing import Optional, Sequence

import optuna
from omegaconf import OmegaConf

from bench import PROJECT_ROOT
from bench.config import Config
from bench.tune import plots, report, study
from bench.tune.corpus import prepared_corpus
from bench.tune.objectives import get_objective
from bench.tune.report import SideBySide
from bench.tune.settings import check
from bench.tune.spaces import load_space
from bench.tune.study import Outcome

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
    found: list[Outcome] = []

    def on_done(outcome: Outcome) -> None:
        found.append(outcome)
        e = outcome.evaluation
        row = report.trial_table([outcome], objective, cfg.search.top_k).iloc[0]
        k, label = cfg.search.top_k, objective.label
        log.info("%s %s: %s: recall %s (%s), %s %s (%s), build %.1f s, %d probes, %.0f s", outcome.source,
                 row["trial"], e.describe(), row[f"recall@{k}"], row["recall 95% CI"], label, row[label],
                 row[f"{label} range"], e.build_s, e.probes, outcome.seconds)

    with prepared_corpus(cfg, outdir, objective, list(tune_cfg.index_types)) as (ctx, info, record):
        spaces = {t: load_space(t, corpus_size=info.corpus_size, top_k=cfg.search.top_k, ranges=tune_cfg.ranges)
                  for t in tune_cfg.index_types}
        for space in spaces.values():
            log.info("search space %s", space.describe())
        settings = {"target_recall": tune_cfg.target_recall, "objective": tune_cfg.objective,
                    "multi_objective": tune_cfg.multi_objective, "spaces": [s.as_dict() for s in spaces.values()],
                    "corpus": info.as_dict(), "top_k": cfg.search.top_k, "metric": cfg.search.metric,
                    "confidence": cfg.stats.confidence}
        tuner = study.run_tuner(ctx, spaces, tune_cfg, outdir, settings, on_done)
        defaults = {t: study.run_default(ctx, spaces[t], default_build(t), tuner, on_done)
                    for t in spaces} if tune_cfg.measure_default else {}
        grids = {t: study.run_grid(ctx, spaces[t], tune_cfg, outdir, settings, on_done)
                 for t in spaces} if tune_cfg.grid_baseline else {}
        record.set("tune", {"study": tune_cfg.study, "storage": study.storage_url(outdir), "settings": settings})
    return _write_outputs(cfg, outdir, tuner, defaults, grids, overrides, time.perf_counter() - started)


def _write_outputs(cfg: Config, outdir: Path, tuner: optuna.Study, defaults: dict[str, Outcome],
                   grids: dict[str, optuna.Study], overrides: Sequence[str], session_s: float) -> int:
    tune_cfg, objective, k = cfg.tune, get_objective(cfg.tune.objective), cfg.search.top_k
    tuned = study.outcomes(tuner, "tuner")
    grid = [o for g in grids.values() for o in study.outcomes(g, "grid")]
    everything = tuned + grid + list(defaults.values())
    winner = report.best(tuned, objective)
    grid_best = report.best(grid, objective)
    # The default to beat is that of the recommended index type.
    default_best = (defaults.get(winner.evaluation.index_type) if winner is not None
                    else report.best(list(defaults.values()), objective))

    table = report.trial_table(everything, objective, k, winner)
    table.to_csv(outdir / "tuning.csv", index=False)
    side = [SideBySide("tuner", winner, len(tuned), sum(o.seconds for o in tuned))]
    if grids:
        side.append(SideBySide("grid", grid_best, len(grid), sum(o.seconds for o in grid)))
    if defaults:
        side.append(SideBySide("default", default_best, len(defaults), sum(o.seconds for o in defaults.values())))
    comparison = report.comparison_table(side, objective, grid_best, default_best)
    ties = report.near_ties(winner, tuned, objective) if winner else []
    front = report.pareto_front(tuned, objective)

    lines = [f"# bench.tune: study {tune_cfg.study}", "",
             f"Fastest configuration by {objective.label} whose recall@{k} lower 95 % bound reaches "
             f"{tune_cfg.target_recall:g}. Index memory is estimated from the index layout (bench/tune/memory.py).",
             "", "## Trials", "", report.to_markdown(table), "", "## Tuner, grid and default", "",
             report.to_markdown(comparison), ""]
    if tune_cfg.multi_objective:
        optuna_front = {t.number for t in tuner.best_trials}
        lines += ["## Pareto front (objective, build s, index memory)", "",
                  report.to_markdown(report.trial_table([o for o in tuned if o.number in optuna_front],
                                                        objective, k)), ""]
    elif front:
        lines += ["## Pareto front (objective, build s, index memory)", "",
                  report.to_markdown(report.trial_table(front, objective, k)), ""]
    lines += report.cost_lines(side, session_s)
    outcome_lines = report.summary_lines(winner, ties, objective)
    if winner is not None:
        yaml_text = report.recommendation_yaml(winner, default_build(winner.evaluation.index_type),
                                               tune_cfg.target_recall, objective, tune_cfg.study)
        (outdir / "recommendation.yaml").write_text(yaml_text)
        command = report.command_line(winner, overrides)
        outcome_lines += ["", "run it:", f"  {command}", "", "recommendation.yaml, beside the default "
                          f"(conf/index/{winner.evaluation.index_type}.yaml):", "",
                          *_side_by_side(yaml_text, winner.evaluation.index_type)]
    lines += ["", "## Recommendation", "", "```", *outcome_lines, "```"] if outcome_lines else []
    (outdir / "tuning.md").write_text("\n".join(lines) + "\n")
    if tuned:
        plots.write(outdir / "history.png", plots.history(tuned, objective, tune_cfg.target_recall, k,
                                                           grid_best, default_best))
        plots.write(outdir / "pareto.png", plots.pareto(everything, objective, tune_cfg.target_recall))

    print(f"\n{report.to_markdown(table)}\n\n{report.to_markdown(comparison)}\n")
    print("\n".join(report.cost_lines(side, session_s)))
    if winner is None:
        print(f"study: {outdir / study.STUDY_FILE}, tables: {outdir / 'tuning.md'}")
        print(f"error: {report.no_target_message(everything, tune_cfg.target_recall, len(tuned))}", file=sys.stderr)
        return 1
    print("\n".join(outcome_lines))
    print(f"\nstudy: {outdir / study.STUDY_FILE}, tables: {outdir / 'tuning.md'}, plots: {outdir / 'history.png'}, "
          f"{outdir / 'pareto.png'}")
    return 0


def _side_by_side(yaml_text: str, index_type: str, width: Optional[int] = None) -> list[str]:
    """The recommended YAML (comments left out) beside the default config file, in two columns."""
    ours = [line for line in yaml_text.splitlines() if not line.startswith("#")]
    theirs = [line for line in (INDEX_DIR / f"{index_type}.yaml").read_text().splitlines()
              if not line.startswith("#")]
    width = width or max(len(line) for line in ours + ["recommended"]) + 4
    rows = [f"{'recommended':<{width}}default"]
    for i in range(max(len(ours), len(theirs))):
        rows.append(f"{(ours[i] if i < len(ours) else ''):<{width}}{theirs[i] if i < len(theirs) else ''}")
    return rows
