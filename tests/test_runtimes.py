"""Every lesson on every simulated runtime (tests/simulate.py), in the smoke profile.

A simulation fakes what the course reads to decide (nvidia-smi, the PCI bus, whether TensorFlow
can be imported), never what computes: the CPU does every computation. So these tests check
what each lesson *decides and says* on the runtime, and that it runs green; never a speed.

Generic checks, for every lesson on every runtime:

* the notebook runs to the end;
* a simulated GPU or TPU the lesson names is said to be simulated (never shown as if it had
  computed);
* no result is recorded as TF32 where the GPU is simulated (the CPU computed it, in float32);
* recorded numbers are finite.

Per-lesson checks are phrases the executed notebook must show (``EXPECTED``).

Run apart with ``pytest -m runtimes``; one runtime with ``-k colab-t4``; one lesson with
``-k 00_``; a few runtimes with ``COURSE_RUNTIMES=colab-tpu,colab-t4``; every lesson on every
runtime with ``COURSE_RUNTIMES_MATRIX=full`` (CI runs the pairs ``FULL`` and ``PARTIAL`` name).
Each (runtime, lesson) is its own test, so pytest-xdist spreads them over workers.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
from simulate import RUNTIMES, environment

import utils
from utils import notebooks

pytestmark = pytest.mark.runtimes

#: The runtimes CI runs every lesson on: Colab's TPU runtime, the same kernel without the TPU
#: (the TensorFlow-less branches, where most runtime bugs were found) and Colab's free T4.
FULL = ("no-tensorflow", "colab-tpu", "colab-t4")
#: The other runtimes run, in CI, only the lessons whose decisions differ most there; every lesson
#: on every runtime is one variable away (``COURSE_RUNTIMES_MATRIX=full``: 63 notebooks, 8 min 46 s
#: alone on 2 cores, past the whole suite's 10-minute budget). In a simulation every GPU is one TensorFlow
#: cannot use, so ``colab-a100`` differs from ``colab-t4`` only in its compute capability (TF32,
#: bfloat16): it runs the lessons that choose number formats from it. ``gpu-unusable`` differs
#: from ``colab-a100`` only in its name; ``binder`` in the memory limit the report reads;
#: ``node-4gpu`` in the GPU count, which lesson 00 reports and lessons 05 and 06 plan with (and,
#: TensorFlow seeing no GPU, fall back to the CPU exactly as on ``colab-t4``).
PARTIAL: dict[str, tuple[str, ...]] = {
    "colab-a100": ("00", "02", "03", "07", "08"),
    "gpu-unusable": ("00",), "node-4gpu": ("00",), "binder": ("00",)}
LESSONS = [path.stem for path in notebooks.discover()]

#: Phrases each executed lesson must show on a runtime: (lesson prefix, runtime) -> phrases.
EXPECTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("00", "no-tensorflow"): (
        "no TensorFlow", "Keras runs on jax", "TensorFlow is not installed here",
        "using DataParallel over", "simulated"),
    ("00", "colab-tpu"): (
        "a TPU v5e (1 chip(s), PCI bus)", "Keras runs on jax",
        "a TPU v5e is on the PCI bus but JAX sees no TPU: it is simulated (colab-tpu)",
        "using DataParallel over 1 CPU device(s)"),
    ("00", "colab-t4"): (
        "Tesla T4", "nvidia-smi lists a GPU, Tesla T4, that TensorFlow cannot use: simulated by "
        "the colab-t4 runtime", "using OneDeviceStrategy on /device:CPU:0"),
    ("00", "colab-a100"): (
        "NVIDIA A100-SXM4-40GB", "compute capability 8.0, TF32",
        "that TensorFlow cannot use: simulated by the colab-a100 runtime"),
    ("00", "gpu-unusable"): (
        "NVIDIA GeForce RTX 3080", "that TensorFlow cannot use"),
    ("00", "node-4gpu"): (
        "nvidia-smi lists 4 GPUs, NVIDIA A100-SXM4-80GB", "GPU 3"),
    ("00", "binder"): ("binder", "container limit", "2.1 GB"),
}

#: Names of simulated devices: if a lesson shows one, it must also say it is simulated.
SIMULATED_DEVICE_NAMES = {
    name: [gpu["name"] for gpu in runtime.gpus] + (["TPU v5e"] if runtime.tpu_chips else [])
    for name, runtime in RUNTIMES.items()}


def _cases() -> list:
    matrix = os.environ.get("COURSE_RUNTIMES_MATRIX", "ci")
    assert matrix in ("ci", "full"), f"COURSE_RUNTIMES_MATRIX is {matrix!r}: use ci or full"
    cases = [(runtime, lesson) for runtime in RUNTIMES for lesson in LESSONS
             if matrix == "full" or runtime in FULL or lesson[:2] in PARTIAL[runtime]]
    chosen = os.environ.get("COURSE_RUNTIMES")
    if chosen:
        names = {name.strip() for name in chosen.split(",")}
        unknown = names - set(RUNTIMES)
        assert not unknown, f"COURSE_RUNTIMES names unknown runtimes {unknown}; {list(RUNTIMES)}"
        cases = [case for case in cases if case[0] in names]
    return [pytest.param(runtime, lesson, id=f"{runtime}-{lesson}") for runtime, lesson in cases]


def _text(executed) -> str:
    """Everything a learner reads in the executed notebook's outputs."""
    parts = []
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(data.get("text/html", ""))
            if output.get("output_type") == "error":
                parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "\n".join(str(p) for p in parts)


