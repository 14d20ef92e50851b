"""The nbval comparison the suite runs on each notebook's one executed copy
(utils.notebooks.checked_output_differences): it passes where nbval passes and fails where nbval
fails, and a checked output that differs makes it fail."""

from __future__ import annotations

import subprocess
import sys

import nbformat.v4 as v4
import pytest

from utils import notebooks as nbs
from utils import runner


def stream(text, name="stdout"):
    return v4.new_output("stream", name=name, text=text)


def result(text, count=1, **more):
    return v4.new_output("execute_result", data={"text/plain": text, **more},
                         execution_count=count)


def checked(outputs, source="# NBVAL_CHECK_OUTPUT\nprint(6 * 7)", count=1):
    cell = v4.new_code_cell(source, outputs=outputs, execution_count=count)
    return cell


def pair(saved, executed, **kw):
    """A source notebook with one checked cell holding ``saved`` outputs, and an executed copy
    of it holding ``executed``."""
    source = v4.new_notebook(cells=[checked(saved, **kw)])
    ran = v4.new_notebook(cells=[v4.new_code_cell(source.cells[0].source, outputs=executed,
                                                  execution_count=7)])
    ran.cells[0]["id"] = source.cells[0]["id"]
    return source, ran


def test_equal_outputs_pass_whatever_the_execution_count():
    source, ran = pair([stream("42\n")], [stream("42\n")])
    assert nbs.checked_output_differences(source, ran) == []


def test_a_changed_value_fails_with_a_diff():
    source, ran = pair([stream("gflops 42\n")], [stream("gflops 41\n")])
    [problem] = nbs.checked_output_differences(source, ran)
    assert "cell 0" in problem and "stdout differs" in problem
    assert "-gflops 42" in problem and "+gflops 41" in problem


@pytest.mark.parametrize("saved, executed, same", [
    # streams are merged, and \r overwrites as in a terminal
    ([stream("4"), stream("2\n")], [stream("42\n")], True),
    ([stream("40\r42\n")], [stream("42\n")], True),
    # images, metadata and execution counts are not compared
    ([result("x", **{"image/png": "AAAA"})], [result("x", count=9, **{"image/png": "BBBB"})],
     True),
    # every other MIME type is
    ([result("x", **{"text/html": "<b>1</b>"})], [result("x", **{"text/html": "<b>2</b>"})],
     False),
    # an output that appears or disappears
    ([stream("42\n")], [stream("42\n"), stream("warning\n", "stderr")], False),
    ([stream("42\n"), result("7")], [stream("42\n")], False),
])
def test_nbval_rules(saved, executed, same):
    source, ran = pair(saved, executed)
    assert (nbs.checked_output_differences(source, ran) == []) is same


def test_only_checked_cells_that_were_saved_run_are_compared():
    source, ran = pair([stream("42\n")], [stream("41\n")], source="print(6 * 7)")
    assert nbs.checked_output_differences(source, ran) == []  # not marked
    source, ran = pair([], [stream("41\n")], count=None)
    assert nbs.checked_output_differences(source, ran) == []  # saved unrun, as nbval
    source, ran = pair([stream("42\n")], [stream("42\n")], count=None)
    [problem] = nbs.checked_output_differences(source, ran)
    assert "outputs but no execution count" in problem


def test_a_checked_cell_missing_from_the_executed_copy_fails():
    source, ran = pair([stream("42\n")], [stream("42\n")])
    ran.cells[0]["id"] = "elsewhere"
    assert "no cell with id" in nbs.checked_output_differences(source, ran)[0]


def small_notebook(folder, printed="42"):
    """A notebook with one checked cell whose saved output says ``printed``."""
    nb = v4.new_notebook(cells=[
        v4.new_code_cell("N: int = 6  # a number", metadata={"tags": ["parameters"]}),
        v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(N * 7)", execution_count=1,
                         outputs=[stream(f"{printed}\n")]),
        v4.new_code_cell("import random\nprint(random.random())"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = folder / "01_small.ipynb"
    nbs.write(nb, path)
    return path


def nbval_verdicts(paths, cwd) -> dict:
    """What `pytest --nbval-lax` itself says about each notebook: {path: passed?}."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                           "-v", "-p", "no:cacheprovider", "-p", "no:xdist", "--rootdir",
                           str(cwd), *map(str, paths)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)
    verdicts = {}
    for path in paths:
        lines = [line for line in done.stdout.splitlines()
                 if line.startswith(f"{path.parent.name}/{path.stem}") and "::Cell" in line]
        assert lines, done.stdout[-3000:]  # nbval collected it
        verdicts[path] = not any("FAILED" in line or "ERROR" in line for line in lines)
    return verdicts


def test_one_execution_agrees_with_nbval(tmp_path):
    """The same notebook saved with the right output and with a wrong one: the comparison on
    the runner's executed copy and nbval's own run give the same verdicts."""
    paths = {}
    for folder, printed in (("same", "42"), ("differs", "43")):
        (tmp_path / folder).mkdir()
        paths[folder] = small_notebook(tmp_path / folder, printed)
    runs = [runner.NotebookRun(path, {}) for path in paths.values()]
    ours = {}
    for run in runs:
        [done] = runner.execute([run], tmp_path / "out" / run.notebook.parent.name,
                                progress_bar=False, log=lambda s: None)
        assert done.status == "ok", done.error
        ours[run.notebook] = not nbs.checked_output_differences(nbs.read(run.notebook),
                                                                nbs.read(done.output))
    assert ours == {paths["same"]: True, paths["differs"]: False}
    assert nbval_verdicts(list(paths.values()), tmp_path) == ours
