"""Shared fixtures: a session workspace so the ONNX model, the sample and the embeddings are
made once, and a helper that runs the real CLI (`python -m bench`) as a user would.

Network: every test runs in a private network namespace with only loopback up. The Milvus
standalone server that tests/test_server.py starts binds 19530, 9091 and internal ports on all
interfaces, and has no setting to change that. So before any test runs, this process (and with
it every server, CLI run and client it starts) moves into a fresh network namespace whose only
interface is `lo`: nothing outside can reach the servers, and nothing the tests do leaves the
machine. Tests need no network anyway. Entering one takes root (CAP_SYS_ADMIN), or an
unprivileged user namespace where the kernel allows them; where neither works the session goes
on in the shared network, the server tests still only address 127.0.0.1, and the pytest header
says which case applies. BENCH_TEST_NETWORK=shared skips the namespace on purpose.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


# -- private network namespace -------------------------------------------------------------
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
IFREQ = "16sh22x"  # struct ifreq: interface name, flags, padding to 40 bytes

NETWORK_STATE: dict[str, object] = {"private": False, "how": "not tried"}


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _map_own_ids() -> None:
    """In a new user namespace, keep our own uid/gid (mapped to themselves), so files stay ours."""
    uid, gid = os.getuid(), os.getgid()
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def _bring_up_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        _, flags = struct.unpack(IFREQ, fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0)))
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def enter_private_network() -> str:
    """Move this process into a new network namespace with `lo` up; return how, or raise OSError."""
    try:
        _unshare(CLONE_NEWNET)
        how = "network namespace"
    except OSError as err:
        if err.errno != errno.EPERM:
            raise
        # Unprivileged: a user namespace owns the new network namespace and grants CAP_NET_ADMIN in it.
        _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        _map_own_ids()
        how = "user + network namespace"
    _bring_up_loopback()
    return how


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("BENCH_TEST_NETWORK") == "shared":
        NETWORK_STATE["how"] = "BENCH_TEST_NETWORK=shared"
        return
    if NETWORK_STATE["private"]:
        return
    try:
        NETWORK_STATE["how"] = enter_private_network()
        NETWORK_STATE["private"] = True
    except OSError as err:
        NETWORK_STATE["how"] = f"refused ({err.strerror})"


def pytest_report_header(config: pytest.Config) -> str:
    if NETWORK_STATE["private"]:
        return f"network: private {NETWORK_STATE['how']}, loopback only"
    return f"network: shared ({NETWORK_STATE['how']}); server tests use 127.0.0.1 only"


# -- workspace and CLI ---------------------------------------------------------------------


@dataclass
class Workspace:
    root: Path

    @property
    def overrides(self) -> list[str]:
        """Point every cache and store of a CLI run into this workspace."""
        return [f"cache_dir={self.root / 'models'}", f"embeddings_dir={self.root / 'embeddings'}",
                f"store.uri={self.root / 'milvus_lite.db'}", f"dataset.root={self.root / 'sample'}"]


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("bench-workspace"))


def run_cli(args: list[str], *, cwd: Path = REPO, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def bench_cli(workspace):
    """Run `python -m bench` with the smoke experiment and the session's caches."""
    def run(*args: str, run_dir: Path | None = None, multirun: bool = False, expect_rc: int | None = 0,
            experiment: str = "smoke") -> subprocess.CompletedProcess:
        argv = (["-m"] if multirun else []) + [f"experiment={experiment}", *workspace.overrides, *args]
        if run_dir is not None:
            argv.append(f"hydra.sweep.dir={run_dir}" if multirun else f"hydra.run.dir={run_dir}")
        proc = run_cli(argv)
        if expect_rc is not None and proc.returncode != expect_rc:
            raise AssertionError(f"exit {proc.returncode}, expected {expect_rc}\nSTDOUT:\n{proc.stdout}\n"
                                 f"STDERR:\n{proc.stderr[-5000:]}")
        return proc
    return run
