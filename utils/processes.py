"""The course's one way to start, watch, time out and stop child processes.

Every program the course runs beside the notebook goes through :class:`Launcher`: the
TensorFlow workers of :func:`utils.cluster.launch`, ``mpirun`` and its ranks
(:func:`utils.mpi.allreduce_benchmark`), the JAX process of
:func:`utils.backends.run_in_jax_process` and ``sbatch`` (:func:`utils.slurm.submit`).

* Each child leads its own process group, so stopping it also stops whatever it started
  (``mpirun``'s ranks, a worker's helpers).
* Its output (stdout and stderr together) is read line by line in a background thread; the
  lines are kept in :attr:`Child.lines` and handed, as they arrive, to ``on_line``.
* :meth:`Launcher.wait` enforces a timeout and can stop at the first child that fails.
* Leaving the ``with`` block for any reason -- a finished run, an error, a timeout, or
  ``KeyboardInterrupt`` (*Kernel > Interrupt* in Jupyter, Ctrl-C in a script) -- stops every
  child still running: SIGTERM to its group, ``grace_s`` seconds to exit, then SIGKILL (a
  TensorFlow worker blocked in an all-reduce ignores SIGTERM). Children still registered when
  the interpreter exits are stopped the same way.

A kernel killed outright (SIGKILL, a restart of a busy kernel) runs no cleanup at all. A child
that must not outlive it calls :func:`die_with_parent` first thing: the launcher gives every
child its pid in ``COURSE_PARENT_PID``.

    with Launcher(on_line=print, label="worker") as group:
        group.start([sys.executable, "-m", "my.worker"])
        group.wait(timeout_s=60)        # ProcessTimeout after 60 s, every child stopped
"""

from __future__ import annotations

import atexit
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Callable, Iterable, Mapping, Sequence

from utils.errors import CourseError, number

__all__ = ["ENV_PARENT", "Child", "Launcher", "ProcessTimeout", "run", "running",
           "die_with_parent", "exit_text", "course_pythonpath"]

#: The variable that tells a child its launcher's pid (see :func:`die_with_parent`).
ENV_PARENT = "COURSE_PARENT_PID"


class ProcessTimeout(CourseError, TimeoutError):
    """Children were still running when the time ran out; every child has been stopped.

    ``running`` lists the children that had not finished (their output is in ``lines``).
    """

    def __init__(self, message: str, running: Sequence["Child"] = ()) -> None:
        super().__init__(message)
        self.running = list(running)


@dataclass(eq=False)
class Child:
    """One started process: its command, its output so far, and how and when it ended."""

    index: int
    argv: list[str]
    popen: subprocess.Popen = field(repr=False)
    label: str = "process"
    lines: list[str] = field(default_factory=list)
    ended_s: float | None = None  # seconds after the launcher's start at which it exited
    stream_open: bool = True
    stderr_file: IO[str] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    @property
    def failed(self) -> bool:
        """It exited with an error (a non-zero code, or a signal)."""
        return self.returncode not in (None, 0)

    def last_lines(self, count: int = 4) -> str:
        """Its last ``count`` non-blank output lines, joined with `` | `` (or ``"none"``)."""
        shown = [line.strip() for line in self.lines if line.strip()][-count:]
        return " | ".join(shown) or "none"

    def stderr(self) -> str:
        """What it wrote to stderr, when started with ``separate_stderr`` (else ``""``)."""
        if self.stderr_file is None or self.stderr_file.closed:
            return ""
        self.stderr_file.seek(0)
        return self.stderr_file.read()


_REGISTRY: dict[int, Child] = {}
_REGISTRY_LOCK = threading.Lock()


def running(label: str | None = None) -> list[int]:
    """Pids of the children started here (with ``label``, if given) that are still running."""
    with _REGISTRY_LOCK:
        children = list(_REGISTRY.values())
    return [c.pid for c in children if c.popen.poll() is None and label in (None, c.label)]


def _signal_group(child: Child, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)  # the child leads its group: its own children get it too
    except (ProcessLookupError, PermissionError):
        pass


