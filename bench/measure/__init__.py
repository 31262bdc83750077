"""Measurement: search timing and the evaluation metrics (pure numpy over the kept top-K arrays)."""
