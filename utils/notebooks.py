"""The course's notebooks as files: finding them, their common cells, keeping them clean, the
kernel they run in, and the learner's own copies.

Every notebook has the same opening: a title with learning objectives, Colab and Binder badges,
a setup cell (identical everywhere; it installs the course on Colab only), a cell tagged
``parameters`` and a cell that checks them. Cells whose output nbval compares are marked
``# NBVAL_CHECK_OUTPUT`` (or tagged so) and are the only ones saved with outputs;
:func:`checked_output_differences` compares them with an executed copy by nbval's rules.

The course's kernel (:func:`install_kernelspec`, :data:`KERNEL_ENV`, :data:`KERNEL_ARGUMENTS`)
starts with TensorFlow's C++ logging quietened *before* TensorFlow loads, and sends low-level
(C/C++) output to the kernel's own stderr (the terminal of ``jupyter lab``, or the log file
``course run`` writes) instead of the notebook.

Learners work in their own copies (:func:`sync_learner_copies`, ``my-notebooks/``, ignored by
git): ``git pull`` then never meets a learner's change, and an update never overwrites one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import utils
from utils.errors import CourseError

__all__ = [
    "NOTEBOOK_NAME",
    "NotebookError",
    "discover",
    "resolve",
    "read",
    "write",
    "title",
    "badges_markdown",
    "SETUP_SOURCE",
    "is_checked",
    "strip_outputs",
    "checked_output_differences",
    "scaffold",
    "KERNEL_ENV",
    "KERNEL_ARGUMENTS",
    "kernel_environment",
    "install_kernelspec",
    "LEARNER_DIR",
    "SyncReport",
    "sync_learner_copies",
]


class NotebookError(CourseError, ValueError):
    """A notebook that cannot be found, named or written as asked; the message says which."""


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

    An empty list means every notebook. Raises :class:`NotebookError` naming what exists.
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
            raise NotebookError(f"{name!r} {problem} notebook; the course has: {listing}.")
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


#: What nbval 0.11 leaves out when it compares outputs (``--nbval-lax`` without nbdime): images,
#: metadata, tracebacks, execution counts and widget model ids.
NBVAL_SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name",
                      "execution_count", "application/vnd.jupyter.widget-view+json",
                      "image/png", "image/jpeg")


def _flatten_outputs(outputs: list[Any]) -> dict[str, list[Any]]:
    """nbval's view of a cell's outputs: streams merged (``\\r`` and ``\\b`` applied), then
    ``{key or MIME type: [values in order]}`` without the keys it skips."""
    from nbval.plugin import coalesce_streams, transform_streams_for_comparison

    flat: dict[str, list[Any]] = {}
    for output in transform_streams_for_comparison(coalesce_streams(copy.deepcopy(outputs))):
        for key, value in output.items():
            if key in NBVAL_SKIP_COMPARE:
                continue
            items = value.items() if key == "data" else [(key, value)]
            for name, item in items:
                if name not in NBVAL_SKIP_COMPARE:
                    flat.setdefault(name, []).append(item)
    return flat


def _describe_difference(key: str, saved: list[Any], executed: list[Any]) -> str:
    import difflib

    if len(saved) == len(executed) == 1 and all(isinstance(v, str) for v in saved + executed):
        diff = difflib.unified_diff(saved[0].splitlines(), executed[0].splitlines(),
                                    "saved", "executed", lineterm="", n=1)
        return f"{key} differs:\n    " + "\n    ".join(list(diff)[2:])
    return f"{key} differs: saved {saved!r}, executed {executed!r}"


def checked_output_differences(source: Any, executed: Any) -> list[str]:
    """Compare the saved outputs of the checked cells in ``source`` with the same cells (matched
    by id) in an ``executed`` copy, by nbval's rules; one message per cell that differs.

    As ``pytest --nbval-lax`` does: only checked cells are compared; one saved without an
    execution count is not compared, and is an error if it holds outputs; stream outputs are
    merged; the keys in :data:`NBVAL_SKIP_COMPARE` are ignored; every other output field and
    MIME type must be present on both sides with equal values, in the same order.
    """
    executed_cells = {cell.get("id"): cell for cell in executed.cells}
    problems = []
    for index, cell in enumerate(source.cells):
        if not is_checked(cell):
            continue
        first_line = cell.source.splitlines()[0] if cell.source else ""
        where = f"cell {index} ({first_line[:60]})"
        if cell.execution_count is None:
            if cell.outputs:
                problems.append(f"{where}: saved with outputs but no execution count")
            continue
        ran = executed_cells.get(cell.get("id"))
        if ran is None:
            problems.append(f"{where}: no cell with id {cell.get('id')!r} in the executed copy")
            continue
        saved, got = _flatten_outputs(cell.outputs), _flatten_outputs(ran.get("outputs", []))
        if set(saved) != set(got):
            problems.append(f"{where}: saved output fields {sorted(saved)}, executed "
                            f"{sorted(got)}")
            continue
        for key in saved:
            if saved[key] != got[key]:
                problems.append(f"{where}: {_describe_difference(key, saved[key], got[key])}")
                break
    return problems


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


# --------------------------------------------------------------------------------------------
# The course's kernel
# --------------------------------------------------------------------------------------------

#: Environment variables every course kernel starts with, so they are set before TensorFlow
#: loads: TensorFlow's C++ INFO and WARNING lines are dropped (errors stay). A value already in
#: the environment wins where the course starts the kernel itself (``course run``).
KERNEL_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}

#: Arguments every course kernel starts with. TensorFlow 2.21 prints some C++ lines before its
#: logging is set up (``All log messages before absl::InitializeLog()``, ``Could not find cuda
#: drivers``), which no setting silences; ipykernel would copy them into the notebook as
#: stderr. Without fd capture they go to the kernel's own stderr instead: the terminal of
#: ``jupyter lab``, or the log file beside a ``course run`` copy. Python's own output (print,
#: warnings, tracebacks) still reaches the notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.capture_fd_output=False"]


def kernel_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with :data:`KERNEL_ENV` added where unset."""
    env = dict(os.environ if base is None else base)
    for name, value in KERNEL_ENV.items():
        env.setdefault(name, value)
    return env


