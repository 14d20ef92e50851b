"""Run one program as N worker processes on this machine, the way a cluster runs it on N nodes.

:func:`launch` starts the workers with the course's process launcher
(:class:`utils.processes.Launcher`: each worker in its own process group) and gives each one a
``TF_CONFIG`` naming every worker's ``host:port`` (free ports are found automatically) and its
own index. It streams their output with a ``[worker i]`` prefix, enforces a timeout, and stops
*every* worker when one fails, when time is up, or when the caller is interrupted
(*Kernel > Interrupt* raises ``KeyboardInterrupt`` in the waiting loop). A worker that outlives
its launcher (the kernel was killed) ends itself if it called :func:`die_with_parent`.

Failures end the run with one line that says what happened and what to do:
:class:`WorkerFailed` (a worker exited with an error: the others are stopped, since a
collective all-reduce would wait for it forever), :class:`WorkerTimeout` (still running after
``timeout_s``: typically a hang) and :class:`PortInUse` (a port another program holds).

The worker side is three functions: :func:`worker_info` (index, number of workers),
:func:`die_with_parent` and :func:`save_result` (a JSON-able dict and NumPy arrays, which
:func:`launch` collects into :class:`ClusterRun`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from utils import processes
from utils.errors import ArgumentError, CourseError, number, whole_number
from utils.processes import ENV_PARENT, course_pythonpath, die_with_parent

__all__ = [
    "ClusterError",
    "WorkerFailed",
    "WorkerTimeout",
    "PortInUse",
    "WorkerResult",
    "ClusterRun",
    "WorkerInfo",
    "free_ports",
    "port_is_free",
    "tf_config",
    "python_module",
    "course_pythonpath",
    "launch",
    "read_results",
    "live_workers",
    "is_native_log_line",
    "last_error",
    "is_exception_line",
    "DevicePlan",
    "plan_devices",
    "plot_scaling",
    "script_source",
    "worker_info",
    "die_with_parent",
    "save_result",
]

ENV_INDEX = "COURSE_WORKER_INDEX"
ENV_COUNT = "COURSE_NUM_WORKERS"
ENV_RESULT_DIR = "COURSE_RESULT_DIR"
__all__ += ["ENV_PARENT"]  # (re-exported from utils.processes for the worker side)

# TensorFlow's C++ (absl) log lines, e.g. "I0000 00:00:1795705640.046 8147 port.cc:153] ...".
_NATIVE_LOG = re.compile(r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\]|WARNING: All log messages "
                         r"before absl::InitializeLog\(\) is called|To enable the following "
                         r"instructions: .* rebuild TensorFlow)")
# What a worker says when it cannot listen on its port (TensorFlow's gRPC server, or Python).
_PORT_PROBLEM = re.compile(r"Could not start gRPC server|Failed to add port|Address already in use")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure)\b:?")


class ClusterError(CourseError, RuntimeError):
    """A multi-worker run that could not finish; the message says why and what to do.

    ``logs`` holds every worker's output lines (``{index: [line, ...]}``) for a closer look;
    ``worker`` is the index of the worker that failed first, where there is one.
    """

    def __init__(self, message: str, logs: Mapping[int, list[str]] | None = None,
                 worker: int | None = None) -> None:
        super().__init__(message)
        self.logs: dict[int, list[str]] = dict(logs or {})
        self.worker = worker  # the worker that failed first (None: not one in particular)


class WorkerFailed(ClusterError):
    """A worker exited with an error (an exception, a signal); all workers were stopped."""


class WorkerTimeout(ClusterError):
    """Workers were still running when the timeout ran out; all workers were stopped."""


class PortInUse(ClusterError):
    """A worker's port is held by another program."""


