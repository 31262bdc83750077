"""The comparison report over a set of runs: `python -m bench.report DIR [DIR ...] [--out OUTDIR]`.

It reads every run's results.json and topk.npz under the given folders (a sweep, single runs, runs from
different days) and writes report.md, a self-contained report.html, one CSV per table and one PNG per
plot. After a multirun, bench.callbacks calls build_report on the sweep directory.

Sections: a summary (bench.report.summary, computed from the same data as the tables below it), the
runs, 1 models, 2 indexes, 3 operating points, 4 agreement between models, 5 distance distributions,
6 quality, 7 provenance. Runs that cannot share a table (other dataset, queries, top-K
or metric) are reported in separate groups with the differing field named; failed runs are listed.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config import StatsConfig
from bench.errors import BenchError
from bench.measure.statistics import all_within_noise
from bench.report import agreement, distances, layouts, plots, serving, summary, variants, workloads
from bench.report.store_comparison import store_comparison_table
from bench.report.cross_run_tables import (RECALL_THRESHOLDS, index_setting, operating_points_table,
                                            provenance_table, quality_table, runs_table, versions_table)
from bench.report.document import Block, Bullets, Document, Figure, Heading, Table, Text, write_document
from bench.report.runset import Group, RunSet, describe_value, load_runset
from bench.report.tables import load_table, model_table, search_table
from bench.results import Results

TITLE = "bench comparison report"


def build_report(paths: list[Path], outdir: Path) -> dict[str, Path]:
    """Write the comparison report of every run under ``paths`` into ``outdir``.

    Returns {"markdown": report.md, "html": report.html}. Raises BenchError when no run is found.
    """
    paths = [Path(p) for p in paths]
    runset = load_runset(paths)
    names = runset.names
    doc = Document(TITLE)
    doc.add(*_overview(runset, paths, names))
    several = len(runset.groups) > 1
    for number, group in enumerate(runset.groups, start=1):
        prefix = f"group{number}_" if several else ""
        level = 3 if several else 2
        if several:
            title = ", ".join(f"{k}={describe_value(k, v)}" for k, v in group.key.items())
            doc.add(Heading(f"Group {number}: {title}", 2))
        doc.add(*_group_sections(group, prefix, level))
    doc.add(*workloads.section([r.labelled() for r in runset.ok]))
    doc.add(*serving.section([r.labelled() for r in runset.ok]))
    doc.add(*_provenance(runset, names))
    found = summary.add_summary(doc, runset)  # at the top, linked to the tables below it
    paths = write_document(doc, Path(outdir))
    paths["summary"] = summary.write_summary(found, Path(outdir))
    return paths


# ----------------------------------------------------------------------------------------------
# Overview: what was read, what failed, what does not belong together
# ----------------------------------------------------------------------------------------------

def _overview(runset: RunSet, paths: list[Path], names: dict[Path, str]) -> list[Block]:
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    total = len(runset.ok) + len(runset.not_ok)
    blocks: list[Block] = [
        Text(f"Built {created} from {', '.join(f'`{p}`' for p in paths)}: {total} run(s), "
             f"{len(runset.ok)} finished, {len(runset.not_ok)} failed or incomplete."),
        Heading("Runs", 2),
    ]
    if runset.not_ok:
        blocks.append(Text(f"{len(runset.not_ok)} run(s) did not finish. They are listed here with their error "
                           "and left out of every table below.", "warning"))
        blocks.append(Table("failed_runs", runs_table({names[r.path]: r.data for r in runset.not_ok}),
                            "Failed or incomplete runs."))
    if runset.unreadable:
        blocks.append(Text("Some results.json files could not be read and are left out:", "warning"))
        blocks.append(Bullets([f"`{path}`: {error}" for path, error in runset.unreadable]))
    if not runset.ok:
        blocks.append(Text("No run finished, so there is nothing to compare.", "warning"))
        return blocks
    if len(runset.groups) > 1:
        blocks.append(Text(
            f"These runs do not all belong together: they differ in {', '.join(runset.differing)}. "
            f"Their numbers are not comparable, so they are reported as {len(runset.groups)} separate groups "
            "and compared only within a group.", "warning"))
        rows = []
        for number, group in enumerate(runset.groups, start=1):
            rows.append({"group": number, "runs": len(group.runs), "models": ", ".join(group.models()),
                         "indexes": ", ".join(dict.fromkeys(r.index_setting for r in group.runs)),
                         **{k: describe_value(k, v) for k, v in group.key.items()}})
        blocks.append(Table("groups", pd.DataFrame(rows), "Groups of comparable runs."))
    else:
        group = runset.groups[0]
        dataset = group.runs[0].data.dataset
        blocks.append(Text(f"All {len(group.runs)} finished runs belong together: same dataset "
                           f"(`{dataset.name}`, {dataset.num_corpus} corpus images), the same "
                           f"{dataset.num_queries} query images, "
                           f"top_k={group.top_k}, metric={group.metric}."))
    finished = runs_table({names[r.path]: r.data for r in runset.ok})
    if len(runset.groups) > 1:
        group_of = {names[r.path]: number for number, g in enumerate(runset.groups, start=1) for r in g.runs}
        finished.insert(1, "group", finished["run"].map(group_of))
    blocks.append(Table("runs", finished, "Finished runs."))
    return blocks


# ----------------------------------------------------------------------------------------------
# Sections 1-6, per group of comparable runs
# ----------------------------------------------------------------------------------------------

def _group_sections(group: Group, prefix: str, level: int) -> list[Block]:
    results = [r.labelled() for r in group.runs]
    blocks: list[Block] = []
    for section in (_models, _indexes, _operating_points, _stores, _agreement, _distances, _quality):
        blocks.extend(section(group, results, prefix, level))
    blocks.extend(variants.section(group, prefix, level))  # only when the group holds INT8/FP16 variants
    return blocks


def _models(group: Group, results: list[Results], prefix: str, level: int) -> list[Block]:
    return [
        Heading("1. Models", level),
        Table(f"{prefix}models", model_table(results),
              "Embedding dimension, ONNX size (MB), conversion time (s) and Keras-vs-ONNX parity (max relative "
              "difference, min cosine); embedding throughput in images/s end to end (decode + preprocess + "
              "inference) and for inference alone; batch-1 latency in ms.", layout=layouts.MODELS),
    ]


def _indexes(group: Group, results: list[Results], prefix: str, level: int) -> list[Block]:
    k = group.top_k
    return [
        Heading("2. Indexes per model", level),
        Table(f"{prefix}load", load_table(results).sort_values(["model", "index"], kind="stable"),
              "Loading and index build: insert rows/s, and flush, build and load times in seconds.", layout=layouts.LOAD),
        Table(f"{prefix}search", search_table(results).sort_values(["model", "index"], kind="stable"),
              f"Every search point: recall@{k} against exact search, category precision@{k}, serial nq=1 "
              "latency percentiles in ms (search alone, path lookup, end to end), and QPS (queries/s) in batch "
              "and with N client threads.", layout=layouts.SEARCH),
    ]


QPS_COLUMNS = ("batch QPS", "QPS@1thr")


def _qps_points(results: list[Results]) -> pd.DataFrame:
    """One row per search point, with the intervals the Pareto frontier and the ≈ marks use: recall's
    bootstrap interval over queries and each QPS's min–max across trials ("<column> low/high")."""
    rows = []
    for r in results:
        for point in r.search.points:
            recall_ci = point.interval("recall_at_k") or (None, None)
            batch, one = point.qps_range() or (None, None), point.qps_range("1") or (None, None)
            rows.append({"model": r.model_name, "index": index_setting(r), "label": point.label,
                         "recall": point.recall_at_k, "batch QPS": point.batch_qps, "QPS@1thr": point.qps("1"),
                         "recall low": recall_ci[0], "recall high": recall_ci[1],
                         "batch QPS low": batch[0], "batch QPS high": batch[1],
                         "QPS@1thr low": one[0], "QPS@1thr high": one[1]})
    columns = ["model", "index", "label", "recall", *QPS_COLUMNS, "recall low", "recall high",
               *(f"{c} {end}" for c in QPS_COLUMNS for end in ("low", "high"))]
    # null (a failed measurement or no interval) becomes NaN, which the plot and the Pareto frontier leave out.
    return pd.DataFrame(rows, columns=columns).astype({c: float for c in columns[3:]})


