"""How a run stops on a signal: SIGTERM is treated as Ctrl-C, and neither interrupts the
write of a shard and its manifest entry.

Batch schedulers, `docker stop` and systemd send SIGTERM, then SIGKILL a few seconds later;
handled as Ctrl-C, the run saves its finished trees in that time instead of losing them.
Signals only reach Python's main thread, so outside it both helpers do nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    """Which signal asked the run to stop (None: none did)."""

    signal: int | None = None

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process stopped by that signal: 128 + its number."""
        return 128 + (self.signal or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal or signal.SIGINT).name


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[StopRequest]:
    """While active, SIGTERM does what Ctrl-C does: it re-raises itself as SIGINT, so whatever
    handles SIGINT (asyncio's runner, which cancels the run, or Python's default, which
    raises KeyboardInterrupt) stops the run and the Ctrl-C path saves the finished trees.
    The yielded StopRequest says SIGTERM when it was one (exit 143 rather than 130)."""
    request = StopRequest()
    if not _main_thread():
        yield request
        return

    def on_term(signum, frame) -> None:
        request.signal = signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield request
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def held_signals(deliver: bool = True) -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration (the rename of a shard and the manifest write
    that records it, or the last save after a stop), then deliver the first one held, unless
    `deliver` is False (the run is stopping anyway)."""
    if not _main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def hold(signum, frame) -> None:
        held.append(signum)

    for s in STOP_SIGNALS:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held and deliver:
            signal.raise_signal(held[0])
