"""utils.memory: per-process and process-tree memory, and the peak while code runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from utils import memory
from utils.memory import PeakMemory, children_bytes, process_bytes, rss_bytes


def test_this_process_has_memory():
    assert rss_bytes() > 1e6
    assert 0 < process_bytes() <= rss_bytes() * 1.5


def test_pss_counts_shared_pages_once_across_children():
    if memory.MEMORY_METRIC != "pss":
        pytest.skip("this system reports no proportional set size")
    code = "import numpy, time; print('ready', flush=True); time.sleep(60)"
    children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
                for _ in range(3)]
    try:
        for child in children:  # each has imported NumPy
            assert child.stdout.readline() == "ready\n"
        pss = children_bytes(metric="pss")
        rss = children_bytes(metric="rss")
        assert 0 < pss < rss  # the three share Python's and NumPy's libraries
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_peak_memory_sees_a_child_that_grows():
    code = "b = bytearray(200_000_000); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1.0)"
    with PeakMemory(interval=0.05) as peak:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert peak.megabytes is not None and peak.megabytes > 150
    assert children_bytes() < 150e6  # the child has gone


def test_peak_memory_with_nothing_measured():
    with PeakMemory(measure=lambda: 0) as peak:
        pass
    assert peak.megabytes is None


def test_memory_benchmark_flags_a_notebook_over_budget_or_failed():
    from tests.benchmarks.bench_memory import table

    summary = {"notebooks": [
        {"notebook": "00_welcome", "status": "ok", "peak_memory_mb": 800.4},
        {"notebook": "03_alexnet_on_one_gpu", "status": "ok", "peak_memory_mb": 1500.0},
        {"notebook": "06_distributed_training_multi_worker", "status": "failed",
         "peak_memory_mb": None, "log": "06.log"}]}
    text, problems = table(summary, budget_mb=1400)
    assert "| `00_welcome` | 800 MB |" in text
    assert "| `06_distributed_training_multi_worker` | not measured |" in text
    assert problems == ["03_alexnet_on_one_gpu: 1500 MB, over 1400 MB",
                        "06_distributed_training_multi_worker: failed (log: 06.log)"]
