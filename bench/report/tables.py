"""Results as pandas tables: one row per model, per index build, per search point.

Column names carry their units. The same functions serve a single run's tables and the
comparison report, so a number is formatted one way everywhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from bench.report.significance import fmt_interval, marks_vs_best, percentile_cell
from bench.results import Results, as_results
from bench.schema.base import Interval
from bench.schema.sections import TrialSpread
from bench.stores.indexes import format_params

NO_PARAMS = "-"  # build params of an index that takes none (FLAT, AUTOINDEX)
NO_LABELS = "no labels"  # precision/mAP of a run whose queries have no categories (dataset=folder without labels)


def quality_cell(value: float | None) -> float | str:
    """A precision or mAP figure as shown: None (no labelled query to judge) reads "no labels"."""
    return NO_LABELS if value is None else value


def typed(results: Iterable[Results | dict]) -> list[Results]:
    """The tables read typed results; a results.json document (a single run's, or a test's) is validated."""
    return [as_results(r) for r in results]


def model_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    rows, seen = [], set()
    for r in typed(results):
        model = r.model
        if model is None or model.name in seen:
            continue
        seen.add(model.name)
        emb, parity, b1 = model.embedding, model.conversion.parity, model.embedding.batch1_latency
        batches = model.embedding_spread
        rows.append({
            "model": model.name, "weights": model.weights.label if model.weights else "?",
            "dim": model.embedding_dim, "onnx MB": (model.onnx_bytes or 0) / 1e6, "convert s": model.conversion.seconds,
            "parity max rel": parity.max_rel_diff if parity else None,
            "parity min cos": parity.min_cosine if parity else None,
            "embedded": emb.num_embedded, "skipped": emb.num_skipped,
            "e2e img/s": emb.images_per_s_end_to_end, "infer img/s": emb.images_per_s_inference,
            # Per-batch spread (median, min–max over batches), where the embedder recorded batch times.
            "e2e img/s per-batch range": fmt_interval(_range(batches and batches.images_per_s_end_to_end)),
            "infer img/s per-batch range": fmt_interval(_range(batches and batches.images_per_s_inference)),
            "decode+prep s": emb.seconds.decode_preprocess_s, "infer s": emb.seconds.inference_s,
            "b1 p50 ms": percentile_cell(b1, 50), "b1 p95 ms": percentile_cell(b1, 95),
            "b1 p99 ms": percentile_cell(b1, 99), "b1 samples": b1.count,
            "from cache": emb.from_cache,
            # What ran it (bench.models.runtime).
            "precision": model.precision, "provider": emb.execution_provider, "device": emb.device,
            "threads": emb.threads_in_use,
            # INT8 figures depend on it (bench.cpu): which kernels ran.
            "cpu class": r.cpu_class,
        })
    return pd.DataFrame(rows)


def _range(spread: TrialSpread | None) -> Interval | None:
    return spread.range if spread else None


def load_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    rows = []
    for r in typed(results):
        index = r.index
        if index is None:
            continue
        load = index.load
        rows.append({
            "model": r.model_name, "index": index.type, "store": r.store_label,
            "build params": format_params(index.build_params, NO_PARAMS), "rows": load.rows,
            "insert rows/s": load.insert_rows_per_s, "insert s": load.insert_s,
            "flush s": load.flush_s, "build s": load.build_s, "load s": load.load_s,
            "reused collection": load.reused,
        })
    return pd.DataFrame(rows)


def search_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    rows = []
    for r in typed(results):
        search = r.search
        if search is None:
            continue
        k, points = search.top_k, search.points
        # Within one sweep: which points' QPS cannot be told from the fastest one's.
        batch_marks = marks_vs_best([p.batch_qps for p in points], [p.qps_range() for p in points])
        for point, batch_mark in zip(points, batch_marks):
            lat, e2e, paths = point.latency, point.end_to_end_latency, point.resolve_latency
            # Three nq=1 latencies: the search alone (ids only); the separate path lookup (a Redis MGET,
            # or ~0 with metadata=milvus, whose paths come back inside the search); search + paths, as
            # an application sees it (with metadata=milvus, a search that also returns the path field).
            # Percentiles the samples cannot support show as "n<368", never as a number.
            row = {
                "model": r.model_name, "weights": r.model.weights.label if r.model and r.model.weights else "?",
                "store": r.store_label, "index": r.index_type, "search params": point.label,
                "metadata": r.metadata.kind if r.metadata else None,
                f"recall@{k}": point.recall_at_k, f"recall@{k} 95% CI": fmt_interval(point.interval("recall_at_k")),
                f"precision@{k}": quality_cell(point.precision_at_k),
                f"precision@{k} 95% CI": fmt_interval(point.interval("precision_at_k")),
                "p50 ms": percentile_cell(lat, 50), "p95 ms": percentile_cell(lat, 95),
                "p99 ms": percentile_cell(lat, 99), "latency samples": lat.count,
                "path lookup p50 ms": percentile_cell(paths, 50), "search+paths p50 ms": percentile_cell(e2e, 50),
                "search+paths p99 ms": percentile_cell(e2e, 99),
                "batch QPS": point.batch_qps, "batch QPS range": fmt_interval(point.qps_range()),
                "batch QPS vs best": batch_mark,
            }
            for threads, qps in point.concurrent_qps.items():
                row[f"QPS@{threads}thr"] = qps
                row[f"QPS@{threads}thr range"] = fmt_interval(point.qps_range(threads))
            row["trials"] = point.repeats
            rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".4g") if not df.empty else "_(no rows)_"


def write_tables(tables: dict[str, pd.DataFrame], outdir: Path, header: str = "") -> Path:
    """Write each table as CSV and all of them into one Markdown file; return the Markdown path."""
    outdir.mkdir(parents=True, exist_ok=True)
    parts = [header] if header else []
    for name, df in tables.items():
        df.to_csv(outdir / f"{name}.csv", index=False)
        parts.append(f"## {name.replace('_', ' ')}\n\n{to_markdown(df)}\n")
    md = outdir / "tables.md"
    md.write_text("\n".join(parts))
    return md
