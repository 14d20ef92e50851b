"""Slurm for lesson 06: the job script that runs the course's multi-worker training (and the MPI
all-reduce benchmark) on a cluster, and submitting it where Slurm answers.

The nodes are MareNostrum-style: several GPUs each (4 on CTE-POWER's and MareNostrum 5's
accelerated nodes, data/bsc_systems.csv), or CPU nodes (``gpus_per_node=0``). ``srun`` starts
one copy of ``python -m utils.workers.multiworker_train`` per task, the same script
:func:`utils.cluster.launch` runs on one machine; there a ``SlurmClusterResolver`` builds the
cluster from Slurm's variables (``SLURM_PROCID``, ``SLURM_STEP_NODELIST``,
``SLURM_STEP_TASKS_PER_NODE``) instead of a ``TF_CONFIG``, and gives each task its GPUs. With one
task per node, MultiWorkerMirroredStrategy makes one replica per GPU: nodes x GPUs replicas in
all; on CPU nodes, one replica per task. A second step, ``srun --mpi=pmix``, runs the MPI
all-reduce benchmark across the same tasks when ``allreduce_sizes`` are given.

:func:`submit` writes the script into a new folder, submits it with ``sbatch --wait`` and
returns what the job did (:class:`SlurmRun`): its exit code, Slurm's record of it, accounting
where the cluster keeps it, its log, and the workers' results. Whatever Slurm refuses or the job
fails with becomes one :class:`SlurmError` line; the whole log stays in ``error.log``.

Site details (account, QoS or partition, modules) differ between clusters; pass them in.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils import processes
from utils.errors import ArgumentError, CourseError, number, whole_number

__all__ = ["SlurmError", "JobSpecError", "JobFailed", "SlurmJob", "SlurmRun", "small_cpu_job",
           "sbatch_script",
           "slurm_problem", "submit", "show_job", "accounting", "telling_line", "TRAINING_MODULE",
           "ALLREDUCE_MODULE"]

#: The module every training task runs (the same on a laptop and on the cluster).
TRAINING_MODULE = "utils.workers.multiworker_train"
#: The MPI all-reduce benchmark, run by ``srun --mpi=pmix`` as the job's second step.
ALLREDUCE_MODULE = "utils.workers.mpi_allreduce"

_TIME = re.compile(r"^(?:\d+-)?\d{1,2}:\d{2}:\d{2}$|^\d+$")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
# Where Slurm's commands look for their configuration: the usual file, or the copy a
# "configless" cluster's node daemon keeps.
_DEFAULT_CONFS = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf",
                  "/run/slurm/conf/slurm.conf", "/var/spool/slurmd/conf-cache/slurm.conf")


class SlurmError(CourseError):
    """Slurm is not here, refused a job, or the job did not end well; the message says which
    and what to do."""


class JobSpecError(SlurmError, ArgumentError):
    """A job description Slurm would refuse or that cannot run the training; the message names
    the field (a notebook renames it with :func:`utils.parameters.as_parameters`)."""


class JobFailed(SlurmError):
    """A submitted job ended with an error, ran past its time, or was cancelled.

    ``log`` holds the job's whole output (its Slurm log); ``run`` what is known of it.
    """

    def __init__(self, message: str, run: "SlurmRun") -> None:
        super().__init__(message)
        self.run = run
        self.log = run.log


@dataclass(frozen=True)
class SlurmJob:
    """What to ask Slurm for, and how to start the training (and the all-reduce) on it."""

    nodes: int = 2
    gpus_per_node: int = 4  # 0: CPU nodes, one replica per task
    tasks_per_node: int = 1
    cpus_per_task: int = 40
    time: str = "00:30:00"
    job_name: str = "multiworker-train"
    account: str | None = None
    qos: str | None = None
    partition: str | None = None
    modules: tuple[str, ...] = ()
    venv: str | None = None
    python: str = "python"
    course_dir: str | None = None  # the folder holding utils/ (None: the job is submitted there)
    port_base: int = 8888
    train_args: tuple[str, ...] = field(default_factory=tuple)
    allreduce_sizes: tuple[int, ...] = ()  # message sizes (bytes) of an MPI all-reduce step

    def __post_init__(self) -> None:
        for name in ("nodes", "tasks_per_node", "cpus_per_task"):
            whole_number(getattr(self, name), name, minimum=1, error=JobSpecError)
        whole_number(self.gpus_per_node, "gpus_per_node", minimum=0, error=JobSpecError,
                     hint="0 for CPU nodes")
        if self.gpus_per_node % self.tasks_per_node:
            raise JobSpecError("gpus_per_node", self.gpus_per_node,
                               f"cannot be shared evenly by tasks_per_node="
                               f"{self.tasks_per_node}", "use a multiple of it")
        if not isinstance(self.time, str) or not _TIME.match(self.time):
            raise JobSpecError("time", self.time, "is not a Slurm time",
                               "write HH:MM:SS, D-HH:MM:SS or whole minutes")
        whole_number(self.port_base, "port_base", minimum=1024,
                     maximum=65535 - self.tasks_per_node, error=JobSpecError)
        for name in ("job_name", "account", "qos", "partition"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and _NAME.match(value)):
                raise JobSpecError(name, value, "may hold letters, digits and _ . + - only")
        if self.allreduce_sizes and self.tasks < 2:
            raise JobSpecError("allreduce_sizes", self.allreduce_sizes,
                               "needs a job of at least 2 tasks", "an all-reduce of one task "
                               "communicates nothing")
        for size in self.allreduce_sizes:
            whole_number(size, "allreduce_sizes", minimum=4, error=JobSpecError)

    @property
    def tasks(self) -> int:
        """Workers in all (``srun`` tasks)."""
        return self.nodes * self.tasks_per_node

    @property
    def replicas(self) -> int:
        """Model replicas training in sync: one per GPU, or one per task on CPU nodes."""
        return self.nodes * self.gpus_per_node if self.gpus_per_node else self.tasks


def small_cpu_job(*, tasks: int = 2, time: str = "00:10:00", account: str | None = None,
                  partition: str | None = None, train_args: tuple = (),
                  allreduce_sizes: tuple[int, ...] = ()) -> SlurmJob:
    """Lesson 06's own job, small enough for any cluster and for the test machine: 1 node,
    ``tasks`` tasks on CPUs (one replica each), run with this Python and this course folder
    (a cluster's login and compute nodes share them), on a port base chosen at random."""
    import sys

    import utils
    from utils.cluster import free_ports

    return SlurmJob(nodes=1, tasks_per_node=tasks, gpus_per_node=0, cpus_per_task=1, time=time,
                    job_name="lesson06", account=account, partition=partition,
                    python=sys.executable, course_dir=str(utils.REPO_ROOT),
                    port_base=20000 + free_ports(1)[0] % 40000,
                    train_args=tuple(str(a) for a in train_args),
                    allreduce_sizes=tuple(allreduce_sizes))


def sbatch_script(job: SlurmJob) -> str:
    """The text of an sbatch script that trains with ``job.replicas`` replicas on ``job.nodes``
    nodes through ``SlurmClusterResolver`` (and runs the MPI all-reduce, if asked)."""
    gpus_per_task = job.gpus_per_node // job.tasks_per_node
    devices = (f"{job.gpus_per_node} GPUs = {job.replicas} replicas" if job.gpus_per_node
               else f"CPUs, one replica per task = {job.replicas} replicas")
    each = f"{gpus_per_task} GPU(s) each" if job.gpus_per_node else "on CPUs"
    lines = [
        "#!/bin/bash",
        f"# Data-parallel training on {job.nodes} node(s) x {devices} "
        "(MultiWorkerMirroredStrategy).",
        f"# {job.tasks} worker(s), {job.tasks_per_node} per node, {each}; "
        "SlurmClusterResolver builds the cluster from Slurm's variables.",
        "# Generated by utils.slurm.sbatch_script(); submit with: sbatch <this file>",
        f"#SBATCH --job-name={job.job_name}",
        f"#SBATCH --nodes={job.nodes}",
        f"#SBATCH --ntasks-per-node={job.tasks_per_node}",
    ]
    if job.gpus_per_node:
        lines.append(f"#SBATCH --gres=gpu:{job.gpus_per_node}")
    lines += [f"#SBATCH --cpus-per-task={job.cpus_per_task}",
              f"#SBATCH --time={job.time}",
              "#SBATCH --output=%x-%j.out"]
    for name in ("account", "qos", "partition"):
        value = getattr(job, name)
        if value:
            lines.append(f"#SBATCH --{name}={value}")
    if not (job.account or job.qos or job.partition):
        lines.append("# add '#SBATCH --account=...' and '--qos=...' lines as your site requires")
    lines += ["", "set -euo pipefail"]
    if job.modules:
        lines += ["module purge", *(f"module load {shlex.quote(m)}" for m in job.modules)]
    if job.venv:
        lines.append(f"source {shlex.quote(job.venv)}/bin/activate")
    if job.course_dir:
        lines.append(f"export PYTHONPATH={shlex.quote(job.course_dir)}${{PYTHONPATH:+:$PYTHONPATH}}")
    python = shlex.quote(job.python)
    train = " ".join(shlex.quote(str(a)) for a in (
        "--port-base", job.port_base, "--gpus-per-node", job.gpus_per_node, *job.train_args))
    srun = (f"srun --ntasks-per-node={job.tasks_per_node} --cpus-per-task={job.cpus_per_task} "
            "--label")
    lines += [
        "export TF_CPP_MIN_LOG_LEVEL=2",
        "unset TF_CONFIG  # SlurmClusterResolver reads SLURM_PROCID, SLURM_STEP_NODELIST, ...",
        'results="$SLURM_SUBMIT_DIR/results-$SLURM_JOB_ID"',
        "",
        'echo "job $SLURM_JOB_ID on $SLURM_JOB_NUM_NODES node(s): $SLURM_JOB_NODELIST"',
        "# --label: each line starts with its task's number; --kill-on-bad-exit: a task that "
        "fails ends the step (the others would wait for it forever)",
        f"{srun} --kill-on-bad-exit=1 {python} -m {TRAINING_MODULE} {train} "
        '--output-dir "$results"',
    ]
    if job.allreduce_sizes:
        sizes = " ".join(str(s) for s in job.allreduce_sizes)
        lines += ["# the same tasks as MPI ranks: Slurm's PMIx tells each its rank",
                  f"{srun} --mpi=pmix {python} -m {ALLREDUCE_MODULE} --sizes {sizes} "
                  '--output "$results/allreduce.json"']
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Submitting
# --------------------------------------------------------------------------------------------

def _slurm_command(argv: list[str], timeout_s: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no message"])[-1]


def slurm_problem() -> str | None:
    """``None`` when ``sbatch`` is on the PATH and a Slurm controller answers; otherwise one
    line saying what is missing."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return ("Slurm's commands (sbatch, sinfo) are not on the PATH: this is not a cluster's "
                "login node")
    conf = os.environ.get("SLURM_CONF")
    if (conf and not Path(conf).is_file()) or (not conf and not any(
            Path(p).is_file() for p in _DEFAULT_CONFS)):  # sinfo would retry for a minute
        return (f"Slurm's commands are here but no configuration is "
                f"({conf or _DEFAULT_CONFS[0]} is missing): no cluster to submit to")
    try:
        answer = _slurm_command(["sinfo", "--noheader", "--format=%P"], timeout_s=20)
    except subprocess.TimeoutExpired:
        return "sinfo got no answer from the Slurm controller within 20 s"
    if answer.returncode != 0:
        return f"Slurm's commands are here but no cluster answers ({_one_line(answer.stderr)})"
    if not answer.stdout.strip():
        return "the Slurm controller answers but offers no partition"
    return None


def show_job(job_id: str) -> dict[str, str]:
    """Slurm's record of a job (``scontrol show job``) as a dict; empty once Slurm forgot it
    (a few minutes after it ended: ``MinJobAge``)."""
    try:
        answer = _slurm_command(["scontrol", "--oneliner", "show", "job", job_id])
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if answer.returncode != 0:
        return {}
    return dict(re.findall(r"(\w[\w:/]*)=(\S*)", answer.stdout))


def accounting(job_id: str) -> tuple[str | None, str]:
    """``sacct``'s table for the job and its steps, or ``None`` and why there is none."""
    fields = "JobID,JobName,State,ExitCode,Elapsed,NNodes,NTasks,AllocCPUS"
    try:
        answer = _slurm_command(["sacct", "-j", job_id, f"--format={fields}", "--parsable2"])
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"sacct could not run ({error})"
    if answer.returncode != 0 or not answer.stdout.strip():
        return None, f"sacct: {_one_line(answer.stderr or answer.stdout)}"
    return answer.stdout, "from sacct"


@dataclass
class SlurmRun:
    """A submitted job: its id and folder, how it ended, Slurm's record, its log, its results."""

    job_id: str
    folder: Path
    script: str
    returncode: int | None
    record: dict[str, str]
    accounting: str | None
    accounting_note: str
    wall_s: float

    @property
    def state(self) -> str:
        """Slurm's last state of the job (COMPLETED, FAILED, TIMEOUT, CANCELLED...)."""
        return self.record.get("JobState", "UNKNOWN")

    @property
    def log_path(self) -> Path:
        """The job's output file (``%x-%j.out``: job name and id) in its folder."""
        found = sorted(self.folder.glob(f"*-{self.job_id}.out"))
        return found[0] if found else self.folder / f"{self.job_id}.out"

    @property
    def log(self) -> str:
        """The job's output (its Slurm log), or ``""`` if it wrote none."""
        path = self.log_path
        return path.read_text(errors="replace") if path.is_file() else ""

    @property
    def results_dir(self) -> Path:
        return self.folder / f"results-{self.job_id}"

    def training(self) -> Any:
        """The training step's workers as a :class:`utils.cluster.ClusterRun`."""
        from utils.cluster import read_results

        return read_results(self.results_dir, wall_s=self.wall_s)

    def allreduce(self) -> Any:
        """The MPI step's :class:`utils.mpi.AllreduceResult`, or ``None`` if it had none."""
        from utils.mpi import result_from_json

        path = self.results_dir / "allreduce.json"
        return result_from_json(json.loads(path.read_text())) if path.is_file() else None

    def summary(self) -> str:
        """Slurm's record in one line: state, exit code, run time, nodes, tasks, CPUs."""
        keys = ("JobState", "ExitCode", "RunTime", "TimeLimit", "NodeList", "NumNodes",
                "NumTasks", "NumCPUs")
        return ", ".join(f"{k}={self.record[k]}" for k in keys if k in self.record)


def submit(job: SlurmJob, folder: str | Path, *, timeout_s: float = 900.0,
           poll_s: float = 1.0) -> SlurmRun:
    """Write ``job``'s script into a new folder, submit it with ``sbatch --wait``, and return
    what it did.

    ``folder`` must not exist yet (nothing is overwritten); the job's log (``%x-%j.out``) and
    its results (``results-<job id>/``) land there. While ``sbatch --wait`` waits, Slurm's
    record of the job is read every ``poll_s`` seconds, so its final state is kept even where
    Slurm forgets finished jobs quickly. On timeout or interrupt the job is cancelled
    (``scancel``) before returning.

    Raises:
        SlurmError: Slurm is not here or refused the job (Slurm's own words, in one line).
        JobFailed: the job ended with an error, past its time limit, or was cancelled; the
            message quotes the end of its log, and ``error.log`` holds all of it.
    """
    timeout_s = number(timeout_s, "timeout_s", above=0)
    problem = slurm_problem()
    if problem:
        raise SlurmError(f"{problem}; see the job script above to submit it on a cluster.")
    folder = Path(folder)
    if folder.exists():
        raise ArgumentError("folder", str(folder), "exists already",
                            "give a new folder: a job never writes over earlier results")
    folder.mkdir(parents=True)
    script = sbatch_script(job)
    (folder / "job.sbatch").write_text(script)

    job_id = ""
    record: dict[str, str] = {}
    finished = False
    with processes.Launcher(label="sbatch") as group:
        # tell_pid=False: sbatch hands its environment to the job, on other machines too
        sbatch = group.start(["sbatch", "--wait", "--parsable", "job.sbatch"], cwd=folder,
                             tell_pid=False)
        try:
            last_query = 0.0
            while sbatch.ended_s is None:
                group.poll(0.2)
                if not job_id and sbatch.lines and sbatch.lines[0].split(";")[0].isdigit():
                    job_id = sbatch.lines[0].split(";")[0]
                if job_id and time.monotonic() - last_query >= poll_s:
                    record = show_job(job_id) or record
                    last_query = time.monotonic()
                if (sbatch.ended_s is None and group.started is not None
                        and time.monotonic() - group.started > timeout_s):
                    break
            group.drain([sbatch])
            finished = sbatch.ended_s is not None
        finally:
            if job_id and not finished:  # timed out or interrupted: the job must not run on
                subprocess.run(["scancel", job_id], capture_output=True, timeout=30)
    wall = (sbatch.ended_s if finished else None) or time.monotonic() - (group.started or 0)
    if not job_id:
        raise SlurmError(f"sbatch refused the job: {_one_line(chr(10).join(sbatch.lines))}")
    record = show_job(job_id) or record
    table, note = accounting(job_id)
    run = SlurmRun(job_id, folder, script, sbatch.returncode if finished else None, record,
                   table, note, wall)
    if not finished:
        time.sleep(2 * poll_s)  # let Slurm write the cancelled job's log
        if record.get("JobState") == "PENDING" or not run.log:
            raise JobFailed(f"job {job_id} was still waiting in the queue after timeout_s="
                            f"{timeout_s:g} s (reason: {record.get('Reason', 'unknown')}) and "
                            "was cancelled (scancel). Ask for fewer resources, or wait longer.",
                            run)
        raise JobFailed(f"job {job_id} was still running after timeout_s={timeout_s:g} s and "
                        f"was cancelled (scancel); its last words: {telling_line(run.log)}. "
                        f"Its whole log is {run.log_path} (error.log).", run)
    if run.returncode != 0 or run.state not in ("COMPLETED", "UNKNOWN"):
        why = {"TIMEOUT": f"ran past its time limit ({job.time}) and Slurm stopped it",
               "CANCELLED": "was cancelled"}.get(run.state, f"ended {run.state}")
        raise JobFailed(f"job {job_id} {why} (exit code {run.record.get('ExitCode', '?')}): "
                        f"{telling_line(run.log)}. Its whole log is {run.log_path} "
                        "(error.log).", run)
    return run


def telling_line(log: str) -> str:
    """The most telling line of a job's log: the exception of the task that failed first (``srun
    --label`` starts each line with its task's number; the others' errors follow from it), else
    the log's last meaningful line."""
    from utils.cluster import is_exception_line, last_error

    by_task: dict[str, list[tuple[int, str]]] = {}
    plain: list[str] = []
    for number_, line in enumerate(log.splitlines()):
        labelled = re.match(r"^\s*(\d+): (.*\S)", line)
        if labelled:
            by_task.setdefault(labelled.group(1), []).append((number_, labelled.group(2)))
        elif line.strip():
            plain.append(line.strip())
    failures = []
    for task, entries in by_task.items():
        last = last_error([text for _, text in entries])
        if is_exception_line(last):
            failures.append((max(n for n, text in entries if text.strip() == last), task, last))
    if failures:
        _, task, line = min(failures)
        return f"task {task}: {line}"
    return last_error(plain + [text for entries in by_task.values() for _, text in entries])