@dataclass
class WorkerResult:
    """One worker's process: how it ended, what it printed, what it saved."""

    index: int
    pid: int
    returncode: int | None
    duration_s: float
    log: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClusterRun:
    """A finished multi-worker run: the workers in index order and the wall time of the run."""

    workers: list[WorkerResult]
    ports: list[int]
    wall_s: float
    command: list[str]

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    @property
    def results(self) -> list[dict[str, Any]]:
        """What each worker saved with :func:`save_result`, in index order."""
        return [w.result for w in self.workers]

    def frame(self) -> Any:
        """A pandas DataFrame, one row per worker, of the scalar values the workers saved."""
        import pandas as pd

        rows = [{"worker": w.index, **{k: v for k, v in w.result.items()
                                       if isinstance(v, (int, float, str, bool))}}
                for w in self.workers]
        return pd.DataFrame(rows).set_index("worker")

    def max_difference(self) -> float:
        """The largest absolute difference of any saved array between worker 0 and the others.

        Raises ``ValueError`` if the workers did not save the same arrays.
        """
        import numpy as np

        reference = self.workers[0].arrays
        if not reference:
            raise ValueError("worker 0 saved no arrays to compare (save_result(..., arrays=...)).")
        worst = 0.0
        for worker in self.workers[1:]:
            if set(worker.arrays) != set(reference):
                raise ValueError(f"worker {worker.index} saved different arrays than worker 0.")
            for name, value in reference.items():
                other = worker.arrays[name]
                if np.shape(other) != np.shape(value):
                    raise ValueError(f"array {name!r} has shape {np.shape(other)} on worker "
                                     f"{worker.index} but {np.shape(value)} on worker 0.")
                if np.size(value):
                    diff = np.max(np.abs(np.asarray(other, float) - np.asarray(value, float)))
                    worst = max(worst, float(diff))
        return worst


# --------------------------------------------------------------------------------------------
# Ports and TF_CONFIG
# --------------------------------------------------------------------------------------------

