"""utils.slurm: the sbatch script's content, its checks, and the training script's Slurm path
(SlurmClusterResolver with Slurm's variables faked, and two workers started the way srun would
start them, on this machine)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import run_python
from utils import cluster
from utils.slurm import TRAINING_MODULE, SlurmError, SlurmJob, sbatch_script, write_sbatch


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
    assert srun == ("srun --ntasks-per-node=1 --cpus-per-task=40 python -m "
                    "utils.workers.multiworker_train --port-base 8888 --gpus-per-node 4 "
                    "--output-dir results-$SLURM_JOB_ID")
    assert "--account=..." in text  # a hint, since no account was given


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
    path = write_sbatch(SlurmJob(modules=("cuda",), train_args=("--steps", "10")),
                        tmp_path / "job.sbatch")
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kwargs, message", [
    ({"nodes": 0}, "nodes=0"),
    ({"gpus_per_node": 0}, "gpus_per_node=0"),
    ({"tasks_per_node": 3}, "cannot be shared evenly"),
    ({"time": "30 minutes"}, "HH:MM:SS"),
    ({"job_name": "my job"}, "job_name"),
    ({"account": "x; rm -rf ~"}, "account"),
    ({"port_base": 80}, "port_base=80"),
])
def test_bad_jobs_are_refused_with_the_field_named(kwargs, message):
    with pytest.raises(SlurmError, match=message):
        SlurmJob(**kwargs)


def test_write_sbatch_keeps_an_existing_file(tmp_path):
    path = tmp_path / "job.sbatch"
    path.write_text("mine")
    with pytest.raises(FileExistsError, match="kept"):
        write_sbatch(SlurmJob(), path)
    assert path.read_text() == "mine"
    write_sbatch(SlurmJob(nodes=3), path, overwrite=True)
    assert "#SBATCH --nodes=3" in path.read_text()


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
        "SlurmClusterResolver ['s01r1b17:8888', 's01r1b18:8888'] worker 1 0,1,2,3")


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
