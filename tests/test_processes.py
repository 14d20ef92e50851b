"""utils.processes: the one launcher every child process of the course goes through. Each
test checks what a child printed or how it ended, and that no process is left behind: after a
normal end, an error, a timeout, an interrupt (in a plain script and in a Jupyter kernel), and
a launcher killed outright. The JAX child of run_in_jax_process is checked the same way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import utils
from childprocs import alive, children_left, pid_written_to, wait_until
from utils import processes
from utils.errors import ArgumentError

PYTHON = sys.executable


def python(code: str) -> list[str]:
    return [PYTHON, "-c", textwrap.dedent(code)]


# A child that ignores SIGTERM (as a TensorFlow worker blocked in an all-reduce does), starts a
# grandchild in its own group, writes both pids, and sleeps.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "a") as f:
    f.write(f"{os.getpid()} {grandchild.pid}\\n")
print("ready", flush=True)
time.sleep(600)
"""


def stubborn(tmp_path: Path, pids: Path) -> list[str]:
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    return [PYTHON, str(script), str(pids)]


def pids_in(path: Path) -> list[int]:
    return [int(p) for line in path.read_text().splitlines() for p in line.split()] \
        if path.exists() else []


# ------------------------------------------------------------------------------------------
# Normal runs
# ------------------------------------------------------------------------------------------

def test_run_hands_over_every_line_in_order_and_keeps_them():
    seen = []
    child = processes.run(python("""
        import sys
        for i in range(3):
            print("line", i, flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        sys.exit(3)
    """), on_line=seen.append, timeout_s=60)
    assert seen[:3] == ["line 0", "line 1", "line 2"] and "to stderr" in seen
    assert child.lines == seen and child.returncode == 3 and child.failed
    assert child.last_lines(2).endswith("to stderr") or child.last_lines(2).startswith("line 2")
    assert child.ended_s is not None and child.ended_s > 0
    assert processes.running() == [] and children_left() == []


def test_separate_stderr_keeps_the_lines_clean():
    with processes.Launcher() as group:
        child = group.start(python("""
            import sys
            print("out", flush=True)
            print("err", file=sys.stderr, flush=True)
        """), separate_stderr=True)
        group.wait(60)
    assert child.lines == ["out"] and child.stderr().strip() == "err"


def test_the_child_knows_its_launcher_unless_told_otherwise(monkeypatch):
    monkeypatch.setenv(processes.ENV_PARENT, "1")  # a stale value from a launcher above us
    code = python("import os; print(os.environ.get('COURSE_PARENT_PID'))")
    assert processes.run(code, timeout_s=60).lines == [str(os.getpid())]
    assert processes.run(code, timeout_s=60, tell_pid=False).lines == ["None"]


def test_course_pythonpath_puts_the_course_first_once():
    root = str(utils.REPO_ROOT)
    assert processes.course_pythonpath(None) == root
    assert processes.course_pythonpath(f"/x{os.pathsep}{root}") == f"{root}{os.pathsep}/x"


@pytest.mark.parametrize("code, text", [(0, "exit code 0"), (2, "exit code 2"),
                                        (-9, "killed by SIGKILL (out of memory?)"),
                                        (-15, "killed by SIGTERM"), (None, "still running")])
def test_exit_text(code, text):
    assert processes.exit_text(code) == text


def test_bad_arguments_are_refused():
    with pytest.raises(ArgumentError, match="grace_s = -1"):
        processes.Launcher(grace_s=-1)
    with pytest.raises(ArgumentError, match="timeout_s = 0"):
        processes.run(python("pass"), timeout_s=0)
    assert children_left() == []


# ------------------------------------------------------------------------------------------
# Failures, timeouts and errors: every child and grandchild is stopped
# ------------------------------------------------------------------------------------------

