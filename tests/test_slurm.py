"""utils.slurm: the sbatch script's content, its checks, how a job's log is summed up, and the
training script's Slurm path (the resolver with Slurm's variables faked, and two workers started
the way srun would start them, on this machine). A real Slurm runs the job in test_slurm_job.py."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import nbformat

import utils
from conftest import run_python
from utils import cluster, slurm
from utils.parameters import ParameterError, as_parameters
from utils.slurm import TRAINING_MODULE, JobSpecError, SlurmError, SlurmJob, sbatch_script


def sbatch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#SBATCH")]


def test_default_script_asks_for_marenostrum_style_nodes():
    text = sbatch_script(SlurmJob())
    assert text.startswith("#!/bin/bash\n")
    assert sbatch_lines(text) == [
        "#SBATCH --job-name=multiworker-train",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gres=gpu:4",
        "#SBATCH --cpus-per-task=40",
        "#SBATCH --time=00:30:00",
        "#SBATCH --output=%x-%j.out",
    ]
    assert "2 node(s) x 4 GPUs = 8 replicas" in text
    assert "unset TF_CONFIG" in text and "set -euo pipefail" in text
    [srun] = [line for line in text.splitlines() if line.startswith("srun ")]
    assert srun == ("srun --ntasks-per-node=1 --cpus-per-task=40 --label --kill-on-bad-exit=1 "
                    "python -m utils.workers.multiworker_train --port-base 8888 --gpus-per-node 4 "
                    '--output-dir "$results"')
    assert 'results="$SLURM_SUBMIT_DIR/results-$SLURM_JOB_ID"' in text
    assert "--account=..." in text  # a hint, since no account was given
    assert "--mpi=pmix" not in text and "PYTHONPATH" not in text


def test_a_cpu_job_with_the_mpi_step():
    job = SlurmJob(nodes=1, tasks_per_node=2, gpus_per_node=0, cpus_per_task=1,
                   python="/opt/venv/bin/python", course_dir="/home/me/course",
                   allreduce_sizes=(8, 1024))
    text = sbatch_script(job)
    assert "--gres" not in text and job.replicas == 2 and job.tasks == 2
    assert "1 node(s) x CPUs, one replica per task = 2 replicas" in text
    assert "export PYTHONPATH=/home/me/course${PYTHONPATH:+:$PYTHONPATH}" in text
    srun = [line for line in text.splitlines() if line.startswith("srun ")]
    assert srun[0].split(" --port-base")[0].endswith("/opt/venv/bin/python -m "
                                                      "utils.workers.multiworker_train")
    assert "--gpus-per-node 0" in srun[0]
    assert srun[1] == ("srun --ntasks-per-node=2 --cpus-per-task=1 --label --mpi=pmix "
                       "/opt/venv/bin/python -m utils.workers.mpi_allreduce --sizes 8 1024 "
                       '--output "$results/allreduce.json"')


def test_parameters_reach_the_script():
    job = SlurmJob(nodes=16, gpus_per_node=4, tasks_per_node=4, cpus_per_task=20,
                   time="1-12:00:00", job_name="alexnet_64", account="bsc99", qos="acc_debug",
                   partition="gpu", modules=("python/3.11", "cuda/12.4"), venv="$HOME/venvs/dl",
                   port_base=9000, train_args=("--steps", 500, "--batch-per-replica", "256"))
    text = sbatch_script(job)
    lines = sbatch_lines(text)
    for expected in ("--job-name=alexnet_64", "--nodes=16", "--ntasks-per-node=4",
                     "--gres=gpu:4", "--cpus-per-task=20", "--time=1-12:00:00",
                     "--account=bsc99", "--qos=acc_debug", "--partition=gpu"):
        assert f"#SBATCH {expected}" in lines
    assert "module purge\nmodule load python/3.11\nmodule load cuda/12.4" in text
    assert "source '$HOME/venvs/dl'/bin/activate" in text
    assert "--port-base 9000 --gpus-per-node 4" in text and "--steps 500" in text
    assert "16 node(s) x 4 GPUs = 64 replicas" in text and "64 worker(s), 4 per node, 1 GPU(s)" in text
    assert "--account=..." not in text
    assert job.tasks == 64 and job.replicas == 64


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash to check the syntax")
def test_script_is_valid_bash(tmp_path):
    path = tmp_path / "job.sbatch"
    path.write_text(sbatch_script(SlurmJob(modules=("cuda",), train_args=("--steps", "10"),
                                           course_dir="/a b", allreduce_sizes=(8,),
                                           tasks_per_node=2)))
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kwargs, message", [
    ({"nodes": 0}, "nodes = 0 must be a whole number >= 1."),
    ({"nodes": 2.0}, "nodes = 2.0 must be a whole number >= 1."),
    ({"gpus_per_node": -1}, "gpus_per_node = -1 must be a whole number >= 0; 0 for CPU nodes."),
    ({"tasks_per_node": 3}, "gpus_per_node = 4 cannot be shared evenly by tasks_per_node=3; "
                            "use a multiple of it."),
    ({"time": "30 minutes"}, "time = '30 minutes' is not a Slurm time; write HH:MM:SS, "
                             "D-HH:MM:SS or whole minutes."),
    ({"job_name": "my job"}, "job_name = 'my job' may hold letters, digits and _ . + - only."),
    ({"account": "x; rm -rf ~"}, "account = 'x; rm -rf ~' may hold letters"),
    ({"port_base": 80}, "port_base = 80 must be a whole number >= 1024 and <= 65534."),
    ({"allreduce_sizes": (8,), "nodes": 1}, "allreduce_sizes = (8,) needs a job of at least 2 tasks"),
    ({"allreduce_sizes": (2,), "nodes": 2}, "allreduce_sizes = 2 must be a whole number >= 4."),
])
def test_bad_jobs_are_refused_with_the_field_named(kwargs, message):
    with pytest.raises(JobSpecError) as caught:
        SlurmJob(**kwargs)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, SlurmError) and isinstance(caught.value, ValueError)


def test_a_bad_time_names_the_notebook_parameter():
    """Issue 15: lesson 06 refused SLURM_TIME='30 minutes' with a message naming time=."""
    with pytest.raises(ParameterError) as caught:
        with as_parameters(time="SLURM_TIME", nodes="SLURM_NODES"):
            SlurmJob(nodes=4, time="30 minutes")
    assert str(caught.value) == ("SLURM_TIME = '30 minutes' is not a Slurm time; write "
                                 "HH:MM:SS, D-HH:MM:SS or whole minutes.")


def test_lesson_06_refuses_a_bad_slurm_time_by_its_own_name():
    """The lesson's own check cell, run with SLURM_TIME = '30 minutes' injected."""
    notebook = nbformat.read(utils.REPO_ROOT / "notebooks" /
                             "06_distributed_training_multi_worker.ipynb", as_version=4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code"]
    at = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    parameters = notebook.cells[at].source
    check = next(c for c in cells if "check_parameters(globals()" in c)
    namespace: dict = {}
    exec(compile(parameters + "\nSLURM_TIME = '30 minutes'\n", "parameters", "exec"), namespace)
    with pytest.raises(ParameterError) as caught:
        exec(compile(check, "check", "exec"), namespace)
    assert str(caught.value).startswith("SLURM_TIME = '30 minutes' is not a Slurm time")


def test_telling_line_names_the_task_that_failed_first():
    log = "\n".join([
        "job 2 on 1 node(s): vm", "0: step 1/6  loss 2.3", "1: step 1/6  loss 2.3",
        "1: Traceback (most recent call last):", '1:   File "x.py", line 1',
        "1: RuntimeError: injected crash on worker 1 at step 2",
        "srun: error: vm: task 1: Exited with exit code 1",
        "0: tensorflow.python.framework.errors_impl.UnavailableError: peer is gone",
        "srun: error: vm: task 0: Exited with exit code 1"])
    assert slurm.telling_line(log) == "task 1: RuntimeError: injected crash on worker 1 at step 2"
    assert slurm.telling_line("srun: error: Unable to allocate resources\n") == \
        "srun: error: Unable to allocate resources"
    assert slurm.telling_line("") == "it printed nothing"


def test_the_script_runs_the_module_the_notebook_runs():
    assert TRAINING_MODULE == "utils.workers.multiworker_train"
    assert "SlurmClusterResolver" in cluster.script_source(TRAINING_MODULE, "cluster")


@pytest.mark.timeout(300)
def test_the_worker_resolves_its_cluster_from_slurm_variables():
    result = run_python("""
        import os
        from utils.workers import multiworker_train as train
        resolver = train.make_resolver(train.parse_args(["--gpus-per-node", "4"]))
        spec = resolver.cluster_spec().as_dict()
        print(type(resolver).__name__, spec["worker"], resolver.task_type, resolver.task_id,
              os.environ["CUDA_VISIBLE_DEVICES"])
    """, env={"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2",
              "SLURM_STEP_NODELIST": "s01r1b[17-18]", "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
              "TF_CONFIG": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == (
        "SlurmResolver ['s01r1b17:8888', 's01r1b18:8888'] worker 1 0,1,2,3")


@pytest.mark.timeout(300)
def test_two_workers_started_like_srun_train_through_slurm_cluster_resolver():
    """srun's variables on this machine: two tasks on 'localhost', ports port_base and +1."""
    while True:
        base = cluster.free_ports(1)[0]
        if base < 65000 and cluster.port_is_free(base + 1):
            break
    slurm = {"SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "localhost",
             "SLURM_STEP_TASKS_PER_NODE": "2"}
    command = cluster.python_module(
        TRAINING_MODULE, "--steps", 4, "--batch-per-replica", 8, "--hidden-units", 8,
        "--examples", 256, "--threads", 1, "--port-base", base, "--gpus-per-node", 2)
    run = cluster.launch(command, 2, set_tf_config=False, timeout_s=240, echo=False,
                         worker_env=lambda i: {**slurm, "SLURM_PROCID": str(i)})
    assert [r["worker"] for r in run.results] == [0, 1]
    assert all(r["replicas_in_sync"] == 2 for r in run.results)
    assert run.max_difference() == 0.0


def test_gpus_are_counted_from_slurm_then_nvidia_smi_else_none():
    result = run_python("""
        import os
        from utils.workers.multiworker_train import count_gpus
        os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"
        two = count_gpus()
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        none = count_gpus()
        del os.environ["CUDA_VISIBLE_DEVICES"]
        print(two, none, count_gpus())
    """, env={"PATH": "/nonexistent"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "2 0 0"


@pytest.mark.timeout(300)
def test_the_resolver_works_on_cpu_nodes_where_tensorflows_own_crashes():
    """TensorFlow's SlurmClusterResolver asks nvidia-smi (missing) and, told 0 GPUs, divides by
    zero; the course's subclass gives each CPU task a port and no GPU."""
    slurm_env = {"SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4",
                 "SLURM_STEP_NODELIST": "s01r1b[17-18]", "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
                 "TF_CONFIG": "", "PATH": "/usr/bin:/bin"}
    result = run_python("""
        import os
        import tensorflow as tf
        from utils.workers import multiworker_train as train
        for gpus in (None, 0):
            try:
                tf.distribute.cluster_resolver.SlurmClusterResolver(gpus_per_node=gpus).cluster_spec()
            except Exception as error:
                print("tensorflow's own:", type(error).__name__, error)
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        resolver = train.make_resolver(train.parse_args([]))
        spec = resolver.cluster_spec().as_dict()
        print(type(resolver).__name__, spec["worker"], resolver.task_type, resolver.task_id,
              repr(os.environ["CUDA_VISIBLE_DEVICES"]), resolver.num_accelerators())
    """, env=slurm_env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().split("\n")
    assert lines[0].startswith("tensorflow's own: FileNotFoundError")
    assert lines[1] == "tensorflow's own: ValueError range() arg 3 must not be zero"
    assert lines[2] == ("SlurmResolver ['s01r1b17:8888', 's01r1b17:8889', 's01r1b18:8888', "
                        "'s01r1b18:8889'] worker 3 '' {'GPU': 0}")


def test_slurm_problem_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "not on the PATH" in slurm.slurm_problem()
    with pytest.raises(SlurmError, match="not on the PATH"):
        slurm.submit(SlurmJob(), tmp_path / "job")
    assert not (tmp_path / "job").exists()


