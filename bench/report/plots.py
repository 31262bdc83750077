"""Report figures with matplotlib (Agg, no display): each function returns one PNG as bytes.

Every axis names its quantity and unit; every figure with more than one series has a legend.
"""
from __future__ import annotations

import io
from itertools import cycle

import matplotlib

matplotlib.use("Agg")  # headless: reports are built in sweeps, CI and over ssh
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from bench.measure.statistics import pareto_frontier_with_noise  # noqa: E402

DPI = 110
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _colours(names: list[str]) -> dict[str, str]:
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: colour for name, colour in zip(names, cycle(palette))}


def recall_qps(points: pd.DataFrame, k: int) -> bytes:
    """Recall–QPS trade-off, one panel per QPS kind, with each model's Pareto frontier over all its indexes.

    ``points`` has columns model, index, label, recall, "batch QPS", "QPS@1thr" (NaN where not measured).
    Optional columns "recall low/high" and "<QPS column> low/high" hold the intervals: a point is then
    dominated only when another point of that model is significantly better on one axis and not significantly
    worse on the other (bench.measure.statistics.dominates); without them, the plain Pareto definition.
    """
    models = list(dict.fromkeys(points["model"]))
    indexes = list(dict.fromkeys(points["index"]))
    colour, marker = _colours(models), dict(zip(indexes, cycle(MARKERS)))
    panels = [("batch QPS", "batch search (many queries per call)"),
              ("QPS@1thr", "1 client thread, 1 query per call")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    for ax, (column, title) in zip(axes, panels):
        for (model, index), series in points.groupby(["model", "index"], sort=False):
            ax.plot(series["recall"], series[column], linestyle=":", linewidth=0.8, marker=marker[index],
                    color=colour[model], alpha=0.75, label=f"{model} · {index}")
            low, high = _column(series, f"{column} low"), _column(series, f"{column} high")
            if np.isfinite(low).any():  # the min–max across timing trials
                values = series[column].to_numpy(dtype=float)
                ax.errorbar(series["recall"], values,
                            yerr=[np.clip(values - low, 0, None), np.clip(high - values, 0, None)],
                            fmt="none", ecolor=colour[model], alpha=0.5, capsize=2)
        for model in models:
            own = points[points["model"] == model]
            frontier = pareto_frontier_with_noise(
                [(r, _interval(rl, rh), q, _interval(ql, qh)) for r, rl, rh, q, ql, qh in
                 zip(own["recall"], _column(own, "recall low"), _column(own, "recall high"), own[column],
                     _column(own, f"{column} low"), _column(own, f"{column} high"))])
            if frontier:
                front = own.iloc[frontier]
                # Ringed markers as well as the line: a frontier of one point has no line to show.
                ax.plot(front["recall"], front[column], color=colour[model], linewidth=2.4, alpha=0.9,
                        marker="o", markersize=13, markerfacecolor="none", markeredgewidth=1.8,
                        label=f"{model} · Pareto frontier")
        values = points[column].to_numpy(dtype=float)
        values = values[np.isfinite(values) & (values > 0)]
        # Log scale only where QPS spans a decade or more; within less, log ticks leave the points unlabelled.
        log_scale = values.size > 0 and values.max() / values.min() >= 10
        if log_scale:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlabel(f"recall@{k} (fraction of exact top-{k} found)")
        ax.set_ylabel(f"throughput (queries/s{', log scale' if log_scale else ''})")
        ax.set_title(title)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle("Recall vs QPS (up and to the right is better)")
    return _png(fig)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A float column, all NaN when absent (results without intervals)."""
    return frame[name].to_numpy(dtype=float) if name in frame else np.full(len(frame), np.nan)


def _interval(low: float, high: float):
    return None if np.isnan(low) or np.isnan(high) else (float(low), float(high))


def _shared_bins(arrays: list[np.ndarray]) -> np.ndarray:
    """Common bin edges; about sqrt(n) bins for the smallest sample (10..40), so 16 values are not spikes."""
    values = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([0.0])
    smallest = min((int(np.isfinite(a).sum()) for a in arrays), default=0)
    bins = int(np.clip(np.sqrt(max(smallest, 1)) * 2, 10, 40))
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def distances_by_sample(samples_by_model: dict[str, dict[str, np.ndarray]], axis_label: str,
                        sample_names: list[str]) -> bytes:
    """One panel per sample (top-1, top-K, random pairs), every model overlaid on shared bins."""
    models = list(samples_by_model)
    colour = _colours(models)
    fig, axes = plt.subplots(1, len(sample_names), figsize=(5 * len(sample_names), 4.3), constrained_layout=True)
    for ax, sample in zip(np.atleast_1d(axes), sample_names):
        bins = _shared_bins([samples_by_model[m][sample] for m in models])
        for model in models:
            values = samples_by_model[model][sample]
            ax.hist(values[np.isfinite(values)], bins=bins, density=True, histtype="step", linewidth=1.8,
                    color=colour[model], label=f"{model} (n={values.size})")
        ax.set_title(sample)
        ax.set_xlabel(axis_label)
        ax.set_ylabel("density (1 / distance unit)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Distance distributions by model")
    return _png(fig)


def distances_of_model(model: str, samples: dict[str, np.ndarray], axis_label: str) -> bytes:
    """One model's top-1, top-K and random-pair distances on shared bins: how far neighbours stand out."""
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = _shared_bins(list(samples.values()))
    for (sample, values), colour in zip(samples.items(), _colours(list(samples)).values()):
        ax.hist(values[np.isfinite(values)], bins=bins, density=True, alpha=0.45, color=colour,
                label=f"{sample} (n={values.size})")
    ax.set_title(f"{model}: neighbours vs random pairs")
    ax.set_xlabel(axis_label)
    ax.set_ylabel("density (1 / distance unit)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def agreement_heatmaps(matrices: dict[str, pd.DataFrame], titles: dict[str, str]) -> bytes:
    """Model × model heatmaps (values 0..1, annotated), one panel per measure, one shared colour bar."""
    size = max(3.2, 0.9 * len(next(iter(matrices.values()))) + 2.0)
    fig, axes = plt.subplots(1, len(matrices), figsize=(size * len(matrices) + 1.2, size), constrained_layout=True)
    axes = np.atleast_1d(axes)
    image = None
    for ax, (measure, matrix) in zip(axes, matrices.items()):
        values = matrix.to_numpy(dtype=float)
        image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=30, ha="right")
        ax.set_yticks(range(len(matrix.index)), matrix.index if ax is axes[0] else [""] * len(matrix.index))
        ax.set_xlabel("model B")
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
        ax.set_title(titles.get(measure, measure))
    axes[0].set_ylabel("model A")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="agreement (0 = disjoint … 1 = identical)")
    fig.suptitle("Agreement between models on exact top-K results")
    return _png(fig)
