"""utils.cluster: N worker processes on this machine, their results, their faults and their
cleanup. Most tests use tiny Python workers (fast); the last ones run the real TensorFlow
training script with MultiWorkerMirroredStrategy (tens of seconds each)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import utils
from childprocs import alive, wait_until
from childprocs import children_left as no_children_left
from utils import cluster

# A worker script's first lines: find the course, end with the launcher.
PRELUDE = f"""\
import json, os, signal, sys, time
sys.path.insert(0, {str(utils.REPO_ROOT)!r})
from utils import cluster
cluster.die_with_parent()
info = cluster.worker_info()
"""


def script(tmp_path: Path, body: str, name: str = "worker.py") -> list[str]:
    path = tmp_path / name
    path.write_text(PRELUDE + textwrap.dedent(body))
    return [sys.executable, str(path)]


def gone(pid: int) -> bool:
    return not alive(pid)


# ------------------------------------------------------------------------------------------
# Ports and TF_CONFIG
# ------------------------------------------------------------------------------------------

def test_free_ports_are_distinct_and_bindable():
    ports = cluster.free_ports(4)
    assert len(set(ports)) == 4
    assert all(cluster.port_is_free(p) for p in ports)
    with pytest.raises(ValueError):
        cluster.free_ports(0)


def test_port_is_free_is_false_for_a_held_port():
    with socket.socket() as held:
        held.bind(("", 0))
        held.listen()
        assert not cluster.port_is_free(held.getsockname()[1])


def test_tf_config_names_every_worker_and_this_one():
    config = json.loads(cluster.tf_config([5000, 5001, 5002], 2, host="node"))
    assert config == {"cluster": {"worker": ["node:5000", "node:5001", "node:5002"]},
                      "task": {"type": "worker", "index": 2}}
    with pytest.raises(ValueError, match="not a worker"):
        cluster.tf_config([5000], 1)


def test_python_module_uses_this_interpreter():
    assert cluster.python_module("a.b", "--n", 3) == [sys.executable, "-m", "a.b", "--n", "3"]


def test_plan_devices_gives_each_worker_its_own_gpus_or_none():
    assert cluster.plan_devices(2, 0).visible == ["", ""]
    shared = cluster.plan_devices(2, 1)
    assert shared.visible == ["", ""] and "share" in shared.line and "CPU" in shared.line
    assert cluster.plan_devices(2, 2).visible == ["0", "1"]
    five = cluster.plan_devices(2, 5)
    assert five.visible == ["0,1", "2,3"] and "1 GPU(s) left idle" in five.line
    assert cluster.plan_devices(1, 4).env(0) == {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    with pytest.raises(ValueError):
        cluster.plan_devices(0, 1)


def test_native_log_lines_are_recognised():
    assert cluster.is_native_log_line(
        "I0000 00:00:1795705640.046492    8147 port.cc:153] oneDNN custom operations are on.")
    assert cluster.is_native_log_line(
        "E0000 00:00:1795705653.121914    8147 cuda_platform.cc:52] failed call to cuInit")
    assert cluster.is_native_log_line(
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not cluster.is_native_log_line("step 10/20  loss 2.3  17.0 ms")


def test_last_error_prefers_the_exception_line():
    lines = ["step 1", "Traceback (most recent call last):", '  File "x.py", line 1',
             "RuntimeError: boom", "I0000 00:00:1.0 1 a.cc:1] chatter"]
    assert cluster.last_error(lines) == "RuntimeError: boom"
    assert cluster.last_error(["step 1", "step 2"]) == "step 2"
    assert cluster.last_error([]) == "it printed nothing"


# ------------------------------------------------------------------------------------------
# Running workers
# ------------------------------------------------------------------------------------------

def test_launch_gives_each_worker_its_identity_and_collects_results(tmp_path):
    command = script(tmp_path, """
        config = json.loads(os.environ["TF_CONFIG"])
        print("hello from", info.index, "of", info.num_workers)
        cluster.save_result({"index": info.index, "task": config["task"]["index"],
                             "cluster": config["cluster"]["worker"], "pid": os.getpid()},
                            arrays={"w": [1.0, 2.0, 3.0]})
    """)
    seen = []
    run = cluster.launch(command, 3, timeout_s=60, echo=seen.append)
    assert run.num_workers == 3 and len(run.ports) == 3
    assert [r["index"] for r in run.results] == [0, 1, 2]
    assert [r["task"] for r in run.results] == [0, 1, 2]
    assert run.results[0]["cluster"] == [f"localhost:{p}" for p in run.ports]
    assert all(w.returncode == 0 for w in run.workers)
    assert sorted(seen) == [f"[worker {i}] hello from {i} of 3" for i in range(3)]
    assert run.workers[1].log == ["hello from 1 of 3"]
    assert run.max_difference() == 0.0
    frame = run.frame()
    assert list(frame.index) == [0, 1, 2] and "cluster" not in frame.columns
    assert no_children_left() == []


def test_worker_env_and_set_tf_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "stale")
    command = script(tmp_path, """
        cluster.save_result({"procid": os.environ.get("SLURM_PROCID"),
                             "tf_config": os.environ.get("TF_CONFIG"),
                             "path0": os.environ["PYTHONPATH"].split(os.pathsep)[0]})
    """)
    run = cluster.launch(command, 2, timeout_s=60, echo=False, set_tf_config=False,
                         worker_env=lambda i: {"SLURM_PROCID": str(10 + i)})
    assert [r["procid"] for r in run.results] == ["10", "11"]
    assert all(r["tf_config"] is None for r in run.results)
    assert run.results[0]["path0"] == str(utils.REPO_ROOT)


def test_native_lines_are_kept_but_not_echoed(tmp_path):
    command = script(tmp_path, """
        print("I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.")
        print("real line")
    """)
    seen = []
    run = cluster.launch(command, 1, timeout_s=60, echo=seen.append)
    assert seen == ["[worker 0] real line"]
    assert len(run.workers[0].log) == 2
    seen.clear()
    cluster.launch(command, 1, timeout_s=60, echo=seen.append, native_logs=True)
    assert len(seen) == 2


def test_max_difference_finds_disagreeing_workers(tmp_path):
    command = script(tmp_path, """
        cluster.save_result({}, arrays={"w": [0.0, float(info.index) / 4]})
    """)
    run = cluster.launch(command, 3, timeout_s=60, echo=False)
    assert run.max_difference() == pytest.approx(0.5)


def test_max_difference_refuses_mismatched_arrays(tmp_path):
    command = script(tmp_path, """
        cluster.save_result({}, arrays={"w": [0.0] * (info.index + 1)})
    """)
    run = cluster.launch(command, 2, timeout_s=60, echo=False)
    with pytest.raises(ValueError, match="shape"):
        run.max_difference()


def test_bad_arguments_are_refused_before_starting(tmp_path):
    command = script(tmp_path, "")
    with pytest.raises(ValueError, match="num_workers"):
        cluster.launch(command, 0)
    with pytest.raises(ValueError, match="timeout_s"):
        cluster.launch(command, 1, timeout_s=0)
    with pytest.raises(ValueError, match="2 ports given for 3 workers"):
        cluster.launch(command, 3, ports=[1, 2])
    with pytest.raises(cluster.PortInUse, match="repeat"):
        cluster.launch(command, 2, ports=[50000, 50000])


# ------------------------------------------------------------------------------------------
# Faults: each ends with one clear message and no process left behind
# ------------------------------------------------------------------------------------------

def test_a_crash_stops_the_others_and_names_the_worker(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    command = script(tmp_path, f"""
        open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
        print("started", flush=True)
        if info.index == 1:
            time.sleep(0.5)
            raise RuntimeError("boom on worker 1")
        time.sleep(600)  # waits for a peer that will never answer
    """)
    start = time.monotonic()
    with pytest.raises(cluster.WorkerFailed) as caught:
        cluster.launch(command, 3, timeout_s=120, echo=False)
    assert time.monotonic() - start < 60
    message = str(caught.value)
    assert "worker 1 of 3 failed" in message and "exit code 1" in message
    assert "RuntimeError: boom on worker 1" in message
    assert "Stopped the other running worker(s): 0, 2" in message
    assert caught.value.worker == 1
    assert "RuntimeError: boom on worker 1" in caught.value.logs[1]
    assert caught.value._render_traceback_() == [f"WorkerFailed: {message}"]
    started = [int(p.name) for p in pids.iterdir()]
    assert len(started) == 3 and all(gone(pid) for pid in started)
    assert no_children_left() == [] and cluster.live_workers() == []


def test_a_worker_killed_by_a_signal_is_named(tmp_path):
    command = script(tmp_path, """
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    with pytest.raises(cluster.WorkerFailed, match="killed by SIGKILL"):
        cluster.launch(command, 1, timeout_s=60, echo=False)


