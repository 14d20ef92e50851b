"""Lesson 06's job under a real Slurm: a single-node cluster started by the tests (munged,
slurmctld and slurmd with all their state in a temporary folder; see tests/slurm_cluster.py).

The job utils.slurm generates for 1 node, 2 tasks, CPU, is submitted with ``sbatch --wait``:
MultiWorkerMirroredStrategy training through SlurmClusterResolver, then the MPI all-reduce
benchmark through ``srun --mpi=pmix``. The tests check what the job wrote, how failing and
overlong jobs are reported, and that no daemon or job process is left afterwards.

Run as root on Debian or Ubuntu (the packages are installed when missing); elsewhere they are
skipped with one line saying how to enable them (with COURSE_REQUIRE_SLURM=1, as in CI, they
fail instead). ``pytest -m slurm`` runs them alone. The two-node test is skipped, with the
reason, where network namespaces cannot be made.
"""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

from slurm_cluster import HOW_TO_ENABLE, SlurmCluster, prerequisites, unavailable
from utils import slurm
from utils.slurm import JobFailed, SlurmError, SlurmJob

pytestmark = pytest.mark.slurm

TRAIN = ("--steps", "6", "--batch-per-replica", "16", "--hidden-units", "16",
         "--examples", "512", "--threads", "1", "--log-every", "3")
SIZES = (8, 1024, 65536)


def small_job(**changes) -> SlurmJob:
    """The lesson's own job (utils.slurm.small_cpu_job: 1 node, 2 tasks, CPU, this Python)."""
    job = slurm.small_cpu_job(time="00:05:00", train_args=TRAIN, allreduce_sizes=SIZES)
    return dataclasses.replace(job, job_name="course-test", **changes)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    problem = prerequisites()
    if problem:
        unavailable(problem)
    node = SlurmCluster(tmp_path_factory.mktemp("slurm"), network_nodes=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(node.conf))
        try:
            node.start()
            yield node
        finally:
            node.stop()
    assert node.leftovers() == [], "Slurm daemons or job processes outlived the tests"
    assert node.network.leftovers() == [], "network namespaces or links outlived the tests"


@pytest.mark.timeout(600)
def test_the_lessons_job_trains_two_workers_and_runs_the_mpi_benchmark(slurm_cluster, tmp_path):
    start = time.monotonic()
    run = slurm.submit(small_job(), tmp_path / "job", timeout_s=480)
    print(f"job {run.job_id}: {run.summary()}; submitted and finished in "
          f"{time.monotonic() - start:.1f} s")
    assert run.returncode == 0 and run.state == "COMPLETED"
    assert run.record["ExitCode"] == "0:0" and run.record["NumTasks"] == "2"
    assert f"job {run.job_id} on 1 node(s)" in run.log
    training = run.training()
    assert [w.result["worker"] for w in training.workers] == [0, 1]
    assert {w.result["host"] for w in training.workers} == {slurm_cluster.node_name()}
    assert all(w.result["workers"] == 2 and w.result["replicas_in_sync"] == 2
               for w in training.workers)
    assert training.workers[0].result["final_loss"] == training.workers[1].result["final_loss"]
    assert training.workers[0].arrays and training.max_difference() == 0.0  # identical weights
    allreduce = run.allreduce()
    assert allreduce.nprocs == 2 and allreduce.sizes_bytes == list(SIZES)
    assert all(t > 0 for t in allreduce.median_s) and allreduce.frame()["busbw_gb_s"].gt(0).all()
    assert "Open MPI" in allreduce.library
    assert run.accounting is None and "accounting storage is disabled" in run.accounting_note
    assert not list(tmp_path.glob("job/*.sbatch~"))  # the script is the only file written
    assert (tmp_path / "job" / "job.sbatch").read_text() == run.script


@pytest.mark.timeout(600)
def test_the_same_job_on_two_nodes_that_talk_over_a_network(slurm_cluster, tmp_path):
    """Scaling out: the same script on two nodes, each a network namespace of its own (own
    address, hostname and /etc/hosts), the workers reaching each other over a network. The MPI
    step is left out here: Open MPI 5's MPI_Init crashed once in a dozen runs across these
    namespaces (a segfault in ob1's fragment matching), which a test must not inherit."""
    if slurm_cluster.network_problem:
        pytest.skip(slurm_cluster.network_problem)
    job = small_job(nodes=2, tasks_per_node=1, partition="network", allreduce_sizes=())
    run = slurm.submit(job, tmp_path / "job", timeout_s=480)
    print(f"job {run.job_id}: {run.summary()}")
    assert run.state == "COMPLETED" and run.record["NodeList"] == "node[1-2]"
    training = run.training()
    assert [w.result["host"] for w in training.workers] == ["node1", "node2"]
    assert [w.result["workers"] for w in training.workers] == [2, 2]
    assert training.max_difference() == 0.0


