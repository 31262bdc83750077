"""Hydra callbacks: after a multirun, one comparison report over all of its runs."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench.errors import BenchError

log = logging.getLogger(__name__)


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
            print(f"FAILED {run.path.name}: {run.data.get('error')}")
        print(f"{len(runset.ok)} run(s) finished, {len(runset.not_ok)} failed")
        print(f"\n{paths['summary'].read_text()}")  # the report's summary, the same lines
        print(f"comparison report: {paths['markdown']} and {paths['html']}")
