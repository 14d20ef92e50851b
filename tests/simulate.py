"""Simulated runtimes: run a notebook or any command as if on Colab's TPU, a T4, an A100...

No machine the course is tested on has a GPU or a TPU. A simulated runtime fakes only what the
course *reads* to decide, never what computes:

* a fake ``nvidia-smi`` first on ``PATH`` that answers the queries ``utils.hardware`` makes
  (TensorFlow and JAX still see no GPU: the CPU does every computation);
* a kernel in which ``import tensorflow`` fails, as on Colab's TPU runtime (a folder on
  ``PYTHONPATH`` whose ``sitecustomize.py`` makes the path finder miss TensorFlow);
* a TPU on a fake PCI bus, read through ``COURSE_SYSFS_ROOT`` (JAX still sees no TPU);
* a cgroup memory limit, read through the same variable.

Every runtime sets ``COURSE_SIMULATED`` to its name, so the hardware report and the device
choice say what was simulated. Use it from the command line::

    python -m tests.simulate --list
    python -m tests.simulate colab-t4 -- course run 03 --profile smoke --output /tmp/t4
    python -m tests.simulate no-tensorflow -- python -c "import utils.strategy as s; s.choose_strategy()"

or from Python (tests)::

    from tests.simulate import RUNTIMES, environment
    env = environment("colab-tpu", tmp_path)     # the variables to set; fakes built in tmp_path
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["Runtime", "RUNTIMES", "environment", "run", "main"]

DRIVER = "550.54.15"


@dataclass(frozen=True)
class Runtime:
    """A runtime a learner opens the course in, and what this simulation fakes of it."""

    name: str
    stands_for: str
    fakes: str
    block_tensorflow: bool = False
    gpus: tuple[dict[str, str], ...] = ()
    tpu_pci_device: str | None = None  # a TPU device id on Google's PCI vendor id
    tpu_chips: int = 0
    memory_limit_bytes: int | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


def _gpu(name: str, memory_mib: int, capability: str, index: int = 0) -> dict[str, str]:
    return {"index": str(index), "name": name, "memory.total": str(memory_mib),
            "memory.used": "0", "memory.free": str(memory_mib), "compute_cap": capability,
            "driver_version": DRIVER, "utilization.gpu": "0",
            "pci.bus_id": f"00000000:00:{4 + index:02X}.0", "uuid": f"GPU-simulated-{index}"}


RUNTIMES: dict[str, Runtime] = {runtime.name: runtime for runtime in (
    Runtime("no-tensorflow", "Colab's TPU runtime without its TPU: JAX and Keras, no TensorFlow",
            "TensorFlow is blocked in the kernel (import tensorflow fails)",
            block_tensorflow=True),
    Runtime("colab-tpu", "Colab's TPU runtime: one TPU v5e chip, JAX and Keras, no TensorFlow",
            "TensorFlow is blocked and a TPU v5e sits on a fake PCI bus; JAX sees no TPU, so the "
            "CPU computes", block_tensorflow=True, tpu_pci_device="0x0063", tpu_chips=1,
            variables={"COLAB_RELEASE_TAG": "simulated"}),
    Runtime("colab-t4", "Colab's free GPU runtime: one Tesla T4 (compute capability 7.5)",
            "nvidia-smi lists a Tesla T4; TensorFlow and JAX see no GPU, so the CPU computes",
            gpus=(_gpu("Tesla T4", 15360, "7.5"),),
            variables={"COLAB_RELEASE_TAG": "simulated"}),
    Runtime("colab-a100", "Colab's A100 runtime (compute capability 8.0, TF32)",
            "nvidia-smi lists an A100; TensorFlow and JAX see no GPU, so the CPU computes",
            gpus=(_gpu("NVIDIA A100-SXM4-40GB", 40960, "8.0"),),
            variables={"COLAB_RELEASE_TAG": "simulated"}),
    Runtime("gpu-unusable", "a machine whose GPU TensorFlow cannot use (a CPU-only build, or "
            "a CUDA and driver mismatch)",
            "nvidia-smi lists a GeForce RTX 3080 that TensorFlow and JAX do not see",
            gpus=(_gpu("NVIDIA GeForce RTX 3080", 10240, "8.6"),)),
    Runtime("node-4gpu", "a cluster node with four GPUs",
            "nvidia-smi lists four A100s; TensorFlow and JAX see no GPU, so the CPU computes",
            gpus=tuple(_gpu("NVIDIA A100-SXM4-80GB", 81920, "8.0", i) for i in range(4))),
    Runtime("binder", "mybinder.org: a CPU with 1-2 GB of memory",
            "a 2 GiB cgroup memory limit (read by the report, not enforced) and Binder's "
            "environment variable", memory_limit_bytes=2 * 2**30,
            variables={"BINDER_LAUNCH_HOST": "https://mybinder.org/ (simulated)"}),
)}

_NVIDIA_SMI = '''\
#!{python}
"""A fake nvidia-smi for the simulated runtime {runtime!r} (tests/simulate.py)."""
import sys

GPUS = {gpus}
UNITS = {{"memory.total": " MiB", "memory.used": " MiB", "memory.free": " MiB",
          "utilization.gpu": " %"}}
args = sys.argv[1:]
query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
if query is not None:
    fields = [f.strip() for f in query.split(",") if f.strip()]
    for name in fields:
        if name not in GPUS[0]:
            print(f'Field "{{name}}" is not a valid field to query.')
            sys.exit(2)
    fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), "csv")
    if "noheader" not in fmt:
        print(", ".join(fields))
    for gpu in GPUS:
        print(", ".join(gpu[f] + ("" if "nounits" in fmt else UNITS.get(f, "")) for f in fields))
elif "-L" in args or "--list-gpus" in args:
    for gpu in GPUS:
        print(f"GPU {{gpu['index']}}: {{gpu['name']}} (UUID: {{gpu['uuid']}})")
else:
    print("NVIDIA-SMI (simulated by tests/simulate.py: {runtime})   Driver Version: {driver}")
    for gpu in GPUS:
        print(f"|  {{gpu['index']}}  {{gpu['name']}}  {{gpu['memory.total']}}MiB |")
'''


#: The kernel's sitecustomize.py where TensorFlow is absent: the path finder no longer finds it,
#: as where it is not installed. (``sys.modules['tensorflow'] = None`` would leave a
#: "tensorflow" key that Keras 3 takes for a loaded TensorFlow: its preprocessing layers then
#: fail on JAX, which never happens on a real TensorFlow-less runtime.)
_HIDE_TENSORFLOW = """\
# tests/simulate.py: TensorFlow is absent here, as on Colab's TPU runtime
import importlib.machinery as _machinery

