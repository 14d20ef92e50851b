"""The instructor runner: planning, refusing undeclared parameters, executing, the kernel's log,
device choices, recorded results, summary.json and results.csv.

Every notebook here is a small one written by the test (a course of its own in a temporary
folder), so these tests depend on no lesson's content.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import nbformat.v4 as v4
import pytest

import utils
from utils import cli, runner
from utils import notebooks as nbs
from utils.errors import CourseError
from utils.runner import RunnerError

PARAMS = "SIZE: int = 1024  # matrix size n\nMIN_TIME_S: float = 1.0  # seconds to time"


def make_notebook(folder: Path, stem: str, body: str, params: str = "N: int = 2  # a count",
                  rules: str = "N=Rule(min=1, max=10)") -> Path:
    notebook = nbs.scaffold(stem, f"Test {stem}", "tests")
    notebook.cells = [
        v4.new_markdown_cell(f"# Test {stem}"),
        v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        v4.new_code_cell("from utils.parameters import Rule, check_parameters\n"
                         f"check_parameters(globals(), {rules})"),
        v4.new_code_cell(body),
    ]
    path = folder / f"{stem}.ipynb"
    nbs.write(notebook, path)
    return path


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course of two small notebooks with its own profiles file, in place of notebooks/."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder, "00_first", "print(SIZE)", PARAMS, "SIZE=Rule(min=1)")
    make_notebook(folder, "01_second", "print(N)")
    (folder / "profiles.yaml").write_text(
        "smoke:\n  00_first:\n    SIZE: 256\n    MIN_TIME_S: 0.2\n"
        "full:\n  00_first:\n    SIZE: 4096\n")
    monkeypatch.setattr(utils, "NOTEBOOKS_DIR", folder)
    monkeypatch.setattr(runner, "PROFILES_FILE", folder / "profiles.yaml")
    return folder


def test_plan_applies_profile_then_files_then_overrides(course, tmp_path):
    param_file = tmp_path / "p.yaml"
    param_file.write_text("MIN_TIME_S: 0.5\n")
    runs = runner.plan(["00"], "smoke", [param_file], {"SIZE": 64})
    assert runs[0].parameters == {"SIZE": 64, "MIN_TIME_S": 0.5}
    assert runner.plan(["00_first"], "default")[0].parameters == {}
    assert [r.name for r in runner.plan([], "smoke")] == ["00_first", "01_second"]


def test_parameter_file_keyed_by_notebook(course, tmp_path):
    param_file = tmp_path / "p.yaml"
    param_file.write_text("00:\n  SIZE: 32\n01_second:\n  N: 3\n")
    runs = runner.plan([], "default", [param_file])
    assert [r.parameters for r in runs] == [{"SIZE": 32}, {"N": 3}]


def test_undeclared_parameter_is_refused_with_the_declared_list(course):
    with pytest.raises(RunnerError) as info:
        runner.plan(["00"], "default", overrides={"SIZ": 64})
    message = str(info.value)
    assert "00_first does not declare SIZ" in message
    assert "SIZE (int)" in message and "MIN_TIME_S (float)" in message


@pytest.mark.parametrize("names, profile, message", [
    (["99"], "default", "'99' matches no notebook; the course has: 00_first, 01_second"),
    (["0"], "default", "'0' matches several notebook"),
    (["00"], "huge", "unknown profile 'huge'"),
])
def test_unknown_notebook_or_profile(course, names, profile, message):
    with pytest.raises(RunnerError, match=message):
        runner.plan(names, profile)


def test_profiles_file_rejects_unknown_profiles(tmp_path):
    bad = tmp_path / "profiles.yaml"
    bad.write_text("quick:\n  00_first: {}\n")
    with pytest.raises(RunnerError, match="unknown profile"):
        runner.load_profiles(bad)


def test_output_never_replaces_a_source(course, tmp_path):
    runs = runner.plan(["00"])
    with pytest.raises(RunnerError, match="is a source notebook"):
        runner.execute(runs, course)
    (tmp_path / "00_first.ipynb").write_text("{}")
    with pytest.raises(RunnerError, match="already exists.*--overwrite"):
        runner.execute(runs, tmp_path)
    assert (tmp_path / "00_first.ipynb").read_text() == "{}"  # left untouched


CHOICE = "Asked for 'auto'; found a CPU; using the CPU."
RECORDS = """\
from utils.results import record
print("chatter that stays in the notebook")
print("Asked for 'auto'; found a CPU; using the CPU.")
record("test_rate", 12.5, "GFLOP/s", "a rate", section="1. Rates")
record("test_label", "fast", "", "a word")
with open("made.txt", "w") as f:
    f.write(str(N))
