"""``course book``: the executed course as a static website.

The book is built with Jupyter Book 1 (Sphinx, sphinx-book-theme and myst-nb; the optional
``book`` extra) from the executed copies in a run folder, the folder ``course run --output RUN``
fills with notebooks and a ``summary.json``. Nothing is executed while building, nothing is
written into notebooks/ or the run folder: each page is made from a prepared copy. Without a
run folder, a fresh smoke run is made in a temporary folder first::

    from utils.book import build_book
    build_book(None, Path("build/book"))              # a smoke run, then its site
    build_book(Path("runs/week1"), Path("site"))      # the site of an instructor's run

What the copies get (the sources keep none of it):

- under each lesson's title, a banner naming the machine that produced its numbers (CPU,
  cores, accelerator, runtime), the profile, the date and the run's parameters, so that a
  reader never takes a CI machine's figures for their own;
- the notebook's Colab and Binder badges as plain links (the badge images live on the badge
  sites, which a book read offline cannot reach) beside the theme's launch buttons;
- widgets as static text: a progress bar as its last line, a control as its name and range
  with a pointer to a live notebook. Widget state is dropped, so no page loads the widget
  libraries from a CDN;
- TensorFlow's C++ start-up lines removed from stderr (other stderr stays);
- recorded results (:mod:`utils.results`) as their HTML and text only: myst-nb warns about
  their own MIME type, which no page needs.

MathJax is served from the book itself when the ``django-static-mathjax`` package (MathJax 3,
part of the ``book`` extra) is installed, so formulas render with no network; otherwise pages
load it from the theme's CDN. The welcome page is README's introduction, course map and "Where
each lesson runs" table (when README has one), followed by a table of the run. Every lesson in
notebooks/ is a page: one the run lacks shows the notebook without results, and says so.

The site goes to ``output_dir``: plain files any static host serves (``index.html`` at the
top). An existing ``output_dir`` is replaced only when it is empty or holds an earlier book
(marked by the file ``.course-book``).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import html
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import utils
from utils import notebooks as nbs
from utils.errors import CourseError
from utils.results import MIME_TYPE as RESULT_MIME

__all__ = [
    "BookError",
    "Book",
    "build_book",
    "read_summary",
    "machine_banner",
    "prepare_notebook",
    "debadge",
    "relink",
    "welcome_page",
    "add_arguments",
    "command",
    "main",
]

#: The file that marks a folder as a book this module wrote (and may replace).
MARKER = ".course-book"
#: Where ``course book`` writes the site when no ``--output`` is given (under the current folder).
DEFAULT_OUTPUT = Path("build") / "book"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
INSTALL_HINT = "pip install -e '.[book]' (the course's optional 'book' extra)"

# TensorFlow/absl C++ log lines ("I0000 00:00:17.. 31985 port.cc:153] oneDNN ...") and absl's
# preamble: kernel noise, not something a lesson says.
_KERNEL_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR|[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] .*)$")
_BADGE = re.compile(r"\[!\[([^\]]*)\]\((https?://[^)\s]+)\)\]\((https?://[^)\s]+)\)")
_BADGES = re.compile(rf"{_BADGE.pattern}(?:[ \t]*{_BADGE.pattern})*")
_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")


class BookError(CourseError, ValueError):
    """The book cannot be built: a missing run, a folder it must not replace, no Jupyter Book."""


@dataclass
class Book:
    """What :func:`build_book` made."""

    site: Path  #: the folder of the site (``index.html`` inside)
    run: Path | None  #: the run folder it was built from (None: a temporary smoke run, gone)
    pages: list[str] = field(default_factory=list)  #: lesson stems, in order
    failed: list[str] = field(default_factory=list)  #: lessons whose run stopped with an error
    warnings: list[str] = field(default_factory=list)  #: Sphinx's warnings, one per line

    @property
    def index(self) -> Path:
        return self.site / "index.html"


# --- the run ------------------------------------------------------------------------------

def read_summary(run_dir: Path) -> dict[str, Any]:
    """The ``summary.json`` of a run folder (it names the machine), or a clear BookError."""
    path = Path(run_dir) / "summary.json"
    if not Path(run_dir).is_dir():
        raise BookError(f"{run_dir}: no such run folder; make one with "
                        f"`course run --output {run_dir}`.")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BookError(f"{run_dir} has no summary.json, so the book could not say which "
                        "machine produced its numbers; use a folder written by "
                        "`course run --output DIR`.") from None
    except json.JSONDecodeError as error:
        raise BookError(f"{path} is not valid JSON ({error}); rerun `course run`.") from None
    if not isinstance(summary, dict):
        raise BookError(f"{path}: expected a JSON object; rerun `course run`.")
    return summary


def _smoke_run(folder: Path, log: Callable[[str], None]) -> Path:
    from utils import runner

    log(f"course book: running every notebook in the smoke profile into {folder}")
    results = runner.execute(runner.plan([], "smoke"), folder, progress_bar=False, log=log)
    runner.write_summary(results, folder, "smoke")
    return folder


# --- the banner ---------------------------------------------------------------------------

def _machine(summary: dict[str, Any]) -> str:
    """One line naming the run's machine, from the rows ``course report`` shows
    (:func:`utils.report.machine_rows`: the summary's hardware report, or its older ``host``)."""
    from utils.report import Run, machine_rows

    machine = dict(summary.get("hardware") or summary.get("host") or {})
    rows = {what: value for what, value in machine_rows(Run(label="", machine=machine))}
    cpu = str(rows["CPU"]) if rows["CPU"] not in ("-", None, "") else "an unnamed CPU"
    cores = rows["usable cores"]
    if isinstance(cores, (int, float)):
        cpu += f" ({cores:g} usable core{'s' if cores != 1 else ''})"
    gpus = [g for g in str(rows["GPUs"]).split(", ") if g and rows["GPUs"] != "none"]
    accelerator = str(machine.get("accelerator") or "").lower()
    if gpus:
        devices = ", ".join(f"{gpus.count(n)} x {n}" for n in sorted(set(gpus)))
    elif rows["TPU"] != "none":
        devices = f"TPU {rows['TPU']}"
    elif accelerator and accelerator != "cpu":
        devices = accelerator.upper()
    else:
        devices = "no GPU or TPU"
    text = f"{cpu}, {devices}"
    if rows["runtime"] not in ("-", None, ""):
        text += f", {rows['runtime']} runtime"
    if machine.get("simulated"):
        text += f" (simulated: {machine['simulated']})"
    return text


def _when(summary: dict[str, Any]) -> str:
    created = str(summary.get("created") or "")
    try:
        return dt.datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return created or "an unknown date"


def _entries(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(e.get("notebook")): e for e in summary.get("notebooks") or []
            if isinstance(e, dict)}


def machine_banner(summary: dict[str, Any], entry: dict[str, Any] | None,
                   stem: str = "", executed: bool = True) -> str:
    """The Markdown banner that opens a lesson's page: which machine, profile and date
    produced its numbers, with which parameters, and whether the run stopped with an error.

    ``entry`` is the lesson's line in summary.json (None: not in the run); ``executed`` says
    whether the page shows an executed copy."""
    profile = summary.get("profile") or "an unknown"
    lines = [f"```{{admonition}} Measured on {_machine(summary)}, {_when(summary)}",
             ":class: course-machine note", ""]
    if entry is None or (entry.get("status") == "failed" and not executed):
        lines.append("This lesson was not part of the run this book was built from: the page "
                     "shows the notebook without results." if entry is None else
                     "This lesson failed in the run before any result was saved "
                     f"({str(entry.get('error') or 'an error').splitlines()[0]}): the page "
                     "shows the notebook without results.")
    else:
        lines.append("Every figure, plot and table on this page was measured when this "
                     f"notebook ran on that machine, in the `{profile}` profile; yours will "
                     "differ. Open the notebook with the launch buttons at the top of the page "
                     f"to measure your own" + (f", or run `course run {stem[:2]}`." if stem
                                               else "."))
        if profile == "smoke":
            lines.append("The smoke profile shrinks every workload to seconds, so its rates "
                         "are far below what the machine can do.")
        params = entry.get("parameters") or {}
        shown = ", ".join(f"`{k}={v!r}`" for k, v in params.items()) or "the notebook's own"
        lines += ["", f"Parameters: {shown}."]
        status = entry.get("status")
        if status == "failed":
            error = str(entry.get("error") or "an error").splitlines()[0]
            lines += ["", f"**This run stopped with an error** ({error}); the page shows the "
                      "outputs up to that cell."]
        elif status == "prepared":
            lines += ["", "This run only prepared the notebook: nothing was executed."]
    lines.append("```")
    return "\n".join(lines)


# --- preparing a copy -----------------------------------------------------------------------

def debadge(markdown: str) -> str:
    """Badge images that link somewhere (``[![alt](img)](url)``) as plain links ``[alt](url)``;
    badges side by side become links separated by " · "."""
    def links(match: re.Match[str]) -> str:
        return " · ".join(f"[{m.group(1)}]({m.group(3)})"
                          for m in _BADGE.finditer(match.group(0)))

    return _BADGES.sub(links, markdown)


def relink(markdown: str, base: str, pages: set[str]) -> str:
    """Relative links that are not pages of the book point at the repository on GitHub.

    ``base`` is the folder the Markdown came from, relative to the repository root
    (``"notebooks"`` or ``""``); ``pages`` are the file names of the book's pages.
    """
    def fix(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", target, re.I):
            return match.group(0)
        path, hash_, fragment = target.partition("#")
        if path in pages:
            return match.group(0)
        full = (Path(base) / path).as_posix() if base else path
        parts: list[str] = []
        for part in full.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        return (f"[{text}](https://github.com/{utils.REPOSITORY}/blob/main/{'/'.join(parts)}"
                f"{hash_}{fragment})")

    return _LINK.sub(fix, markdown)


def _strip_noise(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True)
                   if not _KERNEL_NOISE.match(line.rstrip("\n")))


def _widget_text(model_id: str, models: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A widget as static text, and the outputs its Output widgets captured."""
    found: list[dict[str, Any]] = []

    def walk(mid: str) -> None:
        model = models.get(mid.replace("IPY_MODEL_", ""))
        if model is None:
            return
        found.append(model)
        for child in model.get("state", {}).get("children", []) or []:
            walk(str(child))

    walk(model_id)
    names = [m.get("model_name", "") for m in found]
    states = [m.get("state", {}) for m in found]
    captured = [o for m, s in zip(names, states) if m == "OutputModel" for o in s.get("outputs", [])]
    if any("Progress" in n for n in names):  # tqdm: "label: 100%" [bar] "4/4 [00:01<00:00]"
        parts = []
        for name, state in zip(names, states):
            if name == "HTMLModel":
                parts.append(html.unescape(re.sub(r"<[^>]+>", "", str(state.get("value", "")))))
            elif "Progress" in name:
                parts.append("|" + "█" * 10 + "|" if state.get("value") == state.get("max")
                             else "|" + " " * 10 + "|")
        return " ".join(p.replace("\u2007", " ").strip() for p in parts if p.strip()), captured
    controls = []
    for name, state in zip(names, states):
        if "description" not in state or name in ("HTMLModel", "LabelModel", "OutputModel"):
            continue
        label = state.get("description") or name.removesuffix("Model")
        if "_options_labels" in state:
            labels = state["_options_labels"]
            span = f"{labels[0]} to {labels[-1]}" if labels else ""
        elif "min" in state and "max" in state:
            span = f"{state['min']:g} to {state['max']:g}"
        else:
            span = ""
        controls.append(f"{label} ({span})" if span else str(label))
    if controls:
        return ("Interactive controls: " + "; ".join(controls) + ". They move in a live "
                "notebook (launch buttons at the top of the page), not in this book."), captured
    return "An interactive widget: run the notebook to see it.", captured


def prepare_notebook(notebook: Any, stem: str, summary: dict[str, Any],
                     entry: dict[str, Any] | None, pages: set[str],
                     executed: bool = True) -> Any:
    """A copy of an executed notebook (or, with ``executed=False``, of a source without
    outputs), ready for the book (see the module's docstring)."""
    import nbformat
    import nbformat.v4 as v4

    nb = copy.deepcopy(notebook)
    models = ((nb.metadata.get("widgets") or {}).get(WIDGET_STATE) or {}).get("state") or {}
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = relink(debadge(cell.source), "notebooks", pages)
            continue
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                output["text"] = _strip_noise(output.get("text", ""))
                if not output["text"].strip():
                    continue
            data = output.get("data") or {}
            # A recorded result also carries text/html and text/plain: the book shows those.
            # (myst-nb renders every type of a bundle before choosing one, and warns about a
            # type it has no renderer for, whatever nb_mime_priority_overrides says.)
            data.pop(RESULT_MIME, None)
            if WIDGET_VIEW in data:
                text, captured = _widget_text(str(data[WIDGET_VIEW].get("model_id", "")), models)
                outputs.append(v4.new_output("display_data", data={"text/plain": text}))
                outputs.extend(nbformat.from_dict(o) for o in captured
                               if o.get("output_type") in ("stream", "display_data"))
                continue
            outputs.append(output)
        cell.outputs = outputs
    # The banner goes right under the title (papermill puts its error notice above it).
    banner = v4.new_markdown_cell(machine_banner(summary, entry, stem, executed))
    for index, cell in enumerate(nb.cells[:3]):
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            title, _, rest = cell.source.partition("\n")
            cell.source = title
            tail = [v4.new_markdown_cell(rest.strip("\n"))] if rest.strip() else []
            nb.cells[index + 1:index + 1] = [banner, *tail]
            break
    else:
        nb.cells.insert(0, banner)
    return nb


# --- the welcome page -----------------------------------------------------------------------

def _sections(readme: str) -> tuple[str, str, dict[str, str]]:
    """README as (title, introduction, {section heading: body})."""
    title, intro, sections, current = "", [], {}, None
    for line in readme.splitlines():
        if line.startswith("# ") and not title:
            title = line[2:].strip()
        elif line.startswith("## "):
            current = line[3:].strip()
            sections[current] = ""
        elif current is None:
            intro.append(line)
        else:
            sections[current] += line + "\n"
    return title, "\n".join(intro).strip(), sections


def welcome_page(readme: str, summary: dict[str, Any], stems: list[str]) -> str:
    """The book's first page: README's introduction, course map and "Where each lesson runs"
    section, then what this run was (machine, profile, date) and a table of its notebooks."""
    title, intro, sections = _sections(readme)
    pages = {f"{s}.ipynb" for s in stems}

    def clean(text: str) -> str:
        text = relink(debadge(text), "", pages)
        for stem in stems:  # the course map's first column names each lesson
            text = text.replace(f"| `{stem}` |", f"| [{stem}]({stem}.ipynb) |")
        return text.strip()

    parts = [f"# {title or 'The course'}", clean(intro)]
    for heading, body in sections.items():
        if re.search(r"course map|where each lesson runs", heading, re.I):
            parts += [f"## {heading}", clean(body)]
    entries = _entries(summary)
    metric = str(summary.get("memory_metric") or "").upper()
    rows = ["| lesson | status | duration | peak memory" + (f" ({metric})" if metric else "")
            + " |", "|---|---|---|---|"]
    for stem in stems:
        entry = entries.get(stem)
        if entry is None:
            rows.append(f"| [{stem}]({stem}.ipynb) | not in this run | | |")
            continue
        memory = entry.get("peak_memory_mb")
        rows.append(f"| [{stem}]({stem}.ipynb) | {entry.get('status', '?')} | "
                    f"{float(entry.get('duration_s') or 0):.1f} s | "
                    + (f"{memory:.0f} MB |" if isinstance(memory, (int, float)) else "n/a |"))
    parts += ["## This edition of the book",
              f"The pages show one run of the notebooks: the `{summary.get('profile', '?')}` "
              f"profile on {_machine(summary)}, {_when(summary)}"
              + (f", course version {summary['course_version']}"
                 if summary.get("course_version") else "") + ". The figures are that "
              "machine's, not yours: open a lesson with its launch buttons, or run "
              "`course run` on your machine, to measure your own.", "\n".join(rows)]
    return "\n\n".join(parts) + "\n"


# --- configuration and build ----------------------------------------------------------------

_CSS = """\
.course-machine { border-left-width: 0.3rem; }
.course-machine .admonition-title { font-weight: 600; }
"""


def _mathjax_dir() -> Path | None:
    """MathJax 3's browser files from the ``django-static-mathjax`` package, if installed."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    return folder if (folder / "tex-svg.js").is_file() else None


def _write_config(src: Path, title: str, summary: dict[str, Any], stems: list[str]) -> bool:
    """Write _config.yml, _toc.yml and _assets/; True if MathJax is served locally."""
    import yaml

    # Not "_static": Jupyter Book would add every .js file under the static paths to every page
    # (MathJax's extensions too); Sphinx copies this folder's contents into the site's _static/.
    static = src / "_assets"
    static.mkdir(parents=True, exist_ok=True)
    (static / "course-book.css").write_text(_CSS)
    sphinx_config: dict[str, Any] = {
        "html_static_path": ["_assets"],
        "html_css_files": ["course-book.css"],
        "html_show_sourcelink": False,
    }
    mathjax = _mathjax_dir()
    if mathjax is not None:
        target = static / "mathjax"
        target.mkdir()
        shutil.copy2(mathjax / "tex-svg.js", target / "tex-svg.js")
        for part in ("input/tex/extensions", "ui", "a11y"):  # loaded on demand by tex-svg.js
            if (mathjax / part).is_dir():
                shutil.copytree(mathjax / part, target / part)
        sphinx_config["mathjax_path"] = "mathjax/tex-svg.js"
    year = str(summary.get("created") or dt.date.today().isoformat())[:4]
    config = {
        "title": title,
        "author": f"the authors of {utils.REPOSITORY}",
        "copyright": year,
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},
        "repository": {"url": f"https://github.com/{utils.REPOSITORY}",
                       "path_to_book": "notebooks", "branch": "main"},
        "launch_buttons": {"notebook_interface": "jupyterlab",
                           "binderhub_url": "https://mybinder.org",
                           "colab_url": "https://colab.research.google.com"},
        "html": {"use_repository_button": True, "home_page_in_navbar": True,
                 "extra_footer": f"Built by <code>course book</code> from the "
                                 f"{html.escape(str(summary.get('profile', '')))} run of "
                                 f"{html.escape(_when(summary))} on "
                                 f"{html.escape(_machine(summary))}."},
        "sphinx": {"config": sphinx_config},
    }
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    toc = {"format": "jb-book", "root": "index",
           "chapters": [{"file": stem} for stem in stems]}
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    return mathjax is not None


def _jupyter_book(src: Path, work: Path) -> list[str]:
    """Run ``jupyter-book build`` (html); return its warnings, or raise BookError."""
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
               "build", str(src), "--path-output", str(work), "--builder", "html"]
    done = subprocess.run(command, capture_output=True, text=True)
    text = done.stdout + done.stderr
    html_dir = work / "_build" / "html"
    if done.returncode != 0 or not (html_dir / "index.html").is_file():
        tail = "\n".join(text.strip().splitlines()[-25:])
        raise BookError(f"jupyter-book could not build the site (exit {done.returncode}):\n"
                        f"{tail}")
    return [line for line in text.splitlines() if "WARNING" in line]


def _check_output(output_dir: Path, run_dir: Path | None) -> None:
    output_dir = output_dir.resolve()
    protected = [utils.REPO_ROOT, utils.NOTEBOOKS_DIR, utils.DATA_DIR]
    if output_dir in [p.resolve() for p in protected]:
        raise BookError(f"{output_dir} is part of the course; choose another --output folder.")
    if run_dir is not None:
        run = run_dir.resolve()
        if run == output_dir or run.is_relative_to(output_dir):
            raise BookError(f"--output {output_dir} would replace the run folder {run_dir}; "
                            "choose another --output folder.")
    if output_dir.exists():
        if not output_dir.is_dir():
            raise BookError(f"{output_dir} is a file; choose a folder for --output.")
        if any(output_dir.iterdir()) and not (output_dir / MARKER).is_file():
            raise BookError(f"{output_dir} holds files that are not a book made by "
                            "`course book`; choose an empty or new --output folder (nothing "
                            "there was changed).")


def build_book(run_dir: Path | str | None, output_dir: Path | str = DEFAULT_OUTPUT, *,
               log: Callable[[str], None] = print) -> Book:
    """Build the static site of an executed run of the course.

    Args:
        run_dir: a folder written by ``course run --output RUN`` (executed notebooks and
            ``summary.json``); None makes a fresh smoke run in a temporary folder first.
        output_dir: the folder for the site; created, or replaced if it holds an earlier book.
        log: where progress lines go.

    Raises:
        BookError: Jupyter Book is not installed, the run folder lacks its summary, or
            ``output_dir`` holds other files.
    """
    if importlib.util.find_spec("jupyter_book") is None:
        raise BookError(f"Jupyter Book is not installed; {INSTALL_HINT}.")
    output_dir = Path(output_dir)
    run = Path(run_dir) if run_dir is not None else None
    _check_output(output_dir, run)
    if run is not None:
        read_summary(run)  # refuse a folder without a summary before doing anything
    with tempfile.TemporaryDirectory(prefix="course-book-") as tmp:
        if run is None:
            source_run = _smoke_run(Path(tmp) / "run", log)
        else:
            source_run = run
        summary = read_summary(source_run)
        entries = _entries(summary)
        executed = {p.stem: p for p in nbs.discover(source_run)}
        for stem, entry in entries.items():  # a copy elsewhere in the folder (relative path)
            output = Path(str(entry.get("output") or ""))
            if stem not in executed and not output.is_absolute() and output.suffix == ".ipynb":
                if (source_run / output).is_file():
                    executed[stem] = source_run / output
        sources = {p.stem: p for p in nbs.discover()}
        stems = sorted(set(executed) | set(sources))
        pages = {f"{s}.ipynb" for s in stems}
        src = Path(tmp) / "src"
        src.mkdir()
        failed = []
        for stem in stems:
            entry = entries.get(stem)
            if stem in executed:
                notebook = nbs.read(executed[stem])
                entry = entry or {"notebook": stem, "status": "ok", "parameters": {}}
            else:  # not run, or failed before papermill wrote its copy
                log(f"course book: {source_run} has no executed copy of {stem}; its page shows "
                    "the notebook without results")
                notebook = nbs.strip_outputs(nbs.read(sources[stem]))
            if entry is not None and entry.get("status") == "failed":
                failed.append(stem)
            nbs.write(prepare_notebook(notebook, stem, summary, entry, pages,
                                       executed=stem in executed), src / f"{stem}.ipynb")
        readme = utils.REPO_ROOT / "README.md"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else "# The course\n"
        (src / "index.md").write_text(welcome_page(text, summary, stems), encoding="utf-8")
        local_math = _write_config(src, _sections(text)[0] or "The course", summary, stems)
        if not local_math:
            log("course book: django-static-mathjax is not installed, so pages load MathJax "
                f"from a CDN; {INSTALL_HINT} serves it from the site.")
        log(f"course book: building {len(stems)} pages with Jupyter Book")
        warnings = _jupyter_book(src, Path(tmp) / "work")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        shutil.copytree(Path(tmp) / "work" / "_build" / "html", output_dir)
        (output_dir / ".nojekyll").write_text("")  # GitHub Pages: serve _static/ and _images/
        (output_dir / MARKER).write_text(json.dumps(
            {"built": dt.datetime.now().isoformat(timespec="seconds"),
             "run": str(run) if run is not None else "a temporary smoke run",
             "summary_created": summary.get("created"), "profile": summary.get("profile")},
            indent=2))
    for line in warnings:
        log(f"course book: {line}")
    book = Book(output_dir, run, stems, failed, warnings)
    log(f"course book: the site is in {output_dir} (open {book.index}, or serve the folder "
        f"with `python -m http.server -d {output_dir}`)")
    return book


# --- the command --------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``course book``."""
    parser.add_argument("--from", dest="run", type=Path, metavar="RUN",
                        help="a run folder written by `course run --output RUN` (default: a "
                             "fresh smoke run in a temporary folder)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="DIR",
                        help=f"folder for the site (default: {DEFAULT_OUTPUT}); replaced only "
                             "if it holds an earlier book")
    return parser


def command(args: argparse.Namespace) -> int:
    """Run ``course book`` with parsed arguments: 0 if every page comes from a run without
    errors, 1 if some lesson failed in the run (the site is built all the same)."""
    book = build_book(args.run, args.output)
    if book.failed:
        print(f"course book: {len(book.failed)} lesson(s) stopped with an error in the run "
              f"({', '.join(book.failed)}); their pages show it.", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m utils.book [--from RUN] [--output DIR]``."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="course book", description="Build the executed course as a static website."))
    args = parser.parse_args(argv)
    try:
        return command(args)
    except CourseError as error:
        print(f"course book: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
