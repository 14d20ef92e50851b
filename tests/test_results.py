"""Recorded results: written into a notebook's outputs, read back without executing."""

from __future__ import annotations

import json

import nbformat
import pytest

from utils.errors import ArgumentError
from utils.results import MIME_TYPE, Result, read_results, record


def test_record_returns_the_value_and_displays_a_bundle(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    import numpy as np

    value = record("matmul_gflops", np.float32(123.5), "GFLOP/s", "best matmul", section="2")
    assert value == np.float32(123.5)
    [bundle] = shown
    assert bundle[MIME_TYPE] == {"name": "matmul_gflops", "value": 123.5, "unit": "GFLOP/s",
                                 "description": "best matmul", "lesson": "", "section": "2"}
    assert "matmul_gflops = 123.5 GFLOP/s" in bundle["text/plain"]
    json.dumps(bundle)  # a notebook can store it


@pytest.mark.parametrize("name", ["", "Matmul", "2fast", "a-b", "a b"])
def test_bad_names_are_refused(name):
    with pytest.raises(ArgumentError, match="^name = "):
        record(name, 1.0, "s", "x", show=False)


@pytest.mark.parametrize("value", [float("nan"), None, [1, 2], True])
def test_bad_values_are_refused(value):
    with pytest.raises(ArgumentError, match="^value = "):
        record("x", value, "s", "x", show=False)


def _notebook_with(outputs):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("record(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=d) for d in outputs]
    nb.cells.append(cell)
    return nb


def test_read_results_from_a_file_takes_the_lesson_from_its_name(tmp_path):
    payload = {"name": "peak", "value": 2.0, "unit": "GFLOP/s", "description": "d",
               "lesson": "", "section": "1"}
    nb = _notebook_with([{MIME_TYPE: payload, "text/plain": "p"}, {"text/plain": "other"},
                         {MIME_TYPE: {**payload, "value": 3.0}, "text/plain": "again"}])
    path = tmp_path / "01_flops.ipynb"
    nbformat.write(nb, path)
    assert read_results(path) == [Result("peak", 3.0, "GFLOP/s", "d", "01_flops", "1")]


def test_read_results_of_an_unexecuted_notebook_is_empty():
    assert read_results(_notebook_with([])) == []
