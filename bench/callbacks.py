"""Hydra callbacks: after a multirun, one comparison report over all of its runs."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ComparisonReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("report_on_multirun", True):
            return
        from bench.report import build_report

        sweep_dir = Path(config.hydra.sweep.dir)
        paths = build_report([sweep_dir], sweep_dir / "report")
        log.info("comparison report: %s", paths.get("markdown"))
        print(f"comparison report: {paths.get('markdown')} and {paths.get('html')}")
