"""The concurrency sweep measured from client processes (search.clients > 1): one row per point and level.

QPS and latency percentiles pooled over every client's samples, the clients' CPU, and a "client-bound"
mark where the clients' CPU was saturated, so a level that measured the client is never read as the store's.
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from bench.report.significance import percentile_cell
from bench.report.tables import typed
from bench.results import Results

CLIENT_BOUND = "client-bound"


def clients_table(results: Iterable[Results | dict]) -> pd.DataFrame:
    rows = []
    for r in typed(results):
        for p in r.search.points if r.search else []:
            for level, c in p.concurrent_clients.items():
                rows.append({"model": r.model_name, "store": r.store_label, "index": r.index_type,
                             "search params": p.label, "concurrency": int(level),
                             "clients": f"{c.processes} × {c.kind}",
                             "QPS": p.qps(level), "p50 ms": percentile_cell(c.latency, 50),
                             "p95 ms": percentile_cell(c.latency, 95), "p99 ms": percentile_cell(c.latency, 99),
                             "samples": c.latency.count,
                             "client CPU (max process, cores)": f"{c.client_cpu_max:.2f}, {c.client_cpu_cores:.2f}",
                             "mark": CLIENT_BOUND if c.client_bound else ""})
    return pd.DataFrame(rows)
