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


# --------------------------------------------------------------------------------------------
# Teaching shape: exercises with answers, worked problems, the chapter checked, results
# recorded, short cells, and no measured or looked-up figure typed into the prose.
# --------------------------------------------------------------------------------------------

LESSONS = [p for p in NOTEBOOKS if not p.stem.startswith("00_")]
LESSON_IDS = [p.stem for p in LESSONS]
EXERCISE = re.compile(r"^### Exercise (\d+)\b", re.M)
WORKED = re.compile(r"^### Worked problem (\d+)\b", re.M)
ANSWER = re.compile(r"<details>\s*<summary>[^<]*(Answer|Solution)[^<]*</summary>", re.I)
MAX_CODE_LINES = 20

# A figure with a unit typed into prose: "125 TFLOP/s", "900 GB/s", "3.4 months", "15x".
_UNIT = (r"(?:[kMGTPE]?(?:FLOP/s|FLOPS|FLOPs?|OP/s|OPS|B/s|b/s|Hz|B)\b|W\b|%|x\b(?!\s*\d)|"
         r"×(?!\s*\d)|images/s|ms\b|µs\b|ns\b|seconds?\b|days?\b|hours?\b|months?\b|years?\b|"
         r"GiB|MiB|(?:thousand|million|billion|trillion)\b|times\b)")
TYPED_FIGURE = re.compile(r"(?<![\w.$^/|-])(\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?)\s?" + _UNIT)
# Definitions, not measurements: a multiply-add is 2 FLOPs, an addition 1, and 100 % is all.
DEFINITIONS = re.compile(r"^(?:[12] FLOPs?|100 ?%)$")


def _prose(markdown: str) -> str:
    """Markdown without math, code and link targets (figures there are formulas or code)."""
    for pattern in (r"\$\$.*?\$\$", r"```.*?```", r"\$[^$\n]+\$", r"`[^`\n]+`",
                    r"\]\([^)]+\)", r"<!--.*?-->"):
        markdown = re.sub(pattern, " ", markdown, flags=re.S)
    return markdown


def _section(nb, heading: str) -> list:
    """The cells from a ``## heading`` cell up to the next ``## `` heading."""
    cells, inside = [], False
    for cell in nb.cells:
        starts = cell.cell_type == "markdown" and re.search(r"^## ", cell.source, re.M)
        if starts:
            inside = bool(re.search(rf"^## {re.escape(heading)}\b", cell.source, re.M))
        if inside:
            cells.append(cell)
    return cells


def _answered(cells: list, pattern: re.Pattern) -> list[str]:
    """The numbers of the problems (one per markdown cell) that have neither a <details>
    answer in their cell nor a check_answer(...) code cell before the next problem."""
    missing = []
    for index, cell in enumerate(cells):
        found = pattern.search(cell.source) if cell.cell_type == "markdown" else None
        if not found:
            continue
        assert len(pattern.findall(cell.source)) == 1, "one exercise or problem per cell"
        answered = bool(ANSWER.search(cell.source))
        for later in cells[index + 1:]:
            if later.cell_type == "markdown" and pattern.search(later.source):
                break
            answered |= later.cell_type == "code" and "check_answer(" in later.source
            answered |= later.cell_type == "markdown" and bool(ANSWER.search(later.source))
        if not answered:
            missing.append(found.group(1))
    return missing


def test_every_exercise_has_an_answer_or_a_check(notebook):
    _, nb = notebook
    cells = _section(nb, "Exercises")
    numbers = [m for c in cells if c.cell_type == "markdown" for m in EXERCISE.findall(c.source)]
    assert numbers, "write each exercise as '### Exercise N: ...' under '## Exercises'"
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)], f"numbered {numbers}"
    missing = _answered(cells, EXERCISE)
    assert not missing, (f"exercise(s) {missing} need a <details><summary>Answer</summary> "
                         "block or a check_answer(...) cell")


@pytest.mark.parametrize("path", LESSONS, ids=LESSON_IDS)
def test_lesson_has_worked_problems(path):
    nb = nbs.read(path)
    cells = _section(nb, "Worked problems")
    numbers = [m for c in cells if c.cell_type == "markdown" for m in WORKED.findall(c.source)]
    assert len(numbers) >= 2, "each lesson has two or three '### Worked problem N' under " \
                              "'## Worked problems'"
    assert not _answered(cells, WORKED), "each worked problem shows its working"
    assert any(c.cell_type == "code" for c in cells), "worked problems compute from data/"


@pytest.mark.parametrize("path", LESSONS, ids=LESSON_IDS)
def test_lesson_checks_its_part_of_the_chapter(path):
    from utils.chapter import claims

    lesson = path.stem[:2]
    table = claims()
    if lesson not in set(table["lesson"].astype(str)):
        pytest.skip(f"data/chapter_claims.csv has no claim for lesson {lesson}")
    sources = [c.source for c in nbs.read(path).cells if c.cell_type == "code"]
    assert any(f'check_chapter("{lesson}")' in s for s in sources), \
        f'end the lesson\'s part of the chapter with check_chapter("{lesson}")'


def test_records_headline_results(notebook):
    path, nb = notebook
    calls = sum(len(re.findall(r"\brecord\(", c.source)) for c in nb.cells
                if c.cell_type == "code")
    least = 1 if path.stem.startswith("00_") else 3
    assert calls >= least, f"record() the lesson's headline measurements ({calls} found)"


def test_code_cells_are_short(notebook):
    _, nb = notebook
    long = {i: len(c.source.splitlines()) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and len(c.source.splitlines()) > MAX_CODE_LINES}
    assert not long, f"cells over {MAX_CODE_LINES} lines (cell: lines): {long}; move plotting " \
                     "and plumbing into utils"


def test_no_figures_typed_into_markdown(notebook):
    _, nb = notebook
    typed = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for match in TYPED_FIGURE.finditer(_prose(cell.source)):
            if not DEFINITIONS.match(match.group(0).strip()):
                typed.append(f"cell {index}: {match.group(0).strip()!r}")
    assert not typed, ("figures typed into markdown (compute them in a code cell from data/ or "
                       "the measurement): " + "; ".join(typed))
