"""How the report's wide tables read: which columns identify a row, and which topic each other
column belongs to (quality, latency, throughput).

Columns are claimed by name patterns, so a column added beside a figure (its confidence interval,
another concurrency level) lands in its topic without an edit here. The CSV files keep every
column in one table; only the Markdown and HTML show the parts.
"""
from __future__ import annotations

from bench.report.document import Layout, Topic

MODELS = Layout(
    id_columns=("model",),
    rest="Model and conversion",
    topics=(
        Topic("Embedding throughput (images/s, end to end and inference alone; stage times in s)",
              r"img/s|^(embedded|skipped|decode\+prep s|infer s|from cache)\b"),
        Topic("Batch-1 embedding latency (ms)", r"^b1 "),
    ),
)

SEARCH = Layout(
    id_columns=("model", "index", "search params"),
    rest="Setup (weights, store, metadata backend)",
    rest_last=True,
    topics=(
        Topic("Quality (recall against exact search; category precision)", r"^(recall|precision|mAP)@"),
        Topic("Latency, one query per call (ms)", r"\bms\b"),
        Topic("Throughput (QPS: queries/s)", r"QPS"),
    ),
)

LOAD = Layout(id_columns=("model", "index"))

OPERATING_POINTS = Layout(id_columns=("model", "index"))

STORES = Layout(
    id_columns=("model", "index", "search params", "store"),
    rest="Stores",
    topics=(
        Topic("Quality (recall against exact search)", r"recall"),
        Topic("Throughput (QPS: queries/s) and latency (ms)", r"QPS|\bms\b"),
    ),
)
