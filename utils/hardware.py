"""Where does this code run? A report of runtime, software, CPU, memory, GPUs and TPUs.

:func:`hardware_report` never raises on an odd environment: anything it cannot learn is ``None``
and the reason is kept in ``report.unknown`` (or ``cpu.unknown``). It starts no TensorFlow, JAX
or TPU runtime: versions come from package metadata, GPUs from ``nvidia-smi``, TPUs from PCI ids.

The theoretical peak of the CPU is ``cores x clock x FLOPs per cycle per core``; the FLOPs per
cycle come from data/cpu_peak.csv by instruction set and microarchitecture (x86 SIMD levels, Arm
NEON and SVE widths). Either factor can be overridden when the detection is wrong (a turbo
clock, a Xeon Silver with one FMA unit).

Cores this process may use: :func:`usable_core_count` is the one definition the course uses (the
whole cores that CPU affinity and the cgroup CPU quota leave to this process); the report keeps
the fractional ``CPUInfo.usable_cores`` for the peak.

Where the files are read from (:class:`SystemPaths`): ``/proc``, ``/sys`` and ``/sys/fs/cgroup``,
unless the environment variable ``COURSE_SYSFS_ROOT`` names a folder holding fake ``proc/``,
``sys/`` and ``cgroup/`` trees (each one present replaces the real one; a missing one falls back
to the real one). Tests and ``tests/simulate.py`` use it to put a TPU on the PCI bus of a
machine that has none. ``COURSE_SIMULATED`` names the simulated runtime (see :func:`simulated`),
so that every lesson can say what was simulated rather than run.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import math
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "SystemPaths",
    "CPUInfo",
    "GPUInfo",
    "TPUInfo",
    "HardwareReport",
    "hardware_report",
    "cpu_info",
    "detect_runtime",
    "detect_gpus",
    "detect_tpu",
    "cgroup_cpu_quota",
    "cgroup_memory_limit",
    "usable_core_count",
    "importable",
    "simulated",
    "SYSFS_ROOT_VARIABLE",
    "SIMULATED_VARIABLE",
    "TPU_PCI_DEVICE_IDS",
]

#: Environment variable naming a folder of fake ``proc/``, ``sys/`` and ``cgroup/`` trees.
SYSFS_ROOT_VARIABLE = "COURSE_SYSFS_ROOT"
#: Environment variable naming the simulated runtime (set by tests/simulate.py).
SIMULATED_VARIABLE = "COURSE_SIMULATED"

#: Google's PCI vendor id and the device ids of its TPU chips (as JAX's hardware_utils lists
#: them). The vendor id alone also matches Google's virtual NIC, so the device id must match too.
GOOGLE_PCI_VENDOR = "0x1ae0"
TPU_PCI_DEVICE_IDS = {
    "0x0027": "TPU v2/v3",
    "0x0056": "TPU (plc)",
    "0x005e": "TPU v4",
    "0x0062": "TPU v5p",
    "0x0063": "TPU v5e",
    "0x006f": "TPU v6e",
    "0x0076": "TPU7x",
}


def _default_path(name: str, real: str) -> Path:
    """``$COURSE_SYSFS_ROOT/name`` when that folder exists, else the real path."""
    root = os.environ.get(SYSFS_ROOT_VARIABLE)
    if root and (Path(root) / name).is_dir():
        return Path(root) / name
    return Path(real)


@dataclass(frozen=True)
class SystemPaths:
    """Roots of the files the report reads; tests point them at a fake tree.

    The defaults are ``/proc``, ``/sys`` and ``/sys/fs/cgroup``, or the ``proc``, ``sys`` and
    ``cgroup`` folders under ``$COURSE_SYSFS_ROOT`` where they exist (read when the object is
    made, so a variable set before the first report counts).
    """

    proc: Path = field(default_factory=lambda: _default_path("proc", "/proc"))
    sys: Path = field(default_factory=lambda: _default_path("sys", "/sys"))
    cgroup: Path = field(default_factory=lambda: _default_path("cgroup", "/sys/fs/cgroup"))


def simulated(environ: Mapping[str, str] | None = None) -> str | None:
    """The simulated runtime this process runs in (``$COURSE_SIMULATED``), or None.

    ``tests/simulate.py`` sets it with a fake nvidia-smi, a blocked TensorFlow or a fake PCI
    bus, so that lessons say which devices were simulated and which really computed.
    """
    environ = os.environ if environ is None else environ
    return environ.get(SIMULATED_VARIABLE) or None


@dataclass
class CPUInfo:
    """The CPU as this process sees it, with its theoretical peak."""

    model: str | None = None
    vendor: str | None = None
    arch: str | None = None
    family: int | None = None
    model_number: int | None = None
    physical_cores: int | None = None
    logical_cores: int | None = None
    affinity_cores: int | None = None
    cgroup_quota_cores: float | None = None
    usable_cores: float | None = None
    simd: list[str] = field(default_factory=list)
    isa_id: str | None = None
    isa: str | None = None
    fp32_flops_per_cycle: int | None = None
    fp64_flops_per_cycle: int | None = None
    clock_ghz: float | None = None
    clock_source: str | None = None
    peak_gflops_fp32: float | None = None
    peak_gflops_fp64: float | None = None
    peak_formula: str | None = None
    notes: list[str] = field(default_factory=list)
    unknown: dict[str, str] = field(default_factory=dict)

    def implied_clock_ghz(self, measured_gflops: float, precision: str = "fp32") -> float | None:
        """The clock (GHz) at which the usable cores would deliver ``measured_gflops`` at full
        vector throughput: a lower bound on the clock they really ran at. When it exceeds
        ``clock_ghz``, the detected clock is too low (a turbo clock, or a virtual machine that
        reports its nominal one)."""
        per_cycle = getattr(self, f"{precision}_flops_per_cycle", None)
        if not per_cycle or not self.usable_cores:
            return None
        return measured_gflops / (self.usable_cores * per_cycle)


@dataclass
class GPUInfo:
    """One GPU as nvidia-smi (or an already started TensorFlow) reports it."""

    name: str
    memory_gb: float | None = None
    compute_capability: str | None = None
    driver: str | None = None
    source: str = "nvidia-smi"

    @property
    def tf32(self) -> bool:
        """True when the GPU has TF32 tensor cores (compute capability 8.0 or newer: Ampere,
        Ada, Hopper...). On such GPUs TensorFlow runs float32 matmuls as TF32 by default."""
        try:
            major = int(str(self.compute_capability).split(".")[0])
        except ValueError:
            return False
        return major >= 8


@dataclass
class TPUInfo:
    """TPU chips found on the PCI bus, or hinted by the environment."""

    chips: int = 0
    version: str | None = None
    source: str | None = None


@dataclass
class HardwareReport:
    """Everything :func:`hardware_report` learned; ``unknown`` says why a field is None."""

    runtime: str
    os: str | None
    python: str
    packages: dict[str, str | None]
    keras_backend: str | None
    cpu: CPUInfo
    memory_total_gb: float | None
    memory_available_gb: float | None
    memory_limit_gb: float | None
    gpus: list[GPUInfo]
    tpu: TPUInfo
    unknown: dict[str, str] = field(default_factory=dict)
    simulated: str | None = None  # the simulated runtime ($COURSE_SIMULATED), if any

    @property
    def accelerator(self) -> str:
        """``"tpu"``, ``"gpu"`` or ``"cpu"``: the fastest kind of device present."""
        if self.tpu.chips:
            return "tpu"
        return "gpu" if self.gpus else "cpu"

    @property
    def memory_usable_gb(self) -> float | None:
        """Memory this process can use: the smaller of available RAM and a cgroup limit."""
        values = [v for v in (self.memory_available_gb, self.memory_limit_gb) if v is not None]
        return min(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict of the report."""
        out = asdict(self)
        out["accelerator"] = self.accelerator
        out["memory_usable_gb"] = self.memory_usable_gb
        for gpu, data in zip(self.gpus, out["gpus"]):
            data["tf32"] = gpu.tf32
        return out

    def to_json(self, indent: int = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def rows(self) -> list[tuple[str, str, str]]:
        """(section, item, value) rows, the same ones the text and HTML views show."""
        cpu = self.cpu
        na = "unknown"

        def fmt(value: object, unit: str = "", spec: str = "") -> str:
            if value is None:
                return na
            text = format(value, spec) if spec else str(value)
            return f"{text} {unit}".strip()

        rows = [
            ("Runtime", "environment", self.runtime),
            *([("Runtime", "simulated", f"{self.simulated}: what is faked computes nothing; "
                "the CPU does the work")] if self.simulated else []),
            ("Runtime", "operating system", fmt(self.os)),
            ("Runtime", "Python", self.python),
        ]
        for name, version in self.packages.items():
            rows.append(("Runtime", name, version or "not installed"))
        rows.append(("Runtime", "Keras backend", fmt(self.keras_backend)))
        rows += [
            ("CPU", "model", fmt(cpu.model)),
            ("CPU", "architecture", fmt(cpu.arch)),
            ("CPU", "cores (physical / logical)",
             f"{fmt(cpu.physical_cores)} / {fmt(cpu.logical_cores)}"),
            ("CPU", "cores this process may use", fmt(cpu.usable_cores, spec="g")),
            ("CPU", "SIMD", ", ".join(cpu.simd) or na),
            ("CPU", "FLOPs/cycle/core (FP32 / FP64)",
             f"{fmt(cpu.fp32_flops_per_cycle)} / {fmt(cpu.fp64_flops_per_cycle)}"
             + (f"  [{cpu.isa}]" if cpu.isa else "")),
            ("CPU", "clock", fmt(cpu.clock_ghz, "GHz", ".2f")
             + (f"  ({cpu.clock_source})" if cpu.clock_source else "")),
            ("CPU", "theoretical peak FP32", fmt(cpu.peak_gflops_fp32, "GFLOP/s", ".1f")),
            ("CPU", "theoretical peak FP64", fmt(cpu.peak_gflops_fp64, "GFLOP/s", ".1f")),
            ("CPU", "peak formula", fmt(cpu.peak_formula)),
            ("Memory", "RAM total", fmt(self.memory_total_gb, "GB", ".1f")),
            ("Memory", "RAM available", fmt(self.memory_available_gb, "GB", ".1f")),
            ("Memory", "container limit", fmt(self.memory_limit_gb, "GB", ".1f")
             if self.memory_limit_gb is not None else "none"),
        ]
        if self.gpus:
            for i, gpu in enumerate(self.gpus):
                rows.append(("GPU", f"GPU {i}", f"{gpu.name}, {fmt(gpu.memory_gb, 'GB', '.1f')}, "
                             f"compute capability {fmt(gpu.compute_capability)}"
                             + (", TF32" if gpu.tf32 else "")))
        else:
            rows.append(("GPU", "GPUs", "none found"
                         + (f" ({self.unknown['gpus']})" if "gpus" in self.unknown else "")))
        rows.append(("TPU", "TPU", f"{self.tpu.chips} x {self.tpu.version} ({self.tpu.source})"
                     if self.tpu.chips else "none found"))
        for note in cpu.notes:
            rows.append(("Notes", "CPU", note))
        for key, reason in {**cpu.unknown, **self.unknown}.items():
            if key != "gpus":
                rows.append(("Notes", f"{key} unknown", reason))
        return rows

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(item) for _, item, _ in rows)
        lines, section = [], None
        for sec, item, value in rows:
            if sec != section:
                lines.append(f"{sec}")
                section = sec
            lines.append(f"  {item:<{width}}  {value}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body, section = [], None
        for sec, item, value in self.rows():
            if sec != section:
                body.append(f"<tr><th colspan='2' style='text-align:left'>{html.escape(sec)}"
                            "</th></tr>")
                section = sec
            body.append(f"<tr><td style='text-align:left'>{html.escape(item)}</td>"
                        f"<td style='text-align:left'>{html.escape(value)}</td></tr>")
        return "<table>" + "".join(body) + "</table>"


# --------------------------------------------------------------------------------------------
# Runtime and software
# --------------------------------------------------------------------------------------------

def detect_runtime(environ: Mapping[str, str] | None = None,
                   modules: Mapping[str, object] | None = None) -> str:
    """Return ``"colab"``, ``"kaggle"``, ``"binder"`` or ``"local"``."""
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    if "google.colab" in modules or "COLAB_RELEASE_TAG" in environ:
        return "colab"
    if "KAGGLE_KERNEL_RUN_TYPE" in environ or "KAGGLE_URL_BASE" in environ:
        return "kaggle"
    if any(key.startswith("BINDER_") for key in environ):
        return "binder"
    return "local"


def importable(module: str) -> bool:
    """True when ``import module`` can work here, without importing it (a module blocked with
    ``sys.modules[module] = None``, as on a simulated TensorFlow-less runtime, is not)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        import importlib.util

        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install
        return False


def _package_versions() -> dict[str, str | None]:
    """Versions of the frameworks that can be imported here (None: absent or blocked)."""
    versions: dict[str, str | None] = {}
    for name in ("tensorflow", "keras", "jax", "numpy"):
        try:
            versions[name] = metadata.version(name) if importable(name) else None
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _keras_backend(environ: Mapping[str, str]) -> str | None:
    keras = sys.modules.get("keras")
    if keras is not None:
        try:
            return keras.config.backend()
        except Exception:  # an odd or partial keras import
            pass
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"]
    config = Path(environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text())["backend"]
    except Exception:
        return "tensorflow"


# --------------------------------------------------------------------------------------------
# CPU
# --------------------------------------------------------------------------------------------

def _parse_proc_cpuinfo(text: str) -> dict[str, Any]:
    """Read the fields we need from /proc/cpuinfo text (x86 and Arm layouts)."""
    first: dict[str, str] = {}
    cores: set[tuple[str, str]] = set()
    processors = 0
    block: dict[str, str] = {}
    mhz: list[float] = []

    def close(block: dict[str, str]) -> None:
        if "physical id" in block and "core id" in block:
            cores.add((block["physical id"], block["core id"]))

    for line in text.splitlines():
        if not line.strip():
            close(block)
            block = {}
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        block[key] = value
        if key == "processor":
            processors += 1
        if key == "cpu MHz":
            try:
                mhz.append(float(value))
            except ValueError:
                pass
        first.setdefault(key, value)
    close(block)

    info: dict[str, Any] = {}
    info["model"] = first.get("model name") or first.get("Model") or first.get("cpu model")
    info["vendor"] = first.get("vendor_id") or first.get("CPU implementer")
    info["part"] = first.get("CPU part")
    flags = first.get("flags") or first.get("Features") or ""
    info["flags"] = set(flags.split())
    for key, name in (("cpu family", "family"), ("model", "model_number")):
        try:
            info[name] = int(first[key], 0)
        except (KeyError, ValueError):
            info[name] = None
    info["logical"] = processors or None
    info["physical"] = len(cores) or None
    info["mhz"] = max(mhz) if mhz else None
    return info


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroups(paths: SystemPaths) -> tuple[str | None, dict[str, str]]:
    """This process's cgroup: (the cgroup v2 path, {v1 controller: path}) from
    ``/proc/self/cgroup``."""
    unified, v1 = None, {}
    for line in (_read(paths.proc / "self" / "cgroup") or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            unified = path
        for controller in controllers.split(","):
            if controller:
                v1[controller] = path
    return unified, v1


def _up_to_root(path: str | None) -> list[Path]:
    """``a/b/c``, ``a/b``, ``a``, ``.``: a cgroup and its ancestors, relative to the mount."""
    relative = Path((path or "/").lstrip("/"))
    return [relative, *relative.parents] if str(relative) != "." else [Path(".")]


def _cgroup_files(paths: SystemPaths, controller: str, v2_name: str,
                  v1_names: tuple[str, ...]) -> list[tuple[Path, ...]]:
    """Files that may limit this process, from its own (possibly nested) cgroup up to the root.

    cgroup v2: ``<mount>/<own path>/<v2_name>`` and each ancestor's (the mount is the cgroup
    root, or ``unified/`` under it on a hybrid system). cgroup v1: the same walk in each
    hierarchy whose folder name lists ``controller`` (``cpu,cpuacct``...), giving the tuple of
    ``v1_names`` files at each level. A path that does not exist under the mount (a container
    that sees the host's cgroup names) is skipped; the mount's root is always read, which is a
    container's own cgroup.
    """
    unified, v1 = _own_cgroups(paths)
    found: list[tuple[Path, ...]] = []
    seen: set[Path] = set()
    for mount in (paths.cgroup, paths.cgroup / "unified"):
        for relative in _up_to_root(unified):
            candidate = mount / relative / v2_name
            if candidate not in seen:
                seen.add(candidate)
                found.append((candidate,))
    try:
        hierarchies = sorted(d for d in paths.cgroup.iterdir()
                             if controller in d.name.split(",") and d.is_dir())
    except OSError:
        hierarchies = []
    for mount in hierarchies:
        for relative in _up_to_root(v1.get(controller)):
            folder = mount / relative
            try:
                key = folder.resolve()
            except OSError:
                key = folder
            if key not in seen:  # cpu and cpuacct are often links to cpu,cpuacct
                seen.add(key)
                found.append(tuple(folder / name for name in v1_names))
    return found


def cgroup_cpu_quota(paths: SystemPaths | None = None) -> float | None:
    """CPUs' worth of time this process's cgroup allows, or None if unlimited.

    The smallest quota on the way from the process's own cgroup to the root (a Slurm job or a
    systemd slice is nested inside the container's cgroup): ``cpu.max`` in cgroup v2,
    ``cpu.cfs_quota_us / cpu.cfs_period_us`` in v1.
    """
    paths = SystemPaths() if paths is None else paths
    quotas = []
    for files in _cgroup_files(paths, "cpu", "cpu.max",
                               ("cpu.cfs_quota_us", "cpu.cfs_period_us")):
        texts = [_read(f) for f in files]
        try:
            if len(files) == 1 and texts[0]:  # v2: "quota period" or "max period"
                fields = texts[0].split()
                if len(fields) >= 2 and fields[0] != "max":
                    quotas.append(float(fields[0]) / float(fields[1]))
            elif len(files) == 2 and texts[0] and texts[1] and int(texts[0]) > 0:  # v1: -1
                quotas.append(int(texts[0]) / int(texts[1]))
        except (ValueError, ZeroDivisionError):
            pass
    return min(quotas) if quotas else None


def cgroup_memory_limit(paths: SystemPaths | None = None) -> float | None:
    """The memory limit (bytes) of this process's cgroup, or None if unlimited.

    The smallest ``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1) on the way from the
    process's own cgroup to the root, so a limit set on a nested cgroup (a Slurm job, a systemd
    slice) counts as well as the container's.
    """
    paths = SystemPaths() if paths is None else paths
    limits = []
    for files in _cgroup_files(paths, "memory", "memory.max", ("memory.limit_in_bytes",)):
        text = (_read(files[0]) or "").strip()
        if text.isdigit() and int(text) < 2**60:  # v1 writes a huge number for "no limit"
            limits.append(float(text))
    return min(limits) if limits else None


def _usable_cores(physical: int | None, logical: int | None, affinity: int | None,
                  quota: float | None) -> float | None:
    """Cores' worth this process may use: physical cores, limited by the CPUs its affinity
    allows (counted as whole cores when hardware threads share a core) and the cgroup quota."""
    if not physical:
        return None
    threads_per_core = max(1, round((logical or physical) / physical))
    limits = [float(physical)]
    if affinity:
        limits.append(affinity / threads_per_core)
    if quota:
        limits.append(quota)
    return round(min(limits), 2)


def _affinity() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _psutil_counts() -> tuple[int | None, int | None]:
    try:
        import psutil

        return psutil.cpu_count(logical=False), psutil.cpu_count(logical=True)
    except Exception:  # psutil missing or broken
        return None, os.cpu_count()


def usable_core_count(paths: SystemPaths | None = None) -> int:
    """How many cores this process may keep busy: the course's one definition (>= 1).

    Whole physical cores, limited by CPU affinity (``taskset``, Slurm's ``--cpus-per-task``,
    counted in cores where hardware threads share one) and by the cgroup CPU quota of this
    process's own cgroup and its ancestors (a container's ``--cpus``), rounded down: a quota of
    1.5 CPUs keeps one core busy, not two. Use it for thread and process counts; the report's
    ``CPUInfo.usable_cores`` keeps the fraction, for the peak.
    """
    paths = SystemPaths() if paths is None else paths
    parsed = _parse_proc_cpuinfo(_read(paths.proc / "cpuinfo") or "")
    physical, logical = _psutil_counts()
    logical = parsed.get("logical") or logical
    physical = parsed.get("physical") or physical or logical
    usable = _usable_cores(physical, logical, _affinity(), cgroup_cpu_quota(paths))
    if usable is None:
        return max(1, _affinity() or os.cpu_count() or 1)
    return max(1, math.floor(usable + 1e-9))


def _load_isa_table() -> dict[str, dict[str, Any]]:
    from utils import data

    table = data.load("cpu_peak")
    return {row["id"]: row for row in table.to_dict("records")}


_X86 = ("x86_64", "amd64", "i686", "i386", "x86")
_ARM64 = ("aarch64", "arm64", "armv8", "arm_8")

#: Arm cores by (implementer, part) from /proc/cpuinfo, and their cpu_peak.csv row.
_ARM_CORES = {
    ("0x41", "0xd0b"): ("neon_2fma", "Cortex-A76"),
    ("0x41", "0xd0c"): ("neon_2fma", "Neoverse N1"),
    ("0x41", "0xd49"): ("neon_2fma", "Neoverse N2"),
    ("0x41", "0xd40"): ("sve256_2fma", "Neoverse V1"),
    ("0x41", "0xd4f"): ("neon_4fma", "Neoverse V2"),
    ("0x46", "0x001"): ("sve512_2fma", "Fujitsu A64FX"),
}


def _choose_isa(arch: str | None, vendor: str | None, family: int | None,
                flags: set[str], *, part: str | None = None, model: str | None = None,
                sve_bytes: int | None = None) -> tuple[str | None, str | None]:
    """Pick the cpu_peak.csv row for this CPU: (id, note) or (None, reason)."""
    name = (arch or "").lower()
    if name in _ARM64:
        return _choose_arm_isa(vendor, part, model, flags, sve_bytes)
    if arch and name not in _X86:
        return None, (f"no FLOPs-per-cycle entry for {arch} in data/cpu_peak.csv; pass "
                      "fp32_flops_per_cycle= and fp64_flops_per_cycle= to set them")
    if "avx512f" in flags:
        if vendor == "AuthenticAMD" and family == 0x19:
            return "avx512_zen4", "AMD Zen 4 runs AVX-512 on 256-bit units"
        if vendor == "AuthenticAMD":
            return "avx512_2fma", ("assumed two 512-bit FMA units (AMD Zen 5 server); "
                                   "override fp32_flops_per_cycle if yours differs")
        return "avx512_2fma", ("assumed two AVX-512 FMA units (Xeon Gold/Platinum); Xeon "
                               "Silver/Bronze and client parts have one: fp32_flops_per_cycle=32")
    if {"avx2", "fma"} <= flags:
        return "avx2_fma", None
    if "avx" in flags:
        return "avx", None
    if "sse2" in flags:
        return "sse2", None
    return None, "no SIMD flags found, so the FLOPs per cycle are unknown"


def _choose_arm_isa(implementer: str | None, part: str | None, model: str | None,
                    flags: set[str], sve_bytes: int | None) -> tuple[str | None, str | None]:
    """The cpu_peak.csv row of a 64-bit Arm core: known cores by their part number, Apple's by
    name, others by their vector features (NEON is 128 bits wide; SVE's width is read from the
    kernel's default vector length)."""
    implementer, part = (implementer or "").lower(), (part or "").lower()
    known = _ARM_CORES.get((implementer, part))
    if known:
        return known[0], f"{known[1]}, recognised by its part number"
    if implementer == "0x61" or (model or "").startswith("Apple M"):
        return "neon_4fma", ("Apple M-series performance cores: four 128-bit FMA pipes; the "
                             "efficiency cores have fewer, and the matrix unit (AMX/SME) is not "
                             "counted")
    if "sve" in flags and sve_bytes in (32, 64):
        row = {32: "sve256_2fma", 64: "sve512_2fma"}[sve_bytes]
        return row, (f"SVE vectors of {sve_bytes * 8} bits; assumed two FMA pipes, override "
                     "fp32_flops_per_cycle if yours differs")
    if "asimd" in flags or "sve" in flags:
        return "neon_2fma", ("assumed two 128-bit FMA pipes (Cortex-A76, Neoverse N1); cores "
                             "with four (Neoverse V2, Apple M) have twice the peak: "
                             "fp32_flops_per_cycle=32")
    return None, "no NEON (asimd) or SVE feature found, so the FLOPs per cycle are unknown"


_SIMD_ORDER = ("sse2", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16",
               "avx512_fp16", "amx_bf16", "amx_tile", "asimd", "sve", "sve2")


def cpu_info(
    *,
    clock_ghz: float | None = None,
    fp32_flops_per_cycle: int | None = None,
    fp64_flops_per_cycle: int | None = None,
    paths: SystemPaths | None = None,
    use_cpuinfo_library: bool = True,
) -> CPUInfo:
    """Describe this CPU and compute its theoretical peak.

    Args:
        clock_ghz: use this clock instead of the detected one (for example the all-core turbo).
        fp32_flops_per_cycle, fp64_flops_per_cycle: use these instead of the table's values.
        paths: where /proc, /sys and the cgroup tree are (tests fake them).
        use_cpuinfo_library: fall back to py-cpuinfo when /proc/cpuinfo is missing or unreadable.
    """
    paths = SystemPaths() if paths is None else paths
    cpu = CPUInfo(arch=platform.machine() or None)
    text = _read(paths.proc / "cpuinfo")
    parsed = _parse_proc_cpuinfo(text) if text else {}
    if not text:
        cpu.unknown["proc_cpuinfo"] = f"{paths.proc / 'cpuinfo'} is missing or unreadable"
    if not parsed.get("model") and use_cpuinfo_library:
        parsed = {**parsed, **_from_cpuinfo_library(cpu)}
    cpu.model = parsed.get("model")
    cpu.vendor = parsed.get("vendor")
    cpu.family = parsed.get("family")
    cpu.model_number = parsed.get("model_number")
    flags: set[str] = parsed.get("flags") or set()
    cpu.simd = [f for f in _SIMD_ORDER if f in flags]
    if cpu.model is None:
        cpu.unknown["model"] = "neither /proc/cpuinfo nor py-cpuinfo named the CPU"

    # Cores: physical, logical, and what affinity and the cgroup quota let this process use.
    physical, logical = _psutil_counts()
    if logical is None:
        cpu.unknown["cores"] = "neither psutil nor os.cpu_count could count the cores"
    cpu.logical_cores = parsed.get("logical") or logical
    cpu.physical_cores = parsed.get("physical") or physical or cpu.logical_cores
    cpu.affinity_cores = _affinity() or cpu.logical_cores
    cpu.cgroup_quota_cores = cgroup_cpu_quota(paths)
    cpu.usable_cores = _usable_cores(cpu.physical_cores, cpu.logical_cores, cpu.affinity_cores,
                                     cpu.cgroup_quota_cores)
    if cpu.physical_cores:
        threads_per_core = max(1, round((cpu.logical_cores or cpu.physical_cores)
                                        / cpu.physical_cores))
        if threads_per_core > 1:
            cpu.notes.append(f"{threads_per_core} hardware threads share each core's FP units; "
                             "the peak counts physical cores")
        if cpu.cgroup_quota_cores and cpu.cgroup_quota_cores < cpu.physical_cores:
            cpu.notes.append(f"a cgroup quota limits this process to "
                             f"{cpu.cgroup_quota_cores:g} CPUs of time")
    else:
        cpu.unknown["usable_cores"] = "the number of cores is unknown"

    # FLOPs per cycle from data/cpu_peak.csv.
    sve_bytes = (_read(paths.proc / "sys" / "abi" / "sve_default_vector_length") or "").strip()
    isa_id, note = _choose_isa(cpu.arch, cpu.vendor, cpu.family, flags, part=parsed.get("part"),
                               model=cpu.model,
                               sve_bytes=int(sve_bytes) if sve_bytes.isdigit() else None)
    if isa_id:
        try:
            row = _load_isa_table()[isa_id]
            cpu.isa_id, cpu.isa = isa_id, row["isa"]
            cpu.fp32_flops_per_cycle = int(row["fp32_flops_per_cycle"])
            cpu.fp64_flops_per_cycle = int(row["fp64_flops_per_cycle"])
            if note:
                cpu.notes.append(note)
        except Exception as error:
            cpu.unknown["flops_per_cycle"] = f"data/cpu_peak.csv could not be read ({error})"
    elif note:
        cpu.unknown["flops_per_cycle"] = note
    if fp32_flops_per_cycle is not None:
        cpu.fp32_flops_per_cycle = fp32_flops_per_cycle
        cpu.notes.append(f"FP32 FLOPs per cycle set by the caller to {fp32_flops_per_cycle}")
    if fp64_flops_per_cycle is not None:
        cpu.fp64_flops_per_cycle = fp64_flops_per_cycle
        cpu.notes.append(f"FP64 FLOPs per cycle set by the caller to {fp64_flops_per_cycle}")
    if fp32_flops_per_cycle is not None or fp64_flops_per_cycle is not None:
        cpu.unknown.pop("flops_per_cycle", None)

    # Clock: the caller's, the nominal one in the model name, cpufreq, then /proc/cpuinfo.
    cpu.clock_ghz, cpu.clock_source = _clock(clock_ghz, cpu.model, parsed.get("mhz"), paths)
    if cpu.clock_source == "current clock in /proc/cpuinfo" and "hypervisor" in flags:
        cpu.notes.append("a virtual machine reports its nominal clock in /proc/cpuinfo; the "
                         "cores may run faster (turbo), so the real peak can be higher")
    if cpu.clock_ghz is None:
        cpu.unknown["clock"] = ("no clock in the model name, cpufreq or /proc/cpuinfo; "
                                "pass clock_ghz=")

    if cpu.usable_cores and cpu.clock_ghz:
        for precision in ("fp32", "fp64"):
            per_cycle = getattr(cpu, f"{precision}_flops_per_cycle")
            if per_cycle:
                setattr(cpu, f"peak_gflops_{precision}",
                        round(cpu.usable_cores * cpu.clock_ghz * per_cycle, 1))
        if cpu.fp32_flops_per_cycle:
            cpu.peak_formula = (f"{cpu.usable_cores:g} cores x {cpu.clock_ghz:.3g} GHz x "
                                f"{cpu.fp32_flops_per_cycle} FP32 FLOPs/cycle = "
                                f"{cpu.peak_gflops_fp32:.1f} GFLOP/s")
    if cpu.peak_gflops_fp32 is None:
        cpu.unknown["peak"] = "needs cores, clock and FLOPs per cycle (see the other notes)"
    return cpu


def _from_cpuinfo_library(cpu: CPUInfo) -> dict[str, Any]:
    try:
        import cpuinfo

        raw = cpuinfo.get_cpu_info()
    except Exception as error:
        cpu.unknown["cpuinfo_library"] = f"py-cpuinfo failed ({error})"
        return {}
    hz = (raw.get("hz_advertised") or [0])[0] or (raw.get("hz_actual") or [0])[0]
    return {
        "model": raw.get("brand_raw") or None,
        "vendor": raw.get("vendor_id_raw") or None,
        "family": raw.get("family"),
        "model_number": raw.get("model"),
        "flags": set(raw.get("flags") or []),
        "mhz": hz / 1e6 if hz else None,
    }


def _clock(override: float | None, model: str | None, mhz: float | None,
           paths: SystemPaths) -> tuple[float | None, str | None]:
    if override is not None:
        return float(override), "set by the caller"
    match = re.search(r"@\s*([\d.]+)\s*GHz", model or "")
    if match:
        return float(match.group(1)), "nominal clock in the model name"
    cpufreq = paths.sys / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    for name, label in (("base_frequency", "cpufreq base frequency"),
                        ("cpuinfo_max_freq", "cpufreq maximum (turbo) frequency")):
        text = (_read(cpufreq / name) or "").strip()
        if text.isdigit() and int(text) > 0:
            return int(text) / 1e6, label
    if mhz:
        return round(mhz / 1000, 3), "current clock in /proc/cpuinfo"
    return None, None


# --------------------------------------------------------------------------------------------
# Accelerators
# --------------------------------------------------------------------------------------------

def detect_gpus(timeout: float = 10.0) -> tuple[list[GPUInfo], str | None]:
    """GPUs from ``nvidia-smi`` (no CUDA context is created). Returns (gpus, reason if none).

    If TensorFlow is already imported and nvidia-smi is missing, TensorFlow's own list is used.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        tf_gpus = _gpus_from_started_tensorflow()
        if tf_gpus:
            return tf_gpus, None
        return [], "nvidia-smi not found (no NVIDIA driver)"
    query = "name,memory.total,compute_cap,driver_version"
    try:
        result = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [], f"nvidia-smi failed ({error})"
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        return [], f"nvidia-smi failed: {message[0] if message else result.returncode}"
    gpus = []
    for line in result.stdout.strip().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if not fields or not fields[0]:
            continue
        fields += [""] * (4 - len(fields))
        try:
            memory = round(float(fields[1]) / 1024, 1)  # MiB -> GiB
        except ValueError:
            memory = None
        gpus.append(GPUInfo(name=fields[0], memory_gb=memory,
                            compute_capability=fields[2] or None, driver=fields[3] or None))
    return gpus, None if gpus else "nvidia-smi listed no GPUs"


def _gpus_from_started_tensorflow() -> list[GPUInfo]:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return []
    try:
        gpus = []
        for device in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(device)
            cc = details.get("compute_capability")
            gpus.append(GPUInfo(name=details.get("device_name", device.name),
                                compute_capability=".".join(map(str, cc)) if cc else None,
                                source="tensorflow"))
        return gpus
    except Exception:
        return []


def detect_tpu(paths: SystemPaths | None = None,
               environ: Mapping[str, str] | None = None) -> TPUInfo:
    """TPU chips from PCI ids (vendor 0x1ae0 and a TPU device id); starts no runtime."""
    paths = SystemPaths() if paths is None else paths
    environ = os.environ if environ is None else environ
    chips, version = 0, None
    devices = paths.sys / "bus" / "pci" / "devices"
    try:
        entries = sorted(devices.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        vendor = (_read(entry / "vendor") or "").strip().lower()
        if vendor != GOOGLE_PCI_VENDOR:
            continue
        device = (_read(entry / "device") or "").strip().lower()
        if device in TPU_PCI_DEVICE_IDS:
            chips += 1
            version = TPU_PCI_DEVICE_IDS[device]
    if chips:
        return TPUInfo(chips=chips, version=version, source="PCI bus")
    for key in ("TPU_ACCELERATOR_TYPE", "COLAB_TPU_ADDR", "TPU_NAME"):
        if environ.get(key):
            return TPUInfo(chips=1, version=environ.get("TPU_ACCELERATOR_TYPE") or "TPU",
                           source=f"environment variable {key}")
    return TPUInfo()


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

def hardware_report(
    *,
    clock_ghz: float | None = None,
    fp32_flops_per_cycle: int | None = None,
    fp64_flops_per_cycle: int | None = None,
    paths: SystemPaths | None = None,
    environ: Mapping[str, str] | None = None,
) -> HardwareReport:
    """Report where this code runs. Never raises; unknown fields are None with a reason.

    Args:
        clock_ghz: override the detected CPU clock (GHz) used for the peak.
        fp32_flops_per_cycle, fp64_flops_per_cycle: override the FLOPs per cycle per core.
        paths: where /proc, /sys and the cgroup tree are (tests fake them).
        environ: environment variables to read (default ``os.environ``).
    """
    paths = SystemPaths() if paths is None else paths
    environ = os.environ if environ is None else environ
    unknown: dict[str, str] = {}
    try:
        cpu = cpu_info(clock_ghz=clock_ghz, fp32_flops_per_cycle=fp32_flops_per_cycle,
                       fp64_flops_per_cycle=fp64_flops_per_cycle, paths=paths)
    except Exception as error:  # never let the report fail a notebook
        cpu = CPUInfo(unknown={"cpu": f"CPU detection failed ({error!r})"})

    total = available = None
    try:
        import psutil

        vm = psutil.virtual_memory()
        total, available = round(vm.total / 1e9, 2), round(vm.available / 1e9, 2)
    except Exception as error:
        unknown["memory"] = f"psutil could not read memory ({error})"
    limit = cgroup_memory_limit(paths)

    try:
        gpus, reason = detect_gpus()
    except Exception as error:
        gpus, reason = [], f"GPU detection failed ({error!r})"
    if reason:
        unknown["gpus"] = reason
    try:
        tpu = detect_tpu(paths, environ)
    except Exception as error:
        tpu = TPUInfo()
        unknown["tpu"] = f"TPU detection failed ({error!r})"

    try:
        os_name = platform.platform(terse=True)
    except Exception:
        os_name = None
    return HardwareReport(
        runtime=detect_runtime(environ),
        os=os_name,
        python=platform.python_version(),
        packages=_package_versions(),
        keras_backend=_keras_backend(environ),
        cpu=cpu,
        memory_total_gb=total,
        memory_available_gb=available,
        memory_limit_gb=round(limit / 1e9, 2) if limit else None,
        gpus=gpus,
        tpu=tpu,
        unknown=unknown,
        simulated=simulated(environ),
    )
