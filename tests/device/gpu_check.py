"""Run the lessons on a real NVIDIA GPU (JAX with CUDA, no TensorFlow) and keep what they measured.

Prepared for a machine the course's CI does not have: one NVIDIA GPU, Python 3.12, JAX with
CUDA, no TensorFlow, and no network (Keras, papermill and the Jupyter kernel come as wheels in
``.whl/``: ``tests/device/download_wheels.sh``). ``tests/device/run.sh`` installs them and calls
this script; see tests/device/README.md.

Each lesson runs in its own process (``utils.cli run NN --profile full``) with a time limit
taken from what is left of the budget, cheapest and most telling first, so a budget that runs
out still leaves the lessons that finished. It writes, under ``--out`` (default ``$OUT``):

* ``results.csv``: one row per recorded result (utils.results), with the lesson's status, the
  device, the date and the command;
* ``environment.json``: the GPU (nvidia-smi), the devices JAX sees, package versions, the commit;
* ``gpu_check.log``: everything the lessons printed, and the summary;
* ``executed.tar.gz``: the executed notebooks.

It runs on a CPU too (``python -m tests.simulate no-tensorflow -- python tests/device/gpu_check.py
--profile smoke 00``), which is how it is tested where no GPU is lent.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

#: Lessons in the order they run: the quick sanity check, then what a GPU changes most.
ORDER = ("00", "02", "08", "07", "03", "05", "01", "04", "06")
FIELDS = ("lesson", "name", "value", "unit", "description", "section", "status", "device",
          "date", "profile", "command")
CLI = "import sys; from utils.cli import main; sys.exit(main(sys.argv[1:]))"


class Log:
    """Print and append to the log file."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def _versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed versions; a framework that cannot be imported here (absent, or blocked by a
    simulated runtime) is None."""
    from utils.hardware import importable

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name) if importable(name) else None
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def environment(env: dict[str, str]) -> dict[str, object]:
    """What this machine is: GPUs from nvidia-smi, JAX's devices (in a child process, so this
    one holds no GPU memory), versions, date and commit."""
    from utils.hardware import detect_gpus, hardware_report

    gpus, reason = detect_gpus()
    probe = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend(), "
                            "[str(d) for d in jax.devices()])"], capture_output=True, text=True,
                           env=env, timeout=300)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    report = hardware_report()
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "gpus": [vars(gpu) | {"tf32": gpu.tf32} for gpu in gpus],
        "gpus_unknown": reason,
        "jax": (probe.stdout.strip() or probe.stderr.strip().splitlines()[-1:]),
        "cpu": report.cpu.model,
        "usable_cores": report.cpu.usable_cores,
        "simulated": report.simulated,
        "packages": _versions(["jax", "jaxlib", "keras", "tensorflow", "numpy", "pandas",
                               "papermill", "ipykernel", "matplotlib"]),
        "commit": commit,
    }


def run_lesson(lesson: str, profile: str, folder: Path, timeout: float, env: dict[str, str],
               log: Log) -> tuple[str, Path | None, float]:
    """Execute one lesson in its own process group; return (status, executed notebook, s)."""
    command = [sys.executable, "-c", CLI, "run", lesson, "--profile", profile, "--output",
               str(folder), "--overwrite"]
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    status = "failed"
    try:
        output, _ = process.communicate(timeout=timeout)
        status = "ok" if process.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        status = "timeout"
    for line in (output or "").splitlines():
        if "Executing:" not in line:  # papermill's progress bar
            log(f"  {line}")
    executed = sorted(folder.glob(f"{lesson}_*.ipynb"))
    return status, (executed[0] if executed else None), time.monotonic() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="two-digit lesson numbers (default: all)")
    parser.add_argument("--profile", default="full", choices=("smoke", "default", "full"))
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="seconds for all lessons together (the device lends minutes)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    parser.add_argument("--work", type=Path, default=None,
                        help="where the lessons execute (default: a temporary folder; $OUT "
                             "keeps only the few files the device tool brings back)")
    args = parser.parse_args(argv)
    lessons = [lesson for lesson in ORDER if not args.lessons or lesson in args.lessons]
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    log = Log(args.out / "gpu_check.log")
    deadline = time.monotonic() + args.budget_s

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
           "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # the kernel and its children share the GPU
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    facts = environment(env)
    (args.out / "environment.json").write_text(json.dumps(facts, indent=2))
    device = facts["gpus"][0]["name"] if facts["gpus"] else "no GPU"  # type: ignore[index]
    command = " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])
    log(f"GPU check, {facts['date']}: {device}; JAX {facts['jax']}; profile {args.profile}; "
        f"budget {args.budget_s:g} s; lessons {', '.join(lessons)}")

    from utils.results import read_results

    rows, summary = [], []
    for lesson in lessons:
        left = deadline - time.monotonic()
        if left < 20:
            summary.append((lesson, "not run (budget spent)", 0.0))
            continue
        log(f"\n== lesson {lesson} ({left:.0f} s left)")
        status, executed, seconds = run_lesson(lesson, args.profile, work / lesson, left, env,
                                               log)
        summary.append((lesson, status, seconds))
        for result in (read_results(executed) if executed else []):
            rows.append({**result.as_dict(), "lesson": result.lesson or lesson,
                         "status": status, "device": device, "date": facts["date"],
                         "profile": args.profile, "command": command})

    with (args.out / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    if work.is_dir():
        with tarfile.open(args.out / "executed.tar.gz", "w:gz") as tar:
            for notebook in sorted(work.glob("*/*.ipynb")):
                tar.add(notebook, arcname=notebook.name)
    log("\nlesson  status                   seconds")
    for lesson, status, seconds in summary:
        log(f"{lesson:6}  {status:23}  {seconds:7.0f}")
    log(f"{len(rows)} recorded result(s) in {args.out / 'results.csv'}")
    return 0 if all(status == "ok" for _, status, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