def _unrankable(points: pd.DataFrame, column: str) -> list[str]:
    """Models whose every search point's QPS (``column``) lies within the noise of all the others."""
    out = []
    for model, own in points.groupby("model", sort=False):
        intervals = [None if np.isnan(lo) or np.isnan(hi) else (lo, hi)
                     for lo, hi in zip(own[f"{column} low"], own[f"{column} high"])]
        if all_within_noise(intervals):
            out.append(str(model))
    return out


def _operating_points(group: Group, results: list[Results], prefix: str, level: int) -> list[Block]:
    k = group.top_k
    batch = group.runs[0].data.config.search.query_batch_size or "?"
    thresholds = ", ".join(f"{t:g}" for t in RECALL_THRESHOLDS)
    blocks: list[Block] = [
        Heading("3. Operating points", level),
        Text(f"For each model × index, the highest QPS among search points reaching recall@{k} ≥ {thresholds} "
             f"(as big-ann-benchmarks ranks). **Batch QPS**: {batch} queries per search call "
             "(search.query_batch_size), one thread. **QPS@1thr**: one client thread sending one query per call. "
             "'not reached' means no search point got there. Each QPS is the median of its timing trials "
             "(search.repeats), with the min–max across them; **within noise** lists the other points reaching the "
             "floor whose QPS range overlaps the best one's (≈: no winner among them)."),
        Table(f"{prefix}operating_points", operating_points_table(results), "Best QPS (queries/s) at a recall floor.",
              layout=layouts.OPERATING_POINTS),
    ]
    points = _qps_points(results)
    if points["QPS@1thr"].isna().all():
        blocks.append(Text("search.concurrency did not include 1, so there is no 1-thread QPS.", "note"))
    for column in QPS_COLUMNS:
        unrankable = _unrankable(points, column)
        if unrankable:
            blocks.append(Text(
                f"**{column}**: for {', '.join(unrankable)}, every search point's QPS lies within the noise of all "
                f"the others (their min–max ranges across {_trials(results)} trials overlap). The corpus is too small "
                "(or the machine too noisy) to rank index speed: read the best-QPS column above as a tie, not a "
                "ranking.", "warning"))
    blocks.append(Figure(f"{prefix}recall_qps", plots.recall_qps(points, k),
                         f"Recall@{k} vs QPS for every search point, with bars for the QPS min–max across trials; ringed "
                         "points joined by thick lines mark each model's Pareto frontier over all its indexes: a point is "
                         "dominated only when another is significantly better on one axis (recall's 95 % bootstrap "
                         "interval, or the QPS range across trials, do not overlap) and not significantly worse on the other."))
    return blocks


