"""Helpers for the tests that run vLLM's CPU build for real (marker `vllm`, make test-vllm):
the engine's child processes, and a real vLLM OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 600  # engine start is ~35-55 s here, minutes on a busy machine
# Small KV cache (GiB): the tiny model needs little, and the machine is shared.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def engine_processes(root: int | None = None) -> set[int]:
    """Pids of the processes under `root` (default: this one) that vLLM started, leaving
    out multiprocessing's resource tracker, which lives as long as its parent by design."""
    import psutil

    try:
        children = psutil.Process(root or os.getpid()).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    pids = set()
    for child in children:
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.Error:
            pass
    return pids


def alive(pids: set[int]) -> set[int]:
    import psutil

    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_gone(pids: set[int], timeout: float = 30) -> set[int]:
    """The pids still alive after waiting up to `timeout` seconds for them to exit."""
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive(pids)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """`python -m vllm.entrypoints.openai.api_server` on a free 127.0.0.1 port, in its own
    process group, serving `model` under its folder path as the model name. (`vllm serve`
    fails with vllm-cpu: "No package metadata was found for vllm".)"""

    def __init__(self, model: Path, log: Path, max_model_len: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log
        args = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model), "--served-model-name", str(model),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--max-model-len", str(max_model_len), "--seed", "0",
            # CPU: with chunked prefill a request with its own seed crashes the engine core.
            "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096",
            "--enable-prefix-caching", "--enable-prompt-tokens-details", "--max-logprobs", "20",
        ]
        env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
        self._log = open(log, "wb")
        # Its own process group, so teardown can stop the server and every process it started.
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the vLLM server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError(f"the vLLM server was not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def group_pids(self) -> set[int]:
        import psutil

        pids = set()
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(p.pid) == self.proc.pid:
                    pids.add(p.pid)
            except (ProcessLookupError, PermissionError):
                pass
        return alive(pids)

    def stop(self) -> set[int]:
        """SIGTERM to the whole process group, SIGKILL after 30 s; returns pids left alive."""
        pids = self.group_pids() | {self.proc.pid}
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        left = wait_gone(pids, timeout=30)
        if left:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()
        return left