def install_kernelspec(prefix: Path | str | None = None, name: str = "python3") -> Path:
    """Write the course's kernel spec into ``prefix``/share/jupyter/kernels/``name``.

    ``prefix`` defaults to this Python's environment (``sys.prefix``), which Jupyter searches
    first inside a virtual environment, so this spec replaces ipykernel's ``python3`` for every
    notebook started there (JupyterLab, papermill, nbval). It is ipykernel's own spec plus
    :data:`KERNEL_ENV` and :data:`KERNEL_ARGUMENTS`. The file is rewritten only if it differs
    (reinstalling ipykernel restores its plain spec; ``course`` installs this one again).
    Returns the spec's folder.
    """
    import shutil

    from ipykernel.kernelspec import RESOURCES, get_kernel_dict

    folder = Path(sys.prefix if prefix is None else prefix) / "share" / "jupyter" / "kernels"
    folder = folder / name
    spec = get_kernel_dict(KERNEL_ARGUMENTS)
    spec["argv"][0] = "python"  # Jupyter runs it with its own interpreter, as ipykernel's does
    spec["env"] = dict(KERNEL_ENV)
    text = json.dumps(spec, indent=1, sort_keys=True) + "\n"
    target = folder / "kernel.json"
    if target.is_file() and target.read_text() == text:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for logo in Path(RESOURCES).iterdir():
        if logo.is_file() and not (folder / logo.name).exists():
            shutil.copy(logo, folder / logo.name)
    _write_atomically(target, text.encode())
    return folder


# --------------------------------------------------------------------------------------------
# The learner's own copies
# --------------------------------------------------------------------------------------------

#: The learner's folder in a clone of the course (ignored by git).
LEARNER_DIR = utils.REPO_ROOT / "my-notebooks"

_MANIFEST = ".course-manifest.json"


@dataclass
class SyncReport:
    """What :func:`sync_learner_copies` did, by notebook file name."""

    copied: list[str] = field(default_factory=list)  # new to the learner's folder
    updated: list[str] = field(default_factory=list)  # unchanged by the learner, replaced
    kept: dict[str, str] = field(default_factory=dict)  # changed by both: new version's name
    unchanged: list[str] = field(default_factory=list)

    def lines(self, folder: Path) -> list[str]:
        """One line per thing a learner should know, naming files relative to ``folder``'s
        parent."""
        base = folder.name
        out = []
        if self.copied:
            out.append(f"copied {len(self.copied)} notebook(s) into {base}/ (your own copies: "
                       "edit and save freely, updates of the course never overwrite them)")
        if self.updated:
            out.append(f"updated {', '.join(self.updated)} in {base}/ (you had not changed them)")
        for name, new in self.kept.items():
            out.append(f"{base}/{name}: you changed it and the course updated it; yours is kept "
                       f"as it is, the new version is {base}/{new}")
        return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def sync_learner_copies(folder: Path | str | None = None,
                        sources: Path | str | None = None) -> SyncReport:
    """Bring the learner's copies in ``folder`` (default :data:`LEARNER_DIR`) up to date with
    the course's notebooks in ``sources`` (default ``notebooks/``), never losing a change.

    A manifest in ``folder`` remembers the source each copy was made from. A notebook new to
    the folder (or deleted there) is copied; a copy the learner never changed is replaced when
    its source changed; a copy both sides changed is kept, and the new version is written
    beside it as ``NN_topic.course-update-<hash>.ipynb``. Other files are never touched.
    """
    folder = Path(folder or LEARNER_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / _MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text())
    except (FileNotFoundError, ValueError):
        manifest = {}
    report = SyncReport()
    for source in discover(Path(sources) if sources else None):
        data = source.read_bytes()
        new_hash = hashlib.sha256(data).hexdigest()
        copy_path = folder / source.name
        made_from = manifest.get(source.name)
        if not copy_path.exists():
            _write_atomically(copy_path, data)
            report.copied.append(source.name)
        elif _sha256(copy_path) == new_hash or made_from == new_hash:
            report.unchanged.append(source.name)  # in step, or only the learner changed it
        elif made_from is not None and _sha256(copy_path) == made_from:
            _write_atomically(copy_path, data)
            report.updated.append(source.name)
        else:  # both changed (or a file of the learner's with this name): keep theirs
            beside = folder / f"{source.stem}.course-update-{new_hash[:8]}.ipynb"
            if not beside.exists():
                _write_atomically(beside, data)
            report.kept[source.name] = beside.name
        manifest[source.name] = new_hash
    _write_atomically(manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n")
                      .encode())
    return report
