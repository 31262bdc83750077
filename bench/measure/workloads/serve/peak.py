"""The highest Server QPS that LoadGen judges VALID at the latency bound, by bisection.

It starts at the Offline throughput: a service cannot sustain more queries per second than it
completes when it gets them all at once. A VALID first probe is the peak. Otherwise each probe halves
the bracket between the highest VALID and the lowest INVALID rate (from zero), until the bracket is
narrower than ``tolerance`` or ``max_probes`` tests have run. Every probe is kept with its verdict
and p99. A pipeline that is INVALID even at its lowest probe has no peak: "not reached at >= X QPS".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class Probe:
    qps: float
    valid: bool
    p99_ms: Optional[float]
    verdict: str
    level: int  # position of the test in the section's levels


@dataclass
class Peak:
    start_qps: float
    probes: list[Probe] = field(default_factory=list)

    @property
    def qps(self) -> Optional[float]:
        """The highest VALID target QPS probed, or None."""
        valid = [p.qps for p in self.probes if p.valid]
        return max(valid) if valid else None

    @property
    def bracket(self) -> tuple[Optional[float], Optional[float]]:
        """(highest VALID, lowest INVALID above it): the peak lies between; None where not probed."""
        low = self.qps
        above = [p.qps for p in self.probes if not p.valid and (low is None or p.qps > low)]
        return low, (min(above) if above else None)

    def as_dict(self) -> dict[str, Any]:
        low, high = self.bracket
        lowest = min((p.qps for p in self.probes), default=None)
        return {"qps": self.qps, "reached": self.qps is not None, "start_qps": self.start_qps,
                "bracket": [low, high], "not_reached_at_qps": lowest if self.qps is None else None,
                "probes": [p.__dict__ for p in self.probes]}


def find_peak(probe: Callable[[float], Probe], start_qps: float, max_probes: int, tolerance: float) -> Peak:
    peak = Peak(start_qps=start_qps)
    qps = start_qps
    for _ in range(max_probes):
        result = probe(qps)
        peak.probes.append(result)
        low, high = peak.bracket
        if result.valid and high is None:
            break  # VALID at the ceiling itself
        if low is not None and high is not None and (high - low) <= tolerance * high:
            break
        qps = (low + high) / 2 if low is not None else high / 2
    return peak
