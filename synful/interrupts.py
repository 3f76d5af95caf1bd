"""SIGTERM (what SLURM sends at a time limit) as an exception, so a command ends cleanly.

Inside :func:`sigterm_raises`, SIGTERM raises :class:`Terminated` in the main thread. It is a
``KeyboardInterrupt``, so ``except Exception`` does not swallow it, while context managers and
``finally`` blocks run: temporary outputs are removed (:func:`synful.atomic.atomic_output`)
and resumable state (done markers, partial stores, checkpoints) stays for a rerun.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: the exit status of a command ended by SIGTERM (128 + 15, as a shell reports it)
EXIT_CODE = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum, frame):
    # one is enough: further SIGTERMs (SLURM signals every process of the step) must not
    # interrupt the clean-up that this one starts
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while inside (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
