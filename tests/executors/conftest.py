"""A real Ray cluster for the executor tests: one head node on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ray_helpers import RAY_ENV, RayCluster, kill_tree


def _need_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("ray is not installed: pip install -e '.[ray]'")
        pytest.skip("ray is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="session")
def ray_cluster():
    _need_ray()
    import psutil

    # A short path: Ray's Unix sockets live under it and their paths are limited to 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="cgray", dir="/tmp"))
    env = {**os.environ, **RAY_ENV}
    ray_bin = str(Path(sys.executable).with_name("ray"))
    log = open(temp_dir / "head.log", "w")  # noqa: SIM115 (closed at teardown)
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--port=0",
         "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
         f"--object-store-memory={100 * 2**20}", f"--temp-dir={temp_dir}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    seen: set[int] = set()
    try:
        current = temp_dir / "ray_current_cluster"
        deadline = time.monotonic() + 180
        while not current.exists() or not current.read_text().strip():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start:\n{(temp_dir / 'head.log').read_text()[-3000:]}")
            time.sleep(0.2)
        cluster = RayCluster(current.read_text().strip(), head.pid, temp_dir, env)
        assert cluster.address.startswith("127.0.0.1:"), cluster.address
        yield cluster
        seen.update(p.pid for p in cluster.processes())
    finally:
        try:
            seen.update(p.pid for p in psutil.Process(head.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
        # The head's process group holds gcs, raylet and agents; workers have their own
        # sessions, so they are also killed by PID.
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=5)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait(timeout=30)
        kill_tree(sorted(seen))
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