def test_wait_stops_at_the_first_failure_and_leaving_stops_the_rest(tmp_path):
    pids = tmp_path / "pids"
    with processes.Launcher(grace_s=0.2) as group:
        group.start(stubborn(tmp_path, pids))
        failing = group.start(python("import time, sys; time.sleep(0.5); sys.exit('boom')"))
        assert wait_until(lambda: len(pids_in(pids)) == 2, 30)
        assert group.wait(60, stop_on_failure=True) is failing
        assert failing.lines == ["boom"] and failing.returncode == 1
    assert pids_in(pids) and all(wait_until(lambda p=p: not alive(p), 10) for p in pids_in(pids))
    assert children_left() == []


def test_a_timeout_stops_a_child_that_ignores_sigterm_and_its_grandchild(tmp_path):
    pids = tmp_path / "pids"
    start = time.monotonic()
    with pytest.raises(processes.ProcessTimeout) as caught:
        processes.run(stubborn(tmp_path, pids), timeout_s=3, grace_s=0.5, label="worker")
    assert 3 <= time.monotonic() - start < 30
    assert "1 worker process(es) still running after 3 s" in str(caught.value)
    assert caught.value.running[0].lines == ["ready"]
    assert len(pids_in(pids)) == 2
    assert wait_until(lambda: not any(alive(p) for p in pids_in(pids)), 10)  # SIGKILL is async
    assert processes.running() == [] and children_left() == []


def test_an_error_in_the_caller_stops_every_child(tmp_path):
    pids = tmp_path / "pids"
    with pytest.raises(ZeroDivisionError):
        with processes.Launcher(grace_s=0.2) as group:
            group.start(stubborn(tmp_path, pids))
            group.start(stubborn(tmp_path, pids))
            assert wait_until(lambda: len(pids_in(pids)) == 4, 30)
            1 / 0
    assert wait_until(lambda: not any(alive(p) for p in pids_in(pids)), 10)  # SIGKILL is async
    assert children_left() == []


def test_a_child_whose_grandchild_holds_the_output_does_not_stall_the_wait():
    start = time.monotonic()
    child = processes.run(python("""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print("done", flush=True)
    """), timeout_s=60)
    assert time.monotonic() - start < 30 and child.lines == ["done"]
    assert children_left() == []


# ------------------------------------------------------------------------------------------
# Interrupts and a killed launcher, from a plain script
# ------------------------------------------------------------------------------------------

DRIVER = """
import sys
sys.path.insert(0, {root!r})
from utils import processes
try:
    with processes.Launcher(label="worker") as group:
        for _ in range(2):
            group.start(sys.argv[1:])
        group.wait(600)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def start_driver(tmp_path: Path, code: str, *args: str) -> subprocess.Popen:
    driver = tmp_path / "driver.py"
    driver.write_text(code.format(root=str(utils.REPO_ROOT)))
    return subprocess.Popen([PYTHON, str(driver), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_ctrl_c_in_a_plain_script_leaves_no_child(tmp_path):
    pids = tmp_path / "pids"
    driver = start_driver(tmp_path, DRIVER, *stubborn(tmp_path, pids))
    try:
        assert wait_until(lambda: len(pids_in(pids)) == 4, 30)
        driver.send_signal(signal.SIGINT)  # to the driver alone: the children are not told
        out, _ = driver.communicate(timeout=30)
    finally:
        driver.kill()
    assert "Interrupted: stopped all 2 worker process(es)." in out and "interrupted" in out
    assert all(wait_until(lambda p=p: not alive(p), 10) for p in pids_in(pids))


def test_children_left_at_exit_are_stopped(tmp_path):
    pids = tmp_path / "pids"
    code = """
import sys
sys.path.insert(0, {root!r})
from utils import processes
group = processes.Launcher(grace_s=0.2)
group.start(sys.argv[1:])
while not open(sys.argv[-1]).read().strip():
    pass
print("leaving without stopping", flush=True)
"""
    pids.write_text("")
    driver = start_driver(tmp_path, code, *stubborn(tmp_path, pids))
    out, _ = driver.communicate(timeout=60)
    assert "leaving" in out and driver.returncode == 0
    assert all(wait_until(lambda p=p: not alive(p), 10) for p in pids_in(pids))


def test_die_with_parent_ends_a_child_whose_launcher_was_killed(tmp_path):
    marker = tmp_path / "child"
    code = """
