"""`course lab`: the arguments JupyterLab gets, and the learner's own copies of the notebooks
(my-notebooks/), which keep a learner's work and never block `git pull`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat.v4 as v4
import pytest

import utils
from utils import cli, runner
from utils import notebooks as nbs

FIRST = Path("/course/my-notebooks/00_welcome.ipynb")
OPEN = [str(FIRST), "--LabApp.default_url=/lab/tree/00_welcome.ipynb"]


@pytest.mark.parametrize("extra, expected", [
    ([], OPEN),
    (["--no-browser", "--ip", "0.0.0.0"], ["--no-browser", "--ip", "0.0.0.0", *OPEN]),
    (["--port=9999"], ["--port=9999", *OPEN]),
    (["--ServerApp.root_dir=/x"], ["--ServerApp.root_dir=/x", str(FIRST)]),
])
def test_lesson_00_opens_unless_a_notebook_or_folder_is_given(extra, expected, tmp_path):
    assert cli.lab_command(extra, FIRST, as_root=False, cwd=tmp_path) == (expected, [])


def test_a_notebook_or_folder_given_replaces_lesson_00(tmp_path):
    (tmp_path / "mine").mkdir()
    args, _ = cli.lab_command(["--no-browser", "mine"], FIRST, as_root=False, cwd=tmp_path)
    assert args == ["--no-browser", str(tmp_path / "mine")]  # made absolute
    args, _ = cli.lab_command(["x/03_topic.ipynb"], FIRST, as_root=False, cwd=tmp_path)
    assert args == ["x/03_topic.ipynb"]


def test_as_root_jupyterlab_gets_allow_root_and_says_so_once():
    args, lines = cli.lab_command(["--no-browser"], FIRST, as_root=True)
    assert args == ["--no-browser", *OPEN, "--allow-root"]
    assert len(lines) == 1 and "--allow-root" in lines[0]
    args, lines = cli.lab_command(["--allow-root"], FIRST, as_root=True)
    assert args.count("--allow-root") == 1 and lines == []


def test_lab_setup_only_copies_installs_the_kernel_and_starts_nothing(tmp_path, monkeypatch,
                                                                      capsys):
    installed = []
    monkeypatch.setattr(nbs, "LEARNER_DIR", tmp_path / "my-notebooks")
    monkeypatch.setattr(nbs, "install_kernelspec", lambda: installed.append(True))
    assert cli.main(["lab", "--setup-only", "--no-browser", "--ip", "0.0.0.0"]) == 0
    out = capsys.readouterr().out
    assert installed == [True]
    assert f"copied {len(nbs.discover())} notebook(s) into my-notebooks/" in out
    first = tmp_path / "my-notebooks" / nbs.discover()[0].name
    assert f"lab --no-browser --ip 0.0.0.0 {first} --LabApp.default_url=/lab/tree/" in out
    assert first.read_bytes() == nbs.discover()[0].read_bytes()


# --------------------------------------------------------------------------------------------
# sync_learner_copies, case by case
# --------------------------------------------------------------------------------------------

def write_notebook(path: Path, text: str) -> None:
    nbs.write(v4.new_notebook(cells=[v4.new_markdown_cell(text)]), path)


@pytest.fixture
def folders(tmp_path):
    sources, mine = tmp_path / "notebooks", tmp_path / "my-notebooks"
    sources.mkdir()
    write_notebook(sources / "00_a.ipynb", "a, first version")
    write_notebook(sources / "01_b.ipynb", "b, first version")
    return sources, mine


def test_first_sync_copies_everything(folders):
    sources, mine = folders
    report = nbs.sync_learner_copies(mine, sources)
    assert report.copied == ["00_a.ipynb", "01_b.ipynb"]
    assert (mine / "00_a.ipynb").read_bytes() == (sources / "00_a.ipynb").read_bytes()
    again = nbs.sync_learner_copies(mine, sources)
    assert again.copied == [] and again.unchanged == ["00_a.ipynb", "01_b.ipynb"]
    assert again.lines(mine) == []


def test_an_untouched_copy_follows_the_course_and_a_new_lesson_is_copied(folders):
    sources, mine = folders
    nbs.sync_learner_copies(mine, sources)
    write_notebook(sources / "00_a.ipynb", "a, second version")
    write_notebook(sources / "02_c.ipynb", "c")
    report = nbs.sync_learner_copies(mine, sources)
    assert report.updated == ["00_a.ipynb"] and report.copied == ["02_c.ipynb"]
    assert "second version" in (mine / "00_a.ipynb").read_text()
    assert any("updated 00_a.ipynb" in line for line in report.lines(mine))


def test_a_copy_the_learner_changed_is_never_overwritten(folders):
    sources, mine = folders
    nbs.sync_learner_copies(mine, sources)
    write_notebook(mine / "00_a.ipynb", "my answers")
    (mine / "notes.txt").write_text("mine")
    assert nbs.sync_learner_copies(mine, sources).unchanged == ["00_a.ipynb", "01_b.ipynb"]
    write_notebook(sources / "00_a.ipynb", "a, second version")
    report = nbs.sync_learner_copies(mine, sources)
    [(name, beside)] = report.kept.items()
    assert name == "00_a.ipynb" and beside.startswith("00_a.course-update-")
    assert "my answers" in (mine / "00_a.ipynb").read_text()
    assert "second version" in (mine / beside).read_text()
    assert (mine / "notes.txt").read_text() == "mine"
    [line] = report.lines(mine)
    assert "yours is kept" in line and beside in line
    # said once: the next sync has nothing new to say
    assert nbs.sync_learner_copies(mine, sources).lines(mine) == []


def test_a_deleted_copy_comes_back_and_a_lost_manifest_loses_nothing(folders):
    sources, mine = folders
    nbs.sync_learner_copies(mine, sources)
    (mine / "01_b.ipynb").unlink()
    write_notebook(mine / "00_a.ipynb", "my answers")
    (mine / ".course-manifest.json").unlink()
    report = nbs.sync_learner_copies(mine, sources)
    assert report.copied == ["01_b.ipynb"]
    assert "my answers" in (mine / "00_a.ipynb").read_text()  # unknown origin: kept
    assert list(report.kept) == ["00_a.ipynb"]


# --------------------------------------------------------------------------------------------
# For real, with git: run a notebook, save it, pull a change of the course
# --------------------------------------------------------------------------------------------

GIT_ENV = {"GIT_AUTHOR_NAME": "Course", "GIT_AUTHOR_EMAIL": "course@example.org",
           "GIT_COMMITTER_NAME": "Course", "GIT_COMMITTER_EMAIL": "course@example.org",
           "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV})


def append_markdown(path: Path, text: str) -> None:
    nb = nbs.read(path)
    nb.cells.append(v4.new_markdown_cell(text))
    nbs.write(nb, path)


@pytest.mark.notebooks
@pytest.mark.timeout(600)
def test_a_learners_run_survives_git_pull(tmp_path):
    upstream, clone = tmp_path / "upstream", tmp_path / "clone"
    upstream.mkdir()
    for name in ("utils", "notebooks", "data"):
        shutil.copytree(utils.REPO_ROOT / name, upstream / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", ".gitignore"):
        shutil.copy(utils.REPO_ROOT / name, upstream / name)
    assert git(upstream, "init", "-q", "-b", "main").returncode == 0
    git(upstream, "add", "-A")
    assert git(upstream, "commit", "-q", "-m", "course").returncode == 0
    assert git(tmp_path, "clone", "-q", str(upstream), str(clone)).returncode == 0

    env = {**os.environ, "PYTHONPATH": str(clone)}  # the clone's utils, not the installed one
    lab = [sys.executable, "-m", "utils.cli", "lab", "--setup-only"]
    setup = subprocess.run(lab, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stderr
    mine = clone / "my-notebooks"
    first = sorted(mine.glob("00_*.ipynb"))[0]
    assert "copied" in setup.stdout and str(mine) in setup.stdout

    # the setup cell finds utils/ from the learner's folder, with nothing installed
    found = subprocess.run([sys.executable, "-S", "-c", nbs.SETUP_SOURCE +
                            "\nimport utils\nprint(utils.REPO_ROOT)"],
                           cwd=mine, capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert found.stdout.strip() == str(clone), found.stderr

    # the learner runs lesson 00 and saves it in place, as JupyterLab does (whether the lesson
    # itself runs cleanly is test_notebooks_execute's business: a failing cell saves too)
    smoke = json.dumps(runner.load_profiles()["smoke"].get(first.stem, {}))
    code = ("import json, papermill\ntry:\n    papermill.execute_notebook("
            f"{first.name!r}, {first.name!r}, parameters=json.loads({smoke!r}), cwd='.', "
            "progress_bar=False)\nexcept papermill.PapermillExecutionError as error:\n"
            "    print(error)")
    ran = subprocess.run([sys.executable, "-c", code], cwd=mine, env=env, capture_output=True,
                         text=True, timeout=540)
    assert ran.returncode == 0, ran.stderr[-3000:]
    learners_run = first.read_bytes()
    assert any(c.get("outputs") for c in nbs.read(first).cells if not nbs.is_checked(c))
    (mine / "notes.md").write_text("my notes")

    # the course changes lesson 00 (which the learner ran) and lesson 01 (which they did not)
    second = sorted((upstream / "notebooks").glob("01_*.ipynb"))[0]
    append_markdown(upstream / "notebooks" / first.name, "A new paragraph in lesson 00.")
    append_markdown(second, "A new paragraph in lesson 01.")
    git(upstream, "commit", "-q", "-am", "update lessons 00 and 01")

    pull = git(clone, "pull", "-q", "--ff-only")
    assert pull.returncode == 0, pull.stderr
    assert git(clone, "status", "--porcelain").stdout == ""  # nothing of the learner's in git

    again = subprocess.run(lab, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert first.read_bytes() == learners_run  # the learner's run is as they saved it
    assert (mine / "notes.md").read_text() == "my notes"
    [beside] = mine.glob(f"{first.stem}.course-update-*.ipynb")
    assert "A new paragraph in lesson 00." in beside.read_text()
    assert f"the new version is my-notebooks/{beside.name}" in again.stdout
    assert (mine / second.name).read_bytes() == second.read_bytes()  # untouched copy followed