def _stop(children: Iterable[Child], grace_s: float) -> None:
    """SIGTERM every child's group, wait up to ``grace_s``, SIGKILL the groups, reap."""
    children = list(children)
    for child in children:
        if child.popen.poll() is None:
            _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for child in children:
        _signal_group(child, signal.SIGKILL)  # also what a finished child left in its group
        try:
            child.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover (uninterruptible sleep)
            pass
    with _REGISTRY_LOCK:
        for child in children:
            _REGISTRY.pop(child.pid, None)


@atexit.register
def _stop_all_at_exit() -> None:
    with _REGISTRY_LOCK:
        children = list(_REGISTRY.values())
    if children:
        _stop(children, grace_s=1.0)


def exit_text(code: int | None) -> str:
    """How a process ended, in words: ``exit code 1``, ``killed by SIGKILL (out of memory?)``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
    return f"exit code {code}"


class Launcher:
    """Start child processes, hand over their output line by line, and always stop them.

    Args:
        on_line: called as ``on_line(child, line)`` for every output line, in the order the
            lines arrive, from the thread that waits (never from a reader thread).
        grace_s: how long children get to exit after SIGTERM before SIGKILL.
        label: what the children are called in messages (``"worker"``, ``"MPI"``...) and in
            :func:`running`.
    """

    def __init__(self, *, on_line: Callable[[Child, str], None] | None = None,
                 grace_s: float = 1.0, label: str = "process") -> None:
        self.on_line = on_line
        self.grace_s = number(grace_s, "grace_s", minimum=0)
        self.label = label
        self.children: list[Child] = []
        self.started: float | None = None
        self._lines: queue.Queue[tuple[Child, str | None]] = queue.Queue()
        self._readers: list[threading.Thread] = []

    # -- starting ---------------------------------------------------------------------------
    def start(self, argv: Sequence[object], *, env: Mapping[str, str] | None = None,
              cwd: str | os.PathLike | None = None, cores: set[int] | None = None,
              tell_pid: bool = True, separate_stderr: bool = False) -> Child:
        """Start ``argv`` (numbers and paths become text) in its own process group.

        ``env`` is the child's whole environment (default: this process's); ``cores`` pins it
        to those CPU cores where the system allows. ``tell_pid`` gives the child this
        process's pid in ``COURSE_PARENT_PID`` (off for a child that hands its environment on
        to other machines, such as ``sbatch``). ``separate_stderr`` keeps stderr apart (in a
        temporary file, :meth:`Child.stderr`) instead of mixing it into the lines.
        """
        command = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]
        variables = dict(os.environ if env is None else env)
        variables.pop(ENV_PARENT, None)
        if tell_pid:
            variables[ENV_PARENT] = str(os.getpid())
        if self.started is None:
            self.started = time.monotonic()
        stderr_file = tempfile.TemporaryFile("w+", errors="replace") if separate_stderr else None
        popen = subprocess.Popen(command, stdout=subprocess.PIPE,
                                 stderr=stderr_file or subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=variables, cwd=cwd, text=True,
                                 errors="replace", bufsize=1, start_new_session=True)
        child = Child(len(self.children), command, popen, self.label, stderr_file=stderr_file)
        with _REGISTRY_LOCK:
            _REGISTRY[popen.pid] = child
        self.children.append(child)
        if cores and hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(popen.pid, cores)
            except OSError:
                pass
        reader = threading.Thread(target=self._read, args=(child,), daemon=True)
        reader.start()
        self._readers.append(reader)
        return child

    def _read(self, child: Child) -> None:
        assert child.popen.stdout is not None
        for line in child.popen.stdout:
            self._lines.put((child, line.rstrip("\n")))
        self._lines.put((child, None))

    # -- watching ---------------------------------------------------------------------------
    def poll(self, timeout: float = 0.05) -> None:
        """Hand over the lines that arrived (waiting up to ``timeout`` for the first one) and
        note the children that exited."""
        try:
            child, line = self._lines.get(timeout=timeout)
            while True:
                self._take(child, line)
                child, line = self._lines.get_nowait()
        except queue.Empty:
            pass
        now = time.monotonic()
        for child in self.children:
            if child.ended_s is None and child.popen.poll() is not None:
                child.ended_s = now - (self.started or now)

    def _take(self, child: Child, line: str | None) -> None:
        if line is None:
            child.stream_open = False
            return
        child.lines.append(line)
        if self.on_line is not None:
            self.on_line(child, line)

    def wait(self, timeout_s: float | None = None, *,
             stop_on_failure: bool = False) -> Child | None:
        """Wait until every child has exited, handing over their output meanwhile.

        With ``stop_on_failure``, return the first child that exits with an error as soon as it
        does (the caller decides what to tell; leaving the ``with`` block stops the others).
        Otherwise return ``None`` once all have exited, with their output read to the end (a
        child they left holding the output is given two seconds).

        Raises:
            ProcessTimeout: children still running ``timeout_s`` seconds after the first start.
        """
        if timeout_s is not None:
            number(timeout_s, "timeout_s", above=0)
        start = self.started or time.monotonic()
        while True:
            self.poll()
            if stop_on_failure:
                failed = sorted((c for c in self.children if c.failed and c.ended_s is not None),
                                key=lambda c: c.ended_s or 0.0)
                if failed:
                    self.drain(failed[:1])
                    return failed[0]
            if all(c.ended_s is not None for c in self.children):
                self.drain(self.children)
                return None
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                self.poll(0.1)
                still = [c for c in self.children if c.ended_s is None]
                raise ProcessTimeout(
                    f"{len(still)} {self.label} process(es) still running after "
                    f"{timeout_s:g} s: stopped them all.", still)

    def drain(self, children: Iterable[Child], limit_s: float = 2.0) -> None:
        """Read on until the output of ``children`` has closed, for at most ``limit_s``."""
        children = list(children)
        until = time.monotonic() + limit_s
        while any(c.stream_open for c in children) and time.monotonic() < until:
            self.poll(0.02)

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, grace_s: float | None = None) -> None:
        """Stop every child still running (and each one's group), then reap them all."""
        _stop(self.children, self.grace_s if grace_s is None else grace_s)
        self.poll(0.0)
        for reader, child in zip(self._readers, self.children):
            reader.join(timeout=2.0)
            if not reader.is_alive() and child.popen.stdout is not None:  # closing blocks a read
                child.popen.stdout.close()

    def __enter__(self) -> "Launcher":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: object) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.stop(min(self.grace_s, 2.0))
            print(f"Interrupted: stopped all {len(self.children)} {self.label} process(es).",
                  file=sys.stderr, flush=True)
        else:
            self.stop()