"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """One run of a failing notebook then a good one that prints a device choice, records two
    results and writes a file: what execute, write_summary and summary_table made of it."""
    folder = tmp_path_factory.mktemp("course")
    bad = make_notebook(folder, "02_bad", "raise RuntimeError('broken on purpose')")
    good = make_notebook(folder, "01_good", RECORDS)
    out = folder / "out"
    lines: list[str] = []
    results = runner.execute([runner.NotebookRun(bad, {}), runner.NotebookRun(good, {"N": 3})],
                             out, progress_bar=False, log=lines.append)
    summary = json.loads(runner.write_summary(results, out, "smoke").read_text())
    return out, results, lines, summary


def test_execution_keeps_going_after_a_failure(executed):
    out, results, lines, _ = executed
    assert [r.status for r in results] == ["failed", "ok"]
    assert "RuntimeError: broken on purpose" in results[0].error
    assert (out / "made.txt").read_text() == "3"  # the kernel ran in the output folder
    assert results[1].peak_memory_mb and results[1].peak_memory_mb > 10


def test_each_notebook_has_a_log_and_a_failure_names_it(executed):
    out, results, lines, _ = executed
    bad_log = out / "02_bad.log"
    assert results[0].log == str(bad_log)
    assert "RuntimeError: broken on purpose" in bad_log.read_text()
    assert "Traceback" in bad_log.read_text() or "raise RuntimeError" in bad_log.read_text()
    assert (out / "01_good.log").is_file()
    table = runner.summary_table(results)
    assert "02_bad: cell" in table and f"full log: {bad_log}" in table
    assert "1 of 2 notebook(s) succeeded" in table
    assert any("full log:" in line for line in lines)


def test_device_choices_are_shown_and_kept_other_output_is_not(executed):
    _, results, lines, summary = executed
    assert results[1].device_choices == [CHOICE]
    assert f"    {CHOICE}" in lines
    assert not any("chatter" in line for line in lines)
    assert summary["notebooks"][1]["device_choices"] == [CHOICE]


def test_summary_holds_the_hardware_once_and_each_notebooks_results(executed):
    _, _, _, summary = executed
    assert summary["ok"] is False and summary["profile"] == "smoke"
    assert [n["status"] for n in summary["notebooks"]] == ["failed", "ok"]
    assert summary["hardware"]["cpu"]["usable_cores"] > 0
    assert summary["course_version"].startswith("0.")
    good = summary["notebooks"][1]
    assert good["output"] == "01_good.ipynb" and good["log"] == "01_good.log"  # relative
    assert [(r["name"], r["value"], r["lesson"]) for r in good["results"]] == [
        ("test_rate", 12.5, "01_good"), ("test_label", "fast", "01_good")]
    assert summary["notebooks"][0]["results"] == []


def test_results_csv_has_one_row_per_result_with_the_machine(executed):
    out, _, _, summary = executed
    with open(out / "results.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    assert list(rows[0]) == runner.RESULTS_COLUMNS
    assert [(r["lesson"], r["section"], r["name"], r["value"], r["unit"]) for r in rows] == [
        ("01_good", "1. Rates", "test_rate", "12.5", "GFLOP/s"), ("01_good", "", "test_label",
                                                                   "fast", "")]
    machine = summary["machine"]
    assert rows[0]["machine"] == machine["machine"] and len(machine["machine"]) == 10
    assert rows[0]["cpu"] == summary["hardware"]["cpu"]["model"]
    assert rows[0]["accelerator"] == summary["hardware"]["accelerator"]
    text = (out / "results.csv").read_text()
    assert socket.gethostname() not in text


def test_a_value_out_of_range_is_stopped_by_the_notebooks_own_check(tmp_path):
    path = make_notebook(tmp_path, "01_range", "print(N)")
    [result] = runner.execute([runner.NotebookRun(path, {"N": 50})], tmp_path / "out",
                              progress_bar=False, log=lambda s: None)
    assert result.status == "failed"
    assert "N = 50 is out of range: allowed 1 <= N <= 10" in result.error


def test_prepare_only_injects_without_executing(course, tmp_path):
    runs = runner.plan(["00"], "smoke")
    [result] = runner.execute(runs, tmp_path / "out", prepare_only=True, log=lambda s: None)
    assert result.status == "prepared"
    prepared = nbs.read(Path(result.output))
    injected = [c for c in prepared.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "SIZE = 256" in injected[0].source
    assert all(not c.get("outputs") for c in prepared.cells)
    assert not (tmp_path / "out" / "00_first.log").exists()


TENSORFLOW_BODY = """\
import tensorflow as tf
print("Asked for 'auto'; found a CPU; using TensorFlow's default device.")
print(float(tf.reduce_sum(tf.ones((2, 2)))))
"""


def test_course_run_prints_no_kernel_noise(tmp_path):
    """The terminal of `course run` shows progress, the device choice and the summary; the
    kernel's own output (TensorFlow's C++ lines, ipykernel's transport warning) is in the log."""
    path = make_notebook(tmp_path, "01_tf", TENSORFLOW_BODY)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    done = subprocess.run([sys.executable, "-m", "utils.cli", "run", str(path), "--profile",
                           "smoke", "--output", str(out)], capture_output=True, text=True,
                          env=env, timeout=600)
    terminal = done.stdout + done.stderr
    assert done.returncode == 0, terminal
    for noise in ("I0000", "E0000", "W0000", "cuInit", "absl::InitializeLog", "cuda drivers",
                  "without encryption", "oneDNN"):
        assert noise not in terminal, terminal
    assert "Asked for 'auto'; found a CPU" in terminal and "1 of 1 notebook(s) succeeded" in terminal
    assert "without encryption" in (out / "01_tf.log").read_text()  # kept, in the log
    executed = (out / "01_tf.ipynb").read_text()
    assert "I0000" not in executed and "absl" not in executed and "4.0" in executed


