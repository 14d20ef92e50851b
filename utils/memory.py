"""Memory of processes: the current value and the peak while something runs.

For several processes (a Jupyter kernel and the workers it starts) the honest total is the sum
of their *proportional set size* (PSS): a page shared by k processes (TensorFlow's libraries,
loaded by every worker) counts 1/k in each, so it is counted once overall. Summing resident set
sizes (RSS) would count it k times. Linux reports PSS; elsewhere RSS is used instead.
"""

from __future__ import annotations

import threading
from typing import Callable

__all__ = ["PeakMemory", "rss_bytes", "process_bytes", "children_bytes", "MEMORY_METRIC"]


def _pss_available() -> bool:
    try:
        import psutil

        return getattr(psutil.Process().memory_full_info(), "pss", None) is not None
    except Exception:  # no psutil, or /proc/<pid>/smaps unreadable (containers, macOS)
        return False


#: ``"pss"`` where Linux reports proportional set sizes, else ``"rss"``.
MEMORY_METRIC = "pss" if _pss_available() else "rss"


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of process ``pid`` (default: this one) in bytes."""
    import psutil

    return psutil.Process(pid).memory_info().rss


def process_bytes(pid: int | None = None, metric: str = MEMORY_METRIC) -> int:
    """Memory of one process: PSS where available (``metric="pss"``), else RSS."""
    import psutil

    process = psutil.Process(pid)
    if metric == "pss":
        return process.memory_full_info().pss
    return process.memory_info().rss


def children_bytes(pid: int | None = None, metric: str = MEMORY_METRIC) -> int:
    """Summed memory (PSS, else RSS) of all descendants of ``pid`` (default: this process)."""
    import psutil

    total = 0
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    for child in children:
        try:
            total += process_bytes(child.pid, metric)
        except psutil.Error:  # it ended between listing and reading
            pass
    return total


class PeakMemory:
    """Poll a memory reading in a background thread and keep the largest value.

    ``with PeakMemory() as peak: run()`` then ``peak.bytes``. By default it watches the summed
    memory (:data:`MEMORY_METRIC`) of this process's descendants: a Jupyter kernel started by
    papermill and anything it starts. Pass ``measure=lambda: process_bytes(pid)`` to watch one
    process.
    """

    def __init__(self, interval: float = 0.1,
                 measure: Callable[[], int] = children_bytes) -> None:
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
