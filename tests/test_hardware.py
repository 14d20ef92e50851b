"""utils.hardware on real and faked machines: it must describe, never raise."""

from __future__ import annotations

import json
import os
import platform
import stat
import tomllib

import pytest
from conftest import INTEL_CORE, ZEN4_CORE

import utils
from utils import hardware
from utils.hardware import (GPUInfo, SystemPaths, cpu_info, detect_gpus, detect_runtime,
                            detect_tpu, hardware_report, usable_core_count)


def test_intel_with_hyperthreading_counts_physical_cores(fake_system, two_cpus):
    fake_system.cpuinfo(INTEL_CORE, 2)  # Colab-like: 1 core, 2 threads
    cpu = cpu_info(paths=fake_system.paths)
    assert cpu.model == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert (cpu.physical_cores, cpu.logical_cores) == (1, 2)
    assert cpu.usable_cores == 1
    assert cpu.isa_id == "avx512_2fma" and cpu.fp32_flops_per_cycle == 64
    assert cpu.clock_ghz == 2.2 and "model name" in cpu.clock_source
    assert cpu.peak_gflops_fp32 == pytest.approx(1 * 2.2 * 64)
    assert cpu.peak_gflops_fp64 == pytest.approx(1 * 2.2 * 32)
    assert "140.8 GFLOP/s" in cpu.peak_formula
    assert any("hardware threads" in note for note in cpu.notes)


def test_zen4_uses_256_bit_datapaths_and_flags_vm_clock(fake_system, two_cpus, monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)
    fake_system.cpuinfo(ZEN4_CORE, 2)
    cpu = cpu_info(paths=fake_system.paths)
    assert cpu.isa_id == "avx512_zen4"
    assert (cpu.fp32_flops_per_cycle, cpu.fp64_flops_per_cycle) == (32, 16)
    assert cpu.clock_ghz == pytest.approx(2.596)
    assert cpu.peak_gflops_fp32 == pytest.approx(2 * 2.596 * 32, rel=1e-3)
    assert any("virtual machine" in note for note in cpu.notes)
    # 180 GFLOP/s measured on 2 cores x 32 FLOPs/cycle needs at least 2.81 GHz.
    assert cpu.implied_clock_ghz(180.0) == pytest.approx(180 / 64)


def test_overrides_replace_clock_and_flops_per_cycle(fake_system, two_cpus):
    fake_system.cpuinfo(INTEL_CORE, 2)
    cpu = cpu_info(paths=fake_system.paths, clock_ghz=3.0, fp32_flops_per_cycle=32,
                   fp64_flops_per_cycle=16)
    assert cpu.clock_source == "set by the caller"
    assert cpu.peak_gflops_fp32 == pytest.approx(96.0)
    assert cpu.peak_gflops_fp64 == pytest.approx(48.0)


def test_cpufreq_base_frequency_beats_proc_cpuinfo(fake_system, two_cpus):
    fake_system.cpuinfo(ZEN4_CORE, 2)
    fake_system.write("sys/devices/system/cpu/cpu0/cpufreq/base_frequency", "3100000\n")
    cpu = cpu_info(paths=fake_system.paths)
    assert cpu.clock_ghz == pytest.approx(3.1)
    assert cpu.clock_source == "cpufreq base frequency"


def test_cgroup_v2_quota_limits_usable_cores(fake_system, two_cpus, monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)
    fake_system.cpuinfo(ZEN4_CORE, 2)
    fake_system.write("proc/self/cgroup", "0::/kubepods/pod1\n")
    fake_system.write("cgroup/kubepods/pod1/cpu.max", "150000 100000\n")
    fake_system.write("cgroup/memory.max", str(2 * 1024**3) + "\n")
    cpu = cpu_info(paths=fake_system.paths)
    assert cpu.cgroup_quota_cores == 1.5
    assert cpu.usable_cores == 1.5
    assert cpu.peak_gflops_fp32 == pytest.approx(1.5 * 2.596 * 32, rel=1e-3)
    assert any("cgroup quota" in note for note in cpu.notes)
    assert hardware.cgroup_memory_limit(fake_system.paths) == 2 * 1024**3