def test_kernel_arguments_are_added_only_where_the_spec_lacks_them(tmp_path, monkeypatch):
    from ipykernel.kernelspec import write_kernel_spec

    notebook = make_notebook(tmp_path, "01_any", "print(N)")
    plain = tmp_path / "plain" / "kernels"
    write_kernel_spec(plain / "python3")  # ipykernel's own spec, as pip installs it
    monkeypatch.setenv("JUPYTER_PATH", str(plain.parent))
    assert runner._kernel_arguments(None, notebook) == nbs.KERNEL_ARGUMENTS
    nbs.install_kernelspec(tmp_path / "course")  # the course's spec already has them
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "course" / "share" / "jupyter"))
    assert runner._kernel_arguments(None, notebook) == []


def test_ctrl_c_stops_the_run_and_keeps_its_summary(tmp_path):
    """Ctrl-C in the terminal (SIGINT to the whole process group): the notebook running is
    recorded as interrupted, the next is not started, summary.json is written, no kernel is
    left."""
    import psutil

    slow = make_notebook(tmp_path, "01_slow", "import time\n"
                         "print(\"Asked for a pause; found time; using sleep.\", flush=True)\n"
                         "time.sleep(300)")
    never = make_notebook(tmp_path, "02_never", "print(N)")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "utils.cli", "run", str(slow), str(never),
                             "--output", str(out), "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if "Asked for a pause" in line:  # shown as a device choice: the cell is running
                break
        children = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, rest
    summary = json.loads((out / "summary.json").read_text())
    assert [n["status"] for n in summary["notebooks"]] == ["interrupted"]
    assert "1 notebook(s) not started" in rest and "0 of 1 notebook(s) succeeded" in rest
    assert children and not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                                for c in children)


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("1e-3", 0.001), ("[64, 128]", [64, 128]), ("true", True), ("False", False),
    ("none", "none"), ("None", None), ("auto", "auto"), ("'quoted'", "quoted"),
])
def test_command_line_values(text, value):
    assert cli.parse_value(text) == value


def test_cli_refuses_undeclared_parameter(course, capsys, tmp_path):
    assert cli.main(["run", "00", "-p", "NOPE", "1", "--output", str(tmp_path / "x")]) == 2
    assert "00_first does not declare NOPE" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_shows_course_errors_in_one_line_and_bugs_with_their_traceback(course, capsys,
                                                                            monkeypatch):
    assert cli.main(["list", "99"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    monkeypatch.setattr(runner, "load_profiles", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(["list", "00"])
    assert issubclass(RunnerError, CourseError) and issubclass(nbs.NotebookError, CourseError)


def test_cli_refuses_arguments_it_does_not_know_except_for_lab(capsys):
    with pytest.raises(SystemExit):
        cli.main(["list", "--no-browser"])
    assert "unrecognized arguments: --no-browser" in capsys.readouterr().err


def test_cli_list_and_hardware(course, capsys):
    assert cli.main(["list", "00"]) == 0
    out = capsys.readouterr().out
    assert "SIZE: int = 1024  # matrix size n  [smoke: 256]  [full: 4096]" in out
    assert cli.main(["hardware", "--json", "--clock-ghz", "3.0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cpu"]["clock_ghz"] == 3.0


def test_cli_run_exit_status_and_summary(course, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["run", "00", "--profile", "smoke", "-p", "SIZE", "-5",
                     "--output", str(out), "--no-progress"])
    assert code == 1
    text = capsys.readouterr().out
    assert "SIZE = -5 is out of range" in text and f"full log: {out / '00_first.log'}" in text
    assert json.loads((out / "summary.json").read_text())["notebooks"][0]["status"] == "failed"
    assert (out / "results.csv").read_text().startswith("lesson,section,name,value")


def test_cli_new_refuses_to_overwrite(course, capsys):
    assert cli.main(["new", "09_extra", "--title", "Extra", "--section", "none"]) == 0
    before = (course / "09_extra.ipynb").read_text()
    assert cli.main(["new", "09_extra", "--title", "Other", "--section", "none"]) == 2
    assert "left as it is" in capsys.readouterr().err
    assert (course / "09_extra.ipynb").read_text() == before
    assert cli.main(["new", "9_Bad", "--title", "Bad", "--section", "none"]) == 2
    assert "NN_topic" in capsys.readouterr().err
