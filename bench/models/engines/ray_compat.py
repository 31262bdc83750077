"""The one place that knows how Ray's API changed: how map_batches is told to use a fixed pool of actors.

- Ray < 2.9: ``compute=ActorPoolStrategy(size=n)``.
- Ray 2.9 to 2.50: ``concurrency=n`` (``compute`` still works there, with a deprecation warning).
- Ray 2.51 on: ``compute=ActorPoolStrategy(size=n)`` again, and ``concurrency`` is the deprecated one.

Fault tolerance is set explicitly for every version: Ray Data's own defaults for its actors changed too.
The number of blocks of ``from_items`` was ``parallelism`` before 2.10 and is ``override_num_blocks`` since.
"""
from __future__ import annotations

from typing import Any

CONCURRENCY_ERA = ((2, 9), (2, 51))  # [from, until) the releases that want concurrency=n
OVERRIDE_NUM_BLOCKS = (2, 10)


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def actor_pool_args(actors: int, version: str | None = None) -> dict[str, Any]:
    """map_batches keyword arguments for a fixed pool of ``actors`` actors that are restarted when they die
    and whose lost batches are retried."""
    import ray
    import ray.data

    first, until = CONCURRENCY_ERA
    if first <= version_tuple(version or ray.__version__) < until:
        pool: dict[str, Any] = {"concurrency": int(actors)}
    else:
        pool = {"compute": ray.data.ActorPoolStrategy(size=int(actors))}
    # -1: restart a dead actor, and retry its batches, as often as needed.
    return {**pool, "max_restarts": -1, "max_task_retries": -1}


def items_dataset(items: list[dict[str, Any]], blocks: int, version: str | None = None) -> Any:
    """A Ray dataset of ``items`` in ``blocks`` blocks, built on the driver (no Ray task runs to make it)."""
    import ray
    import ray.data

    key = "override_num_blocks" if version_tuple(version or ray.__version__) >= OVERRIDE_NUM_BLOCKS else "parallelism"
    return ray.data.from_items(items, **{key: max(1, int(blocks))})