def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that nothing listens on right now (all interfaces).

    The operating system picks them; they are released before returning, so another program
    could take one in between (rare; :func:`launch` then raises :class:`PortInUse`).
    """
    count = whole_number(count, "count", minimum=1)
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    """True if a server could listen on TCP ``port`` on all interfaces (as TensorFlow does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def _port_owner(port: int) -> str:
    """' (held by pid N, name)' when the operating system says who listens on ``port``."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.pid:
                return f" (held by pid {conn.pid}, {psutil.Process(conn.pid).name()})"
    except Exception:  # not allowed to list connections here, or the holder just ended
        pass
    return ""


def tf_config(ports: Sequence[int], index: int, host: str = "localhost") -> str:
    """The ``TF_CONFIG`` JSON of worker ``index`` in a cluster of workers on ``host:port``."""
    whole_number(index, "index", minimum=0, maximum=len(ports) - 1,
                 hint=f"it is not a worker of a {len(ports)}-worker cluster")
    cluster = {"worker": [f"{host}:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def python_module(module: str, *args: Any) -> list[str]:
    """The command that runs ``python -m module args...`` with this interpreter."""
    return [sys.executable, "-m", module, *map(str, args)]


@dataclass(frozen=True)
class DevicePlan:
    """Which GPUs each local worker may see (``CUDA_VISIBLE_DEVICES``), and why, in one line."""

    visible: list[str]
    line: str

    def env(self, index: int) -> dict[str, str]:
        """The variables for worker ``index`` (pass ``plan.env`` as ``launch(worker_env=...)``)."""
        return {"CUDA_VISIBLE_DEVICES": self.visible[index]}


def plan_devices(num_workers: int, num_gpus: int) -> DevicePlan:
    """Share this machine's GPUs among ``num_workers`` local workers.

    Each worker gets ``num_gpus // num_workers`` GPUs of its own. With fewer GPUs than workers
    the workers would share one, which MultiWorkerMirroredStrategy's GPU all-reduce (NCCL)
    refuses and which would run each TensorFlow process short of GPU memory: the workers then
    train on the CPU, and the line says so.
    """
    num_workers = whole_number(num_workers, "num_workers", minimum=1)
    num_gpus = whole_number(num_gpus, "num_gpus", minimum=0)
    if num_gpus == 0:
        return DevicePlan([""] * num_workers,
                          f"No GPU found: the {num_workers} worker(s) train on the CPU.")
    if num_gpus < num_workers:
        return DevicePlan([""] * num_workers,
                          f"{num_gpus} GPU(s) for {num_workers} workers: they would have to share "
                          "a GPU, which the GPU all-reduce (NCCL) refuses, so the workers train "
                          "on the CPU. Use as many workers as GPUs to train on them.")
    each = num_gpus // num_workers
    visible = [",".join(str(g) for g in range(i * each, (i + 1) * each))
               for i in range(num_workers)]
    unused = num_gpus - each * num_workers
    return DevicePlan(visible, f"{num_gpus} GPU(s) for {num_workers} worker(s): {each} GPU(s) "
                      "each, one replica per GPU" + (f"; {unused} GPU(s) left idle." if unused
                                                     else "."))


# --------------------------------------------------------------------------------------------
# Launching
# --------------------------------------------------------------------------------------------

def live_workers() -> list[int]:
    """Process ids of workers started by :func:`launch` in this process that are still running."""
    return processes.running(label="worker")


def is_native_log_line(line: str) -> bool:
    """True for TensorFlow's C++ start-up and log lines (absl format), hidden by default."""
    return bool(_NATIVE_LOG.match(line))


def is_exception_line(line: str) -> bool:
    """True for the last line of a Python traceback (``RuntimeError: ...``)."""
    return bool(_EXCEPTION_LINE.match(line.strip()))


def last_error(lines: Sequence[str]) -> str:
    """The most telling line of a worker's output: its last exception line, else its last line
    (TensorFlow's C++ log lines count only when nothing else was printed)."""
    meaningful = [line.strip() for line in lines if line.strip()]
    python_lines = [line for line in meaningful if not is_native_log_line(line)]
    for line in reversed(python_lines):
        if is_exception_line(line):
            return line
    if python_lines:
        return python_lines[-1]
    return meaningful[-1] if meaningful else "it printed nothing"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_ports(ports: Sequence[int] | None, num_workers: int) -> list[int]:
    if ports is None:
        return free_ports(num_workers)
    ports = [whole_number(p, "ports", minimum=1, maximum=65535) for p in ports]
    if len(ports) != num_workers:
        raise ArgumentError("ports", ports, f"must give one port per worker ({num_workers})",
                            f"{len(ports)} ports given for {num_workers} workers")
    if len(set(ports)) != len(ports):
        raise PortInUse(f"ports {ports} repeat a port: each worker needs its own.")
    for port in ports:
        if not port_is_free(port):
            raise PortInUse(f"port {port} is already in use{_port_owner(port)}: no worker was "
                            "started. Choose other ports, or pass ports=None and launch() "
                            "finds free ones.")
    return ports


def launch(
    command: Sequence[str],
    num_workers: int,
    *,
    timeout_s: float = 300.0,
    ports: Sequence[int] | None = None,
    host: str = "localhost",
    env: Mapping[str, str] | None = None,
    worker_env: Callable[[int], Mapping[str, str]] | None = None,
    set_tf_config: bool = True,
    echo: bool | Callable[[str], None] = True,
    native_logs: bool = False,
    pin_cores: bool = False,
    grace_s: float = 1.0,
    cwd: str | Path | None = None,
) -> ClusterRun:
    """Run ``command`` as ``num_workers`` processes, wait for all, and collect their results.

    Each worker gets ``TF_CONFIG`` (the cluster of ``host:port`` addresses and its own index),
    ``COURSE_WORKER_INDEX``, ``COURSE_NUM_WORKERS``, ``COURSE_RESULT_DIR`` and
    ``PYTHONUNBUFFERED=1`` on top of this process's environment and ``env``. The workers are
    started and stopped by :class:`utils.processes.Launcher`.

    Args:
        command: the program and its arguments, the same for every worker (numbers are
            turned into text; see :func:`python_module`).
        num_workers: how many processes.
        timeout_s: wall-clock limit of the whole run; then every worker is stopped.
        ports: one port per worker; ``None`` finds free ones.
        host: the address workers reach each other at.
        env: extra environment variables for the workers (``PYTHONPATH`` always starts with
            the folder holding ``utils/``).
        worker_env: a function of the worker index giving variables for that worker only
            (for example the ``SLURM_PROCID`` that ``srun`` would set).
        set_tf_config: give each worker its ``TF_CONFIG`` (off: the workers find their cluster
            some other way, e.g. ``SlurmClusterResolver``; ``TF_CONFIG`` is then removed).
        echo: print each output line as ``[worker i] line`` (``True``), hand it to a function,
            or stay quiet (``False``). Lines are always kept in ``WorkerResult.log``.
        native_logs: also echo TensorFlow's C++ log lines (they are always kept).
        pin_cores: give worker ``i`` only the ``i``-th usable core (round robin), as if each
            worker had a node of one core. Off by default: TensorFlow's communication threads
            then share that one core with the computation, which slows both down.
        grace_s: how long stopped workers get to exit after SIGTERM before SIGKILL (a
            TensorFlow worker catches SIGTERM and, blocked in a collective, never exits).
        cwd: the workers' working directory.

    Raises:
        WorkerFailed: a worker exited with an error; the others were stopped.
        WorkerTimeout: workers were still running after ``timeout_s``; all were stopped.
        PortInUse: a port is taken (before starting, for ``ports`` given; or a worker said so).
        KeyboardInterrupt: the caller was interrupted; all workers were stopped first.
    """
    num_workers = whole_number(num_workers, "num_workers", minimum=1)
    timeout_s = number(timeout_s, "timeout_s", above=0)
    ports = _check_ports(ports, num_workers)
    emit: Callable[[str], None] | None
    if echo is True:
        def emit(text: str) -> None:
            print(text, flush=True)
    else:
        emit = echo or None

    def on_line(child: processes.Child, line: str) -> None:
        if emit is not None and (native_logs or not is_native_log_line(line)):
            emit(f"[worker {child.index}] {line}")

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    result_dir = Path(tempfile.mkdtemp(prefix="course-workers-"))
    group = processes.Launcher(on_line=on_line, grace_s=grace_s, label="worker")
    try:
        with group:
            for index in range(num_workers):
                variables = {**os.environ, **(env or {}),
                             **(worker_env(index) if worker_env else {}),
                             ENV_INDEX: str(index), ENV_COUNT: str(num_workers),
                             ENV_RESULT_DIR: str(result_dir), "PYTHONUNBUFFERED": "1"}
                variables["PYTHONPATH"] = course_pythonpath(variables.get("PYTHONPATH"))
                variables.pop("TF_CONFIG", None)
                if set_tf_config:
                    variables["TF_CONFIG"] = tf_config(ports, index, host)
                pin = {cores[index % len(cores)]} if pin_cores and cores else None
                group.start(command, env=variables, cwd=cwd, cores=pin)
            try:
                failed = group.wait(timeout_s, stop_on_failure=True)
            except processes.ProcessTimeout as timeout:
                running = [c.index for c in timeout.running]
                last = "; ".join(f"worker {c.index}: {_short(last_error(c.lines))!r}"
                                 for c in timeout.running)
                raise WorkerTimeout(
                    f"the run did not finish within timeout_s={timeout_s:g} s; still running: "
                    f"worker(s) {', '.join(map(str, running))} (last lines: {last}). Stopped all "
                    f"{num_workers} workers. A worker waiting forever for a peer (a hang) looks "
                    "like this; if the run is only slow, raise timeout_s.", _logs(group)) from None
            if failed is not None:
                raise _failure(failed, group, ports)
    except BaseException:
        _remove(result_dir)
        raise
    wall = time.monotonic() - (group.started or time.monotonic())
    workers = [WorkerResult(c.index, c.pid, c.returncode, c.ended_s or wall, c.lines,
                            *_load_result(result_dir, c.index)) for c in group.children]
    _remove(result_dir)
    return ClusterRun(workers, list(ports), wall, group.children[0].argv)


def _logs(group: processes.Launcher) -> dict[int, list[str]]:
    return {c.index: c.lines for c in group.children}


def _failure(failed: processes.Child, group: processes.Launcher,
             ports: Sequence[int]) -> ClusterError:
    index, logs = failed.index, _logs(group)
    others = [c.index for c in group.children if c is not failed and c.ended_s is None]
    stopped = (f"Stopped the other running worker(s): {', '.join(map(str, others))}."
               if others else "No other worker was still running.")
    if any(_PORT_PROBLEM.search(line) for line in failed.lines):
        return PortInUse(
            f"worker {index} could not listen on port {ports[index]}: another program took it "
            f"after it was chosen. {stopped} Run again (new free ports are chosen), or pass "
            "other ports.", logs, index)
    return WorkerFailed(
        f"worker {index} of {len(group.children)} failed after {failed.ended_s or 0:.1f} s "
        f"({processes.exit_text(failed.returncode)}): {_short(last_error(failed.lines), 300)}. "
        f"{stopped} Its whole output is in error.logs[{index}].", logs, index)


def read_results(folder: str | Path, wall_s: float = 0.0) -> ClusterRun:
    """The results workers saved into ``folder`` (``worker-<i>.json`` and ``.npz``, see
    :func:`save_result`) as a :class:`ClusterRun`: what the tasks of a Slurm job saved with
    ``--output-dir``. Pids, exit codes and logs are not known there (zero and empty)."""
    folder = Path(folder)
    indices = sorted(int(p.stem.split("-")[1]) for p in folder.glob("worker-*.json"))
    workers = [WorkerResult(i, 0, 0, wall_s, [], *_load_result(folder, i)) for i in indices]
    return ClusterRun(workers, [], wall_s, [])


def _load_result(directory: Path, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    result: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    json_path = directory / f"worker-{index}.json"
    if json_path.is_file():
        result = json.loads(json_path.read_text())
    npz_path = directory / f"worker-{index}.npz"
    if npz_path.is_file():
        import numpy as np

        with np.load(npz_path) as data:
            arrays = {name: data[name] for name in data.files}
    return result, arrays


def _remove(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


def plot_scaling(labels: Sequence[str], step_s: Sequence[float],
                 images_per_s: Sequence[float]) -> Any:
    """Step time and throughput of runs with 1, 2, ... workers, side by side, with the line of
    perfect scaling (the first run's throughput times the number of workers). ``labels`` name
    the runs (``"1 worker"``, ``"2 workers"``); the number of workers is read from them."""
    import matplotlib.pyplot as plt

    from utils.plotting import MEASURED, REFERENCE

    workers = [int(re.match(r"\d+", label).group()) for label in labels]  # type: ignore[union-attr]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.bar(labels, [1e3 * s for s in step_s], color=MEASURED)
    left.set_ylabel("time per training step (ms)")
    left.set_title("Step time (median)")
    right.bar(labels, images_per_s, color=MEASURED, label="measured")
    right.plot(range(len(labels)), [images_per_s[0] * w / workers[0] for w in workers], "--",
               color=REFERENCE, label="perfect scaling")
    right.set_ylabel("images per second (all workers)")
    right.set_title("Throughput")
    right.legend()
    return fig


def script_source(module: str, section: str | None = None) -> str:
    """The source text of ``module`` (not imported, so no TensorFlow starts), or of one section.

    A section starts at a line ``# ---- <section> ----`` and runs to the next such line.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"no Python source found for module {module!r}.")
    text = Path(spec.origin).read_text()
    if section is None:
        return text
    marker = re.compile(r"^# -{2,} (.+?) -{2,}\s*$")
    chosen: list[str] | None = None
    found: list[str] = []
    for line in text.splitlines():
        match = marker.match(line)
        if match:
            found.append(match.group(1))
            if chosen is not None:
                break
            if match.group(1) == section:
                chosen = []
            continue
        if chosen is not None:
            chosen.append(line)
    if chosen is None:
        raise ValueError(f"{module} has no section {section!r}; its sections are: "
                         f"{', '.join(found) or 'none'}.")
    return "\n".join(chosen).strip("\n") + "\n"


# --------------------------------------------------------------------------------------------
# The worker side
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerInfo:
    """Who this worker is, as :func:`launch` told it (index 0 of 1 when run on its own)."""

    index: int
    num_workers: int
    result_dir: Path | None


def worker_info() -> WorkerInfo:
    """This worker's index and the number of workers, from the variables :func:`launch` sets."""
    directory = os.environ.get(ENV_RESULT_DIR)
    return WorkerInfo(int(os.environ.get(ENV_INDEX, "0")), int(os.environ.get(ENV_COUNT, "1")),
                      Path(directory) if directory else None)


def save_result(result: Mapping[str, Any], arrays: Mapping[str, Any] | None = None,
                directory: str | Path | None = None, index: int | None = None) -> Path | None:
    """Save this worker's result (a JSON-able dict) and optional NumPy arrays for the launcher.

    Writes ``worker-<index>.json`` (and ``.npz``) into ``directory`` or the folder
    :func:`launch` gave; does nothing and returns ``None`` when there is neither (a worker run
    by hand or by Slurm without an output folder). ``index`` defaults to what :func:`launch`
    said (pass the cluster's task id where Slurm started the worker).
    """
    info = worker_info()
    index = info.index if index is None else index
    folder = Path(directory) if directory else info.result_dir
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    if arrays:
        import numpy as np

        np.savez(folder / f"worker-{index}.npz", **{k: np.asarray(v) for k, v in arrays.items()})
    path = folder / f"worker-{index}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(result), default=float))
    tmp.replace(path)
    return path
