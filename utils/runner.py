"""Execute course notebooks with papermill, for instructors and CI.

A run takes notebooks, a profile (``smoke``, ``default`` or ``full``, defined in
notebooks/profiles.yaml), optional parameter files and ``NAME VALUE`` overrides. Before anything
executes, every parameter is checked against what each notebook declares (papermill itself
would inject an unknown name without complaint). Each notebook is executed into an output
folder, never over its source, with its kernel's log beside it (``NN_topic.log``); a failure is
recorded and the run goes on. The run ends with a table, a ``summary.json`` (the hardware
report once, and per notebook its status, peak memory, device choices and recorded results)
and a flat ``results.csv`` (one row per recorded result, with the machine's identity).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import utils
from utils.errors import CourseError
from utils import notebooks as nbs

__all__ = [
    "PROFILES_FILE",
    "PROFILES",
    "RunnerError",
    "NotebookRun",
    "RunResult",
    "declared_parameters",
    "load_profiles",
    "load_parameter_file",
    "plan",
    "execute",
    "summary_table",
    "write_summary",
    "machine_identity",
    "RESULTS_COLUMNS",
]

#: The one file that defines the profiles.
PROFILES_FILE = utils.NOTEBOOKS_DIR / "profiles.yaml"
PROFILES = ("smoke", "default", "full")


class RunnerError(CourseError, ValueError):
    """A run that cannot start: an unknown notebook, profile or parameter, or a bad output."""


@dataclass
class NotebookRun:
    """One notebook to execute with the parameters chosen for it."""

    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.notebook.stem


@dataclass
class RunResult:
    """What happened to one notebook."""

    notebook: str
    status: str  # "ok", "failed", "interrupted" or "prepared"
    duration_s: float
    peak_memory_mb: float | None
    output: str
    parameters: dict[str, Any]
    error: str | None = None
    log: str | None = None  # the kernel's log beside the executed copy
    device_choices: list[str] = field(default_factory=list)  # "Asked for ..." lines it printed
    results: list[dict[str, Any]] = field(default_factory=list)  # utils.results.Result dicts


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The parameters a notebook declares, as papermill reads its ``parameters`` cell.

    Returns ``{name: {"type": ..., "default": ..., "help": ...}}``.
    """
    import papermill

    info = papermill.inspect_notebook(str(notebook))
    return {name: {"type": p.get("inferred_type_name"), "default": p.get("default"),
                   "help": p.get("help", "")} for name, p in info.items()}


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise RunnerError(f"{path}: no such file.") from None
    except yaml.YAMLError as error:
        raise RunnerError(f"{path} is not valid YAML: {error}") from None


