"""Reporting: per-run tables, and the comparison report over many runs (`python -m bench.report`)."""
