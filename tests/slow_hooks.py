"""Deliberate slowdowns for the regression-gate tests, injected through ``model.preprocess_hook``.

Never used by a shipped config: ``model.preprocess_hook=tests.slow_hooks:sleep_50ms`` makes a run
embed slower on purpose, and the gate must say so.
"""
from __future__ import annotations

import time

import numpy as np

SLEEP_S = 0.05


def sleep_50ms(batch: np.ndarray) -> np.ndarray:
    """Preprocessing that takes 50 ms longer per batch and changes nothing."""
    time.sleep(SLEEP_S)
    return batch


def sleep_250ms(batch: np.ndarray) -> np.ndarray:
    """Slow enough that a test can interrupt a run in the middle of embedding."""
    time.sleep(0.25)
    return batch