def load_profiles(path: Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Read the profiles file: ``{profile: {notebook stem: {NAME: value}}}``."""
    path = Path(path or PROFILES_FILE)
    data = _yaml(path)
    if not isinstance(data, dict):
        raise RunnerError(f"{path}: expected a mapping of profile names.")
    unknown = set(data) - set(PROFILES)
    if unknown:
        raise RunnerError(f"{path}: unknown profile(s) {sorted(unknown)}; profiles are "
                          f"{', '.join(PROFILES)}.")
    profiles: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in PROFILES}
    for profile, per_notebook in data.items():
        for stem, values in (per_notebook or {}).items():
            if not isinstance(values, dict):
                raise RunnerError(f"{path}: {profile}.{stem} must map parameter names to values.")
            profiles[profile][stem] = dict(values)
    return profiles


def load_parameter_file(path: Path, stems: list[str]) -> dict[str, dict[str, Any]]:
    """Read a ``-f params.yaml`` file: flat ``NAME: value`` pairs for every chosen notebook, or
    a mapping keyed by notebook name (``01_flops_and_moores_law: {NAME: value}``)."""
    data = _yaml(Path(path))
    if not isinstance(data, dict):
        raise RunnerError(f"{path}: expected 'NAME: value' lines.")
    # YAML reads a bare notebook number such as 01 as an integer: restore its two digits.
    data = {f"{k:02d}" if isinstance(k, int) else str(k): v for k, v in data.items()}
    keyed = [k for k in data if any(k == s or s.startswith(f"{k}_") for s in stems)]
    if keyed and len(keyed) == len(data):
        out: dict[str, dict[str, Any]] = {}
        for key, values in data.items():
            for stem in stems:
                if stem == key or stem.startswith(f"{key}_"):
                    out.setdefault(stem, {}).update(values or {})
        return out
    return {stem: dict(data) for stem in stems}


def plan(
    names: list[str],
    profile: str = "default",
    parameter_files: list[Path] | None = None,
    overrides: dict[str, Any] | None = None,
    profiles_file: Path | None = None,
) -> list[NotebookRun]:
    """Choose notebooks and their parameters, refusing anything a notebook does not declare.

    Precedence: profile < parameter files (in order) < overrides.

    Raises:
        RunnerError: unknown notebook or profile, or a parameter a notebook does not declare.
    """
    if profile not in PROFILES:
        raise RunnerError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
    try:
        notebooks = nbs.resolve(names)
    except nbs.NotebookError as error:
        raise RunnerError(str(error)) from None
    if not notebooks:
        raise RunnerError(f"no notebooks found in {utils.NOTEBOOKS_DIR}.")
    stems = [nb.stem for nb in notebooks]
    profile_values = load_profiles(profiles_file)[profile]
    from_files = [load_parameter_file(p, stems) for p in parameter_files or []]

    runs, problems = [], []
    for notebook in notebooks:
        params = dict(profile_values.get(notebook.stem, {}))
        for values in from_files:
            params.update(values.get(notebook.stem, {}))
        params.update(overrides or {})
        declared = declared_parameters(notebook)
        undeclared = [n for n in params if n not in declared]
        if undeclared:
            listing = ", ".join(f"{n} ({d['type']})" for n, d in declared.items()) or "none"
            problems.append(f"{notebook.stem} does not declare {', '.join(undeclared)}; "
                            f"its parameters are: {listing}.")
        runs.append(NotebookRun(notebook, params))
    if problems:
        raise RunnerError("refused before executing anything:\n  " + "\n  ".join(problems))
    return runs


def default_output_dir() -> Path:
    """``executed/<date-time>/`` under the current folder."""
    return Path.cwd() / "executed" / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def _check_output(runs: list[NotebookRun], output_dir: Path, overwrite: bool) -> None:
    sources = {run.notebook.resolve() for run in runs} | {p.resolve() for p in nbs.discover()}
    for run in runs:
        target = (output_dir / run.notebook.name).resolve()
        if target in sources:
            raise RunnerError(f"{target} is a source notebook; choose another --output folder "
                              "(executed copies never replace the sources).")
        if target.exists() and not overwrite:
            raise RunnerError(f"{target} already exists; choose another --output folder or "
                              "pass --overwrite to replace the executed copies there.")


#: A device choice the course prints: ``Asked for X; found Y; using Z.`` (utils.strategy,
#: utils.backends, utils.data_parallel all start their one line so).
DEVICE_CHOICE = re.compile(r"^Asked for .+")


class _ChoiceEcho:
    """A file-like sink for a notebook's stdout (papermill's ``stdout_file``): keeps the device
    choice lines, shows each as it comes, ignores everything else."""

    def __init__(self, show: Callable[[str], None]) -> None:
        self.show = show
        self.lines: list[str] = []
        self._partial = ""

    def write(self, text: str) -> None:
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            line = line.strip()
            if DEVICE_CHOICE.match(line) and line not in self.lines:
                self.lines.append(line)
                self.show(line)

    def flush(self) -> None:
        pass


def _kernel_manager_class(log: Any) -> type:
    """A kernel manager that starts the kernel with the course's environment and sends the
    kernel process's own stdout and stderr to ``log`` (an open file)."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggingKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            kw.setdefault("env", nbs.kernel_environment())
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)

    return LoggingKernelManager