def _log_case(runtime: str, lesson: str, result, text: str) -> None:
    """With COURSE_RUNTIMES_LOG set, append what the lesson decided (one JSON line) to that
    file: the matrix of the README is checked against it."""
    path = os.environ.get("COURSE_RUNTIMES_LOG")
    if not path:
        return
    backend = re.search(r"Keras runs on (\w+)", text)
    device = re.search(r"; using ([^\n]*?)\.(?:\n|$)", text)
    line = {"runtime": runtime, "lesson": lesson, "status": result.status,
            "seconds": round(result.duration_s, 1), "backend": backend and backend.group(1),
            "device": device and device.group(1),
            "error": (result.error or "").strip().splitlines()[-1:]}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def run_on(runtime: str, lesson: str, tmp_path, monkeypatch):
    """Execute ``lesson`` in the smoke profile with the kernel in ``runtime``."""
    from utils import runner

    for key, value in environment(runtime, tmp_path / "fakes").items():
        monkeypatch.setenv(key, value)
    runs = runner.plan([lesson], "smoke")
    [result] = runner.execute(runs, tmp_path / "out", progress_bar=False, log=lambda s: None)
    return result


def test_every_runtime_is_exercised():
    """The matrix in the README names the runtimes this module runs; keep them in step."""
    assert set(FULL) | set(PARTIAL) == set(RUNTIMES)
    readme = (utils.REPO_ROOT / "README.md").read_text()
    section = readme.split("## Where each lesson runs", 1)[-1].split("\n## ", 1)[0]
    for runtime in RUNTIMES:
        assert f"`{runtime}`" in section, f"README's 'Where each lesson runs' misses {runtime}"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("runtime, lesson", _cases())
def test_lesson_on_simulated_runtime(runtime, lesson, tmp_path, monkeypatch):
    import nbformat

    from utils.results import read_results

    result = run_on(runtime, lesson, tmp_path, monkeypatch)
    executed = nbformat.read(result.output, as_version=4) if Path(result.output).is_file() \
        else None
    text = _text(executed) if executed else ""
    _log_case(runtime, lesson, result, text)
    assert result.status == "ok", f"{lesson} on {runtime}: {result.error}"

    for device in SIMULATED_DEVICE_NAMES[runtime]:
        if device in text:
            assert "simulat" in text, (f"{lesson} on {runtime} shows {device} without saying "
                                       "it is simulated")
    results = read_results(executed)
    for recorded in results:
        if isinstance(recorded.value, float):
            assert math.isfinite(recorded.value), f"{recorded} is not a finite number"
        if RUNTIMES[runtime].gpus:
            assert "tf32" not in recorded.name.lower(), (
                f"{recorded} on {runtime}: the GPU is simulated, so the CPU computed it in "
                "float32; nothing here is TF32")
    for phrase in EXPECTED.get((lesson[:2], runtime), ()):
        assert phrase in text, f"{lesson} on {runtime} does not say {phrase!r}"


