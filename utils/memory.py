"""Resident memory of processes: the current value and the peak while something runs."""

from __future__ import annotations

import threading
from typing import Callable

__all__ = ["PeakMemory", "rss_bytes", "children_rss_bytes"]


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of process ``pid`` (default: this one) in bytes."""
    import psutil

    return psutil.Process(pid).memory_info().rss


def children_rss_bytes(pid: int | None = None) -> int:
    """Summed resident memory of all descendants of ``pid`` (default: this process)."""
    import psutil

    total = 0
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    for child in children:
        try:
            total += child.memory_info().rss
        except psutil.Error:  # it ended between listing and reading
            pass
    return total


class PeakMemory:
    """Poll a memory reading in a background thread and keep the largest value.

    ``with PeakMemory() as peak: run()`` then ``peak.bytes``. By default it watches the summed
    resident memory of this process's descendants (a Jupyter kernel started by papermill and
    anything it starts); pass ``measure=rss_bytes`` to watch this process itself.
    """

    def __init__(self, interval: float = 0.1,
                 measure: Callable[[], int] = children_rss_bytes) -> None:
        self.interval = interval
        self.measure = measure
        self.bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.bytes = max(self.bytes, self.measure())
            except Exception:
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.bytes = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def megabytes(self) -> float | None:
        """The peak in MB (10**6 bytes), or None if nothing was measured."""
        return round(self.bytes / 1e6, 1) if self.bytes else None
