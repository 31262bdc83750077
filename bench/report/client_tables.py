"""The concurrency sweep measured from client processes (search.clients > 1): one row per point and level.

QPS and latency percentiles pooled over every client's samples, the clients' CPU, and a "client-bound"
mark where the clients' CPU was saturated, so a level that measured the client is never read as the store's.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from bench.report.significance import percentile_cell
from bench.report.tables import _store_label

CLIENT_BOUND = "client-bound"


def clients_table(results: Iterable[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        for p in r.get("search", {}).get("points", []):
            for level, c in (p.get("concurrent_clients") or {}).items():
                latency = c["latency"]
                rows.append({"model": r["model"]["name"], "store": _store_label(r), "index": r["index"]["type"],
                             "search params": p["label"], "concurrency": int(level),
                             "clients": f"{c['processes']} × {c['kind']}", "QPS": p["concurrent_qps"].get(level),
                             "p50 ms": percentile_cell(latency, 50), "p95 ms": percentile_cell(latency, 95),
                             "p99 ms": percentile_cell(latency, 99), "samples": latency["count"],
                             "client CPU (max process, cores)": f"{c['client_cpu_max']:.2f}, "
                                                                f"{c['client_cpu_cores']:.2f}",
                             "mark": CLIENT_BOUND if c["client_bound"] else ""})
    return pd.DataFrame(rows)
