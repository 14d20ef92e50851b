"""Every notebook has the course's shape and is saved clean. New notebooks are covered as they
appear in notebooks/, with no edit here."""

from __future__ import annotations

import ast
import re

import papermill
import pytest

import utils
from utils import notebooks as nbs
from utils import runner

NOTEBOOKS = nbs.discover()
IDS = [p.stem for p in NOTEBOOKS]
MACHINE_PATHS = re.compile(r"(/work/|/home/|/root/|/tmp/|/Users/|[A-Z]:\\\\)")


@pytest.fixture(params=NOTEBOOKS, ids=IDS)
def notebook(request):
    return request.param, nbs.read(request.param)


def test_there_are_notebooks_named_by_the_course_map():
    assert NOTEBOOKS, "notebooks/ holds no NN_topic.ipynb files"
    stray = [p.name for p in utils.NOTEBOOKS_DIR.glob("*.ipynb") if p not in NOTEBOOKS]
    assert not stray, f"notebooks not named NN_topic.ipynb: {stray}"


def test_kernelspec_and_format(notebook):
    _, nb = notebook
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["kernelspec"]["language"] == "python"
    assert nb.nbformat == 4


def test_opening_title_objectives_and_badges(notebook):
    path, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert nbs.badges_markdown(path.stem) in first.source, "badges must open this notebook"
    assert "You will learn" in first.source
    headings = [line for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("## ")]
    assert "## Exercises" in headings and "## Key points" in headings


def test_setup_cell_then_parameters_then_check(notebook):
    _, nb = notebook
    sources = [c.source for c in nb.cells]
    assert nbs.SETUP_SOURCE in sources, "the Colab setup cell must match utils.notebooks"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert sources.index(nbs.SETUP_SOURCE) < tagged[0]
    following = [c for c in nb.cells[tagged[0] + 1:] if c.cell_type == "code"][0]
    assert "check_parameters(globals()" in following.source


def test_every_parameter_is_typed_commented_and_visible_to_papermill(notebook):
    path, nb = notebook
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source)
    assert all(isinstance(node, ast.AnnAssign) for node in tree.body), \
        "the parameters cell holds only annotated assignments (NAME: type = value)"
    names = [node.target.id for node in tree.body]
    assert all(name.isupper() for name in names)
    declared = papermill.inspect_notebook(str(path))
    assert sorted(declared) == sorted(names), "papermill cannot parse a line ('=' in a comment?)"
    for name, info in declared.items():
        assert info["help"].strip(), f"{name} needs a comment saying what it is, with units"


def test_saved_clean(notebook):
    path, nb = notebook
    for index, cell in enumerate(nb.cells):
        text = cell.source
        assert not MACHINE_PATHS.search(text), f"cell {index} holds a path of this machine"
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        assert not any(o.output_type == "error" for o in outputs), f"cell {index} saved an error"
        if not nbs.is_checked(cell):
            assert not outputs, f"cell {index} is saved with outputs (run course refresh)"
            assert cell.execution_count is None, f"cell {index} is saved with an execution count"
    assert "widgets" not in nb.metadata


def test_checked_cells_have_saved_outputs_to_compare(notebook):
    _, nb = notebook
    checked = [c for c in nb.cells if nbs.is_checked(c)]
    assert checked, "mark the deterministic results with # NBVAL_CHECK_OUTPUT"
    for cell in checked:
        assert cell.outputs, "a checked cell saved without outputs is never compared (nbval)"
        assert not any(o.get("name") == "stderr" for o in cell.outputs)


def test_profiles_name_real_notebooks_and_declared_parameters():
    profiles = runner.load_profiles()
    stems = {p.stem for p in NOTEBOOKS}
    for profile, per_notebook in profiles.items():
        for stem, values in per_notebook.items():
            assert stem in stems, f"profiles.yaml {profile}: no notebook {stem}"
            declared = runner.declared_parameters(utils.NOTEBOOKS_DIR / f"{stem}.ipynb")
            assert set(values) <= set(declared), f"{profile}.{stem}: undeclared parameters"


def test_readme_lists_every_notebook_with_badges():
    readme = (utils.REPO_ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert nbs.badges_markdown(path.stem) in readme, f"README course map lacks {path.stem}"


def test_no_interact_widgets(notebook):
    """ipywidgets.interact draws into an Output widget while the cell executes, which can hang
    papermill and nbval (nbclient#312); utils.widgets.live draws only on change."""
    _, nb = notebook
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not re.search(r"\binteract(_manual)?\(", cell.source), \
                f"cell {index} uses interact(); use utils.widgets.live"
