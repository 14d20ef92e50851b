"""tests/benchmarks/bench_gemm.py: reading lesson 01's best rate and timing a GEMM (no timed
assertions: only that the pieces work)."""

from __future__ import annotations

import nbformat.v4 as v4
import pytest

from tests.benchmarks import bench_gemm
from utils import notebooks as nbs


def _executed(tmp_path, text):
    nb = v4.new_notebook(cells=[v4.new_code_cell("print(...)", outputs=[
        v4.new_output("stream", name="stdout", text=text)])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "01.ipynb"
    nbs.write(nb, path)
    return path


def test_reads_the_labelled_line(tmp_path):
    path = _executed(tmp_path, "NumPy is 100 times faster.\nBest NumPy float32 matmul: 187.5 GFLOP/s "
                               "at n = 1024 (fastest of 40 repeats; median 180.0 GFLOP/s)\n")
    assert bench_gemm.notebook_best(path) == (187.5, 1024)


def test_a_missing_line_is_a_clear_error(tmp_path):
    path = _executed(tmp_path, "nothing here\n")
    with pytest.raises(SystemExit, match="no line matching"):
        bench_gemm.notebook_best(path)


def test_the_line_the_lesson_prints_matches_the_pattern():
    source = "".join(c.source for c in nbs.read(bench_gemm.NOTEBOOK).cells)
    assert 'f"Best NumPy float32 matmul: {best_gflops:.1f} GFLOP/s at n = {best_n} "' in source


def test_best_of_gemm_returns_a_rate():
    gflops, repeats, calls = bench_gemm.best_of_gemm(32, seconds=0.01)
    assert gflops > 0 and repeats >= 5 and calls >= 1
