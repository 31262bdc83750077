"""Results as pandas tables: one row per model, per index build, per search point.

Column names carry their units. The same functions serve a single run's tables and the
comparison report, so a number is formatted one way everywhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.cpu import recorded_class
from bench.measure.statistics import spread_interval
from bench.report.significance import fmt_interval, marks_vs_best, percentile_cell, qps_interval, quality_interval
from bench.stores.indexes import format_params

NO_PARAMS = "-"  # build params of an index that takes none (FLAT, AUTOINDEX)
NO_LABELS = "no labels"  # precision/mAP of a run whose queries have no categories (dataset=folder without labels)


def quality_cell(value: float | None) -> float | str:
    """A precision or mAP figure as shown: None (no labelled query to judge) reads "no labels"."""
    return NO_LABELS if value is None else value


def _weights_label(weights: dict[str, Any] | None) -> str:
    if not weights:
        return "?"
    kind = weights.get("kind", "?")
    if kind == "random":
        return f"random(seed={weights.get('seed')})"
    if kind == "file":
        return f"file({str(weights.get('sha256') or '')[:8]})"
    return kind


def _store_label(result: dict) -> str:
    store = result.get("provenance", {}).get("store", {})
    return f"{store.get('kind', '?')} {store.get('version', '')}".strip()


def model_table(results: Iterable[dict]) -> pd.DataFrame:
    rows, seen = [], set()
    for r in results:
        model = r.get("model")
        if not model or model.get("name") in seen:
            continue
        seen.add(model["name"])
        conv, emb = model.get("conversion", {}), model.get("embedding", {})
        parity = conv.get("parity") or {}
        b1 = emb.get("batch1_latency", {})
        batches = model.get("embedding_spread") or {}
        rows.append({
            "model": model["name"], "weights": _weights_label(model.get("weights")), "dim": model.get("embedding_dim"),
            "onnx MB": (model.get("onnx_bytes") or 0) / 1e6, "convert s": conv.get("seconds"),
            "parity max rel": parity.get("max_rel_diff"), "parity min cos": parity.get("min_cosine"),
            "embedded": emb.get("num_embedded"), "skipped": emb.get("num_skipped"),
            "e2e img/s": emb.get("images_per_s_end_to_end"), "infer img/s": emb.get("images_per_s_inference"),
            # Per-batch spread (median, min–max over batches), where the embedder recorded batch times.
            "e2e img/s per-batch range": fmt_interval(spread_interval(batches.get("images_per_s_end_to_end"))),
            "infer img/s per-batch range": fmt_interval(spread_interval(batches.get("images_per_s_inference"))),
            "decode+prep s": emb.get("seconds", {}).get("decode_preprocess_s"),
            "infer s": emb.get("seconds", {}).get("inference_s"),
            "b1 p50 ms": percentile_cell(b1, 50), "b1 p95 ms": percentile_cell(b1, 95),
            "b1 p99 ms": percentile_cell(b1, 99), "b1 samples": b1.get("count"),
            "from cache": bool(emb.get("from_cache")),
            # What ran it (bench.models.runtime); runs from before runtimes were configurable lack the device.
            "precision": model.get("precision", "fp32"), "provider": emb.get("execution_provider"),
            "device": emb.get("device"), "threads": emb.get("threads_in_use", emb.get("intra_op_threads")),
            # INT8 figures depend on it (bench.cpu): which kernels ran.
            "cpu class": recorded_class(r),
        })
    return pd.DataFrame(rows)


def load_table(results: Iterable[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        index = r.get("index")
        if not index:
            continue
        load = index.get("load", {})
        rows.append({
            "model": r["model"]["name"], "index": index["type"], "store": _store_label(r),
            "build params": format_params(index.get("build_params", {}), NO_PARAMS), "rows": load.get("rows"),
            "insert rows/s": load.get("insert_rows_per_s"), "insert s": load.get("insert_s"),
            "flush s": load.get("flush_s"), "build s": load.get("build_s"), "load s": load.get("load_s"),
            "reused collection": bool(load.get("reused")),
        })
    return pd.DataFrame(rows)


def search_table(results: Iterable[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        search = r.get("search")
        if not search:
            continue
        k = search["top_k"]
        points = search["points"]
        # Within one sweep: which points' QPS cannot be told from the fastest one's (issue 12).
        batch_marks = marks_vs_best([p.get("batch_qps") for p in points], [qps_interval(p) for p in points])
        for point, batch_mark in zip(points, batch_marks):
            lat, e2e, paths = point["latency"], point["end_to_end_latency"], point["resolve_latency"]
            # Three nq=1 latencies: the search alone (ids only); the separate path lookup (a Redis MGET,
            # or ~0 with metadata=milvus, whose paths come back inside the search); search + paths, as
            # an application sees it (with metadata=milvus, a search that also returns the path field).
            # Percentiles the samples cannot support show as "n<368", never as a number.
            row = {
                "model": r["model"]["name"], "weights": _weights_label(r["model"].get("weights")),
                "store": _store_label(r), "index": r["index"]["type"], "search params": point["label"],
                "metadata": r["metadata"]["kind"],
                f"recall@{k}": point["recall_at_k"], f"recall@{k} 95% CI": fmt_interval(quality_interval(point, "recall_at_k")),
                f"precision@{k}": quality_cell(point["precision_at_k"]),
                f"precision@{k} 95% CI": fmt_interval(quality_interval(point, "precision_at_k")),
                "p50 ms": percentile_cell(lat, 50), "p95 ms": percentile_cell(lat, 95),
                "p99 ms": percentile_cell(lat, 99), "latency samples": lat.get("count"),
                "path lookup p50 ms": percentile_cell(paths, 50), "search+paths p50 ms": percentile_cell(e2e, 50),
                "search+paths p99 ms": percentile_cell(e2e, 99),
                "batch QPS": point["batch_qps"], "batch QPS range": fmt_interval(qps_interval(point)),
                "batch QPS vs best": batch_mark,
            }
            for threads, qps in point["concurrent_qps"].items():
                row[f"QPS@{threads}thr"] = qps
                row[f"QPS@{threads}thr range"] = fmt_interval(qps_interval(point, threads))
            row["trials"] = point.get("repeats", 1)
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
