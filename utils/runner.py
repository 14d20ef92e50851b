"""Execute course notebooks with papermill, for instructors and CI.

A run takes notebooks, a profile (``smoke``, ``default`` or ``full``, defined in
notebooks/profiles.yaml), optional parameter files and ``NAME VALUE`` overrides. Before anything
executes, every parameter is checked against what each notebook declares (papermill itself
would inject an unknown name without complaint). Each notebook is executed into an output
folder, never over its source; a failure is recorded and the run goes on; the result is a table
and a ``summary.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
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
    status: str  # "ok", "failed" or "prepared"
    duration_s: float
    peak_memory_mb: float | None
    output: str
    parameters: dict[str, Any]
    error: str | None = None


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
    except FileNotFoundError as error:
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
) -> list[RunResult]:
    """Execute (or with ``prepare_only``, only inject parameters into) each planned notebook.

    The kernel runs in ``output_dir``, so files a notebook writes land beside its executed
    copy. A failing notebook is recorded and the others still run.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from utils.memory import PeakMemory

    output_dir = Path(output_dir or default_output_dir())
    _check_output(runs, output_dir, overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for index, run in enumerate(runs, 1):
        target = output_dir / run.notebook.name
        shown = ", ".join(f"{k}={v!r}" for k, v in run.parameters.items()) or "notebook defaults"
        log(f"[{index}/{len(runs)}] {run.name} ({shown})")
        engine_kwargs = {"execution_timeout": cell_timeout} if cell_timeout else {}
        error, status = None, "prepared" if prepare_only else "ok"
        start = time.perf_counter()
        with PeakMemory() as peak:
            try:
                papermill.execute_notebook(
                    str(run.notebook), str(target), parameters=run.parameters,
                    prepare_only=prepare_only, kernel_name=kernel_name,
                    progress_bar=progress_bar and not prepare_only, cwd=str(output_dir),
                    **engine_kwargs)
            except PapermillExecutionError as exc:
                status = "failed"
                error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}".strip()
            except Exception as exc:  # a dead kernel, a timeout, a broken notebook file
                status = "failed"
                error = f"{type(exc).__name__}: {exc}".strip()
        duration = time.perf_counter() - start
        results.append(RunResult(run.name, status, round(duration, 2),
                                 None if prepare_only else peak.megabytes, str(target),
                                 run.parameters, error))
        log(f"    {status} in {duration:.1f} s" + (f": {error}" if error else ""))
    return results


def summary_table(results: list[RunResult]) -> str:
    """A plain-text table: notebook, status, duration, peak memory, first error line."""
    from utils.memory import MEMORY_METRIC

    head = ("notebook", "status", "duration", f"peak memory ({MEMORY_METRIC.upper()})")
    rows = [(r.notebook, r.status, f"{r.duration_s:.1f} s",
             f"{r.peak_memory_mb:.0f} MB" if r.peak_memory_mb else "n/a") for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*head), line.format(*("-" * w for w in widths))]
    out += [line.format(*row) for row in rows]
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        out.append(f"{r.notebook}: {r.error.splitlines()[0] if r.error else 'failed'}")
    ok = sum(r.status != "failed" for r in results)
    verb = "prepared" if results and results[0].status == "prepared" else "succeeded"
    out.append(f"{ok} of {len(results)} notebook(s) {verb}.")
    return "\n".join(out)


def write_summary(results: list[RunResult], output_dir: Path, profile: str) -> Path:
    """Write ``summary.json`` (machine-readable) beside the executed notebooks."""
    from utils.hardware import hardware_report
    from utils.memory import MEMORY_METRIC

    report = hardware_report()
    summary = {
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "profile": profile,
        "host": {"runtime": report.runtime, "cpu": report.cpu.model,
                 "usable_cores": report.cpu.usable_cores,
                 "accelerator": report.accelerator,
                 "gpus": [g.name for g in report.gpus]},
        "ok": all(r.status != "failed" for r in results),
        "memory_metric": MEMORY_METRIC,
        "notebooks": [asdict(r) for r in results],
    }
    path = Path(output_dir) / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    return path
