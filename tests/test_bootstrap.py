"""The bootstrap script `course`: how `python3 course test` calls pytest."""

from __future__ import annotations

import importlib.machinery
import importlib.util

import pytest

import utils


@pytest.fixture(scope="module")
def bootstrap():
    loader = importlib.machinery.SourceFileLoader("course_bootstrap",
                                                  str(utils.REPO_ROOT / "course"))
    spec = importlib.util.spec_from_loader("course_bootstrap", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("given, expected", [
    ([], ["-n", "N", "--dist", "worksteal"]),
    (["-m", "not runtimes"], ["-n", "N", "--dist", "worksteal", "-m", "not runtimes"]),
    (["--core", "-q"], ["-n", "N", "--dist", "worksteal", "-m",
                        "not runtimes and not slurm and not browser and not book", "-q"]),
    (["-n", "3"], ["-n", "3"]),
    (["-n4", "-x"], ["-n4", "-x"]),
    (["--numprocesses=2"], ["--numprocesses=2"]),
    (["-p", "no:xdist"], ["-p", "no:xdist"]),
])
def test_tests_run_in_parallel_unless_told_otherwise(bootstrap, given, expected):
    workers = str(bootstrap.default_workers())
    assert bootstrap.pytest_arguments(given) == [workers if a == "N" else a for a in expected]


@pytest.mark.parametrize("cores, memory_gb, workers", [
    (2, 24.0, 4), (8, 16.0, 8), (16, 64.0, 8), (4, 3.0, 1), (1, 1.0, 1), (2, 5.0, 2)])
def test_two_workers_per_core_within_memory(bootstrap, cores, memory_gb, workers):
    assert bootstrap.default_workers(cores, memory_gb) == workers


def test_usage_says_how_to_run_the_core_alone(bootstrap):
    assert "test --core" in bootstrap.USAGE and bootstrap.CORE in bootstrap.USAGE.replace(
        "\n                   ", " ")


@pytest.mark.parametrize("given, expected", [
    ([], [["-n", "N", "--dist", "worksteal", "-m", "not browser"],
          ["-n", "2", "--dist", "loadgroup", "-m", "browser"]]),
    (["-n", "1", "-x"], [["-m", "not browser", "-n", "1", "-x"],
                         ["-n", "2", "--dist", "loadgroup", "-m", "browser", "-x"]]),
    (["-m", "not runtimes"], [["-n", "N", "--dist", "worksteal", "-m", "not runtimes"]]),
    (["--core"], [["-n", "N", "--dist", "worksteal", "-m",
                   "not runtimes and not slurm and not browser and not book"]]),
    (["tests/test_data.py", "-q"], [["-n", "N", "--dist", "worksteal", "tests/test_data.py",
                                     "-q"]]),
    (["-k", "report"], [["-n", "N", "--dist", "worksteal", "-k", "report"]]),
])
def test_whole_suite_runs_in_two_stages_a_selection_in_one(bootstrap, given, expected):
    """The browser stage builds the book from the notebooks stage one executed."""
    workers = str(bootstrap.default_workers())
    assert bootstrap.test_stages(given) == [[workers if a == "N" else a for a in stage]
                                            for stage in expected]


def test_extras_add_to_the_test_tools(bootstrap, monkeypatch):
    import importlib

    monkeypatch.setenv("COURSE_EXTRAS", "dev,book")
    again = importlib.util.module_from_spec(bootstrap.__spec__)
    bootstrap.__loader__.exec_module(again)
    assert again.EXTRAS == "test,dev,book"
