"""utils.hardware on real and faked machines: it must describe, never raise."""

from __future__ import annotations

import json
import os
import platform
import stat

import pytest
from conftest import INTEL_CORE, ZEN4_CORE

from utils import hardware
from utils.hardware import cpu_info, detect_gpus, detect_runtime, detect_tpu, hardware_report


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


def test_arm_has_no_flops_entry_unless_given(fake_system, monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    fake_system.write("proc/cpuinfo", "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n"
                      "model name\t: ARM Neoverse-N1\n\n")
    cpu = cpu_info(paths=fake_system.paths, clock_ghz=2.5)
    assert cpu.fp32_flops_per_cycle is None
    assert "aarch64" in cpu.unknown["flops_per_cycle"]
    cpu = cpu_info(paths=fake_system.paths, clock_ghz=2.5, fp32_flops_per_cycle=16)
    assert cpu.peak_gflops_fp32 == pytest.approx(cpu.usable_cores * 2.5 * 16)
    assert "flops_per_cycle" not in cpu.unknown


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
    assert data["packages"]["tensorflow"] == "2.21.0"
    assert report.cpu.logical_cores and report.cpu.logical_cores >= 1
    if report.cpu.peak_gflops_fp32 is None:  # allowed only with a stated reason
        assert "peak" in report.cpu.unknown
    sections = {section for section, _, _ in report.rows()}
    assert {"Runtime", "CPU", "Memory", "GPU", "TPU"} <= sections
