"""``course report``: one self-contained HTML page of what a run measured, or of a whole class.

A *run* is what ``course run`` leaves in its output folder (``summary.json``, the executed
notebooks with their recorded results, ``results.csv``), or the single small file that
``course run --share`` packs from it for an instructor (:func:`share_run`: a zip holding
``summary.json`` and ``results.csv``, with no absolute path, host or user name).

For one run the page shows the machine, each lesson's recorded results beside reference figures
from data/ (the GTX 580 of 2012, a V100, an H100, MareNostrum), the machine's place in TOP500
history, and how long the chapter's milestones (AlexNet's 2012 training, AlphaGo Zero's) would
take on it. For several runs (one per learner) it sets the machines side by side, sums the
class into one machine ("your classroom as a supercomputer"), places it in the TOP500, and
prices the interconnect with lesson 06's all-reduce figures and lesson 05's ring model. Runs of
another course version are listed apart, never mixed into the class figures.

Plots are PNG images embedded in the page, so it opens with no network, and the layout
narrows to fit a phone.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import getpass
import html
import io
import json
import os
import re
import socket
import statistics
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from utils.errors import CourseError
from utils.results import Result, read_results

__all__ = ["ReportError", "Run", "load_run", "latest_run", "share_run", "build_report",
           "SHARE_SUFFIX"]

#: The file name ending of a shared run.
SHARE_SUFFIX = ".course-run.zip"

#: Units and their size in base units, so results and references can be compared.
_UNIT_SCALE = {"FLOP/s": 1.0, "GFLOP/s": 1e9, "TFLOP/s": 1e12, "PFLOP/s": 1e15,
               "B/s": 1.0, "GB/s": 1e9, "MB/s": 1e6, "TB/s": 1e12}

_CSV_FIELDS = ["lesson", "section", "name", "value", "unit", "description"]


class ReportError(CourseError):
    """A run folder or shared file that cannot be reported; the message says which and why."""


@dataclass
class Run:
    """One run of the course: its machine, its notebooks and the results they recorded."""

    label: str
    created: str = ""
    profile: str = ""
    course_version: str = "unknown"
    machine: dict[str, Any] = field(default_factory=dict)
    notebooks: list[dict[str, Any]] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)

    def value(self, name: str) -> float | str | None:
        """The value recorded under ``name`` (any lesson), or None."""
        for result in self.results:
            if result.name == name:
                return result.value
        return None

    def number(self, name: str) -> float | None:
        value = self.value(name)
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def lessons_ok(self) -> list[str]:
        return [n["notebook"] for n in self.notebooks if n.get("status") == "ok"]

    @property
    def lessons_failed(self) -> list[str]:
        return [n["notebook"] for n in self.notebooks if n.get("status") == "failed"]


# --------------------------------------------------------------------------------------------
# Reading runs
# --------------------------------------------------------------------------------------------

def _machine(summary: dict[str, Any]) -> dict[str, Any]:
    return dict(summary.get("hardware") or summary.get("host") or {})


def _results_from_csv(text: str) -> list[Result]:
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        value: float | int | str = row.get("value", "")
        try:
            number = float(value)
            value = int(number) if number.is_integer() and "." not in str(row["value"]) else number
        except (TypeError, ValueError):
            pass
        out.append(Result(row.get("name", ""), value, row.get("unit", ""),
                          row.get("description", ""), row.get("lesson", ""),
                          row.get("section", "")))
    return out


def _results_from_folder(folder: Path, summary: dict[str, Any]) -> list[Result]:
    results: list[Result] = []
    for entry in summary.get("notebooks", []):
        recorded = entry.get("results")
        if recorded is not None:  # course run keeps each notebook's results in the summary
            results.extend(Result(**{k: r.get(k, "") for k in
                                     ("name", "value", "unit", "description", "section")},
                                  lesson=r.get("lesson") or entry.get("notebook", ""))
                           for r in recorded)
            continue
        name = Path(str(entry.get("output") or f"{entry.get('notebook')}.ipynb")).name
        path = folder / name
        if path.is_file():
            results.extend(read_results(path))
    if not results and (folder / "results.csv").is_file():
        results = _results_from_csv((folder / "results.csv").read_text(encoding="utf-8"))
    return results


def _run_from(summary: dict[str, Any], results: list[Result], label: str) -> Run:
    notebooks = [{k: n.get(k) for k in ("notebook", "status", "duration_s", "peak_memory_mb")}
                 for n in summary.get("notebooks", [])]
    return Run(label=str(summary.get("label") or label), created=str(summary.get("created", "")),
               profile=str(summary.get("profile", "")),
               course_version=str(summary.get("course_version") or "unknown"),
               machine=_machine(summary), notebooks=notebooks, results=results)


def load_run(path: Path | str) -> Run:
    """A run from an output folder of ``course run`` or from a file of ``course run --share``."""
    path = Path(path)
    try:
        if path.is_dir():
            summary_file = path / "summary.json"
            if not summary_file.is_file():
                raise ReportError(f"{path} holds no summary.json: give the folder that "
                                  "`course run` wrote (its last line names it).")
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
            return _run_from(summary, _results_from_folder(path, summary), path.name)
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                summary = json.loads(archive.read("summary.json"))
                results = _results_from_csv(archive.read("results.csv").decode("utf-8"))
            label = path.name.removesuffix(SHARE_SUFFIX).removesuffix(".zip")
            return _run_from(summary, results, label)
    except (KeyError, json.JSONDecodeError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise ReportError(f"{path} is not a course run ({error}); give a folder written by "
                          f"`course run` or a *{SHARE_SUFFIX} file.") from None
    raise ReportError(f"{path}: no such run folder or shared file.")


def latest_run(base: Path | str | None = None) -> Path:
    """The newest folder under ``executed/`` (where ``course run`` writes by default)."""
    base = Path(base) if base is not None else Path.cwd() / "executed"
    runs = sorted((p for p in base.glob("*/summary.json")), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise ReportError(f"no run found in {base}: run the notebooks first "
                          "(course run --profile smoke), or name a run folder.")
    return runs[-1].parent


# --------------------------------------------------------------------------------------------
# Sharing one run with an instructor
# --------------------------------------------------------------------------------------------

def _private_words() -> list[str]:
    words = {getpass.getuser(), socket.gethostname(), socket.getfqdn(),
             os.environ.get("USER", ""), os.environ.get("LOGNAME", "")}
    return sorted((w for w in words if w and len(w) > 2 and w not in {"root", "localhost"}),
                  key=len, reverse=True)


_ABSOLUTE = re.compile(r"(?<![\w.])(?:/[^\s/\"',:;]+)+/?|[A-Za-z]:\\[^\s\"']*")


def _scrub(value: Any, private: list[str]) -> Any:
    """``value`` with absolute paths reduced to their last part and private words removed."""
    if isinstance(value, dict):
        return {k: _scrub(v, private) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, private) for v in value]
    if not isinstance(value, str):
        return value
    text = _ABSOLUTE.sub(lambda m: Path(m.group(0).rstrip("/\\")).name or "-", value)
    for word in private:
        text = re.sub(re.escape(word), "<private>", text, flags=re.I)
    return text


def share_run(run_dir: Path | str, output: Path | str | None = None,
              label: str | None = None) -> Path:
    """Pack a run's ``summary.json`` and ``results.csv`` into one small zip for an instructor.

    No notebook goes in, every absolute path is cut to its last part, and the user's name and
    the host's name are removed. ``label`` names the learner in the class report (default: the
    run folder's name).
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    label = label or run_dir.name
    if not re.fullmatch(r"[\w.-]{1,64}", label):
        raise ReportError(f"share label {label!r}: use letters, digits, '.', '_' or '-' "
                          "(at most 64), e.g. --share-label ana-laptop.")
    private = _private_words()
    summary = _scrub({**summary, "label": label}, private)
    rows = io.StringIO()
    writer = csv.DictWriter(rows, fieldnames=_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result in run.results:
        writer.writerow({k: _scrub(v, private) for k, v in result.as_dict().items()
                         if k in _CSV_FIELDS})
    target = Path(output) if output else run_dir.parent / f"{label}{SHARE_SUFFIX}"
    if target.exists():
        raise ReportError(f"{target} exists already; remove it or choose another --share-label.")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("summary.json", json.dumps(summary, indent=1, default=str))
        archive.writestr("results.csv", rows.getvalue())
    return target


# --------------------------------------------------------------------------------------------
# Reference figures from data/
# --------------------------------------------------------------------------------------------

_REFERENCE_GPUS = ("GTX 580", "Tesla V100 SXM2", "H100 SXM5")


def _accelerator(device: str) -> dict[str, Any]:
    from utils import data

    table = data.load("accelerators").set_index("device")
    return table.loc[device].to_dict()


def references(result: Result) -> list[tuple[str, float]]:
    """Reference figures for a recorded result, in the result's unit: ``[(label, value)]``.

    Rates of matrix products are set beside the GPUs' data-sheet peaks (float32, or the 16-bit
    tensor figures for 16-bit formats, FP64 for FP64), memory bandwidths beside the GPUs'
    memory, AlexNet throughput beside the published single-GPU benchmarks, all-reduce
    bandwidth beside the course's reference links.
    """
    from utils import data

    scale = _UNIT_SCALE.get(result.unit)
    name = result.name
    refs: list[tuple[str, float]] = []
    if scale and "FLOP/s" in result.unit:
        column = ("fp64_tflops" if "fp64" in name else
                  "fp16_bf16_tensor_tflops" if re.search(r"16", name) else "fp32_tflops")
        for device in _REFERENCE_GPUS:
            value = _accelerator(device).get(column)
            if value == value and value is not None:  # not NaN
                refs.append((f"{device} ({column.split('_')[0]} peak)", value * 1e12 / scale))
        if "fp64" in name or column == "fp32_tflops":
            mn = data.load("bsc_systems").set_index("system").loc["MareNostrum 3"]
            refs.append(("MareNostrum 3 (FP64 Rpeak, 2013)", mn["rpeak_tflops"] * 1e12 / scale))
    elif scale and result.unit.endswith("B/s") and name.startswith(("stream", "elementwise")):
        for device in _REFERENCE_GPUS:
            refs.append((f"{device} memory", _accelerator(device)["mem_bw_gbs"] * 1e9 / scale))
    elif scale and name.startswith("allreduce_beta"):
        from utils.interconnect import links

        for link in links().values():
            refs.append((f"{link.name} (per direction)", link.bandwidth_bytes_per_s / scale))
    elif name.startswith("alexnet_images_per_s") and result.unit == "images/s":
        table = data.load("alexnet_throughput")
        single = table[table["devices"] == 1]
        for hardware, rows in single.groupby("hardware", sort=False):
            best = rows.loc[rows["images_per_s"].idxmax()]
            refs.append((f"{hardware} ({best['precision']}, {best['source']})",
                         float(best["images_per_s"])))
    elif name.startswith("ridge_flop_per_byte"):
        for device in _REFERENCE_GPUS:
            row = _accelerator(device)
            refs.append((f"{device} (float32)", row["fp32_tflops"] * 1e12 /
                         (row["mem_bw_gbs"] * 1e9)))
    return refs


# --------------------------------------------------------------------------------------------
# What the figures mean: TOP500, milestones, a class as one machine, its interconnect
# --------------------------------------------------------------------------------------------

def fp64_rate(run: Run) -> tuple[float | None, str]:
    """The machine's FP64 rate in GFLOP/s for the TOP500, and where it came from."""
    measured = run.number("fp64_matmul_gflops")
    if measured:
        return measured, "measured (lesson 01, FP64 matrix product)"
    cpu = run.machine.get("cpu")
    peak = cpu.get("peak_gflops_fp64") if isinstance(cpu, dict) else None
    if peak:
        return float(peak), "the CPU's theoretical FP64 peak (lesson 01 was not run)"
    return None, "no FP64 rate was recorded"


def fp32_rate(run: Run) -> tuple[float | None, str]:
    """The fastest float32 matrix-product rate the run recorded (FLOP/s), and its name."""
    best: tuple[float | None, str] = (None, "")
    for result in run.results:
        scale = _UNIT_SCALE.get(result.unit)
        if not scale or "matmul" not in result.name or not isinstance(result.value, (int, float)):
            continue
        if re.search(r"16|fp64|tf32", result.name):
            continue
        rate = float(result.value) * scale
        if best[0] is None or rate > best[0]:
            best = (rate, result.name)
    return best


def milestones(rate_flops: float) -> list[tuple[str, float, float]]:
    """``[(model, training FLOP, seconds at rate_flops)]`` for the chapter's milestones."""
    from utils import data

    table = data.load("ai_compute").set_index("model")
    out = []
    for model in ("AlexNet", "AlphaGo Zero"):
        if model in table.index:
            flop = table.loc[model, "training_flop"]
            if flop != flop:  # NaN: from petaflop/s-days
                flop = table.loc[model, "training_pfs_days"] * data.PFS_DAY_FLOP
            out.append((model, float(flop), float(flop) / rate_flops))
    return out


def allreduce_cost(runs: list[Run]) -> dict[str, float] | None:
    """Lesson 05's ring model with lesson 06's measured alpha and beta (class medians): one
    AlexNet gradient all-reduce over the class's machines against one training step."""
    from utils import data
    from utils.interconnect import GRADIENT_BYTES, ring_allreduce_seconds

    alphas = [r.number("allreduce_alpha_us") for r in runs]
    betas = [r.number("allreduce_beta_gbs") for r in runs]
    alphas = [a for a in alphas if a is not None]
    betas = [b for b in betas if b]
    if not betas:
        return None
    facts = data.load("alexnet").set_index("quantity")["value"]
    parameters = int(float(facts["parameters_ungrouped_227"]))
    batch = int(float(facts["batch_size"]))
    alpha_s = statistics.median(alphas) * 1e-6 if alphas else 0.0
    beta = statistics.median(betas) * 1e9
    seconds = ring_allreduce_seconds(parameters * GRADIENT_BYTES, len(runs), beta, alpha_s)
    speeds = [r.number("alexnet_images_per_s_float32") for r in runs]
    speeds = [s for s in speeds if s]
    step = batch / statistics.median(speeds) if speeds else None
    out = {"machines": len(runs), "alpha_us": alpha_s * 1e6, "beta_gbs": beta / 1e9,
           "parameters": parameters, "allreduce_s": seconds, "batch": batch}
    if step:
        out["step_s"] = step
        out["efficiency_sum"] = step / (step + seconds)
        out["efficiency_overlap"] = step / max(step, seconds)
    return out


# --------------------------------------------------------------------------------------------
# Plots (PNG, embedded)
# --------------------------------------------------------------------------------------------

def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from utils.plotting import use_course_style

    use_course_style()
    return plt.subplots(figsize=(7.5, 4.0))


def _plot_top500(rates: list[tuple[str, float]]) -> str:
    from utils import data
    from utils.plotting import MEASURED, REFERENCE

    table = data.load("top500")
    fig, ax = _figure()
    ax.plot(table["list"], table["rmax_no1_tflops"] * 1e3, color=REFERENCE, label="#1 (Rmax)")
    ax.plot(table["list"], table["rmax_no500_tflops"] * 1e3, color=REFERENCE, ls="--",
            label="#500 (Rmax)")
    for index, (label, gflops) in enumerate(rates):
        ax.axhline(gflops, color=MEASURED, ls=("-", ":", "-.")[index % 3], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("TOP500 list (year)")
    ax.set_ylabel("FP64 rate (GFLOP/s, log scale)")
    ax.set_title("Where the measured rate sits in TOP500 history")
    ax.legend()
    return _png(fig)


def _plot_references(result: Result, refs: list[tuple[str, float]]) -> str:
    from utils.plotting import MEASURED, REFERENCE

    labels = ["this machine"] + [label for label, _ in refs]
    values = [float(result.value)] + [value for _, value in refs]  # type: ignore[arg-type]
    fig, ax = _figure()
    ax.barh(labels, values, color=[MEASURED] + [REFERENCE] * len(refs))
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(f"{result.name} ({result.unit}, log scale)")
    return _png(fig)


def _plot_class(name: str, unit: str, points: list[tuple[str, float]]) -> str:
    from utils.plotting import MEASURED

    fig, ax = _figure()
    fig.set_size_inches(7.5, 0.5 + 0.35 * len(points))
    labels = [label for label, _ in points]
    values = [value for _, value in points]
    ax.scatter(values, labels, color=MEASURED, zorder=3)
    median = statistics.median(values)
    ax.axvline(median, color="grey", ls="--", label=f"class median {median:.4g} {unit}")
    if min(values) > 0 and max(values) / min(values) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"{name} ({unit})")
    ax.legend()
    return _png(fig)


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:60rem;padding:0 1rem 3rem;line-height:1.45;color:#222}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ddd;padding-top:1rem}
h3{font-size:1.05rem}img{max-width:100%;height:auto}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{border-bottom:1px solid #eee;padding:.25rem .5rem;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}.note{color:#666;font-size:.9rem}
.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:.5rem .75rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:,.4g}"
    return f"{value:.3e}"


def _table(head: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head_html = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{_fmt(c)}</td>' if isinstance(c, (int, float))
                        and not isinstance(c, bool) else f"<td>{_e(c)}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head_html}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _duration(seconds: float) -> str:
    from utils.units import duration

    return duration(seconds)


def machine_rows(run: Run) -> list[tuple[str, Any]]:
    """The machine as (what, value) rows: CPU, cores, peak, memory, GPUs, TPU."""
    m = run.machine
    cpu = m.get("cpu") if isinstance(m.get("cpu"), dict) else {}
    gpus = m.get("gpus") or []
    gpu_names = ", ".join(g.get("name", str(g)) if isinstance(g, dict) else str(g) for g in gpus)
    tpu = m.get("tpu") or {}
    return [
        ("runtime", m.get("runtime", "-")),
        ("CPU", cpu.get("model", "-") if cpu else m.get("cpu", "-")),
        ("usable cores", cpu.get("usable_cores", m.get("usable_cores", "-"))),
        ("FP32 peak (GFLOP/s)", cpu.get("peak_gflops_fp32", "-")),
        ("FP64 peak (GFLOP/s)", cpu.get("peak_gflops_fp64", "-")),
        ("memory (GB)", m.get("memory_total_gb", "-")),
        ("GPUs", gpu_names or "none"),
        ("TPU", f"{tpu.get('chips')} x {tpu.get('version')}" if tpu.get("chips") else "none"),
    ]


def _single(run: Run) -> list[str]:
    parts = [f"<h2>The machine: {_e(run.label)}</h2>",
             _table(("what", "value"), machine_rows(run)),
             f'<p class="note">Run of {_e(run.created)}, profile <b>{_e(run.profile)}</b>, '
             f"course version {_e(run.course_version)}. Every figure below was measured on "
             "this machine in that run, except the reference figures, which come from the "
             "course's data/ files with their sources.</p>"]
    if run.lessons_failed:
        parts.append(f'<p class="warn">Lessons that failed in this run (no results from '
                     f"them): {_e(', '.join(run.lessons_failed))}.</p>")
    parts.append("<h2>What each lesson measured</h2>")
    by_lesson: dict[str, list[Result]] = {}
    for result in run.results:
        by_lesson.setdefault(result.lesson or "?", []).append(result)
    if not by_lesson:
        parts.append('<p class="warn">This run recorded no results.</p>')
    for lesson, results in sorted(by_lesson.items()):
        parts.append(f"<h3>{_e(lesson)}</h3>")
        parts.append(_table(("result", "value", "unit", "what it is", "section"),
                            [(r.name, r.value, r.unit, r.description, r.section)
                             for r in results]))
        for result in results:
            refs = references(result) if isinstance(result.value, (int, float)) else []
            if refs and float(result.value) > 0:
                parts.append(f"<p>{_e(result.name)} beside reference figures:</p>")
                parts.append(_plot_references(result, refs))
    parts += _top500_section([(f"{run.label}", *fp64_rate(run))])
    parts += _milestones_section(run)
    return parts


def _top500_section(rates: list[tuple[str, float | None, str]]) -> list[str]:
    from utils.top500 import place

    parts = ["<h2>Its place in TOP500 history</h2>"]
    usable = [(label, rate, source) for label, rate, source in rates if rate]
    if not usable:
        return parts + ['<p class="warn">No FP64 rate to place: run lesson 01.</p>']
    for label, rate, source in usable:
        parts.append(f"<p><b>{_e(label)}</b>: {_fmt(rate)} GFLOP/s, {_e(source)}. "
                     f"{_e(' '.join(place(rate).lines()))}</p>")
    parts.append(_plot_top500([(f"{label} ({rate:,.4g} GFLOP/s)", rate)
                               for label, rate, _ in usable]))
    parts.append('<p class="note">The TOP500 ranks by the HPL benchmark (Rmax, FP64); a '
                 "matrix product is its core, so the comparison is fair to within the HPL "
                 "overheads. data/top500.csv holds #1 and #500 of every list.</p>")
    return parts


def _milestones_section(run: Run) -> list[str]:
    rate, name = fp32_rate(run)
    parts = ["<h2>The chapter's milestones on this machine</h2>"]
    if not rate:
        return parts + ['<p class="warn">No float32 matrix-product rate was recorded '
                        "(lessons 00, 01 or 02).</p>"]
    rows = [(model, flop, _duration(seconds)) for model, flop, seconds in milestones(rate)]
    parts.append(f"<p>At its best float32 matrix-product rate ({_e(name)}: "
                 f"{_fmt(rate / 1e9)} GFLOP/s), the training compute that data/ai_compute.csv "
                 "gives would take:</p>")
    parts.append(_table(("training", "FLOP", "time here"), rows))
    parts.append('<p class="note">A lower bound: real training runs slower than its fastest '
                 "matrix product (lesson 03 measures how much slower).</p>")
    return parts


def _class(runs: list[Run]) -> list[str]:
    versions: dict[str, list[Run]] = {}
    for run in runs:
        versions.setdefault(run.course_version, []).append(run)
    main_version = max(versions, key=lambda v: len(versions[v]))
    cohort = versions[main_version]
    apart = [r for r in runs if r.course_version != main_version]
    parts = [f"<h2>The class: {len(cohort)} machines</h2>"]
    if apart:
        parts.append(f'<p class="warn">Runs of another course version are listed apart and '
                     f"left out of the class figures: "
                     f"{_e(', '.join(f'{r.label} ({r.course_version})' for r in apart))}. "
                     f"The class figures use version {_e(main_version)}.</p>")
    profiles = sorted({r.profile for r in cohort})
    if len(profiles) > 1:
        parts.append(f'<p class="warn">These runs used different profiles '
                     f"({_e(', '.join(profiles))}): sizes differ, so some figures are not "
                     "like for like.</p>")
    parts.append(_table(("learner", "CPU", "cores", "GPUs", "profile", "lessons ok",
                         "lessons failed or missing"),
                        [(r.label, dict(machine_rows(r))["CPU"],
                          dict(machine_rows(r))["usable cores"], dict(machine_rows(r))["GPUs"],
                          r.profile, len(r.lessons_ok),
                          ", ".join(r.lessons_failed) or "-") for r in cohort]))
    names = sorted({res.name for r in cohort for res in r.results
                    if isinstance(res.value, (int, float))})
    parts.append("<h3>Each learner's figures against the class's spread</h3>")
    rows = []
    for name in names:
        values = [(r.label, r.number(name)) for r in cohort]
        present = [(label, v) for label, v in values if v is not None]
        unit = next(res.unit for r in cohort for res in r.results if res.name == name)
        missing = [label for label, v in values if v is None]
        numbers = [v for _, v in present]
        rows.append((name, unit, len(present), min(numbers), statistics.median(numbers),
                     max(numbers), ", ".join(missing) or "-"))
    parts.append(_table(("result", "unit", "learners", "min", "median", "max", "missing from"),
                        rows))
    for name in ("fp64_matmul_gflops", "numpy_matmul_gflops_best", "stream_triad_gbs",
                 "alexnet_images_per_s_float32", "allreduce_beta_gbs"):
        points = [(r.label, r.number(name)) for r in cohort if r.number(name) is not None]
        if len(points) >= 2:
            unit = next(res.unit for r in cohort for res in r.results if res.name == name)
            parts.append(_plot_class(name, unit, points))  # type: ignore[arg-type]
    parts += _classroom_section(cohort)
    return parts


def _classroom_section(cohort: list[Run]) -> list[str]:
    rates = [fp64_rate(r) for r in cohort]
    measured = [rate for rate, source in rates if rate and source.startswith("measured")]
    parts = ["<h2>Your classroom as a supercomputer</h2>"]
    if not measured:
        return parts + ['<p class="warn">No learner recorded an FP64 rate (lesson 01).</p>']
    total = sum(measured)
    parts.append(f"<p>Summed, the {len(measured)} machines that ran lesson 01 reach "
                 f"{_fmt(total)} GFLOP/s (FP64) - if their work could be spread over them with "
                 "no cost, which the next section questions.</p>")
    parts += _top500_section([("the classroom (sum)", total, "sum of the measured rates"),
                              ("the fastest machine", max(measured), "measured")])[1:]
    cost = allreduce_cost(cohort)
    parts.append("<h3>What the interconnect would cost it</h3>")
    if cost is None:
        parts.append('<p class="warn">No learner recorded all-reduce figures (lesson 06).</p>')
        return parts
    text = (f"Training AlexNet ({cost['parameters']:,} parameters) data-parallel over the "
            f"{cost['machines']} machines all-reduces its gradients every step. With the class's "
            f"median all-reduce latency of {cost['alpha_us']:.3g} us and bandwidth of "
            f"{cost['beta_gbs']:.3g} GB/s (lesson 06), the ring model of lesson 05 gives "
            f"{_duration(cost['allreduce_s'])} per all-reduce.")
    if "step_s" in cost:
        text += (f" One step of {cost['batch']} images takes {_duration(cost['step_s'])} on the "
                 f"median machine (lesson 03), so the class would keep "
                 f"{100 * cost['efficiency_sum']:.0f} % of its summed speed if communication "
                 f"waits for the computation, and {100 * cost['efficiency_overlap']:.0f} % if "
                 "the two overlap perfectly.")
    parts.append(f"<p>{_e(text)}</p>")
    parts.append('<p class="note">Lesson 06 measures the all-reduce between processes of one '
                 "machine; between the classroom's machines the network is slower, so these "
                 "are best cases.</p>")
    return parts


def build_report(runs: list[Run], output: Path | str) -> Path:
    """Write the report page for one run, or a class page for several, and return its path."""
    if not runs:
        raise ReportError("no run to report.")
    output = Path(output)
    title = (f"What {runs[0].label} measured" if len(runs) == 1 else
             f"A class of {len(runs)}: what each machine measured")
    parts = [f"<h1>{_e(title)}</h1>",
             '<p class="note">Supercomputing, the heart of Deep Learning: the course\'s report, '
             f"made {dt.datetime.now():%Y-%m-%d %H:%M}.</p>"]
    if len(runs) == 1:
        parts += _single(runs[0])
    else:
        parts += _class(runs)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"{''.join(parts)}</body></html>")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output
