"""One set of pins, one test command: pyproject, environment.yml, binder/ and CI agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml

import utils

ROOT = utils.REPO_ROOT


def pyproject_pins() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["test"]
    return {d.replace(" ", "") for d in deps}


def conda_pins(path) -> set[str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in env["dependencies"]
    return {d.replace(" ", "") for d in pip if not d.startswith("-e")}


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [d for group in project["optional-dependencies"].values() for d in group]
    for dep in project["dependencies"] + extras:
        assert re.match(r"^[A-Za-z0-9_.\-]+==[\w.]+(;.*)?$", dep), f"not pinned: {dep}"


def test_conda_and_binder_environments_repeat_the_pins():
    pins = pyproject_pins()
    assert conda_pins(ROOT / "environment.yml") == pins
    assert conda_pins(ROOT / "binder" / "environment.yml") == pins


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 course test" in readme and "python3 course lab" in readme
    assert re.search(r"^python3 course test$", ci, re.M)


def test_bootstrap_prints_usage_without_installing():
    result = subprocess.run([sys.executable, str(ROOT / "course"), "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "lab [ARGS]" in result.stdout and "test [ARGS]" in result.stdout
