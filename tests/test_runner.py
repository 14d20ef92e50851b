"""The instructor runner: planning, refusing undeclared parameters, executing, summarising."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat.v4 as v4
import pytest

import utils
from utils import cli, runner
from utils import notebooks as nbs
from utils.runner import RunnerError


def make_notebook(folder: Path, stem: str, body: str, params: str = "N: int = 2  # a count") -> Path:
    notebook = nbs.scaffold(stem, f"Test {stem}", "tests")
    notebook.cells = [
        v4.new_markdown_cell(f"# Test {stem}"),
        v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        v4.new_code_cell("from utils.parameters import Rule, check_parameters\n"
                         "check_parameters(globals(), N=Rule(min=1, max=10))"),
        v4.new_code_cell(body),
    ]
    path = folder / f"{stem}.ipynb"
    nbs.write(notebook, path)
    return path


def test_plan_applies_profile_then_files_then_overrides(tmp_path):
    param_file = tmp_path / "p.yaml"
    param_file.write_text("MIN_TIME_S: 0.5\n")
    runs = runner.plan(["00"], "smoke", [param_file], {"MATMUL_SIZE": 64})
    assert runs[0].parameters == {"MATMUL_SIZE": 64, "MIN_TIME_S": 0.5}
    assert runner.plan(["00_welcome"], "default")[0].parameters == {}


def test_parameter_file_keyed_by_notebook(tmp_path):
    param_file = tmp_path / "p.yaml"
    param_file.write_text("00:\n  MATMUL_SIZE: 32\n")
    assert runner.plan(["00"], "default", [param_file])[0].parameters == {"MATMUL_SIZE": 32}


def test_undeclared_parameter_is_refused_with_the_declared_list():
    with pytest.raises(RunnerError) as info:
        runner.plan(["00"], "default", overrides={"MATMUL_SIZ": 64})
    message = str(info.value)
    assert "00_welcome does not declare MATMUL_SIZ" in message
    assert "MATMUL_SIZE (int)" in message and "MIN_TIME_S (float)" in message


@pytest.mark.parametrize("names, profile, message", [
    (["99"], "default", "'99' matches no notebook; the course has: 00_welcome"),
    (["00"], "huge", "unknown profile 'huge'"),
])
def test_unknown_notebook_or_profile(names, profile, message):
    with pytest.raises(RunnerError, match=message):
        runner.plan(names, profile)


def test_profiles_file_rejects_unknown_profiles(tmp_path):
    bad = tmp_path / "profiles.yaml"
    bad.write_text("quick:\n  00_welcome: {}\n")
    with pytest.raises(RunnerError, match="unknown profile"):
        runner.load_profiles(bad)


def test_output_never_replaces_a_source(tmp_path):
    runs = runner.plan(["00"])
    with pytest.raises(RunnerError, match="is a source notebook"):
        runner.execute(runs, utils.NOTEBOOKS_DIR)
    (tmp_path / "00_welcome.ipynb").write_text("{}")
    with pytest.raises(RunnerError, match="already exists.*--overwrite"):
        runner.execute(runs, tmp_path)
    assert (tmp_path / "00_welcome.ipynb").read_text() == "{}"  # left untouched


def test_execution_keeps_going_after_a_failure(tmp_path):
    good = make_notebook(tmp_path, "01_good", "with open('made.txt', 'w') as f: f.write(str(N))")
    bad = make_notebook(tmp_path, "02_bad", "raise RuntimeError('broken on purpose')")
    out = tmp_path / "out"
    runs = [runner.NotebookRun(bad, {}), runner.NotebookRun(good, {"N": 3}),
            runner.NotebookRun(good, {"N": 50})]
    results = runner.execute(runs[:2], out, progress_bar=False, log=lambda s: None)
    assert [r.status for r in results] == ["failed", "ok"]
    assert "RuntimeError: broken on purpose" in results[0].error
    assert (out / "made.txt").read_text() == "3"  # the kernel ran in the output folder
    assert results[1].peak_memory_mb and results[1].peak_memory_mb > 10
    # a value out of range is stopped by the notebook's own check, with a clear message
    [range_result] = runner.execute(runs[2:], tmp_path / "out2", progress_bar=False,
                                    log=lambda s: None)
    assert range_result.status == "failed"
    assert "N = 50 is out of range: allowed 1 <= N <= 10" in range_result.error
    summary = json.loads(runner.write_summary(results, out, "default").read_text())
    assert summary["ok"] is False
    assert [n["status"] for n in summary["notebooks"]] == ["failed", "ok"]
    table = runner.summary_table(results)
    assert "02_bad" in table and "1 of 2 notebook(s) succeeded" in table


def test_prepare_only_injects_without_executing(tmp_path):
    runs = runner.plan(["00"], "smoke")
    [result] = runner.execute(runs, tmp_path, prepare_only=True, log=lambda s: None)
    assert result.status == "prepared"
    prepared = nbs.read(Path(result.output))
    injected = [c for c in prepared.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "MATMUL_SIZE = 256" in injected[0].source
    assert all(not c.get("outputs") for c in prepared.cells if not nbs.is_checked(c))


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("1e-3", 0.001), ("[64, 128]", [64, 128]), ("true", True), ("False", False),
    ("none", None), ("auto", "auto"), ("'quoted'", "quoted"),
])
def test_command_line_values(text, value):
    assert cli.parse_value(text) == value


def test_cli_refuses_undeclared_parameter(capsys):
    assert cli.main(["run", "00", "-p", "NOPE", "1", "--output", "unused"]) == 2
    assert "00_welcome does not declare NOPE" in capsys.readouterr().err
    assert not Path("unused").exists()


def test_cli_list_and_hardware(capsys):
    assert cli.main(["list", "00"]) == 0
    out = capsys.readouterr().out
    assert "MATMUL_SIZE: int = 1024" in out and "[smoke: 256]" in out
    assert cli.main(["hardware", "--json", "--clock-ghz", "3.0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cpu"]["clock_ghz"] == 3.0


def test_cli_run_exit_status_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["run", "00", "--profile", "smoke", "-p", "MATMUL_SIZE", "-5",
                     "--output", str(out), "--no-progress"])
    assert code == 1
    text = capsys.readouterr().out
    assert "MATMUL_SIZE = -5 is out of range" in text
    assert json.loads((out / "summary.json").read_text())["notebooks"][0]["status"] == "failed"


def test_cli_new_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(utils, "NOTEBOOKS_DIR", tmp_path)
    assert cli.main(["new", "09_extra", "--title", "Extra", "--section", "none"]) == 0
    before = (tmp_path / "09_extra.ipynb").read_text()
    assert cli.main(["new", "09_extra", "--title", "Other", "--section", "none"]) == 2
    assert "left as it is" in capsys.readouterr().err
    assert (tmp_path / "09_extra.ipynb").read_text() == before