def fake_python(tmp_path, body: str):
    """A program standing in for the tasks' Python (quick: no TensorFlow to start)."""
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.timeout(300)
def test_a_failing_job_is_reported_in_one_line_with_its_log(slurm_cluster, tmp_path):
    crash = fake_python(tmp_path, """
echo "step 1/6"
if [ "$SLURM_PROCID" = 1 ]; then
  echo 'RuntimeError: injected crash on worker 1 at step 2' >&2; exit 1
fi
exec sleep 600  # task 0 waits for its peer: srun --kill-on-bad-exit must end it""")
    start = time.monotonic()
    with pytest.raises(JobFailed) as caught:
        slurm.submit(small_job(python=crash), tmp_path / "job", timeout_s=240)
    assert time.monotonic() - start < 120  # not the job's 5-minute limit: the step was ended
    message = str(caught.value)
    assert re.match(rf"job {caught.value.run.job_id} ended FAILED \(exit code \d+:0\): task 1: "
                    r"RuntimeError: injected crash on worker 1 at step 2\. Its whole log is ",
                    message), message
    assert "\n" not in message and caught.value._render_traceback_() == [f"JobFailed: {message}"]
    assert "1: RuntimeError: injected crash" in caught.value.log
    assert caught.value.run.state == "FAILED"


@pytest.mark.timeout(300)
def test_a_job_past_its_timeout_is_cancelled_and_reported(slurm_cluster, tmp_path):
    hanging = fake_python(tmp_path, "echo 'hanging at step 2 (injected)'; exec sleep 600")
    job = small_job(python=hanging, allreduce_sizes=())
    with pytest.raises(JobFailed) as caught:
        slurm.submit(job, tmp_path / "job", timeout_s=8)
    message = str(caught.value)
    assert message.startswith(f"job {caught.value.run.job_id} was still running after "
                              "timeout_s=8 s and was cancelled (scancel); its last words:")
    assert "hanging at step 2 (injected)" in caught.value.log
    slurm_cluster.cancel_jobs()  # returns once the queue is empty: the job is gone
    assert slurm.show_job(caught.value.run.job_id).get("JobState") in (None, "CANCELLED")


def test_a_job_slurm_refuses_is_one_line(slurm_cluster, tmp_path):
    with pytest.raises(SlurmError) as caught:
        slurm.submit(small_job(partition="nope"), tmp_path / "job", timeout_s=60)
    assert str(caught.value) == ("sbatch refused the job: sbatch: error: Batch job submission "
                                 "failed: Invalid partition name specified")


@pytest.mark.timeout(120)
def test_a_job_that_never_leaves_the_queue_is_cancelled_and_says_why(slurm_cluster, tmp_path):
    with pytest.raises(JobFailed) as caught:  # two nodes asked of a one-node cluster
        slurm.submit(small_job(nodes=2), tmp_path / "job", timeout_s=5)
    assert str(caught.value).startswith(f"job {caught.value.run.job_id} was still waiting in "
                                        "the queue after timeout_s=5 s (reason: Partition")
    slurm_cluster.cancel_jobs()


def test_submit_never_writes_into_an_existing_folder(slurm_cluster, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="exists already"):
        slurm.submit(small_job(), mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@pytest.mark.timeout(300)
def test_stopping_the_cluster_leaves_no_daemon_or_job_process(tmp_path):
    problem = prerequisites()
    if problem:
        unavailable(problem)
    node = SlurmCluster(tmp_path / "slurm", network_nodes=1)
    try:
        node.start()
        marker = tmp_path / "running"
        script = tmp_path / "sleep.sbatch"
        script.write_text(f"#!/bin/bash\n#SBATCH -n 1\n#SBATCH -o {tmp_path}/sleep.out\n"
                          f"srun bash -c 'touch {marker}; sleep 600'\n")
        import subprocess

        subprocess.run(["sbatch", str(script)], env=node.env, check=True, capture_output=True)
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the job never started"
        assert len(node.leftovers()) > 3  # the daemons, and the job's own processes
    finally:
        node.stop()
    assert node.leftovers() == [] and node.network.leftovers() == []


def test_without_slurm_the_tests_say_how_to_enable_them(monkeypatch):
    import slurm_cluster

    monkeypatch.setattr(slurm_cluster, "_missing", lambda: ["slurmctld"])
    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 1000)
    assert prerequisites() == f"slurmctld missing: {HOW_TO_ENABLE}"
    assert "apt-get install" in HOW_TO_ENABLE and "root" in HOW_TO_ENABLE


def test_slurm_problem_when_no_controller_answers(monkeypatch, tmp_path):
    if prerequisites(install=False):
        unavailable(HOW_TO_ENABLE)
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "missing.conf"))
    assert slurm.slurm_problem() == ("Slurm's commands are here but no configuration is "
                                     f"({tmp_path / 'missing.conf'} is missing): no cluster to "
                                     "submit to")
    (tmp_path / "slurm.conf").write_text("ClusterName=x\nSlurmctldHost=localhost(127.0.0.1)\n"
                                        "SlurmctldPort=1\nMessageTimeout=1\n")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    problem = slurm.slurm_problem()
    assert problem.startswith("Slurm's commands are here but no cluster answers (")
    assert "\n" not in problem


def test_ci_fails_rather_than_skips_without_slurm(monkeypatch):
    import slurm_cluster

    monkeypatch.setenv("COURSE_REQUIRE_SLURM", "1")
    with pytest.raises(pytest.fail.Exception, match="COURSE_REQUIRE_SLURM=1"):
        slurm_cluster.unavailable("slurmctld missing")
    monkeypatch.delenv("COURSE_REQUIRE_SLURM")
    with pytest.raises(pytest.skip.Exception, match="slurmctld missing"):
        slurm_cluster.unavailable("slurmctld missing")
