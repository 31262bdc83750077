"""The one clock of a run: wall time from ``time.perf_counter``, per call, per phase and per stage.

- :func:`now`, :class:`Stopwatch` and :func:`timed`: a reading, seconds since a start, and the seconds one call
  took. The run's timings (search latency, insert and build seconds, embedding batches and decoding, the
  streaming phases, the serving pipeline's stages) read them.
- :class:`StageClock`: each stage's seconds go into results.json (section ``stages``) as soon as it ends,
  with the peak resident memory so far, so a 100k-vector run shows which stage dominates, and a run that
  fails shows how far it got.
"""
from __future__ import annotations

import os
import resource
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

from bench.results import RunResult

T = TypeVar("T")


def now() -> float:
    """The clock's reading in seconds (an arbitrary origin): for timestamps compared with each other."""
    return time.perf_counter()


class Stopwatch:
    """Seconds since it was started (or last restarted)."""

    def __init__(self) -> None:
        self.started = now()

    def elapsed(self) -> float:
        return now() - self.started

    def lap(self) -> float:
        """The seconds since the last start or lap, and a new start."""
        reading = now()
        seconds, self.started = reading - self.started, reading
        return seconds


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    """(seconds the call took, what it returned)."""
    watch = Stopwatch()
    out = fn(*args, **kwargs)
    return watch.elapsed(), out


def current_rss_mib() -> Optional[float]:
    """This process's resident memory now, in MiB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM) so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class StageClock:
    """``with clock("embed"): ...`` adds that block's wall time to the run's ``stages`` section, and makes
    it the run's current stage (what an interrupt reports)."""

    def __init__(self, result: RunResult):
        self.result = result
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        self.result.stage = stage  # named in results.json if a signal interrupts the run here
        watch = Stopwatch()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + watch.elapsed()
            self.result.set("stages", {"seconds": dict(self.seconds), "peak_rss_mib": peak_rss_mib()})
