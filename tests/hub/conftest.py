"""The fake Hub fixture and a push runner: the push runs in a subprocess with a clean env."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_hub import TOKEN, FakeHub  # noqa: E402


@pytest.fixture
def hub():
    server = FakeHub(token=TOKEN)
    assert server.url.startswith("http://127.0.0.1:")  # no traffic leaves loopback
    yield server
    server.stop()


@dataclass
class PushResult:
    code: int
    out: str
    err: str


@pytest.fixture
def push_env(hub, tmp_path):
    """Environment for a push subprocess: fake endpoint, token, online, private HF_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_TOKEN=TOKEN,
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HOME=str(tmp_path / "hf-home"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(proxy, None)
    return env


@pytest.fixture
def run_push(push_env):
    """`cotgen push ARGS...` as a subprocess (huggingface_hub reads its env at import)."""

    def invoke(*args: object, env: dict[str, str] | None = None, timeout: float = 120) -> PushResult:
        proc = subprocess.run(
            [sys.executable, "-m", "cotgen.cli.main", "push", *map(str, args)],
            env=env or push_env, capture_output=True, text=True, timeout=timeout,
            cwd=Path(__file__).resolve().parents[2],
        )
        return PushResult(proc.returncode, proc.stdout, proc.stderr)

    return invoke


@pytest.fixture
def online(monkeypatch):
    """Let this process's huggingface_hub talk to the fake Hub (the top conftest set offline)."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    return constants


class ProxyTrap:
    """A loopback 'proxy' that records and drops every connection: with HTTP(S)_PROXY pointing
    here and NO_PROXY=127.0.0.1, anything a subprocess sends beyond loopback shows up in `seen`."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(512))  # "CONNECT host:443 ..." or "GET http://host/..."
                except OSError:
                    self.seen.append(b"<connection>")

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def proxy_trap():
    trap = ProxyTrap()
    yield trap
    trap.close()
