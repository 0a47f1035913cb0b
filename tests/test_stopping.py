"""SIGTERM stops a run as Ctrl-C does, whatever SIGINT's disposition, and neither cuts a held
section (a shard's rename and its manifest write) short."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from cotgen.stopping import held_signals, run_async, terminate_as_interrupt

SCRIPT = textwrap.dedent("""
    import asyncio, os, signal, sys
    from cotgen.stopping import held_signals, terminate_as_interrupt

    async def main(sig):
        with held_signals():
            os.kill(os.getpid(), sig)
            await asyncio.sleep(0.2)
            print("held section finished", flush=True)
        await asyncio.sleep(30)
        print("not reached", flush=True)

    with terminate_as_interrupt() as request:
        try:
            asyncio.run(main(getattr(signal, sys.argv[1])))
        except KeyboardInterrupt:
            print("stopped by", request.name, request.exit_code, flush=True)
""")


def run(sig: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, sig], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_sigterm_is_ctrl_c_after_the_held_section():
    assert run("SIGTERM") == ["held section finished", "stopped by SIGTERM 143"]


def test_sigint_after_the_held_section():
    assert run("SIGINT") == ["held section finished", "stopped by SIGINT 130"]


def run_with_sigint_ignored(sig: str) -> list[str]:
    """As `cotgen ... &` from a script starts: SIGINT ignored from the start."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, sig], capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_sigterm_stops_a_process_that_started_with_sigint_ignored():
    assert run_with_sigint_ignored("SIGTERM") == ["held section finished", "stopped by SIGTERM 143"]


@pytest.fixture
def sigint_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigterm_raises_keyboard_interrupt_with_sigint_ignored(sigint_ignored):
    with terminate_as_interrupt() as request:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert request.exit_code == 143 and request.name == "SIGTERM"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_sigterm_cancels_an_async_run_with_sigint_ignored(sigint_ignored):
    seen = []

    async def main() -> None:
        # From another thread, as a supervisor's kill arrives while the loop waits in select().
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")  # the run unwinds as on Ctrl-C: its finally blocks run
            raise

    t0 = time.monotonic()
    with terminate_as_interrupt() as request:
        with pytest.raises(KeyboardInterrupt):
            run_async(main(), request)
    assert seen == ["cancelled"] and request.exit_code == 143
    assert time.monotonic() - t0 < 30, "the loop slept on after the signal"


def test_ctrl_c_still_cancels_an_async_run():
    async def main() -> None:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        await asyncio.sleep(60)

    with terminate_as_interrupt() as request:
        with pytest.raises(KeyboardInterrupt):
            run_async(main(), request)
    assert request.exit_code == 130


def test_held_sigterm_is_delivered_with_sigint_ignored(sigint_ignored):
    finished = []
    with terminate_as_interrupt() as request:
        with pytest.raises(KeyboardInterrupt):
            with held_signals():
                signal.raise_signal(signal.SIGTERM)
                signal.raise_signal(signal.SIGINT)
                finished.append("held section")
    assert finished == ["held section"] and request.exit_code == 143


def test_an_ignored_sigint_stays_ignored_through_a_held_section(sigint_ignored):
    with held_signals():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_nested_stop_contexts_share_one_request_and_retake_sigterm():
    before = signal.getsignal(signal.SIGTERM)
    with terminate_as_interrupt() as outer:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(15))  # as ray.init does
        with terminate_as_interrupt() as inner:
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)
        assert inner is outer and outer.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before
