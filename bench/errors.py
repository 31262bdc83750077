"""The one exception type that reaches users as a one-line message, and how a run is interrupted."""
from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class BenchError(Exception):
    """A problem the user can fix; the CLI prints ``str(err)`` alone, without a traceback.

    Messages name the fix, e.g. "unknown model 'vgg61': choose one of vgg16, resnet50 (conf/model/)".
    """


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: the run stops, saving what it can, and the CLI exits 128 + signal number.

    A KeyboardInterrupt, so code that already cleans up after Ctrl-C does the same for SIGTERM, and
    ``except Exception`` blocks never swallow it.
    """

    def __init__(self, signum: int):
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(self.signal_name)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread.

    A signal the process was told to ignore (SIGINT for a job started with ``&`` by a
    non-interactive shell, or under ``nohup``) stays ignored.
    """
    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