def _kernel_arguments(kernel_name: str | None, notebook: Path) -> list[str]:
    """The course's kernel arguments that the notebook's kernel spec lacks (none for a kernel
    that is not ipykernel, or for the course's own spec, which has them)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    name = kernel_name or nbs.read(notebook).metadata.get("kernelspec", {}).get("name", "python3")
    try:
        argv = KernelSpecManager().get_kernel_spec(name).argv
    except NoSuchKernel:
        return []
    if not any("ipykernel" in part for part in argv):
        return []
    return [arg for arg in nbs.KERNEL_ARGUMENTS if arg not in argv]


def _clean_traceback(lines: list[str]) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(lines))


def execute(
    runs: list[NotebookRun],
    output_dir: Path | None = None,
    *,
    prepare_only: bool = False,
    overwrite: bool = False,
    kernel_name: str | None = None,
    cell_timeout: float | None = None,
    progress_bar: bool = True,
    log: Callable[[str], None] = print,
    after_each: Callable[[list[RunResult]], Any] | None = None,
) -> list[RunResult]:
    """Execute (or with ``prepare_only``, only inject parameters into) each planned notebook.

    The kernel runs in ``output_dir``, so files a notebook writes land beside its executed
    copy. It starts with the course's environment (:func:`utils.notebooks.kernel_environment`);
    its own stdout and stderr (TensorFlow's C++ lines, the kernel's log), the stderr of its
    cells and, on failure, the traceback go to ``NN_topic.log`` beside the copy, so the
    terminal shows only one progress bar per notebook and the device choices it printed
    (``Asked for ...``). A failing notebook is recorded and the others still run. Results a
    notebook recorded (:mod:`utils.results`) are read back from its executed copy.

    ``after_each(results so far)`` is called after every notebook (``course run`` rewrites its
    summary there, so an interrupted run keeps what it finished). Ctrl-C stops the run: the
    notebook it interrupted is recorded as ``"interrupted"`` and the rest are not started.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from utils.memory import PeakMemory
    from utils.results import read_results

    output_dir = Path(output_dir or default_output_dir())
    _check_output(runs, output_dir, overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for index, run in enumerate(runs, 1):
        target = output_dir / run.notebook.name
        shown = ", ".join(f"{k}={v!r}" for k, v in run.parameters.items()) or "notebook defaults"
        log(f"[{index}/{len(runs)}] {run.name} ({shown})")
        if prepare_only:
            papermill.execute_notebook(str(run.notebook), str(target), parameters=run.parameters,
                                       prepare_only=True, kernel_name=kernel_name)
            results.append(RunResult(run.name, "prepared", 0.0, None, str(target),
                                     run.parameters))
            continue
        log_path = target.with_suffix(".log")
        error, status = None, "ok"
        show_bar = progress_bar
        echo = _ChoiceEcho(_bar_writer(log) if show_bar else (lambda line: log(f"    {line}")))
        start = time.perf_counter()
        log_path.write_text("")  # appended to by the kernel process and by this one
        with open(log_path, "a", encoding="utf-8", errors="replace") as kernel_log, \
                PeakMemory() as peak:
            extra = {"execution_timeout": cell_timeout} if cell_timeout else {}
            missing = _kernel_arguments(kernel_name, run.notebook)
            if missing:
                extra["extra_arguments"] = missing
            try:
                papermill.execute_notebook(
                    str(run.notebook), str(target), parameters=run.parameters,
                    kernel_name=kernel_name, cwd=str(output_dir),
                    progress_bar={"desc": run.name, "leave": True} if show_bar else False,
                    stdout_file=echo, stderr_file=kernel_log,
                    kernel_manager_class=_kernel_manager_class(kernel_log), **extra)
            except KeyboardInterrupt:
                status, error = "interrupted", "interrupted (Ctrl-C)"
            except PapermillExecutionError as exc:
                status = "interrupted" if exc.ename == "KeyboardInterrupt" else "failed"
                error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}".strip()
                kernel_log.write(f"\n{run.name} failed in {error}\n"
                                 f"{_clean_traceback(exc.traceback)}\n")
            except Exception as exc:  # a dead kernel, a timeout, a broken notebook file
                status = "failed"
                error = f"{type(exc).__name__}: {exc}".strip()
                kernel_log.write(f"\n{run.name} failed: {error}\n")
        duration = time.perf_counter() - start
        recorded = [r.as_dict() for r in read_results(target)] if target.is_file() else []
        results.append(RunResult(run.name, status, round(duration, 2), peak.megabytes,
                                 str(target), run.parameters, error, str(log_path),
                                 echo.lines, recorded))
        log(f"    {status} in {duration:.1f} s" + (f": {error}" if error else "")
            + (f" (full log: {log_path})" if error else ""))
        if after_each is not None:
            after_each(results)
        if status == "interrupted":
            log(f"    interrupted: {len(runs) - index} notebook(s) not started")
            break
    return results


def _bar_writer(log: Callable[[str], None]) -> Callable[[str], None]:
    """Print a line above the progress bar (tqdm.write) when ``log`` is plain print."""
    if log is not print:
        return lambda line: log(f"    {line}")
    from tqdm.auto import tqdm

    return lambda line: tqdm.write(f"    {line}")