def _stores(group: Group, results: list[Results], prefix: str, level: int) -> list[Block]:
    """Only when the group ran the same indexes on several store kinds (e.g. store=faiss,milvus_lite)."""
    table = store_comparison_table(results)
    if table.empty:
        return []
    k = group.top_k
    return [
        Heading("Stores side by side", level),
        Text("The same model, index, build params and search point on each store kind, against the reference "
             "store (the bare index library, faiss, when the runs include it): what the database costs over the "
             f"raw index. **QPS ratio** = store / reference (below 1: the store is slower); **recall diff** = "
             f"store − reference recall@{k}; **differs**: yes when the two QPS ranges across trials do not overlap "
             f"({'≈'} when they do). The same corpus, queries and metric on both; only the store differs."),
        Table(f"{prefix}stores", table, "Store against reference store, per search point.", layout=layouts.STORES),
    ]


def _trials(results: list[Results]) -> str:
    counts = sorted({p.repeats for r in results for p in r.search.points})
    return "/".join(map(str, counts)) or "?"


def _missing_topk_note(group: Group) -> list[Block]:
    missing = [r.path.name for r in group.runs if not r.has_topk]
    return [Text(f"No topk.npz in {', '.join(missing)}; those runs are left out here.", "note")] if missing else []


def _agreement(group: Group, results: list[Results], prefix: str, level: int) -> list[Block]:
    k = group.top_k
    blocks: list[Block] = [
        Heading("4. Agreement between models", level),
        Text(f"Do the models return the same images for the same queries? **overlap@{k}**: mean over queries of "
             f"|A ∩ B| / {k}. **Jaccard@{k}**: mean of |A ∩ B| / |A ∪ B|. **RBO** (rank-biased overlap, "
             f"p={agreement.RBO_P}, depth {k}): like overlap but weighted towards the top ranks. All are 1 for "
             "identical result lists and 0 for disjoint ones."),
        *_missing_topk_note(group),
    ]
    by_model = group.first_with_topk()
    if len(by_model) < 2:
        only = ", ".join(by_model) or "none with top-K arrays"
        return blocks + [Text(f"Only one model in this set ({only}): agreement needs at least two.", "note")]
    exact = {m: (run.topk()["query_ids"], run.topk()["exact_ids"]) for m, run in by_model.items()}
    matrices = agreement.agreement_matrices(exact, k)
    titles = {"overlap": f"overlap@{k}", "jaccard": f"Jaccard@{k}", "rbo": f"RBO (p={agreement.RBO_P})"}
    blocks.append(Heading("Exact search results", level + 1))
    for measure, matrix in matrices.items():
        blocks.append(Table(f"{prefix}agreement_exact_{measure}", matrix,
                            f"{titles[measure]} between models, exact top-{k}.", index=True))
    blocks.append(Figure(f"{prefix}agreement_exact", plots.agreement_heatmaps(matrices, titles),
                         f"Model × model agreement on the exact top-{k} (1 = identical results)."))

    settings: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {"exact search": exact}
    for run in group.runs:
        if not run.has_topk:
            continue
        arrays = run.topk()
        for i, point in enumerate(run.data.search.points):
            if f"ids_{i}" in arrays:
                setting = settings.setdefault(f"{run.index_setting} {point.label}", {})
                setting.setdefault(run.model_label, (arrays["query_ids"], arrays[f"ids_{i}"]))
    blocks.append(Heading("At each index and search point", level + 1))
    blocks.append(Text("Runs are matched by index type, build params and search point; a point that only one "
                       "model ran has no row."))
    blocks.append(Table(f"{prefix}agreement_points", agreement.pairwise_table(settings, k, stats=_stats_config(group)),
                        "Agreement for every pair of models, at the exact results and at each search point, with "
                        "95 % bootstrap intervals over queries."))
    return blocks