def test_cgroup_v1_quota_and_unlimited_values(fake_system):
    fake_system.write("cgroup/cpu.max", "max 100000\n")
    assert hardware.cgroup_cpu_quota(fake_system.paths) is None
    fake_system.write("cgroup/cpu,cpuacct/cpu.cfs_quota_us", "50000\n")
    fake_system.write("cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert hardware.cgroup_cpu_quota(fake_system.paths) == 0.5
    fake_system.write("cgroup/memory/memory.limit_in_bytes", str(2**63 - 4096))
    assert hardware.cgroup_memory_limit(fake_system.paths) is None


def test_missing_proc_cpuinfo_falls_back_to_py_cpuinfo(fake_system, two_cpus, monkeypatch):
    import cpuinfo

    monkeypatch.setattr(cpuinfo, "get_cpu_info", lambda: {
        "brand_raw": "Fake CPU 9000", "vendor_id_raw": "GenuineIntel", "family": 6,
        "model": 85, "flags": ["sse2", "avx", "avx2", "fma"], "hz_advertised": [3_000_000_000, 0]})
    cpu = cpu_info(paths=fake_system.paths)
    assert cpu.model == "Fake CPU 9000"
    assert "proc_cpuinfo" in cpu.unknown
    assert cpu.isa_id == "avx2_fma"
    assert cpu.clock_ghz == pytest.approx(3.0)


def test_missing_proc_cpuinfo_and_library_failure_gives_reasons(fake_system, monkeypatch):
    import cpuinfo

    def broken() -> dict:
        raise OSError("no cpuid here")

    monkeypatch.setattr(cpuinfo, "get_cpu_info", broken)
    cpu = cpu_info(paths=fake_system.paths)
    assert cpu.model is None and "model" in cpu.unknown
    assert "cpuinfo_library" in cpu.unknown
    assert cpu.peak_gflops_fp32 is None and "peak" in cpu.unknown


@pytest.mark.parametrize("content", [
    b"\xff\xfe\x00garbage\x00",
    "this is not : a cpuinfo\nprocessor\t: x\ncpu MHz : fast\n\n\n",
    "",
])
def test_odd_proc_cpuinfo_never_raises(fake_system, monkeypatch, content):
    import cpuinfo

    monkeypatch.setattr(cpuinfo, "get_cpu_info", lambda: {})
    fake_system.write("proc/cpuinfo", content)
    report = hardware_report(paths=fake_system.paths, environ={})
    json.loads(report.to_json())
    assert str(report) and report._repr_html_().startswith("<table>")


def _arm_cpuinfo(implementer: str, part: str, features: str, cores: int = 4) -> str:
    return "".join(f"processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: {features}\n"
                   f"CPU implementer\t: {implementer}\nCPU architecture: 8\nCPU variant\t: 0x1\n"
                   f"CPU part\t: {part}\nCPU revision\t: 1\n\n" for n in range(cores))


@pytest.mark.parametrize("implementer, part, features, sve_bytes, isa_id, fp32, fp64, said", [
    ("0x41", "0xd0c", "fp asimd evtstrm aes crc32 atomics", None, "neon_2fma", 16, 8,
     "Neoverse N1"),                                         # Graviton2, Ampere Altra
    ("0x41", "0xd40", "fp asimd sve bf16", 32, "sve256_2fma", 32, 16, "Neoverse V1"),
    ("0x41", "0xd4f", "fp asimd sve sve2", 16, "neon_4fma", 32, 16, "Neoverse V2"),  # Grace
    ("0x46", "0x001", "fp asimd sve", 64, "sve512_2fma", 64, 32, "A64FX"),           # Fugaku
    ("0x61", "0x023", "fp asimd", None, "neon_4fma", 32, 16, "Apple M-series"),
    ("0x48", "0xd01", "fp asimd sve", 32, "sve256_2fma", 32, 16, "SVE vectors of 256 bits"),
    ("0x41", "0xd08", "fp asimd", None, "neon_2fma", 16, 8, "assumed two 128-bit FMA pipes"),
])
def test_arm_peak_from_the_cpu_features(fake_system, monkeypatch, implementer, part, features,
                                        sve_bytes, isa_id, fp32, fp64, said):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    fake_system.write("proc/cpuinfo", _arm_cpuinfo(implementer, part, features))
    if sve_bytes:
        fake_system.write("proc/sys/abi/sve_default_vector_length", f"{sve_bytes}\n")
    cpu = cpu_info(paths=fake_system.paths, clock_ghz=2.5, use_cpuinfo_library=False)
    assert (cpu.isa_id, cpu.fp32_flops_per_cycle, cpu.fp64_flops_per_cycle) == (isa_id, fp32, fp64)
    assert any(said in note for note in cpu.notes)
    assert cpu.peak_gflops_fp32 == pytest.approx(cpu.usable_cores * 2.5 * fp32)


def test_arm_without_vector_features_or_other_architectures_give_reasons(fake_system,
                                                                        monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    fake_system.write("proc/cpuinfo", _arm_cpuinfo("0x41", "0xfff", "fp"))
    cpu = cpu_info(paths=fake_system.paths, clock_ghz=2.5, use_cpuinfo_library=False)
    assert cpu.fp32_flops_per_cycle is None and "NEON" in cpu.unknown["flops_per_cycle"]
    cpu = cpu_info(paths=fake_system.paths, clock_ghz=2.5, fp32_flops_per_cycle=16,
                   use_cpuinfo_library=False)
    assert cpu.peak_gflops_fp32 == pytest.approx(cpu.usable_cores * 2.5 * 16)
    assert "flops_per_cycle" not in cpu.unknown
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    cpu = cpu_info(paths=fake_system.paths, clock_ghz=2.5, use_cpuinfo_library=False)
    assert "riscv64" in cpu.unknown["flops_per_cycle"]


def test_fake_tpu_on_pci_bus_is_found(fake_system):
    fake_system.pci_device("0000:00:04.0", "0x1ae0", "0x0063")
    fake_system.pci_device("0000:00:05.0", "0x1ae0", "0x0063")
    tpu = detect_tpu(fake_system.paths, environ={})
    assert (tpu.chips, tpu.version, tpu.source) == (2, "TPU v5e", "PCI bus")


def test_google_nic_is_not_a_tpu(fake_system):
    fake_system.pci_device("0000:00:04.0", "0x1ae0", "0x0042")  # gVNIC: Google vendor, not a TPU
    fake_system.pci_device("0000:00:05.0", "0x8086", "0x0063")  # TPU device id, other vendor
    assert detect_tpu(fake_system.paths, environ={}).chips == 0


def test_tpu_hinted_by_environment(fake_system):
    tpu = detect_tpu(fake_system.paths, environ={"TPU_ACCELERATOR_TYPE": "v5litepod-1"})
    assert tpu.chips == 1 and "TPU_ACCELERATOR_TYPE" in tpu.source


def _fake_tool(folder, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_no_nvidia_smi_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    gpus, reason = detect_gpus()
    assert gpus == [] and "nvidia-smi not found" in reason


def test_fake_nvidia_smi_lists_gpus(tmp_path, monkeypatch):
    _fake_tool(tmp_path, "nvidia-smi", 'echo "Tesla V100-SXM2-16GB, 16384, 7.0, 535.1"\n'
               'echo "Tesla V100-SXM2-16GB, 16384, 7.0, 535.1"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    gpus, reason = detect_gpus()
    assert reason is None and len(gpus) == 2
    assert gpus[0].name == "Tesla V100-SXM2-16GB"
    assert gpus[0].memory_gb == 16.0 and gpus[0].compute_capability == "7.0"
    report = hardware_report(environ={})
    assert report.accelerator == "gpu" and "V100" in str(report)


def test_failing_nvidia_smi_is_a_reason_not_an_error(tmp_path, monkeypatch):
    _fake_tool(tmp_path, "nvidia-smi", 'echo "NVIDIA-SMI has failed: no driver" >&2\nexit 9\n')
    monkeypatch.setenv("PATH", str(tmp_path))
    gpus, reason = detect_gpus()
    assert gpus == [] and "NVIDIA-SMI has failed" in reason


@pytest.mark.parametrize("environ, modules, expected", [
    ({}, {"google.colab": object()}, "colab"),
    ({"COLAB_RELEASE_TAG": "x"}, {}, "colab"),
    ({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, {}, "kaggle"),
    ({"BINDER_LAUNCH_HOST": "https://mybinder.org/"}, {}, "binder"),
    ({}, {}, "local"),
])
def test_runtime_detection(environ, modules, expected):
    assert detect_runtime(environ, modules) == expected


def test_report_on_this_machine_is_complete_and_serialisable():
    report = hardware_report()
    data = json.loads(report.to_json())
    assert data["python"] == platform.python_version()
    assert data["accelerator"] in ("cpu", "gpu", "tpu")
    assert data["packages"]["tensorflow"] == _pinned("tensorflow")
    assert report.cpu.logical_cores and report.cpu.logical_cores >= 1
    if report.cpu.peak_gflops_fp32 is None:  # allowed only with a stated reason
        assert "peak" in report.cpu.unknown
    sections = {section for section, _, _ in report.rows()}
    assert {"Runtime", "CPU", "Memory", "GPU", "TPU"} <= sections


def _pinned(name: str) -> str:
    """The version pyproject.toml pins for ``name`` (``name==X``)."""
    project = tomllib.loads((utils.REPO_ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        package, sep, version = requirement.partition("==")
        if package.strip().lower() == name and sep:
            return version.strip()
    raise AssertionError(f"pyproject.toml pins no {name}")


# --------------------------------------------------------------------------------------------
# Nested cgroups: a Slurm job or a systemd slice inside a container
# --------------------------------------------------------------------------------------------

def test_nested_cgroup_v2_memory_and_cpu_limits_are_found(fake_system):
    fake_system.write("proc/self/cgroup", "0::/system.slice/slurmstepd.scope/job_42/step_0\n")
    fake_system.write("cgroup/memory.max", "max\n")  # the container: no limit
    fake_system.write("cgroup/system.slice/memory.max", str(8 * 2**30) + "\n")
    fake_system.write("cgroup/system.slice/slurmstepd.scope/job_42/memory.max",
                      str(3 * 2**30) + "\n")  # the job's limit, two levels down
    fake_system.write("cgroup/system.slice/slurmstepd.scope/job_42/step_0/memory.max", "max\n")
    fake_system.write("cgroup/system.slice/cpu.max", "400000 100000\n")
    fake_system.write("cgroup/system.slice/slurmstepd.scope/job_42/cpu.max", "max 100000\n")
    fake_system.write("cgroup/system.slice/slurmstepd.scope/job_42/step_0/cpu.max",
                      "250000 100000\n")
    assert hardware.cgroup_memory_limit(fake_system.paths) == 3 * 2**30
    assert hardware.cgroup_cpu_quota(fake_system.paths) == 2.5


def test_nested_cgroup_v1_hierarchies_are_walked(fake_system):
    fake_system.write("proc/self/cgroup",
                      "4:memory:/slurm/uid_0/job_7/step_batch\n3:cpu,cpuacct:/slurm/uid_0/job_7\n"
                      "0::/\n")
    fake_system.write("cgroup/memory/memory.limit_in_bytes", str(2**63 - 4096))
    fake_system.write("cgroup/memory/slurm/uid_0/job_7/memory.limit_in_bytes", str(2**31))
    fake_system.write("cgroup/memory/slurm/uid_0/job_7/step_batch/memory.limit_in_bytes",
                      str(2**63 - 4096))
    fake_system.write("cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    fake_system.write("cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    fake_system.write("cgroup/cpu,cpuacct/slurm/uid_0/job_7/cpu.cfs_quota_us", "300000\n")
    fake_system.write("cgroup/cpu,cpuacct/slurm/uid_0/job_7/cpu.cfs_period_us", "100000\n")
    assert hardware.cgroup_memory_limit(fake_system.paths) == 2**31
    assert hardware.cgroup_cpu_quota(fake_system.paths) == 3.0


def test_cgroup_paths_of_the_host_fall_back_to_the_container_root(fake_system):
    """Without a cgroup namespace a container sees the host's names for its cgroup, which do
    not exist under its own mount: the mount's root (the container's cgroup) still counts."""
    fake_system.write("proc/self/cgroup", "0::/docker/0123abcd\n")
    fake_system.write("cgroup/memory.max", str(2**30) + "\n")
    fake_system.write("cgroup/cpu.max", "50000 100000\n")
    assert hardware.cgroup_memory_limit(fake_system.paths) == 2**30
    assert hardware.cgroup_cpu_quota(fake_system.paths) == 0.5


def test_no_cgroup_at_all_means_no_limit(fake_system):
    assert hardware.cgroup_memory_limit(fake_system.paths) is None
    assert hardware.cgroup_cpu_quota(fake_system.paths) is None


@pytest.mark.parametrize("affinity, quota, expected", [
    ({0, 1, 2, 3}, None, 4),       # the whole machine
    ({0, 1}, None, 2),             # taskset / Slurm --cpus-per-task=2
    ({0, 1, 2, 3}, "150000 100000", 1),  # 1.5 CPUs of time keep one core busy
    ({0, 1, 2, 3}, "20000 100000", 1),   # never below one
    ({0, 1, 2}, "250000 100000", 2),
])
def test_usable_core_count_respects_affinity_and_quota(fake_system, monkeypatch, affinity,
                                                       quota, expected):
    import psutil

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: affinity, raising=False)
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 4)
    fake_system.write("proc/self/cgroup", "0::/job\n")
    if quota:
        fake_system.write("cgroup/job/cpu.max", quota + "\n")
    assert usable_core_count(fake_system.paths) == expected
    cpu = cpu_info(paths=fake_system.paths, use_cpuinfo_library=False)
    assert max(1, int(cpu.usable_cores)) == expected  # the report's fraction agrees


def test_usable_core_count_counts_cores_not_hardware_threads(fake_system, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    fake_system.cpuinfo(INTEL_CORE, 2)  # one core, two threads (Colab's CPU)
    assert usable_core_count(fake_system.paths) == 1


def test_usable_core_count_on_this_machine_is_sane():
    count = usable_core_count()
    assert 1 <= count <= (os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------
# COURSE_SYSFS_ROOT and COURSE_SIMULATED
# --------------------------------------------------------------------------------------------

def test_sysfs_root_variable_moves_only_the_trees_it_holds(fake_system, monkeypatch):
    fake_system.pci_device("0000:00:04.0", "0x1ae0", "0x0063")
    (fake_system.paths.proc).rmdir()  # no fake proc/: the real one is used
    monkeypatch.setenv("COURSE_SYSFS_ROOT", str(fake_system.root))
    paths = SystemPaths()
    assert paths.sys == fake_system.paths.sys and paths.cgroup == fake_system.paths.cgroup
    assert paths.proc == hardware.Path("/proc")
    tpu = detect_tpu(environ={})  # the default paths follow the variable
    assert (tpu.chips, tpu.version) == (1, "TPU v5e")
    monkeypatch.delenv("COURSE_SYSFS_ROOT")
    assert SystemPaths().sys == hardware.Path("/sys")


def test_simulated_runtime_is_named_in_the_report(fake_system, monkeypatch):
    monkeypatch.setenv("COURSE_SIMULATED", "colab-t4")
    report = hardware_report(paths=fake_system.paths)
    assert report.simulated == "colab-t4"
    assert ("Runtime", "simulated") in [(sec, item) for sec, item, _ in report.rows()]
    assert hardware.simulated({}) is None


# --------------------------------------------------------------------------------------------
# TF32
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("capability, expected", [
    ("7.5", False), ("7.0", False), ("8.0", True), ("8.6", True), ("8.9", True),
    ("9.0", True), ("10.0", True), (None, False), ("", False), ("n/a", False),
])
def test_tf32_from_compute_capability(capability, expected):
    assert GPUInfo("GPU", compute_capability=capability).tf32 is expected


def test_report_marks_tf32_gpus(tmp_path, monkeypatch):
    _fake_tool(tmp_path, "nvidia-smi", 'echo "NVIDIA A100-SXM4-40GB, 40960, 8.0, 550.54"\n'
               'echo "Tesla T4, 15360, 7.5, 550.54"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    report = hardware_report(environ={})
    assert [gpu["tf32"] for gpu in report.to_dict()["gpus"]] == [True, False]
    assert "compute capability 8.0, TF32" in str(report)
