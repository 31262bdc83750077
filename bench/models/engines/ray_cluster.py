"""Joining Ray for a run: start a local Ray, join a cluster, or use the Ray this process already runs.

``runtime.ray.address``: null starts a local Ray for the run and stops it at the end; ``auto``
joins the cluster this machine is a node of; ``ray://host:10001`` joins a remote one through Ray Client.
When Ray is already initialised (a notebook, the tests' shared cluster), that Ray is used as it is and
left running. On a cluster the driver's ``bench`` package is shipped to the workers (``py_modules``)
unless ``runtime.ray.ship_code=false`` says every node has it installed already.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.config import RayConfig
from bench.errors import BenchError
from bench.measure.clock import Stopwatch

log = logging.getLogger(__name__)
BENCH_PACKAGE = Path(__file__).resolve().parents[2]  # the bench/ folder of this code
MIN_RAY = (2, 5)  # ActorPoolStrategy(size=...) exists from here on


def check_installed() -> str:
    """Ray's version, or a one-line error naming how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (ray without the data extra lacks pyarrow-backed datasets)
    except ImportError as err:
        raise BenchError(f"runtime.engine=ray needs Ray Data ({err}): pip install -e '.[ray]'") from None
    from bench.models.engines.ray_compat import version_tuple

    if version_tuple(ray.__version__) < MIN_RAY:
        raise BenchError(f"Ray {ray.__version__} is too old for runtime.engine=ray: pip install -e '.[ray]'")
    return ray.__version__


def validate_address(address: str | None) -> None:
    if address is None or address == "auto" or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdigit()):
        raise BenchError(f"runtime.ray.address={address!r}: use null (a local Ray), auto (this machine's "
                         f"cluster), ray://host:10001 (Ray Client) or host:6379 (the head's GCS address)")


@contextlib.contextmanager
def connected(cfg: RayConfig) -> Iterator[dict[str, Any]]:
    """Ray for the duration of the block; yields what was joined, for provenance."""
    import ray

    check_installed()
    started = False
    watch = Stopwatch()
    if ray.is_initialized():
        how = "already running in this process"
    elif cfg.address is None:
        # Ray's processes listen on every interface (with Ray 2.60 a node IP of 127.0.0.1 did not change that); its
        # token authentication, on by default, guards them. No dashboard: nothing here reads it.
        try:
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
        except Exception as err:  # Ray raises a bare Exception when its raylet misses its 30 s start-up window
            ray.shutdown()  # what did start (the GCS, a reaper) must not outlive the failed run
            raise BenchError(f"a local Ray did not start ({err}): on a loaded machine rerun when it is quieter, or "
                             f"start Ray once with `ray start --head` and set runtime.ray.address=auto") from None
        started, how = True, "local, started for this run"
    else:
        env = {"py_modules": [str(BENCH_PACKAGE)]} if cfg.ship_code else None
        try:
            ray.init(address=cfg.address, runtime_env=env, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise BenchError(f"cannot join Ray at runtime.ray.address={cfg.address!r} ({err}): check that the "
                             f"cluster is up (ray status) and the address") from None
        started, how = True, f"joined {cfg.address}"
    try:
        yield describe(how, watch.elapsed())
    finally:
        if started:
            ray.shutdown()


def describe(how: str, init_s: float) -> dict[str, Any]:
    """The Ray version and the cluster's resources, as this run saw them."""
    import ray

    resources = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {"ray_version": ray.__version__, "how": how, "init_s": init_s, "nodes": len(nodes),
            "resources": {k: v for k, v in resources.items() if not k.startswith("node:")}}


def check_fits(actors: int, cpus_per_actor: int, cluster: dict[str, Any], joined: bool) -> None:
    """An actor pool larger than the cluster waits forever for CPUs: say so (a warning on a cluster that
    may autoscale, an error on a fixed local Ray)."""
    need, have = actors * cpus_per_actor, float(cluster["resources"].get("CPU", 0))
    if need <= have:
        return
    message = (f"runtime.ray.actors={actors} x runtime.ray.cpus_per_actor={cpus_per_actor} need {need} CPUs, "
               f"Ray has {have:g}")
    if joined:
        log.warning("%s: the pool waits for the cluster to scale up", message)
        return
    raise BenchError(f"{message}: lower runtime.ray.actors or runtime.ray.cpus_per_actor")