def summary_table(results: list[RunResult]) -> str:
    """A plain-text table: notebook, status, duration, peak memory, results recorded; then each
    failure's first error line and the log that holds the rest."""
    from utils.memory import MEMORY_METRIC

    head = ("notebook", "status", "duration", f"peak memory ({MEMORY_METRIC.upper()})",
            "results")
    rows = [(r.notebook, r.status, f"{r.duration_s:.1f} s",
             f"{r.peak_memory_mb:.0f} MB" if r.peak_memory_mb else "n/a",
             str(len(r.results)) if r.status != "prepared" else "-") for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*head), line.format(*("-" * w for w in widths))]
    out += [line.format(*row) for row in rows]
    for r in results:
        if r.status in ("failed", "interrupted"):
            first = r.error.splitlines()[0] if r.error else "failed"
            out.append(f"{r.notebook}: {first}" + (f"\n    full log: {r.log}" if r.log else ""))
    ok = sum(r.status in ("ok", "prepared") for r in results)
    verb = "prepared" if results and results[0].status == "prepared" else "succeeded"
    out.append(f"{ok} of {len(results)} notebook(s) {verb}.")
    return "\n".join(out)


#: The columns of ``results.csv``: the result, then the machine that measured it.
RESULTS_COLUMNS = ["lesson", "section", "name", "value", "unit", "description",
                   "machine", "cpu", "cores", "accelerator", "gpus"]


def _machine_id() -> str:
    """A short, stable, anonymous id of this machine: a hash of /etc/machine-id (else of the
    network card's address), never the host name itself."""
    try:
        seed = Path("/etc/machine-id").read_text().strip()
    except OSError:
        seed = ""
    seed = seed or str(uuid.getnode())
    return hashlib.sha256(f"course:{seed}".encode()).hexdigest()[:10]


def machine_identity(report: Any) -> dict[str, Any]:
    """Who measured: a short anonymous machine id, CPU model, usable cores, accelerator kind
    and GPU names, from a :class:`utils.hardware.HardwareReport`."""
    return {"machine": _machine_id(), "cpu": report.cpu.model,
            "cores": report.cpu.usable_cores, "accelerator": report.accelerator,
            "gpus": "; ".join(g.name for g in report.gpus)}


def _course_version() -> str:
    """The installed course's version, with the git commit where the course is a clone."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("supercomputing-heart-of-dl")
    except PackageNotFoundError:
        text = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=utils.REPO_ROOT,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return text
    return f"{text}+g{commit.stdout.strip()}" if commit.returncode == 0 else text


def _relative(path: str | None, folder: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(folder.resolve()))
    except ValueError:
        return path


def write_summary(results: list[RunResult], output_dir: Path, profile: str) -> Path:
    """Write ``summary.json`` and ``results.csv`` beside the executed notebooks.

    ``summary.json`` holds the run (creation time, profile, course version), the hardware
    report once (``hardware``, :meth:`utils.hardware.HardwareReport.to_dict`), the machine's
    identity (``machine``), and per notebook its status, duration, peak memory, parameters,
    error, device choices and recorded results; paths are relative to the folder.
    ``results.csv`` has one row per recorded result (:data:`RESULTS_COLUMNS`). Returns the
    path of ``summary.json``.
    """
    from utils.hardware import hardware_report
    from utils.memory import MEMORY_METRIC

    output_dir = Path(output_dir)
    report = hardware_report()
    machine = machine_identity(report)
    notebooks = []
    for r in results:
        entry = asdict(r)
        entry["output"], entry["log"] = _relative(r.output, output_dir), _relative(r.log, output_dir)
        notebooks.append(entry)
    summary = {
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "profile": profile,
        "course_version": _course_version(),
        "machine": machine,
        "hardware": report.to_dict(),
        "ok": all(r.status in ("ok", "prepared") for r in results),
        "memory_metric": MEMORY_METRIC,
        "notebooks": notebooks,
    }
    path = output_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    with open(output_dir / "results.csv", "w", newline="", encoding="utf-8") as table:
        writer = csv.DictWriter(table, fieldnames=RESULTS_COLUMNS)
        writer.writeheader()
        for r in results:
            for result in r.results:
                writer.writerow({**{k: result.get(k, "") for k in RESULTS_COLUMNS[:6]},
                                 "lesson": result.get("lesson") or r.notebook, **machine})
    return path
