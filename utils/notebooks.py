"""The course's notebooks as files: finding them, their common cells, and keeping them clean.

Every notebook has the same opening: a title with learning objectives, Colab and Binder badges,
a setup cell (identical everywhere; it installs the course on Colab only), a cell tagged
``parameters`` and a cell that checks them. Cells whose output nbval compares are marked
``# NBVAL_CHECK_OUTPUT`` (or tagged so) and are the only ones saved with outputs.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import utils

__all__ = [
    "NOTEBOOK_NAME",
    "discover",
    "resolve",
    "read",
    "write",
    "title",
    "badges_markdown",
    "SETUP_SOURCE",
    "is_checked",
    "strip_outputs",
    "scaffold",
]

#: Notebook file names: two digits, an underscore, a lower-case topic.
NOTEBOOK_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")

CHECK_MARKER = "NBVAL_CHECK_OUTPUT"

SETUP_SOURCE = f'''\
# Setup: on Colab, fetch the course (utils/ and data/); elsewhere this cell changes nothing.
import sys
from pathlib import Path

if "google.colab" in sys.modules:
    import subprocess
    if not Path("/content/course").is_dir():
        subprocess.run(["git", "clone", "--depth", "1",
                        "https://github.com/{utils.REPOSITORY}", "/content/course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-cpuinfo"], check=True)
    sys.path.insert(0, "/content/course")
elif (Path.cwd().parent / "utils").is_dir() and str(Path.cwd().parent) not in sys.path:
    sys.path.insert(0, str(Path.cwd().parent))  # running from a clone without installing it'''


def discover(directory: Path | None = None) -> list[Path]:
    """All course notebooks (``NN_topic.ipynb``) in ``directory``, in course order."""
    directory = Path(directory or utils.NOTEBOOKS_DIR)
    return sorted(p for p in directory.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))


def resolve(names: list[str], directory: Path | None = None) -> list[Path]:
    """Turn ``["01", "03_alexnet_on_one_gpu", "path/x.ipynb"]`` into notebook paths.

    An empty list means every notebook. Raises ``FileNotFoundError`` naming what exists.
    """
    available = discover(directory)
    if not names:
        return available
    chosen: list[Path] = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path.resolve())
            continue
        matches = [p for p in available if p.stem == name or p.stem.split("_")[0] == name
                   or p.stem.startswith(name)]
        if len(matches) != 1:
            listing = ", ".join(p.stem for p in available)
            problem = "matches several" if matches else "matches no"
            raise FileNotFoundError(f"{name!r} {problem} notebook; the course has: {listing}.")
        chosen.append(matches[0])
    return chosen


def read(path: Path) -> Any:
    """Read a notebook with nbformat (version 4)."""
    import nbformat

    return nbformat.read(str(path), as_version=4)


def write(notebook: Any, path: Path) -> None:
    """Write a notebook with nbformat (version 4), validating it first."""
    import nbformat

    nbformat.validate(notebook)
    nbformat.write(notebook, str(path))


def title(notebook: Any) -> str:
    """The notebook's first Markdown heading, without the ``#``."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def badges_markdown(stem: str) -> str:
    """Colab and Binder badges that open notebook ``stem`` from the course repository."""
    repo = utils.REPOSITORY
    colab = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{stem}.ipynb"
    binder = f"https://mybinder.org/v2/gh/{repo}/main?labpath=notebooks%2F{stem}.ipynb"
    colab_badge = "https://colab.research.google.com/assets/colab-badge.svg"
    return (f"[![Open in Colab]({colab_badge})]({colab}) "
            f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder})")


def is_checked(cell: Any) -> bool:
    """True for a code cell whose output nbval compares (marker comment or tag)."""
    if cell.cell_type != "code":
        return False
    tags = cell.get("metadata", {}).get("tags", [])
    return CHECK_MARKER in tags or any(line.strip().startswith("#") and CHECK_MARKER in line
                                       for line in cell.source.splitlines())


def strip_outputs(notebook: Any, keep_from: Any | None = None) -> Any:
    """A copy of ``notebook`` with outputs only in checked cells.

    With ``keep_from`` (an executed copy of the same notebook), checked cells take their
    outputs from it, matched by cell id; otherwise checked cells keep the outputs they have.
    Execution counts are kept only on checked cells (nbval needs them); widget state is
    dropped.
    """
    clean = copy.deepcopy(notebook)
    executed = {c.get("id"): c for c in keep_from.cells} if keep_from is not None else {}
    for cell in clean.cells:
        if cell.cell_type != "code":
            continue
        if is_checked(cell):
            if keep_from is not None:
                source = executed.get(cell.get("id"))
                cell.outputs = copy.deepcopy(source.outputs) if source is not None else []
                cell.execution_count = source.execution_count if source is not None else None
            # nbval refuses a cell saved with outputs but no execution count ("unrun")
            if cell.outputs and cell.execution_count is None:
                cell.execution_count = 1
            if not cell.outputs:
                cell.execution_count = None
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = cell.execution_count
        else:
            cell.execution_count = None
            cell.outputs = []
        for key in ("execution", "papermill", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    for key in ("widgets", "papermill"):
        clean.metadata.pop(key, None)
    return clean


def scaffold(stem: str, heading: str, chapter_section: str) -> Any:
    """A new notebook with the course's opening cells, ready to be filled in."""
    import nbformat.v4 as v4

    cells = [
        v4.new_markdown_cell(
            f"# {heading}\n\n{badges_markdown(stem)}\n\n"
            f"*Chapter section: {chapter_section}.*\n\n"
            "**You will learn**\n\n- ...\n"
        ),
        v4.new_code_cell(SETUP_SOURCE),
        v4.new_markdown_cell("## Parameters\n\nInstructors can set these with "
                             f"`course run {stem} -p NAME VALUE`."),
        v4.new_code_cell("# One line per parameter: NAME: type = value  # meaning, with units",
                         metadata={"tags": ["parameters"]}),
        v4.new_code_cell("from utils.parameters import Rule, check_parameters\n\n"
                         "check_parameters(globals())"),
        v4.new_markdown_cell("## Exercises\n\n1. ..."),
        v4.new_markdown_cell("## Key points\n\n- ..."),
    ]
    notebook = v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook
