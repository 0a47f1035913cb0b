"""How a run stops on a signal: SIGTERM stops it as Ctrl-C does, whatever SIGINT's
disposition, and neither interrupts the write of a shard and its manifest entry.

Batch schedulers, `docker stop` and systemd send SIGTERM, then SIGKILL a few seconds later;
stopped as on Ctrl-C, the run saves its finished trees in that time instead of losing them.
A process started with `&` from a script, or by many supervisors, inherits SIGINT ignored,
so SIGTERM never goes through SIGINT: it has its own handler, the one stop path of the local
run and of the Ray driver. Signals only reach Python's main thread, so outside it the
helpers only run what they wrap.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

T = TypeVar("T")


@dataclass
class StopRequest:
    """Which signal asked the run to stop (None: none did, or only Ctrl-C)."""

    signal: int | None = None
    # The asyncio run (run_async) that SIGTERM cancels; None outside one.
    task: asyncio.Task | None = field(default=None, repr=False)
    cancelled: bool = field(default=False, repr=False)  # SIGTERM has cancelled `task`
    # Set by ask(): the run stops at the executor's next look (within a second), saving its
    # finished trees as on a signal (the chat engine's --max-cost stops it from inside the engine).
    reason: str | None = None

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process stopped by that signal: 128 + its number."""
        return 128 + (self.signal or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal or signal.SIGINT).name

    def ask(self, reason: str) -> None:
        """Stop the run without a signal: the executor stops its workers, which write their
        finished trees, and returns with RunResult.stopped = reason. Callable from any
        callback the run makes (progress, say); the first reason stays."""
        self.reason = self.reason or reason

    def on_term(self, signum, frame) -> None:
        """SIGTERM's handler. In an asyncio run it cancels the run, as asyncio's runner does
        on a first Ctrl-C; anywhere else, and on a second SIGTERM, it raises
        KeyboardInterrupt, as Python does on Ctrl-C."""
        self.signal = signal.SIGTERM
        task = self.task
        if task is not None and not task.done() and not self.cancelled:
            self.cancelled = True
            task.cancel()
            task.get_loop().call_soon_threadsafe(lambda: None)  # wake a select() that waits on
            return
        raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# The request of the outermost terminate_as_interrupt open in the main thread, if any.
_active: StopRequest | None = None


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[StopRequest]:
    """While active, SIGTERM stops the run as Ctrl-C does (StopRequest.on_term), so the Ctrl-C
    path saves the finished trees; it never goes through SIGINT, which a process started in
    the background may ignore. The yielded StopRequest says SIGTERM when it was one (exit 143
    rather than 130).

    Nested, it yields the outer request and puts its handler back on SIGTERM, over whatever
    was set in between (`ray.init` sets one that exits); on leaving, it restores what was there
    when it was entered."""
    global _active
    if not _main_thread():
        yield StopRequest()
        return
    outermost = _active is None
    request = StopRequest() if _active is None else _active
    previous = signal.signal(signal.SIGTERM, request.on_term)
    _active = request
    try:
        yield request
    finally:
        signal.signal(signal.SIGTERM, previous)
        if outermost:
            _active = None


@contextlib.contextmanager
def interrupted_as(message: str | Callable[[], str]) -> Iterator[None]:
    """For a command that writes nothing for good until it finishes (export, dedupe,
    decontaminate, view): Ctrl-C and SIGTERM, whatever SIGINT's disposition, stop the block
    as Ctrl-C does (its finally blocks remove what it staged) and leave it as Interrupted
    with `message` (or what it returns, asked then), its "{signal}" the signal's name; exit
    130 / 143. Without it SIGTERM killed the process where it stood, staging and all."""
    from cotgen.errors import Interrupted

    with terminate_as_interrupt() as stop:
        try:
            yield
        except KeyboardInterrupt:
            text = message() if callable(message) else message
            raise Interrupted(text.replace("{signal}", stop.name), exit_code=stop.exit_code) from None


def run_async(main: Coroutine[Any, Any, T], request: StopRequest) -> T:
    """asyncio.run(main), stopped by SIGTERM as by Ctrl-C: `main` is cancelled, unwinds (its
    finally blocks run, its engine closes), and KeyboardInterrupt is raised once it has.
    asyncio handles Ctrl-C so only when SIGINT has its default handler; this does not depend
    on SIGINT at all."""

    async def stoppable() -> T:
        request.task = asyncio.current_task()
        try:
            return await main
        finally:
            request.task = None

    try:
        return asyncio.run(stoppable())
    except asyncio.CancelledError:
        if not request.cancelled:
            raise
        raise KeyboardInterrupt from None


@contextlib.contextmanager
def held_signals(deliver: bool = True) -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration (the rename of a shard and the manifest write
    that records it, or the last save after a stop), then deliver the first one held, unless
    `deliver` is False (the run is stopping anyway). An ignored signal stays ignored."""
    if not _main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    previous = {s: h for s, h in previous.items() if h is not signal.SIG_IGN}

    def hold(signum, frame) -> None:
        held.append(signum)

    for s in previous:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held and deliver:
            signal.raise_signal(held[0])
