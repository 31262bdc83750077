"""Hydra callbacks: passwords in URLs refused before anything is written; after a multirun, one
comparison report over all of its runs."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError
from bench.stores.urls import SECRET_HOMES, url_password_problem

log = logging.getLogger(__name__)


class RefusePasswordsInUrls(Callback):
    """Stops a run or sweep whose store.uri or metadata.url holds a password.

    Hydra writes the config and the overrides verbatim into the run folder's .hydra/ files (and a
    sweep's multirun.yaml) before the task function starts, so a check there would come too late.
    on_run_start and on_multirun_start run after composition and before any of those files.
    Hydra turns an exception in a callback into a warning and goes on, so this exits instead.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_passwords(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_passwords(config)


def _refuse_passwords(config: DictConfig) -> None:
    def raw(key: str) -> Any:  # as written, unresolved: what Hydra would save
        section, _, name = key.partition(".")
        return (OmegaConf.to_container(config[section], resolve=False) if section in config else {}).get(name)

    keys = list(SECRET_HOMES) + [env_key for env_key, _, _ in SECRET_HOMES.values()]
    values = {key: raw(key) for key in keys}
    # Unresolved too: an override such as dataset.root=${hydra:runtime.cwd}/... is text here, and
    # resolving it before Hydra sets its runtime config would fail.
    task_overrides = OmegaConf.select(config, "hydra.overrides.task", default=None)
    overrides = OmegaConf.to_container(task_overrides, resolve=False) if task_overrides else []
    problem = url_password_problem(values, values, overrides)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)


class ComparisonReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("report_on_multirun", True):
            return
        from bench.report.build import build_report
        from bench.report.runset import load_runset
        from bench.report.tables import search_table, to_markdown

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            runset = load_runset([sweep_dir])
            paths = build_report([sweep_dir], sweep_dir / "report")
        except BenchError as err:
            log.error("no comparison report: %s", err)
            return
        # The console ends with the sweep's main table: every model x index x search point.
        print(f"\n{to_markdown(search_table([run.labelled() for run in runset.ok]))}\n")
        for run in runset.not_ok:
            print(f"FAILED {run.path.name}: {run.data.error}")
        print(f"{len(runset.ok)} run(s) finished, {len(runset.not_ok)} failed")
        print(f"\n{paths['summary'].read_text()}")  # the report's summary, the same lines
        print(f"comparison report: {paths['markdown']} and {paths['html']}")
