"""Helpers for the tests of processes the course starts (test_processes.py, test_cluster.py):
is a process still running, wait for a condition, which children are left."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import psutil


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(condition: Callable[[], object], timeout: float = 15.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def children_left() -> list[psutil.Process]:
    """Children of this test process (at any depth) that are still running."""
    return [c for c in psutil.Process().children(recursive=True) if alive(c.pid)]


def pid_written_to(marker: Path, timeout: float = 120.0) -> int:
    """The pid a child wrote into ``marker``, once it has (fails the test after ``timeout``)."""
    assert wait_until(lambda: marker.exists() and marker.read_text().strip(), timeout), \
        f"no pid in {marker} after {timeout:g} s"
    return int(marker.read_text())
