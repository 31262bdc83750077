"""The performance-regression gate: compare results, run revisions side by side, check a baseline.

`python -m bench.gate` checks the committed baseline; `python -m bench.compare` compares any two.
"""
