"""Pairing the two sides: runs by model + index type (+ store and metadata kind when not the defaults),
search points by label, and every metric of a pair into one observation (baseline value, current value).

Search points are matched by label ("nprobe=16") first; a point left over on both sides at the same
sweep position is then paired with its counterpart and the row says "nprobe=16 → nprobe=1": that is how
a config change that swaps a sweep point's parameters shows up as a recall regression instead of as one
point vanishing and another appearing.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional, Sequence

from bench.errors import BenchError
from bench.gate import cpu_class
from bench.gate.metrics import STATUS, Metric, MetricValue, point_metrics, run_key, run_level_metrics
from bench.schema import Results

RUN_LEVEL = "—"  # the point column of metrics that belong to the whole run


def match_points(baseline: Sequence[str], current: Sequence[str]) -> list[tuple[Optional[int], Optional[int]]]:
    """Pairs of sweep positions (baseline, current); None where a point has no counterpart.

    Equal labels pair first, the n-th occurrence with the n-th. Points left on both sides at the
    same position pair next: the sweep's i-th point with changed parameters.
    """
    free_current: dict[str, list[int]] = defaultdict(list)
    for j, label in enumerate(current):
        free_current[label].append(j)
    pairs: dict[int, Optional[int]] = {}
    for i, label in enumerate(baseline):
        if free_current[label]:
            pairs[i] = free_current[label].pop(0)
    used = set(pairs.values())
    for i in range(len(baseline)):
        if i not in pairs and i < len(current) and i not in used:
            pairs[i] = i
            used.add(i)
    matched: list[tuple[Optional[int], Optional[int]]] = [(i, pairs.get(i)) for i in range(len(baseline))]
    matched += [(None, j) for j in range(len(current)) if j not in used]
    return sorted(matched, key=lambda p: (p[0] if p[0] is not None else math.inf, p[1] if p[1] is not None else -1))


@dataclass
class Observation:
    run: str
    point: str
    order: tuple[int, int]  # (point position, metric position): the table keeps the sweep's order
    metric: Metric
    baseline: Optional[float]
    current: Optional[float]
    note: str = ""
    noise: tuple[Optional[float], Optional[float]] = (None, None)  # (baseline, current) trial noise
    # (baseline, current) CPU class where they differ and this quality row depends on it (bench.gate.cpu_class)
    cpu_classes: Optional[tuple[str, str]] = None


def observe(baseline: Sequence[Results], current: Sequence[Results]) -> tuple[list[Observation], list[str]]:
    """Every metric of every run on either side, matched; plus notes on what differs between the sides."""
    base_runs, cur_runs = _by_key(baseline, "baseline"), _by_key(current, "current")
    observations: list[Observation] = []
    notes: list[str] = []
    for key in list(base_runs) + [k for k in cur_runs if k not in base_runs]:
        base, cur = base_runs.get(key), cur_runs.get(key)
        if base is not None and cur is not None:
            notes += _context_notes(key, base, cur)
        observations += _observe_run(key, base, cur)
    return observations, notes


def _by_key(results: Sequence[Results], side: str) -> dict[str, Results]:
    runs: dict[str, Results] = {}
    for result in results:
        key = run_key(result)
        if key in runs:
            raise BenchError(f"two {side} runs are both {key}: compare one sweep folder at a time, "
                             "or pass the two results.json files")
        runs[key] = result
    return runs


def _labels(result: Optional[Results]) -> list[str]:
    return [p.label for p in result.search.points] if result is not None and result.search else []


def _observe_run(key: str, base: Optional[Results], cur: Optional[Results]) -> list[Observation]:
    out: list[Observation] = []
    if cur is not None and cur.status != "ok":
        # Judged against 1.0 ("ok") even for a run the baseline lacks: a run that fails always fails.
        out.append(Observation(key, RUN_LEVEL, (-2, 0), STATUS, 1.0, 0.0, f"current run {cur.status}: {cur.error}"))
    base_level = {m.metric.name: m for m in run_level_metrics(base)} if base is not None else {}
    cur_level = {m.metric.name: m for m in run_level_metrics(cur)} if cur is not None else {}
    classes = cpu_class.classes(base, cur)
    out += _observe_values(key, RUN_LEVEL, -1, base_level, cur_level, "", classes)

    base_labels, cur_labels = _labels(base), _labels(cur)
    for i, j in match_points(base_labels, cur_labels):
        b = {m.metric.name: m for m in point_metrics(base, base.search.points[i])} if i is not None else {}
        c = {m.metric.name: m for m in point_metrics(cur, cur.search.points[j])} if j is not None else {}
        if i is not None and j is not None and base_labels[i] != cur_labels[j]:
            point = f"{base_labels[i]} → {cur_labels[j]}"
            note = f"search params changed at sweep position {i + 1}"
        else:
            point = base_labels[i] if i is not None else cur_labels[j]
            note = ""
        out += _observe_values(key, point, i if i is not None else 1000 + (j or 0), b, c, note, classes)
    return out


def _observe_values(key: str, point: str, position: int, base: dict[str, MetricValue],
                    cur: dict[str, MetricValue], note: str,
                    classes: Optional[tuple[str, str]] = None) -> list[Observation]:
    names = list(base) + [n for n in cur if n not in base]
    out = []
    for order, name in enumerate(names):
        b, c = base.get(name), cur.get(name)
        if (b is None or b.value is None) and (c is None or c.value is None):
            continue  # measured on neither side (e.g. both embedding cache hits): nothing to compare
        metric = (b or c).metric  # type: ignore[union-attr]
        notes = [n for n in (note, b.note if b else "", c.note if c else "") if n]
        out.append(Observation(key, point, (position, order), metric, b.value if b else None,
                               c.value if c else None, "; ".join(dict.fromkeys(notes)),
                               (b.noise if b else None, c.noise if c else None),
                               classes if metric.kind == "quality" else None))
    return out


def _context_notes(key: str, base: Results, cur: Results) -> list[str]:
    """What differs between the two runs besides the code: data, store, hardware, versions."""
    def context(r: Results) -> dict[str, object]:
        return {"dataset": r.dataset.name if r.dataset else None,
                "corpus size": r.dataset.num_corpus if r.dataset else None,
                "queries": r.dataset.num_queries if r.dataset else None,
                "top_k": r.search.top_k if r.search else None, "metric": r.search.metric if r.search else None,
                "store": r.provenance.store.version,
                "weights": r.provenance.weights.kind if r.provenance.weights else None}

    notes = [f"{key}: {label} differs ({a} vs {b})"
             for (label, a), b in zip(context(base).items(), context(cur).values()) if a != b]
    hw_a, hw_b = base.provenance.hardware, cur.provenance.hardware
    if (hw_a.cpu, hw_a.cores) != (hw_b.cpu, hw_b.cores):
        notes.append(f"{key}: other hardware ({hw_a.cpu} x{hw_a.cores} vs {hw_b.cpu} x{hw_b.cores}): "
                     "its timings are not comparable")
    classes = cpu_class.classes(base, cur)
    if classes:
        notes.append(f"{key}: other CPU class ({classes[0]} baseline, {classes[1]} now): its INT8 rows are "
                     "checked against cpu_class_floors, not against the baseline's values")
    va, vb = base.provenance.versions, cur.provenance.versions
    changed = [f"{p} {va.get(p)} → {vb.get(p)}" for p in sorted(set(va) | set(vb)) if va.get(p) != vb.get(p)]
    if changed:
        notes.append(f"{key}: package versions differ: {', '.join(changed)}")
    return notes
