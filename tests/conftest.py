"""Shared fixtures: a fake /proc, /sys and cgroup tree, and helpers for subprocess checks; the
order in which tests start (the longest first, so parallel workers finish together)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Quiet TensorFlow in this process and in every kernel or subprocess a test starts.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One JAX compilation cache for the test session: every worker, kernel and subprocess. The
# simulated runtimes run the same lessons on JAX (with and without a fake TPU) and compile the
# same programs; cached, each compiles once (lesson 03 on JAX: 25 s, then 10 s). The lessons
# themselves never set it, so a learner's "first step" still includes its compile.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(__file__).resolve().parents[1] / "build" / "jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

#: Markers of the tests that take tens of seconds each (a notebook, a runtime, a cluster, a book).
SLOW_MARKERS = ("notebooks", "runtimes", "slurm", "browser", "book")
#: Modules whose tests start TensorFlow or JAX in fresh processes: seconds each, so they start
#: right after the slow markers, before the many unit tests that fill the gaps.
PROCESS_MODULES = ("test_strategy", "test_tpu_paths", "test_data_parallel", "test_slurm",
                   "test_models", "test_cluster", "test_datasets", "test_runner",
                   "test_processes", "test_lab", "test_nbval", "test_numerics")


def _start_order(item: pytest.Item) -> int:
    if any(item.get_closest_marker(m) for m in SLOW_MARKERS):
        return 0
    return 1 if item.path.stem in PROCESS_MODULES else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the slow tests first, then those that start processes. With pytest-xdist
    (``python3 course test`` runs two workers per core, which steal queued tests from each
    other when idle) they are spread over the workers from the start, and the many short tests
    fill the gaps, instead of one worker ending alone on a long notebook."""
    items.sort(key=_start_order)


INTEL_CORE = """\
processor	: {n}
vendor_id	: GenuineIntel
cpu family	: 6
model		: 85
model name	: Intel(R) Xeon(R) CPU @ 2.20GHz
cpu MHz		: 2200.152
physical id	: 0
siblings	: 2
core id		: 0
cpu cores	: 1
flags		: fpu sse sse2 avx avx2 fma avx512f avx512dq hypervisor

"""

ZEN4_CORE = """\
processor	: {n}
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC
cpu MHz		: 2596.132
physical id	: 0
core id		: {n}
cpu cores	: 2
flags		: fpu sse2 avx avx2 fma avx512f avx512_bf16 hypervisor

"""


class FakeSystem:
    """Builds a fake /proc, /sys and cgroup tree under a temporary folder."""

    def __init__(self, root: Path) -> None:
        from utils.hardware import SystemPaths

        self.root = root
        self.paths = SystemPaths(proc=root / "proc", sys=root / "sys", cgroup=root / "cgroup")
        for path in (self.paths.proc, self.paths.sys, self.paths.cgroup):
            path.mkdir(parents=True, exist_ok=True)

    def write(self, relative: str, text: str | bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    def cpuinfo(self, template: str, count: int) -> None:
        self.write("proc/cpuinfo", "".join(template.format(n=i) for i in range(count)))

    def pci_device(self, slot: str, vendor: str, device: str) -> None:
        self.write(f"sys/bus/pci/devices/{slot}/vendor", vendor + "\n")
        self.write(f"sys/bus/pci/devices/{slot}/device", device + "\n")


@pytest.fixture
def fake_system(tmp_path: Path) -> FakeSystem:
    return FakeSystem(tmp_path / "fake")


@pytest.fixture
def two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this process see two logical CPUs whatever machine runs the tests."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    import psutil

    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2 if logical else 1)


def run_python(code: str, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (TensorFlow and JAX fix their devices per process)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, timeout=timeout)