def test_simulation_harness_builds_what_it_says(tmp_path):
    """The fakes themselves: nvidia-smi answers, TensorFlow is blocked, the TPU is on the bus."""
    import subprocess
    import sys

    env = {**os.environ, **environment("colab-tpu", tmp_path / "tpu")}
    code = ("import sys; from utils.hardware import hardware_report, importable; "
            "r = hardware_report(); print(r.tpu.chips, r.tpu.version, r.simulated, "
            "importable('tensorflow'), r.packages['tensorflow'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=utils.REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "TPU", "v5e", "colab-tpu", "False", "None"]

    env = {**os.environ, **environment("node-4gpu", tmp_path / "gpus")}
    query = ["nvidia-smi", "--query-gpu=name,memory.total,compute_cap,driver_version",
             "--format=csv,noheader,nounits"]
    out = subprocess.run(query, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 4
    assert out.stdout.splitlines()[0].startswith("NVIDIA A100-SXM4-80GB, 81920, 8.0, ")
    bad = subprocess.run(["nvidia-smi", "--query-gpu=bogus", "--format=csv"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not a valid field" in bad.stdout
    with pytest.raises(KeyError, match="unknown runtime 'colab-v100'"):
        environment("colab-v100", tmp_path)


def test_simulate_command_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tests.simulate", "colab-t4", "--", "nvidia-smi",
                          "-L"], capture_output=True, text=True, cwd=utils.REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("GPU 0: Tesla T4") and "Simulated runtime colab-t4" in out.stderr
    listing = subprocess.run([sys.executable, "-m", "tests.simulate", "--list"],
                             capture_output=True, text=True, cwd=utils.REPO_ROOT)
    assert all(name in listing.stdout for name in RUNTIMES)
    status = subprocess.run([sys.executable, "-m", "tests.simulate", "no-tensorflow", "--",
                             sys.executable, "-c", "import tensorflow"],
                            capture_output=True, text=True, cwd=utils.REPO_ROOT)
    assert status.returncode == 1 and "ModuleNotFoundError" in status.stderr


@pytest.mark.timeout(600)
def test_gpu_check_script_on_a_simulated_runtime(tmp_path):
    """tests/device/gpu_check.py, prepared for a GPU machine without TensorFlow, run here on
    the CPU with TensorFlow blocked: it runs the lesson and writes its results and log."""
    import csv
    import json
    import subprocess
    import sys

    out = tmp_path / "out"
    env = {**os.environ, **environment("no-tensorflow", tmp_path / "fakes")}
    done = subprocess.run([sys.executable, "tests/device/gpu_check.py", "--profile", "smoke",
                           "--budget-s", "400", "--out", str(out), "--work", str(tmp_path / "w"),
                           "00"], env=env, cwd=utils.REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = list(csv.DictReader((out / "results.csv").open()))
    names = [row["name"] for row in rows]
    assert names[:2] == ["welcome_matmul_gflops", "welcome_matmul_best_gflops"], names
    assert set(names[2:]) <= {"welcome_matmul_pct_of_peak"}, names  # where the peak is known
    assert rows[0]["status"] == "ok" and rows[0]["device"] == "no GPU"
    assert float(rows[0]["value"]) > 0 and rows[0]["profile"] == "smoke"
    facts = json.loads((out / "environment.json").read_text())
    assert facts["packages"]["tensorflow"] is None and facts["simulated"] == "no-tensorflow"
    assert "00      ok" in (out / "gpu_check.log").read_text()
    assert (out / "executed.tar.gz").stat().st_size > 0
