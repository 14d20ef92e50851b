"""utils.notebooks: strip_outputs and `course refresh`, which rewrite source notebooks (tested on
temporary copies, never on notebooks/), and the course's kernel spec."""

from __future__ import annotations

import hashlib
import json

import nbformat.v4 as v4
import pytest

import utils
from utils import cli, runner
from utils import notebooks as nbs


def stream(text):
    return v4.new_output("stream", name="stdout", text=text)


def dirty_notebook():
    """A notebook as JupyterLab saves it after a run: outputs, counts, widget state."""
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Title"),
        v4.new_code_cell("N: int = 2  # a count", metadata={"tags": ["parameters"]},
                         execution_count=1, outputs=[]),
        v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(N * 7)", execution_count=None,
                         outputs=[v4.new_output("execute_result", data={"text/plain": "13"},
                                                execution_count=9)]),
        v4.new_code_cell("print('measured')", execution_count=3, outputs=[stream("measured\n")],
                         metadata={"execution": {"iopub.status.busy": "x"}, "scrolled": True}),
        v4.new_code_cell("x = 1", metadata={"tags": ["NBVAL_CHECK_OUTPUT"]},
                         execution_count=4, outputs=[]),
    ])
    nb.metadata["widgets"] = {"state": {}}
    nb.metadata["papermill"] = {"duration": 1.0}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def test_strip_outputs_keeps_only_checked_outputs_and_leaves_the_original():
    nb = dirty_notebook()
    before = json.dumps(nb, sort_keys=True)
    clean = nbs.strip_outputs(nb)
    assert json.dumps(nb, sort_keys=True) == before  # a copy, not an edit
    _, params, kept, stripped, empty = clean.cells
    assert params.outputs == [] and params.execution_count is None
    assert stripped.outputs == [] and stripped.execution_count is None
    assert "execution" not in stripped.metadata and "scrolled" not in stripped.metadata
    # a checked cell saved with outputs gets a count (nbval ignores "unrun" cells), and its
    # outputs carry the same count
    assert kept.outputs[0]["data"]["text/plain"] == "13"
    assert kept.execution_count == 1 and kept.outputs[0]["execution_count"] == 1
    assert empty.execution_count is None  # checked but empty: nothing to compare
    assert "widgets" not in clean.metadata and "papermill" not in clean.metadata
    assert [c["id"] for c in clean.cells] == [c["id"] for c in nb.cells]


def test_strip_outputs_takes_checked_outputs_from_an_executed_copy_by_cell_id():
    nb = dirty_notebook()
    executed = nbs.strip_outputs(nb)
    executed.cells[2].outputs = [stream("14\n")]
    executed.cells[2].execution_count = 5
    executed.cells[4]["id"] = "not-there"
    clean = nbs.strip_outputs(nb, keep_from=executed)
    assert clean.cells[2].outputs == [stream("14\n")] and clean.cells[2].execution_count == 5
    assert clean.cells[4].outputs == [] and clean.cells[4].execution_count is None


def notebook_hashes():
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in nbs.discover()}


@pytest.fixture
def temporary_course(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbs.write(dirty_notebook(), folder / "01_dirty.ipynb")
    (folder / "profiles.yaml").write_text("smoke:\n  01_dirty:\n    N: 6\n")
    real = notebook_hashes()
    monkeypatch.setattr(utils, "NOTEBOOKS_DIR", folder)
    monkeypatch.setattr(runner, "PROFILES_FILE", folder / "profiles.yaml")
    yield folder
    monkeypatch.undo()
    assert notebook_hashes() == real, "a test touched the course's own notebooks"


def test_refresh_saves_the_smoke_outputs_of_checked_cells_only(temporary_course, capsys):
    path = temporary_course / "01_dirty.ipynb"
    assert cli.main(["refresh", "01"]) == 0
    assert "01_dirty: saved the outputs of 2 checked cell(s)" in capsys.readouterr().out
    refreshed = nbs.read(path)
    _, params, kept, stripped, empty = refreshed.cells
    assert [o.get("text") for o in kept.outputs] == ["42\n"]  # N = 6 from the smoke profile
    assert kept.execution_count is not None
    assert stripped.outputs == [] and params.outputs == [] and empty.outputs == []
    assert "papermill" not in refreshed.metadata
    assert not any("papermill" in c.metadata or "execution" in c.metadata
                   for c in refreshed.cells)
    assert [c["id"] for c in refreshed.cells] == [c["id"] for c in dirty_notebook().cells] \
        or len(refreshed.cells) == 5
    # what refresh saved is what the suite's comparison expects
    executed = nbs.strip_outputs(refreshed, keep_from=refreshed)
    assert nbs.checked_output_differences(refreshed, executed) == []


def test_refresh_leaves_a_failing_notebook_as_it_was(temporary_course, capsys):
    path = temporary_course / "01_dirty.ipynb"
    (temporary_course / "profiles.yaml").write_text("smoke:\n  01_dirty:\n    N: 'x'\n")
    nb = nbs.read(path)
    nb.cells[2].source = "# NBVAL_CHECK_OUTPUT\nraise RuntimeError('no')"
    nbs.write(nb, path)
    before = path.read_bytes()
    assert cli.main(["refresh", "01"]) == 1
    assert "not refreshed" in capsys.readouterr().out
    assert path.read_bytes() == before


def test_kernelspec_is_ipykernels_with_the_quiet_environment(tmp_path):
    folder = nbs.install_kernelspec(tmp_path)
    spec = json.loads((folder / "kernel.json").read_text())
    assert folder == tmp_path / "share" / "jupyter" / "kernels" / "python3"
    assert spec["argv"][:3] == ["python", "-m", "ipykernel_launcher"]
    assert spec["argv"][-len(nbs.KERNEL_ARGUMENTS):] == nbs.KERNEL_ARGUMENTS
    assert spec["env"] == nbs.KERNEL_ENV and spec["language"] == "python"
    assert (folder / "logo-64x64.png").is_file()
    stamp = (folder / "kernel.json").stat().st_mtime_ns
    nbs.install_kernelspec(tmp_path)
    assert (folder / "kernel.json").stat().st_mtime_ns == stamp  # unchanged: not rewritten
    (folder / "kernel.json").write_text("{}")  # e.g. ipykernel reinstalled its own
    nbs.install_kernelspec(tmp_path)
    assert json.loads((folder / "kernel.json").read_text()) == spec


def test_a_kernel_from_the_spec_is_quiet_before_anything_runs(tmp_path, monkeypatch):
    """What a learner's JupyterLab starts: the environment is set before the first cell, and
    C-level writes to stderr (TensorFlow's start-up lines) stay out of the notebook."""
    from nbclient import NotebookClient

    nbs.install_kernelspec(tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    nb = v4.new_notebook(cells=[v4.new_code_cell(
        "import os, sys\nos.write(2, b'C-LEVEL NOISE\\n')\n"
        "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\nprint('python', file=sys.stderr)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    texts = {o["name"]: o["text"] for o in nb.cells[0].outputs}
    assert texts["stdout"] == f"{nbs.KERNEL_ENV['TF_CPP_MIN_LOG_LEVEL']}\n"
    assert texts["stderr"] == "python\n"  # Python's stderr still reaches the notebook
    assert "C-LEVEL" not in json.dumps(nb.cells[0].outputs)


def test_kernel_environment_keeps_what_the_user_set():
    assert nbs.kernel_environment({"TF_CPP_MIN_LOG_LEVEL": "0"})["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert nbs.kernel_environment({})["TF_CPP_MIN_LOG_LEVEL"] == "2"
