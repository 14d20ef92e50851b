"""``course``: run the course's notebooks, open them in JupyterLab, list their parameters, report
the hardware.

    course run [NOTEBOOK ...] [--profile smoke|default|full] [-p NAME VALUE] [-f params.yaml]
               [--output DIR]
    course lab [--setup-only] [JUPYTER ARGS ...]
    course list [NOTEBOOK ...]
    course hardware [--json]
    course report [RUN ...] [--output FILE]
    course book [--from RUN] [--output DIR]

Maintainers also have ``course new`` (a notebook with the course's opening cells) and
``course refresh`` (re-execute and save the outputs nbval checks into the source notebook).

Each command is a pair of functions: ``_add_NAME(subparsers)`` declares its arguments and
``_cmd_NAME(args) -> exit status`` does the work; a new command adds both and one entry in
:data:`COMMANDS`. Errors the course raises on purpose (:class:`utils.errors.CourseError`) are
printed as one line with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from utils.errors import CourseError

__all__ = ["main", "parse_value", "lab_command", "COMMANDS"]


def parse_value(text: str) -> Any:
    """Turn a command-line value into a Python value: ``3`` -> 3, ``1e-3`` -> 0.001,
    ``[64,128]`` -> [64, 128], ``true``/``True`` -> True, else the text (``none`` too)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text  # "none" stays a word: no course parameter takes None (FRAMEWORK none)


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------

def _add_run(sub: Any) -> argparse.ArgumentParser:
    run = sub.add_parser("run", help="execute notebooks with papermill into an output folder")
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                     help="names such as 01 or 03_alexnet_on_one_gpu (default: all)")
    run.add_argument("--profile", default="default", choices=["smoke", "default", "full"],
                     help="parameter profile from notebooks/profiles.yaml (default: default)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"), help="set a parameter (repeatable)")
    run.add_argument("-f", "--parameters-file", action="append", default=[], type=Path,
                     metavar="FILE", help="YAML file of parameters (repeatable)")
    run.add_argument("--output", type=Path, metavar="DIR",
                     help="folder for executed copies (default: executed/<date-time>/)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace executed copies already in the output folder")
    run.add_argument("--prepare-only", action="store_true",
                     help="inject parameters without executing")
    run.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="limit on each cell's execution time")
    run.add_argument("--kernel", metavar="NAME", help="Jupyter kernel (default: the notebook's)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    run.add_argument("--share", action="store_true",
                     help="also pack summary.json and results.csv into one small file to hand "
                          "to an instructor (no notebooks, no paths, no user name)")
    run.add_argument("--share-label", metavar="LABEL",
                     help="your name for the class report, e.g. ana-laptop (default: the "
                          "output folder's name)")
    return run


def _cmd_run(args: argparse.Namespace) -> int:
    from utils import runner

    overrides = {name: parse_value(value) for name, value in args.parameter}
    runs = runner.plan(args.notebooks, args.profile, args.parameters_file, overrides)
    output = args.output or runner.default_output_dir()
    results = runner.execute(runs, output, prepare_only=args.prepare_only,
                             overwrite=args.overwrite, kernel_name=args.kernel,
                             cell_timeout=args.timeout, progress_bar=not args.no_progress,
                             after_each=lambda done: runner.write_summary(done, output,
                                                                          args.profile))
    summary = runner.write_summary(results, output, args.profile)
    print()
    print(runner.summary_table(results))
    print(f"Executed copies, their logs, {summary.name} and results.csv are in {output}")
    if args.share and not args.prepare_only:
        from utils.report import share_run

        shared = share_run(output, label=args.share_label)
        print(f"To hand in: {shared} (summary and results only; see what it holds with "
              f"`course report {shared}`)")
    if any(r.status == "interrupted" for r in results):
        return 130
    return 1 if any(r.status == "failed" for r in results) else 0


# --------------------------------------------------------------------------------------------
# lab
# --------------------------------------------------------------------------------------------

