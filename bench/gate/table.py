"""The comparison's outcome: every judged row, with the table a person reads, its Markdown (for a PR comment)
and its JSON. Exit status: 0 pass, 1 fail."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from bench.gate import cpu_class
from bench.gate.judge import RELATIVE_KINDS, VERDICTS, Row


@dataclass
class Comparison:
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    baseline: str = ""
    current: str = ""
    mode: str = "single"  # single | interleaved

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.fails]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def counts(self) -> dict[str, int]:
        return {v: sum(r.verdict == v for r in self.rows) for v in VERDICTS}

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{counts[v]} {v}" for v in VERDICTS if counts[v] and v != "ok"]
        verdict = "PASS" if self.passed else f"FAIL ({len(self.failures)} failing)"
        pairs = max((r.pairs for r in self.rows), default=1)
        how = f", median of {pairs} interleaved pairs" if self.mode == "interleaved" else ""
        return f"{verdict}: {len(self.rows)} metrics{how}; " + (", ".join(parts) or "all ok")

    def table(self) -> pd.DataFrame:
        """The table a person reads: formatted strings, one row per metric."""
        interleaved = self.mode == "interleaved"
        # A single comparison has a noise column too when the runs measured one (timing trials).
        extra = ["ratio spread", "noise", "pairs"] if interleaved else (
            ["noise"] if any(r.noise is not None for r in self.rows) else [])
        records = []
        for r in self.rows:
            record = {"metric": r.metric, "run": r.run, "point": r.point, "baseline": _fmt(r.baseline),
                      "current": _fmt(r.current), "change": _fmt_change(r), "threshold": _fmt_threshold(r),
                      "verdict": r.verdict}
            if interleaved:
                record["ratio spread"] = (f"{r.ratio_min:.3f}–{r.ratio_max:.3f}" if r.ratio_min is not None
                                          else "")
                record["pairs"] = r.pairs
            if "noise" in extra:
                record["noise"] = f"±{r.noise * 100:.0f}%" if r.noise is not None and math.isfinite(r.noise) else ""
            record["note"] = r.note
            records.append(record)
        return pd.DataFrame(records, columns=["metric", "run", "point", "baseline", "current", "change",
                                              "threshold", "verdict"] + extra + ["note"])

    def markdown(self) -> str:
        lines = [f"### bench regression gate: {self.summary()}", "",
                 f"baseline: `{self.baseline}`  ", f"current: `{self.current}`", ""]
        if self.mode == "interleaved":
            lines += ["Timings: `change` is the median of the per-pair ratios current/baseline. A regression "
                      "must exceed the threshold and the job's own noise (the wider side's max/min over its "
                      "repeats, and each run's own timing trials) in the median, and show in every pair "
                      "(`ratio spread` must not reach 1).", ""]
        elif any(r.noise is not None for r in self.rows):
            lines += ["Timings: a regression must exceed the threshold and the runs' own noise (`noise`: the wider "
                      "max/min across either run's timing trials, search.repeats).", ""]
        if self.notes:
            lines += [f"- {n}" for n in self.notes] + [""]
        table = self.table()
        # disable_numparse: keep "+0.5%", "-0.01" as written instead of tabulate re-reading them as numbers
        lines.append(table.to_markdown(index=False, disable_numparse=True) if not table.empty else "_(no metrics)_")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict:
        return {"passed": self.passed, "summary": self.summary(), "counts": self.counts(), "mode": self.mode,
                "baseline": self.baseline, "current": self.current, "notes": self.notes,
                "rows": [vars(r) for r in self.rows]}

    def write(self, outdir: Path, stem: str = "compare") -> tuple[Path, Path]:
        outdir.mkdir(parents=True, exist_ok=True)
        md, js = outdir / f"{stem}.md", outdir / f"{stem}.json"
        md.write_text(self.markdown())
        js.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
        return md, js


def _fmt(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4g}"


def _fmt_change(r: Row) -> str:
    if r.change is None:
        return ""
    if r.change == 0:
        return "0"
    return f"{r.change * 100:+.1f}%" if r.kind in RELATIVE_KINDS else f"{r.change:+.4g}"


def _fmt_threshold(r: Row) -> str:
    if r.floor is not None:
        return f"≥ {r.floor:g}"  # a floor, not a tolerance around the baseline
    if r.verdict == cpu_class.NOT_COMPARED:
        return ""
    # The side a regression lies on: "-30%" for a throughput, "+40%" for a latency.
    sign = "-" if r.higher_is_better else "+"
    return f"{sign}{r.threshold * 100:g}%" if r.kind in RELATIVE_KINDS else f"{sign}{r.threshold:g}"