def _stats_config(group: Group) -> StatsConfig:
    """The interval settings the runs used (their config's ``stats``)."""
    saved = group.runs[0].data.config.stats
    return StatsConfig(confidence=saved.confidence, bootstrap_resamples=saved.bootstrap_resamples, seed=saved.seed)


def _distances(group: Group, results: list[Results], prefix: str, level: int) -> list[Block]:
    by_model = group.first_with_topk()
    blocks: list[Block] = [
        Heading("5. Distance distributions", level),
        Text(f"Metric **{group.metric}**: {distances.metric_meaning(group.metric)}. Every model's embeddings are "
             "L2-normalised, so the distances of different models are on the same scale."),
        Bullets([f"**{name}**: {meaning}" for name, meaning in distances.SAMPLES.items()]),
        *_missing_topk_note(group),
    ]
    if not by_model:
        return blocks + [Text("No run has top-K arrays, so there are no distances to show.", "note")]
    samples = {m: distances.distance_samples(run.topk()) for m, run in by_model.items()}
    axis = distances.metric_axis_label(group.metric)
    blocks.append(Table(f"{prefix}distance_summary", distances.summary_table(samples),
                        f"Summary statistics per model and sample, in {axis} units."))
    blocks.append(Figure(f"{prefix}distances", plots.distances_by_sample(samples, axis, list(distances.SAMPLES)),
                         "Distance histograms by sample, models overlaid."))
    for number, (model, model_samples) in enumerate(samples.items(), start=1):
        blocks.append(Figure(f"{prefix}distances_model{number}", plots.distances_of_model(model, model_samples, axis),
                             f"{model}: top-1, top-K and random-pair distances."))
    if len(samples) >= 2:
        blocks.append(Text("How different two models' distributions are: **KS statistic** (0..1, the largest gap "
                           "between the two empirical CDFs; the p-value tests 'same distribution') and "
                           f"**Wasserstein** (earth mover's distance, in {axis} units)."))
        blocks.append(Table(f"{prefix}distance_tests", distances.difference_table(samples),
                            "Two-sample statistics for every pair of models."))
    return blocks


def _quality(group: Group, results: list[Results], prefix: str, level: int) -> list[Block]:
    k = group.top_k
    blocks: list[Block] = [
        Heading("6. Quality", level),
        Text(f"**precision@{k}**: the share of a query's top-{k} that shares at least one COCO category with the "
             f"query image. **mAP@{k}**: mean average precision over the top-{k}, with the number of relevant "
             "corpus images as denominator. On exact search, and at every index search point."),
    ]
    random = sorted({r.model_label for r in group.runs if r.data.model.weights and r.data.model.weights.kind == "random"})
    if random:
        blocks.append(Text(f"Quality figures for {', '.join(random)} are not meaningful: these models have random "
                           "weights, so their results say nothing about how well the architecture finds similar "
                           "images. Use model.weights=imagenet to measure quality.", "warning"))
    blocks.append(Table(f"{prefix}quality", quality_table(results), "Category precision and mAP per model."))
    return blocks


# ----------------------------------------------------------------------------------------------
# Section 7: provenance of every run, failed ones included
# ----------------------------------------------------------------------------------------------

def _provenance(runset: RunSet, names: dict[Path, str]) -> list[Block]:
    runs = {names[r.path]: r.data for r in runset.ok + runset.not_ok}
    return [
        Heading("7. Provenance", 2),
        Table("provenance", provenance_table(runs), "Per run: commit, hardware, store and version, weights."),
        Table("versions", versions_table(runs), "Package versions (where runs differ, each version with its runs)."),
    ]


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------

def default_outdir(dirs: list[Path]) -> Path:
    if len(dirs) == 1:
        base = dirs[0] if dirs[0].is_dir() else dirs[0].parent
        return base / "report"
    return Path("reports") / f"report-{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description="Comparison report over finished bench runs.")
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                        help="run or sweep directories (every results.json below them is read)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: DIR/report for one DIR, else reports/report-<timestamp>)")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.exists()]
    try:
        if missing:
            raise BenchError(f"no such file or directory: {', '.join(missing)}")
        paths = build_report(args.dirs, args.out or default_outdir(args.dirs))
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"comparison report: {paths['markdown']} and {paths['html']}")
    return 0