def _add_lab(sub: Any) -> argparse.ArgumentParser:
    lab = sub.add_parser(
        "lab", allow_abbrev=False,
        help="open JupyterLab on your own copies of the notebooks (my-notebooks/)",
        description="Copy the course's notebooks into my-notebooks/ (new lessons; updates of "
        "copies you never changed; a changed copy is kept and the new version written beside "
        "it), then start JupyterLab on lesson 00. Other arguments go to jupyter lab.")
    lab.add_argument("--setup-only", action="store_true",
                     help="copy the notebooks and install the kernel, without starting JupyterLab")
    lab.set_defaults(accepts_extra=True)
    return lab


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_command(extra: Sequence[str], first_notebook: Path, as_root: bool | None = None,
                cwd: Path | None = None) -> tuple[list[str], list[str]]:
    """The ``jupyter lab`` arguments for ``course lab EXTRA...`` and the lines to print.

    ``first_notebook`` is opened, and the URL JupyterLab prints opens it too, unless ``extra``
    names a notebook or a folder (paths relative to ``cwd`` are made absolute, since JupyterLab
    runs from the repository); as root, ``--allow-root`` is added.
    """
    cwd = Path.cwd() if cwd is None else cwd
    args, lines, opens = [], [], False
    for arg in extra:
        path = cwd / arg
        if not arg.startswith("-") and (arg.endswith(".ipynb") or path.is_dir()):
            opens = True
            arg = str(path.resolve()) if path.exists() else arg
        args.append(arg)
    if not opens:
        args.append(str(first_notebook))
        if not any("default_url" in arg or "root_dir" in arg or "notebook_dir" in arg
                   or "notebook-dir" in arg for arg in extra):
            # JupyterLab serves the notebook's folder; the URL it prints opens the notebook
            # too (with --no-browser on a remote machine, that link is how it is opened)
            args.append(f"--LabApp.default_url=/lab/tree/{first_notebook.name}")
    if (_is_root() if as_root is None else as_root) and "--allow-root" not in args:
        args.append("--allow-root")
        lines.append("running as root (a container or a cloud machine?), so JupyterLab gets "
                     "--allow-root")
    return args, lines


def _cmd_lab(args: argparse.Namespace) -> int:
    import utils
    from utils import notebooks as nbs

    nbs.install_kernelspec()
    folder = nbs.LEARNER_DIR
    for line in nbs.sync_learner_copies(folder).lines(folder):
        print(f"course: {line}")
    first = folder / nbs.discover()[0].name
    jupyter_args, lines = lab_command(args.extra, first)
    for line in lines:
        print(f"course: {line}")
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    command = [jupyter, "lab", *jupyter_args]
    if args.setup_only:
        print(f"course: ready; JupyterLab would start with: {' '.join(command)}")
        return 0
    sys.stdout.flush()
    os.chdir(utils.REPO_ROOT)
    # Replace this process, so that Ctrl-C reaches JupyterLab alone (it asks before stopping).
    os.execve(jupyter, command, nbs.kernel_environment())
    return 0  # not reached


# --------------------------------------------------------------------------------------------
# list, hardware
# --------------------------------------------------------------------------------------------

def _add_list(sub: Any) -> argparse.ArgumentParser:
    lst = sub.add_parser("list", help="show notebooks and their parameters")
    lst.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")
    return lst


def _cmd_list(args: argparse.Namespace) -> int:
    from utils import notebooks as nbs
    from utils import runner

    profiles = runner.load_profiles()
    for path in nbs.resolve(args.notebooks):
        print(f"{path.stem}: {nbs.title(nbs.read(path))}")
        declared = runner.declared_parameters(path)
        if not declared:
            print("    (no parameters)")
        for name, info in declared.items():
            smoke = profiles["smoke"].get(path.stem, {}).get(name)
            extra = f"  [smoke: {smoke!r}]" if smoke is not None else ""
            full = profiles["full"].get(path.stem, {}).get(name)
            extra += f"  [full: {full!r}]" if full is not None else ""
            print(f"    {name}: {info['type']} = {info['default']}  # {info['help']}{extra}")
    return 0


def _add_hardware(sub: Any) -> argparse.ArgumentParser:
    hw = sub.add_parser("hardware", help="print the hardware report")
    hw.add_argument("--json", action="store_true", help="as JSON")
    hw.add_argument("--clock-ghz", type=float, help="override the CPU clock used for the peak")
    hw.add_argument("--fp32-flops-per-cycle", type=int, help="override FP32 FLOPs/cycle/core")
    hw.add_argument("--fp64-flops-per-cycle", type=int, help="override FP64 FLOPs/cycle/core")
    return hw


def _cmd_hardware(args: argparse.Namespace) -> int:
    from utils.hardware import hardware_report

    report = hardware_report(clock_ghz=args.clock_ghz,
                             fp32_flops_per_cycle=args.fp32_flops_per_cycle,
                             fp64_flops_per_cycle=args.fp64_flops_per_cycle)
    print(report.to_json() if args.json else report)
    return 0


