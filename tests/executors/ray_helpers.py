"""The executor tests' Ray cluster handle and process cleanup (by PID, never by name)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

# Loopback only, no token file in ~/.ray, no usage report: set for the head, for the drivers
# the tests start, and for anything this process starts.
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",  # token auth would write ~/.ray/auth_token; nothing here leaves 127.0.0.1
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node address = 127.0.0.1, not the outward one
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
}


@dataclass
class RayCluster:
    address: str
    head_pid: int
    temp_dir: Path
    env: dict[str, str]

    def processes(self):
        """Every live process of the cluster (the head's descendants)."""
        import psutil

        try:
            return psutil.Process(self.head_pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def worker_pids(self) -> list[int]:
        """PIDs of the cotgen Ray workers alive now (Ray names their processes ray::TreeWorker)."""
        import psutil

        pids = []
        for p in self.processes():
            try:
                if "TreeWorker" in " ".join(p.cmdline()):
                    pids.append(p.pid)
            except psutil.Error:
                continue
        return pids


def kill_tree(pids: list[int]) -> None:
    """SIGKILL what is still alive among `pids`, one by one."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