_find_spec = _machinery.PathFinder.find_spec.__func__


def _without_tensorflow(cls, name, path=None, target=None):
    if name == "tensorflow" or name.startswith("tensorflow."):
        return None
    return _find_spec(cls, name, path, target)


_machinery.PathFinder.find_spec = classmethod(_without_tensorflow)
"""


def _build(runtime: Runtime, folder: Path) -> dict[str, str]:
    """Make the runtime's fake files under ``folder``; return the variables that point at
    them (``PATH`` and ``PYTHONPATH`` as prefixes, marked with a leading ``+``)."""
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[str, str] = {"COURSE_SIMULATED": runtime.name, **runtime.variables}
    if runtime.block_tensorflow:
        site = folder / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(_HIDE_TENSORFLOW)
        found["+PYTHONPATH"] = str(site)
    if runtime.gpus:
        bin_dir = folder / "bin"
        bin_dir.mkdir(exist_ok=True)
        smi = bin_dir / "nvidia-smi"
        smi.write_text(_NVIDIA_SMI.format(python=sys.executable, runtime=runtime.name,
                                          gpus=json.dumps(list(runtime.gpus)), driver=DRIVER))
        smi.chmod(0o755)
        found["+PATH"] = str(bin_dir)
    sysfs = folder / "sysfs"
    if runtime.tpu_pci_device:
        for chip in range(runtime.tpu_chips):
            slot = sysfs / "sys" / "bus" / "pci" / "devices" / f"0000:00:{4 + chip:02x}.0"
            slot.mkdir(parents=True, exist_ok=True)
            (slot / "vendor").write_text("0x1ae0\n")
            (slot / "device").write_text(runtime.tpu_pci_device + "\n")
    if runtime.memory_limit_bytes:
        cgroup = sysfs / "cgroup"
        cgroup.mkdir(parents=True, exist_ok=True)
        (cgroup / "memory.max").write_text(f"{runtime.memory_limit_bytes}\n")
    if sysfs.is_dir():
        found["COURSE_SYSFS_ROOT"] = str(sysfs)
    return found


def environment(name: str, folder: Path, base: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    """The variables to set (over ``base``, default ``os.environ``) to run in runtime ``name``;
    its fake files are made under ``folder``, which must outlive the run.

    Raises:
        KeyError: an unknown runtime (the message lists the known ones).
    """
    if name not in RUNTIMES:
        raise KeyError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    base = os.environ if base is None else base
    changes: dict[str, str] = {}
    for key, value in _build(RUNTIMES[name], Path(folder)).items():
        if key.startswith("+"):
            key = key[1:]
            value = os.pathsep.join(p for p in (value, base.get(key, "")) if p)
        changes[key] = value
    if "PYTHONPATH" in changes:  # keep the course importable in a kernel started elsewhere
        from utils import REPO_ROOT

        changes["PYTHONPATH"] = os.pathsep.join([changes["PYTHONPATH"], str(REPO_ROOT)])
    return changes


def run(name: str, command: Sequence[str], *, keep: Path | None = None) -> int:
    """Run ``command`` in runtime ``name``; return its exit status."""
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=f"course-{name}-"))
    try:
        env = {**os.environ, **environment(name, folder)}
        runtime = RUNTIMES[name]
        print(f"Simulated runtime {name} ({runtime.stands_for}): {runtime.fakes}.",
              file=sys.stderr, flush=True)
        return subprocess.call(list(command), env=env)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulate",
        description="Run a command on a simulated runtime (fake nvidia-smi, TensorFlow "
                    "blocked, a fake TPU on the PCI bus). What is faked never computes.",
        epilog="example: python -m tests.simulate colab-t4 -- course run 03 --profile smoke")
    parser.add_argument("runtime", nargs="?", help="one of: " + ", ".join(RUNTIMES))
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the command, after --")
    parser.add_argument("--list", action="store_true", help="list the runtimes and exit")
    parser.add_argument("--keep", type=Path, help="build the fakes in this folder and keep it")
    args = parser.parse_args(argv)
    if args.list or not args.runtime:
        for runtime in RUNTIMES.values():
            print(f"{runtime.name:14} {runtime.stands_for}\n{'':14} fakes: {runtime.fakes}")
        return 0
    if args.runtime not in RUNTIMES:
        parser.error(f"unknown runtime {args.runtime!r}; choose one of {', '.join(RUNTIMES)}")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    return run(args.runtime, command, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
