"""The report's Variants section: each INT8/FP16 (or other-runtime) variant against its FP32 parent.

One row per variant with its speed, size and fidelity (from each run's ``fidelity`` section, see
bench.measure.fidelity), the FP32 parents as reference rows, the served results of every index
point against FP32's exact top-K, and a speed-against-fidelity plot.
"""
from __future__ import annotations

from itertools import cycle
from typing import Any, Optional

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.report.document import Block, Figure, Heading, Table, Text
from bench.report.plots import MARKERS, _colours, _png
from bench.report.runset import Group, Run
from bench.schema.sections import Variant


def variant_runs(group: Group) -> dict[str, Run]:
    """One run per variant model (its exact-search fidelity is the same in every index run)."""
    chosen: dict[str, Run] = {}
    for run in group.runs:
        if run.data.fidelity and run.model_label not in chosen:
            chosen[run.model_label] = run
    return chosen


def _reference_runs(group: Group, variants: dict[str, Run]) -> dict[str, Run]:
    """The FP32 parents' own runs in this group, by the parent's ONNX hash."""
    wanted = {run.data.fidelity.reference.onnx_sha256 for run in variants.values()}
    chosen: dict[str, Run] = {}
    for run in group.runs:
        sha = run.data.model.onnx_sha256
        if sha in wanted and not run.data.fidelity and sha not in chosen:
            chosen[sha] = run
    return chosen


def _common(run: Run, k: int) -> dict:
    model, exact = run.data.model, run.data.exact
    embedding = model.embedding
    return {"model": run.model_label, "precision": model.precision,
            "provider": str(embedding.execution_provider or "?").replace("ExecutionProvider", ""),
            "threads": embedding.threads_in_use, "cpu class": run.data.cpu_class, "quant": quant_label(model.variant),
            "e2e img/s": embedding.images_per_s_end_to_end, "infer img/s": embedding.images_per_s_inference,
            "ONNX MB": (model.onnx_bytes or 0) / 1e6,
            f"precision@{k}": exact.precision_at_k if exact else None, f"mAP@{k}": exact.map_at_k if exact else None}


def quant_label(variant: Optional[Variant]) -> str:
    """A variant's quantization settings in one cell, e.g. "QDQ per-channel U8S8 MinMax reduce_range=on (auto)"."""
    settings = variant.settings if variant else None
    if settings is None or not str(settings.precision or "").startswith("int8"):
        return "—"
    short = {"QUInt8": "U8", "QInt8": "S8"}
    parts = [settings.quant_format or "dynamic", "per-channel" if settings.per_channel else "per-tensor",
             short.get(settings.activation_type or "QUInt8", "?") + short.get(settings.weight_type, "?")]
    if settings.calibrate_method:
        parts.append(settings.calibrate_method)
    if settings.reduce_range is not None:  # variants made before the setting existed did not reduce the range
        parts.append(f"reduce_range={'on' if settings.reduce_range else 'off'} "
                     f"({settings.reduce_range_setting or 'auto'})")
    else:
        parts.append("reduce_range=off (not recorded)")
    return " ".join(parts)


def variants_table(group: Group) -> pd.DataFrame:
    """FP32 parents (reference rows) and one row per variant, parents first, each followed by its variants."""
    k = group.top_k
    variants = variant_runs(group)
    references = _reference_runs(group, variants)
    rows = []
    for sha, run in references.items():
        rows.append({**_common(run, k), "reference": "—", "infer speed ×": 1.0, "size ×": 1.0,
                     "cosine min": 1.0, "cosine p1": 1.0, "cosine p50": 1.0, f"overlap@{k}": 1.0, "RBO": 1.0,
                     "_parent": sha, "_order": 0})
    for label, run in variants.items():
        fid = run.data.fidelity
        shift, speed, quality = fid.distances.topk, fid.speed.images_per_s_inference, fid.quality
        variant = run.data.model.variant
        rows.append({
            **_common(run, k), "reference": fid.reference.model, "infer speed ×": speed.ratio if speed else None,
            "size ×": fid.size.ratio, "make s": variant.seconds if variant else None,
            "cosine min": fid.cosine.min, "cosine p1": fid.cosine.p1, "cosine p50": fid.cosine.p50,
            f"overlap@{k}": fid.exact.overlap_at_k, "RBO": fid.exact.rbo,
            f"Δprecision@{k}": quality.precision_at_k.change if quality.precision_at_k else None,
            f"ΔmAP@{k}": quality.map_at_k.change if quality.map_at_k else None,
            "KS top-K": shift.ks_statistic if shift else None, "Wasserstein top-K": shift.wasserstein if shift else None,
            "_parent": fid.reference.onnx_sha256, "_order": 1})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    parents = list(dict.fromkeys(df["_parent"]))
    df["_parent"] = df["_parent"].map(parents.index)
    return df.sort_values(["_parent", "_order"], kind="stable").drop(columns=["_parent", "_order"]).reset_index(drop=True)