def run(argv: Sequence[object], *, timeout_s: float | None = None,
        env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
        on_line: Callable[[str], None] | None = None, grace_s: float = 1.0,
        label: str = "process", tell_pid: bool = True) -> Child:
    """Run one command to its end (or its timeout) and return it, with its output lines.

    Raises:
        ProcessTimeout: it ran past ``timeout_s`` and was stopped with its whole group.
        KeyboardInterrupt: after stopping it.
    """
    def take(child: Child, line: str) -> None:
        if on_line is not None:
            on_line(line)

    with Launcher(on_line=take, grace_s=grace_s, label=label) as group:
        child = group.start(argv, env=env, cwd=cwd, tell_pid=tell_pid)
        group.wait(timeout_s)
    return child


def course_pythonpath(current: str | None = None) -> str:
    """``PYTHONPATH`` with the folder holding ``utils/`` first, so that a child started as
    ``python -m utils.workers...`` finds the course wherever it runs (on Colab the notebook
    only added it to its own ``sys.path``)."""
    import utils

    parts = [str(utils.REPO_ROOT), *(p for p in (current or "").split(os.pathsep) if p)]
    return os.pathsep.join(dict.fromkeys(parts))


def die_with_parent() -> None:
    """End this process when the launcher that started it ends (Linux), so no child is left
    behind when a notebook kernel is killed or restarted. Elsewhere, or when not started by a
    :class:`Launcher`, do nothing."""
    parent = os.environ.get(ENV_PARENT)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)  # TensorFlow catches SIGTERM
    except (OSError, AttributeError):
        return
    if os.getppid() == int(parent):
        return
    try:  # not its direct child: a grandchild (the signal above is then harmless), or ...
        os.kill(int(parent), 0)
    except ProcessLookupError:  # ... the launcher ended before prctl ran
        os._exit(1)
    except PermissionError:
        pass
