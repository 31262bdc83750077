"""The workload protocol: what a workload implements, and when the runner calls it.

A workload is one class, registered by name in :mod:`bench.measure.workloads.registry` (``workload.kind``).
The runner calls, in this order:

1. ``validate(cfg)`` with the other groups' checks, before any work starts;
2. ``check_dataset(cfg, dataset)`` once the dataset is read, before the model is converted;
3. ``loaded(corpus)``: the rows the runner inserts and indexes before the workload runs (all of them, unless
   the workload inserts the rest itself);
4. at its ``phase``, between the index build and the plain sweep or after the sweep: ``prepare(context)``,
   then ``run(context)``, whose return value is the workload's section of results.json (named ``name``),
   timed as the stage ``name``.

A ``scratch`` workload changes the collection's rows: the runner keeps that collection apart from the
reusable one of the same data and drops it at the end of the run.
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional

from bench.config import Config
from bench.data.dataset import Dataset
from bench.run.context import RunContext
from bench.run.corpus import Corpus

BEFORE_SWEEP, AFTER_SWEEP = "before_sweep", "after_sweep"


class Workload:
    name: ClassVar[str]  # the registry's name, the results.json section and the stage
    phase: ClassVar[Optional[str]] = AFTER_SWEEP  # BEFORE_SWEEP | AFTER_SWEEP | None (never runs)
    scratch: ClassVar[bool] = False  # run() changes the collection's rows

    @classmethod
    def validate(cls, cfg: Config) -> None:
        """Value checks of the workload's settings that types cannot express (one-line BenchError)."""

    @classmethod
    def check_dataset(cls, cfg: Config, dataset: Dataset) -> None:
        """Whether the dataset has what the workload needs (e.g. labels), before the model is converted."""

    def loaded(self, corpus: Corpus) -> Corpus:
        """The rows the runner inserts and indexes before the workload runs."""
        return corpus

    def prepare(self, context: RunContext) -> None:
        """Untimed set-up once the store holds the index (and, after the sweep, the sweep's points)."""

    def run(self, context: RunContext) -> dict[str, Any]:
        raise NotImplementedError


class NoWorkload(Workload):
    """workload=none: the plain sweep alone."""
    name = "none"
    phase = None