def served_table(group: Group) -> pd.DataFrame:
    """Every variant run's search points: recall against its own exact search and against FP32's."""
    k = group.top_k
    rows = []
    for run in group.runs:
        fid = run.data.fidelity
        if fid is None:
            continue
        own = {f"{run.index_type} {p.label}": p.recall_at_k for p in run.data.search.points}
        for point in fid.points:
            rows.append({"model": run.model_label, "index": run.index_setting, "results at": point.label,
                         f"recall@{k} vs own exact": own.get(point.label),
                         f"recall@{k} vs FP32 exact": point.recall_at_k})
    return pd.DataFrame(rows)


def speed_fidelity_plot(table: pd.DataFrame, k: int) -> bytes:
    """Inference speed-up against fidelity (overlap@K and cosine p1), one point per model row."""
    parents = [str(m if ref == "—" else ref) for m, ref in zip(table["model"], table["reference"])]
    colour = _colours(list(dict.fromkeys(parents)))
    marker = dict(zip(dict.fromkeys(table["precision"]), cycle(MARKERS)))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True)
    for ax, column, title in ((axes[0], f"overlap@{k}", f"exact top-{k} overlap with FP32"),
                              (axes[1], "cosine p1", "cosine to FP32, 1st percentile over images")):
        for parent, (_, row) in zip(parents, table.iterrows()):
            x, y = _number(row["infer speed ×"]), _number(row[column])
            if x is None or y is None:
                continue
            ax.scatter([x], [y], color=colour[parent], marker=marker[row["precision"]], s=70,
                       label=f"{row['model']}")
            ax.annotate(str(row["precision"]), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
        speeds = [v for v in map(_number, table["infer speed ×"]) if v]
        if speeds and max(speeds) / min(speeds) >= 10:  # a slow variant would squash the others against 0
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 0.1 0.2 0.5 1 2 5: readable ratios
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("inference images/s, × its FP32 model (same runtime)")
        ax.set_ylabel(column)
        ax.set_title(title)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle("Speed against fidelity (right = faster, up = closer to FP32)")
    return _png(fig)


def _number(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def section(group: Group, prefix: str, level: int) -> list[Block]:
    """The Variants section, or nothing when the group holds no variant."""
    if not variant_runs(group):
        return []
    k = group.top_k
    table = variants_table(group)
    blocks: list[Block] = [
        Heading("Variants: speed against fidelity", level),
        Text(f"Each variant (`model.precision`, `runtime`) against its FP32 parent on the same images and queries. "
             f"**infer speed ×**: inference images/s over the FP32 model's, same runtime (both timings are in the "
             f"runs' embedding stats; a cached one was measured when its vectors were made). **cosine**: between "
             f"the two embeddings of each image. **overlap@{k}**, **RBO**: exact top-{k} of each model compared; "
             f"overlap@{k} is also the recall@{k} of the variant's exact results against the FP32 model's exact "
             f"top-{k} (the second table gives it for the results each index served). **Δ**: variant minus FP32. **KS**, **Wasserstein**: shift of the top-{k} distance "
             "distribution."),
    ]
    warnings = {label: run.data.fidelity.warning for label, run in variant_runs(group).items()
                if run.data.fidelity.warning}
    for label, warning in warnings.items():
        blocks.append(Text(f"**{label}**: {warning}.", "warning"))
    if len({run.data.cpu_class for run in group.runs}) > 1:
        blocks.append(Text("These runs come from more than one CPU class: INT8 fidelity and speed depend on it "
                           "(VNNI or not), so compare INT8 rows only within one class.", "note"))
    if not (table["reference"] == "—").any():
        blocks.append(Text("No FP32 parent has a run in this set, so there are no reference rows; the ratios come "
                           "from the reference embeddings each variant run measured or read from the cache.", "note"))
    blocks.append(Table(f"{prefix}variants", table, "Variants and their FP32 parents; speed in images/s, sizes in MB."))
    served = served_table(group)
    if not served.empty:
        blocks.append(Table(f"{prefix}variants_served", served,
                            f"What users see: each variant's results at every index point, as recall@{k} against "
                            f"its own exact search and against the FP32 model's exact top-{k}."))
    blocks.append(Figure(f"{prefix}variants_speed_fidelity", speed_fidelity_plot(table, k),
                         f"Inference speed-up against overlap@{k} and cosine p1 with the FP32 model; FP32 rows "
                         "sit at (1, 1)."))
    return blocks