def test_a_hang_times_out_and_every_worker_is_stopped(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    command = script(tmp_path, f"""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # like TensorFlow, ignore a polite stop
        open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
        print("waiting at step 3", flush=True)
        time.sleep(600)
    """)
    start = time.monotonic()
    with pytest.raises(cluster.WorkerTimeout) as caught:
        cluster.launch(command, 2, timeout_s=3, echo=False, grace_s=0.5)
    elapsed = time.monotonic() - start
    assert 3 <= elapsed < 30
    message = str(caught.value)
    assert "timeout_s=3 s" in message and "worker(s) 0, 1" in message
    assert "waiting at step 3" in message and "Stopped all 2 workers" in message
    started = [int(p.name) for p in pids.iterdir()]
    assert len(started) == 2 and all(gone(pid) for pid in started)
    assert no_children_left() == []


def test_a_workers_own_children_are_stopped_too(tmp_path):
    grandchild = tmp_path / "grandchild"
    command = script(tmp_path, f"""
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(grandchild)!r}, "w").write(str(child.pid))
        time.sleep(600)
    """)
    with pytest.raises(cluster.WorkerTimeout):
        cluster.launch(command, 1, timeout_s=3, echo=False)
    pid = int(grandchild.read_text())
    assert wait_until(lambda: gone(pid), 10)


def test_a_port_in_use_is_refused_before_any_worker_starts(tmp_path):
    marker = tmp_path / "started"
    command = script(tmp_path, f"""
        open({str(marker)!r}, "w").close()
    """)
    with socket.socket() as held:
        held.bind(("", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(cluster.PortInUse) as caught:
            cluster.launch(command, 2, ports=[cluster.free_ports(1)[0], port], echo=False)
    assert f"port {port} is already in use" in str(caught.value)
    assert "no worker was started" in str(caught.value)
    assert not marker.exists()


def test_a_port_taken_after_it_was_chosen_is_reported_as_such(tmp_path, monkeypatch):
    command = script(tmp_path, """
        import socket
        address = json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"][info.index]
        socket.socket().bind(("", int(address.split(":")[1])))  # "Address already in use"
    """)
    # the race: the port was free when the launcher checked, and taken when the worker started
    monkeypatch.setattr(cluster, "port_is_free", lambda port: True)
    with socket.socket() as held:
        held.bind(("", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(cluster.PortInUse) as caught:
            cluster.launch(command, 1, ports=[port], echo=False)
    assert f"worker 0 could not listen on port {port}" in str(caught.value)


DRIVER = f"""\
import sys
sys.path.insert(0, {str(utils.REPO_ROOT)!r})
from utils import cluster
try:
    cluster.launch([sys.executable, sys.argv[1]], 2, timeout_s=600, echo=False)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def _start_driver(tmp_path: Path, pids: Path) -> subprocess.Popen:
    worker = script(tmp_path, f"""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
        time.sleep(600)
    """)[1]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.Popen([sys.executable, str(driver), worker], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_keyboard_interrupt_stops_every_worker(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    driver = _start_driver(tmp_path, pids)
    try:
        assert wait_until(lambda: len(list(pids.iterdir())) == 2, 30)
        driver.send_signal(signal.SIGINT)  # what Kernel > Interrupt does
        out, _ = driver.communicate(timeout=30)
    finally:
        driver.kill()
    assert "interrupted" in out and "Interrupted: stopped all 2 worker process(es)." in out
    started = [int(p.name) for p in pids.iterdir()]
    assert all(wait_until(lambda pid=pid: gone(pid), 10) for pid in started)


def test_workers_end_when_their_launcher_is_killed(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    driver = _start_driver(tmp_path, pids)
    try:
        assert wait_until(lambda: len(list(pids.iterdir())) == 2, 30)
        driver.kill()  # a kernel restarted or killed: no chance to clean up
        driver.wait(timeout=10)
    finally:
        driver.kill()
    started = [int(p.name) for p in pids.iterdir()]
    assert all(wait_until(lambda pid=pid: gone(pid), 10) for pid in started)


def test_save_result_without_a_folder_does_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv(cluster.ENV_RESULT_DIR, raising=False)
    assert cluster.save_result({"a": 1}) is None
    path = cluster.save_result({"a": 1}, {"w": np.zeros(2)}, directory=tmp_path, index=3)
    assert path == tmp_path / "worker-3.json" and (tmp_path / "worker-3.npz").is_file()


# ------------------------------------------------------------------------------------------
# The training script
# ------------------------------------------------------------------------------------------

WORKER = "utils.workers.multiworker_train"


def test_the_training_loop_is_shown_from_source_without_importing_tensorflow():
    code = subprocess.run(
        [sys.executable, "-c", "import sys; from utils import cluster; "
         f"text = cluster.script_source({WORKER!r}, 'training loop'); "
         "print('strategy.run(' in text, 'compute_average_loss' in text, "
         "'apply_gradients' in text, 'tensorflow' in sys.modules)"],
        capture_output=True, text=True, cwd=utils.REPO_ROOT, timeout=60)
    assert code.stdout.split() == ["True", "True", "True", "False"], code.stderr
    whole = cluster.script_source(WORKER)
    assert "MultiWorkerMirroredStrategy" in whole
    with pytest.raises(ValueError, match="sections are: cluster, data, model, training loop"):
        cluster.script_source(WORKER, "nope")
    with pytest.raises(ValueError, match="no Python source"):
        cluster.script_source("no_such_module_here")


SMALL = ["--steps", "6", "--batch-per-replica", "16", "--hidden-units", "16", "--examples",
         "512", "--threads", "1", "--log-every", "3"]


@pytest.mark.timeout(300)
def test_two_tensorflow_workers_train_and_agree():
    run = cluster.launch(cluster.python_module(WORKER, *SMALL), 2, timeout_s=240, echo=False)
    first, second = run.results
    assert first["replicas_in_sync"] == second["replicas_in_sync"] == 2
    assert first["workers"] == 2 and first["global_batch"] == 32
    assert [first["worker"], second["worker"]] == [0, 1]
    assert first["final_loss"] == second["final_loss"]
    assert len(first["step_times_s"]) == 6 and first["step_s"] > 0
    assert first["gradient_bytes"] == 4 * first["parameters"] > 0
    assert first["allreduce_s"] > 0 and first["peak_memory_mb"] > 0
    assert run.workers[0].arrays and run.max_difference() == 0.0
    assert no_children_left() == []


@pytest.mark.timeout(300)
def test_a_crashing_tensorflow_worker_stops_the_blocked_survivor():
    command = cluster.python_module(WORKER, *SMALL, "--fault", "crash", "--fault-worker", "1",
                                    "--fault-step", "2")
    with pytest.raises(cluster.WorkerFailed) as caught:
        cluster.launch(command, 2, timeout_s=240, echo=False)
    assert "worker 1 of 2 failed" in str(caught.value)
    assert "RuntimeError: injected crash on worker 1 at step 2" in str(caught.value)
    assert no_children_left() == [] and cluster.live_workers() == []


# ------------------------------------------------------------------------------------------
# In a real Jupyter kernel: Kernel > Interrupt and Kernel > Restart
# ------------------------------------------------------------------------------------------

def _kernel_with_workers(tmp_path: Path):
    """A Jupyter kernel busy in launch() with two workers that ignore SIGTERM."""
    from jupyter_client.manager import KernelManager

    pids = tmp_path / "pids"
    pids.mkdir()
    worker = script(tmp_path, f"""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
        time.sleep(600)
    """)[1]
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    message_id = client.execute(
        f"import sys; sys.path.insert(0, {str(utils.REPO_ROOT)!r})\n"
        "from utils import cluster\n"
        f"cluster.launch([sys.executable, {worker!r}], 2, timeout_s=600, echo=False)\n")
    assert wait_until(lambda: len(list(pids.iterdir())) == 2, 60)
    return manager, client, message_id, [int(p.name) for p in pids.iterdir()]


@pytest.mark.timeout(180)
def test_kernel_interrupt_stops_every_worker(tmp_path):
    manager, client, message_id, pids = _kernel_with_workers(tmp_path)
    try:
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != message_id:
            reply = client.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert all(wait_until(lambda pid=pid: gone(pid), 10) for pid in pids)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.timeout(180)
def test_kernel_restart_leaves_no_worker_behind(tmp_path):
    manager, client, _, pids = _kernel_with_workers(tmp_path)
    try:
        manager.shutdown_kernel(now=True)  # what a restart does to a busy kernel: kill it
        assert all(wait_until(lambda pid=pid: gone(pid), 15) for pid in pids)
    finally:
        client.stop_channels()
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)


def test_a_finished_worker_whose_child_holds_its_output_does_not_stall_the_run(tmp_path):
    command = script(tmp_path, """
        import subprocess
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # inherits stdout
        print("done", flush=True)
    """)
    start = time.monotonic()
    run = cluster.launch(command, 1, timeout_s=60, echo=False)
    assert time.monotonic() - start < 30 and run.workers[0].log == ["done"]
    assert no_children_left() == []


def test_results_read_from_a_folder_compare_workers(tmp_path):
    import numpy as np

    for index in range(2):
        cluster.save_result({"worker": index}, {"w": np.ones(3) * (1 + index / 10)},
                            directory=tmp_path, index=index)
    run = cluster.read_results(tmp_path)
    assert [w.result["worker"] for w in run.workers] == [0, 1]
    assert run.max_difference() == pytest.approx(0.1)