# --------------------------------------------------------------------------------------------
# new, refresh (maintainers)
# --------------------------------------------------------------------------------------------

def _add_new(sub: Any) -> argparse.ArgumentParser:
    new = sub.add_parser("new", help="(maintainers) create a notebook with the opening cells")
    new.add_argument("stem", help="file name without .ipynb, e.g. 09_my_topic")
    new.add_argument("--title", required=True)
    new.add_argument("--section", required=True, help="the chapter section it follows")
    return new


def _cmd_new(args: argparse.Namespace) -> int:
    import utils
    from utils import notebooks as nbs

    path = utils.NOTEBOOKS_DIR / f"{args.stem}.ipynb"
    if not nbs.NOTEBOOK_NAME.match(path.name):
        raise nbs.NotebookError(f"{args.stem!r}: notebook names are NN_topic (two digits, lower "
                                "case).")
    if path.exists():
        raise nbs.NotebookError(f"{path} exists; it was left as it is.")
    nbs.write(nbs.scaffold(args.stem, args.title, args.section), path)
    print(f"created {path}")
    return 0


def _add_refresh(sub: Any) -> argparse.ArgumentParser:
    refresh = sub.add_parser("refresh", help="(maintainers) re-execute a notebook in the smoke "
                             "profile and save the outputs nbval checks into the source")
    refresh.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    return refresh


def _cmd_refresh(args: argparse.Namespace) -> int:
    from utils import notebooks as nbs
    from utils import runner

    runs = runner.plan(args.notebooks, "smoke")
    with tempfile.TemporaryDirectory() as tmp:
        results = runner.execute(runs, Path(tmp))
        for run, result in zip(runs, results):
            if result.status != "ok":
                print(f"{run.name}: not refreshed, execution failed: {result.error}")
                continue
            source = nbs.read(run.notebook)
            executed = nbs.read(Path(result.output))
            nbs.write(nbs.strip_outputs(source, keep_from=executed), run.notebook)
            kept = sum(nbs.is_checked(c) for c in source.cells)
            print(f"{run.name}: saved the outputs of {kept} checked cell(s), stripped the rest")
    return 0 if all(r.status == "ok" for r in results) else 1


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

def _add_report(sub: Any) -> argparse.ArgumentParser:
    report = sub.add_parser("report", help="one HTML page of what a run measured, or of a "
                            "class's runs side by side")
    report.add_argument("runs", nargs="*", metavar="RUN",
                        help="run folders of `course run` or files of `course run --share` "
                             "(default: the latest run under executed/)")
    report.add_argument("--output", type=Path, metavar="FILE",
                        help="where to write the page (default: report.html in the run folder, "
                             "or class-report.html in the current folder for several runs)")
    return report


def _cmd_report(args: argparse.Namespace) -> int:
    from utils import report

    paths = [Path(p) for p in args.runs] or [report.latest_run()]
    runs = [report.load_run(p) for p in paths]
    if args.output:
        output = args.output
    elif len(paths) == 1:
        output = (paths[0] if paths[0].is_dir() else paths[0].parent) / "report.html"
    else:
        output = Path.cwd() / "class-report.html"
    page = report.build_report(runs, output)
    print(f"Report of {len(runs)} run(s): {page}")
    return 0


# --------------------------------------------------------------------------------------------
# book
# --------------------------------------------------------------------------------------------

def _add_book(sub: Any) -> argparse.ArgumentParser:
    from utils import book

    return book.add_arguments(sub.add_parser(
        "book", help="build the executed course as a static website (the 'book' extra: "
                     "pip install -e '.[book]')"))


def _cmd_book(args: argparse.Namespace) -> int:
    from utils import book

    return book.command(args)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

#: Every command: name -> (declare its arguments, do it). Order is the order of ``--help``.
COMMANDS: dict[str, tuple[Callable[[Any], argparse.ArgumentParser],
                          Callable[[argparse.Namespace], int]]] = {
    "run": (_add_run, _cmd_run),
    "lab": (_add_lab, _cmd_lab),
    "list": (_add_list, _cmd_list),
    "hardware": (_add_hardware, _cmd_hardware),
    "new": (_add_new, _cmd_new),
    "refresh": (_add_refresh, _cmd_refresh),
    "report": (_add_report, _cmd_report),
    "book": (_add_book, _cmd_book),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course", description="Run and inspect the notebooks of 'Supercomputing, the heart "
        "of Deep Learning'.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, handler in COMMANDS.values():
        add(sub).set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``course`` command."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return args.handler(args)
    except CourseError as error:
        print(f"course {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