import sys
sys.path.insert(0, {root!r})
from utils import processes
with processes.Launcher() as group:
    group.start([sys.executable, "-c", sys.argv[1]])
    group.wait(600)
"""
    child = (f"import os, sys, time; sys.path.insert(0, {str(utils.REPO_ROOT)!r}); "
             "from utils.processes import die_with_parent; die_with_parent(); "
             f"open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(600)")
    driver = start_driver(tmp_path, code, child)
    try:
        assert wait_until(lambda: marker.exists() and marker.read_text(), 30)
        driver.kill()  # a kernel killed outright: no cleanup runs
        driver.wait(timeout=10)
    finally:
        driver.kill()
    assert wait_until(lambda: not alive(int(marker.read_text())), 10)


@pytest.mark.parametrize("parent, survives", [
    (None, True),            # not started by a launcher: nothing to do
    ("self", True),          # the direct child of its launcher
    ("other", True),         # a grandchild (e.g. an MPI rank): the launcher still lives
    ("gone", False),         # the launcher ended before the child could ask to follow it
])
def test_die_with_parent_decides_from_its_launcher(parent, survives):
    env = {k: v for k, v in os.environ.items() if k != processes.ENV_PARENT}
    gone = subprocess.Popen([PYTHON, "-c", "pass"])
    gone.wait()
    values = {"self": str(os.getpid()), "other": "1", "gone": str(gone.pid)}
    if parent is not None:
        env[processes.ENV_PARENT] = values[parent]
    result = subprocess.run(
        [PYTHON, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "from utils.processes import die_with_parent; die_with_parent(); print('alive')",
         str(utils.REPO_ROOT)], env=env, capture_output=True, text=True, timeout=60)
    assert (result.stdout.strip() == "alive") is survives, result.stderr
    assert result.returncode == (0 if survives else 1)


# ------------------------------------------------------------------------------------------
# The JAX child of run_in_jax_process
# ------------------------------------------------------------------------------------------

JAX_DRIVER = """
import sys
sys.path.insert(0, {root!r})
from utils.backends import run_in_jax_process

def sleeper(scope, marker):
    import os, time
    open(marker, "w").write(str(os.getpid()))
    time.sleep(600)

try:
    run_in_jax_process(sleeper, devices=1, marker=sys.argv[1], echo=False)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["ctrl-c", "killed"])
def test_the_jax_child_ends_with_its_script(tmp_path, how):
    """Ctrl-C in the script stops the JAX child; a script killed outright takes it along."""
    marker = tmp_path / "jax.pid"
    driver = start_driver(tmp_path, JAX_DRIVER, str(marker))
    try:
        jax_pid = pid_written_to(marker)
        assert alive(jax_pid)
        if how == "ctrl-c":
            driver.send_signal(signal.SIGINT)
            out, _ = driver.communicate(timeout=30)
            assert "Interrupted: stopped all 1 JAX process(es)." in out and "interrupted" in out
        else:
            driver.kill()
            driver.wait(timeout=10)
    finally:
        driver.kill()
    assert wait_until(lambda: not alive(jax_pid), 10)


@pytest.mark.timeout(180)
def test_kernel_interrupt_stops_the_jax_child(tmp_path):
    from jupyter_client.manager import KernelManager

    marker = tmp_path / "jax.pid"
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        source = JAX_DRIVER.format(root=str(utils.REPO_ROOT)).split("try:")[0]
        message_id = client.execute(
            source + f"run_in_jax_process(sleeper, devices=1, marker={str(marker)!r}, "
                     "echo=False)\n")
        jax_pid = pid_written_to(marker)
        manager.interrupt_kernel()  # Kernel > Interrupt
        reply = client.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != message_id:
            reply = client.get_shell_msg(timeout=60)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert wait_until(lambda: not alive(jax_pid), 10)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
