"""Workloads by name: ``workload=<kind>`` picks conf/workload/<kind>.yaml, and this table picks its class.

Adding a workload is one module implementing :class:`bench.measure.workloads.base.Workload`, one YAML file
in conf/workload/ and one line here; the runner does not change. Classes are named as "module:Class" and
imported on first use, so a workload's libraries (LoadGen for serve) load only in runs that use it.
"""
from __future__ import annotations

import importlib
from functools import cache

from bench.errors import BenchError
from bench.measure.workloads.base import Workload

WORKLOADS: dict[str, str] = {
    "none": "bench.measure.workloads.base:NoWorkload",
    "filtered": "bench.measure.workloads.filtered:FilteredWorkload",
    "streaming": "bench.measure.workloads.streaming:StreamingWorkload",
    "serve": "bench.measure.workloads.serve:ServeWorkload",
}


def kinds() -> list[str]:
    return list(WORKLOADS)


@cache
def workload_class(kind: str) -> type[Workload]:
    """The class registered as ``kind``; an unknown kind is a one-line error listing the known ones."""
    if kind not in WORKLOADS:
        raise BenchError(f"workload.kind={kind!r} is unknown: choose one of {', '.join(WORKLOADS)} (conf/workload/)")
    module, _, name = WORKLOADS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def open_workload(kind: str) -> Workload:
    return workload_class(kind)()
