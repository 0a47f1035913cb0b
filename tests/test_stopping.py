"""SIGTERM stops a run as Ctrl-C does, and neither cuts a held section (a shard's rename and
its manifest write) short."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
