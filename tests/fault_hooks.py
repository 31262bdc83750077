"""Faults injected through ``model.preprocess_hook`` (which runs where the images are decoded: in the Ray actors
for runtime.engine=ray). Never used by a shipped config.

Each fault fires once per armed marker file, whichever process reaches it first: unlinking a file succeeds
for one caller only, so a restarted actor or a second actor does not fire it again.
"""
from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import numpy as np

KILL_MARKER = Path(tempfile.gettempdir()) / "bench-test-kill-actor-once"
INTERRUPT_MARKER = Path(tempfile.gettempdir()) / "bench-test-interrupt-once"
FIRE_AT_CALL = 3  # the process's third batch: mid-run, after some batches are done
_calls = {"n": 0}


def arm(marker: Path) -> None:
    marker.write_text("armed")


def _fires(marker: Path) -> bool:
    _calls["n"] += 1
    if _calls["n"] < FIRE_AT_CALL:
        return False
    try:
        marker.unlink()
    except FileNotFoundError:
        return False
    return True


def kill_actor_once(batch: np.ndarray) -> np.ndarray:
    """SIGKILL this process (a Ray actor) in the middle of a batch, once."""
    if _fires(KILL_MARKER):
        os.kill(os.getpid(), signal.SIGKILL)
    return batch


def interrupt_once(batch: np.ndarray) -> np.ndarray:
    """Ctrl-C in the middle of a local run, once (with model.decode_workers=0 it is raised in the main thread)."""
    if _fires(INTERRUPT_MARKER):
        raise KeyboardInterrupt
    return batch
