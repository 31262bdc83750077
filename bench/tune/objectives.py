"""What a trial optimises, read from the timing section of one search point (bench.measure.search).

Each objective has a direction and a range: the min–max across the interleaved timing trials for QPS,
the distribution-free 95 % interval for p99 (a single trial rarely has the 368 samples its own p99 needs).
Two configurations whose ranges overlap are within the noise of each other (``≈``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from bench.errors import BenchError
from bench.measure.statistics import Interval, as_interval, spread_interval


@dataclass(frozen=True)
class Objective:
    name: str
    label: str  # column header, with units
    direction: str  # "maximize" | "minimize"
    value: Callable[[Mapping[str, Any]], Optional[float]]
    range: Callable[[Mapping[str, Any]], Optional[Interval]]
    needs_threads: tuple[int, ...] = ()  # client thread counts the timing trials must measure

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    def worst(self) -> float:
        """The value of a trial that was never timed (no search parameter reached the target)."""
        return 0.0 if self.direction == "maximize" else float("inf")


OBJECTIVES: dict[str, Objective] = {o.name: o for o in [
    Objective("batch_qps", "batch QPS", "maximize", lambda t: t.get("batch_qps"),
              lambda t: spread_interval(t.get("spread", {}).get("batch_qps"))),
    Objective("qps_1thr", "QPS 1 thread", "maximize", lambda t: t.get("concurrent_qps", {}).get("1"),
              lambda t: spread_interval(t.get("spread", {}).get("concurrent_qps", {}).get("1")), needs_threads=(1,)),
    Objective("p99_ms", "p99 ms", "minimize", lambda t: t.get("latency", {}).get("p99_ms"),
              lambda t: as_interval(t.get("latency", {}).get("p99_ms_ci95"))),
]}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise BenchError(f"tune.objective={name!r} is unknown: choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]
