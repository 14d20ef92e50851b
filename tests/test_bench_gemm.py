"""tests/benchmarks/bench_gemm.py: reading lesson 01's recorded best rate and timing a GEMM
(no timed assertions: only that the pieces work)."""

from __future__ import annotations

import nbformat.v4 as v4
import pytest

from tests.benchmarks import bench_gemm
from utils import notebooks as nbs
from utils.results import MIME_TYPE, Result


def _executed(tmp_path, *results):
    outputs = [v4.new_output("display_data", data={MIME_TYPE: r.as_dict(), "text/plain": str(r)})
               for r in results]
    nb = v4.new_notebook(cells=[v4.new_code_cell("record(...)", outputs=[
        v4.new_output("stream", name="stdout", text="Best NumPy float32 matmul: 1.0 GFLOP/s "
                      "at n = 2\n"), *outputs])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "01_flops_and_moores_law.ipynb"
    nbs.write(nb, path)
    return path


def test_reads_the_recorded_results_not_the_printed_line(tmp_path):
    path = _executed(tmp_path, Result("numpy_matmul_best_n", 1024, "", "n"),
                     Result("numpy_matmul_gflops_best", 187.5, "GFLOP/s", "best"))
    assert bench_gemm.notebook_best(path) == (187.5, 1024)


def test_a_missing_result_is_a_clear_error(tmp_path):
    path = _executed(tmp_path, Result("numpy_matmul_best_n", 1024, "", "n"))
    with pytest.raises(SystemExit, match="recorded no numpy_matmul_gflops_best"):
        bench_gemm.notebook_best(path)


def test_the_lesson_records_what_the_benchmark_reads():
    source = "".join(c.source for c in nbs.read(bench_gemm.NOTEBOOK).cells
                     if c.cell_type == "code")
    for name in (bench_gemm.RATE, bench_gemm.SIZE):
        assert f'record("{name}"' in source


def test_best_of_gemm_returns_a_rate():
    gflops, repeats, calls = bench_gemm.best_of_gemm(32, seconds=0.01)
    assert gflops > 0 and repeats >= 5 and calls >= 1
