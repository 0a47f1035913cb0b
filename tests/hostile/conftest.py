"""Fixtures the hostile tests share: small and read-only disks (tmpfs mounts)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _tmpfs(mnt: Path, options: str, what: str) -> Iterator[Path]:
    """Mount a tmpfs with `options` on `mnt` for the test, unmounted after it; skip, saying
    why, where this machine cannot (no mount command, no root or CAP_SYS_ADMIN)."""
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip(f"no mount command: cannot make {what}")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs to fill."""
    yield from _tmpfs(tmp_path / "disk", "size=4m", "a small disk to fill")


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs."""
    yield from _tmpfs(tmp_path / "ro", "ro,size=1m", "a read-only disk")
