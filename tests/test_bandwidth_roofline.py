"""utils.bandwidth (STREAM kernels) and utils.roofline (the model and its plot)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from utils import data  # noqa: E402
from utils.bandwidth import BYTES_PER_ELEMENT, stream  # noqa: E402
from utils.errors import ArgumentError  # noqa: E402
from utils.roofline import (  # noqa: E402
    KernelPoint,
    Roof,
    attainable_gflops,
    elementwise_intensity,
    matmul_intensity,
    plot_matmul_sweep,
    plot_roofline,
    reference_peaks,
    reference_roofs,
)


@pytest.mark.parametrize("kernel", sorted(BYTES_PER_ELEMENT))
def test_stream_kernels_compute_and_report_a_rate(kernel):
    result = stream(kernel, array_mb=4, min_time=0.01, min_repeats=2, threads=2)
    assert result.gb_per_s > 0.05
    assert result.threads == 2 and result.array_mb == pytest.approx(4.0, rel=0.01)
    assert f"STREAM {kernel}" in str(result)
    assert result.best_gb_per_s >= result.gb_per_s


def test_stream_rejects_bad_arguments():
    with pytest.raises(ArgumentError, match="kernel = 'fma' is an unknown STREAM kernel"):
        stream("fma")
    with pytest.raises(ArgumentError, match="array_mb = 0 must be a number > 0"):
        stream(array_mb=0)
    with pytest.raises(ArgumentError, match="threads = 0 must be a whole number >= 1"):
        stream(threads=0)


def test_roofline_bounds_and_ridge():
    v100 = Roof("V100", peak_gflops=15_700, bandwidth_gbs=900)
    assert v100.ridge == pytest.approx(17.44, rel=1e-3)
    assert attainable_gflops(v100, 1.0) == 900
    assert attainable_gflops(v100, 1000.0) == 15_700
    with pytest.raises(ArgumentError, match="intensity = 0 must be a number > 0"):
        attainable_gflops(v100, 0)


def test_intensities():
    assert matmul_intensity(1024) == pytest.approx(2 * 1024 / 12)
    assert elementwise_intensity() == pytest.approx(1 / 12)
    assert matmul_intensity(1024, bytes_per_element=2) == 2 * matmul_intensity(1024)


def test_plot_roofline_draws_roofs_and_points():
    fig, ax = plt.subplots()
    plot_roofline(ax, [Roof("this CPU", 150, 25, measured=True), Roof("H100", 66_900, 3350)],
                  [KernelPoint("matmul", 170, 140.0), KernelPoint("add", 1 / 12)])
    labels = [line.get_label() for line in ax.get_lines()]
    assert "this CPU (measured)" in labels and "H100 (reference)" in labels
    plot_roofline(ax, [Roof("V100", 15_700, 900), Roof("H100", 66_900, 3350)])
    styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
    assert styles["V100 (reference)"] != styles["H100 (reference)"]
    assert ax.get_xscale() == "log" and "FLOP/byte" in ax.get_xlabel()
    plt.close(fig)


def test_reference_roofs_and_peaks_come_from_the_accelerators_file():
    table = data.load("accelerators").set_index("device")
    roofs = reference_roofs(table, [("GTX 580", "fp32"), ("Tesla T4", "16-bit tensor"),
                                    ("GTX 580", "16-bit tensor"), ("No such GPU", "fp32")])
    assert [roof.name for roof in roofs] == ["GTX 580 fp32", "Tesla T4 16-bit tensor"]
    gtx, t4 = roofs
    assert gtx.peak_gflops == pytest.approx(1e3 * table.loc["GTX 580", "fp32_tflops"])
    assert gtx.bandwidth_gbs == table.loc["GTX 580", "mem_bw_gbs"]
    assert t4.ridge == pytest.approx(1e3 * table.loc["Tesla T4", "fp16_bf16_tensor_tflops"]
                                     / table.loc["Tesla T4", "mem_bw_gbs"])
    peaks = dict(reference_peaks(table, [("H100 SXM5", "fp32"), ("TPU v5e", "fp32"),
                                         ("A100 SXM4 80GB", "tf32 tensor"), ("Tesla T4", "tf32 tensor")]))
    assert list(peaks) == ["H100 SXM5 fp32", "A100 SXM4 80GB tf32 tensor"]  # no TPU fp32, no T4 TF32
    assert peaks["A100 SXM4 80GB tf32 tensor"] == pytest.approx(
        1e3 * table.loc["A100 SXM4 80GB", "tf32_tensor_tflops"])


def test_plot_matmul_sweep_draws_one_curve_per_format_and_the_peaks():
    import pandas as pd

    sweep = pd.DataFrame({"library": ["jax"] * 4, "device": ["CPU"] * 4,
                          "dtype": ["float32", "float32", "bfloat16", "bfloat16"],
                          "n": [64, 256, 64, 256], "GFLOP/s": [5.0, 50.0, 8.0, 90.0]})
    fig, ax = plt.subplots()
    plot_matmul_sweep(ax, sweep, [("T4 16-bit tensor", 65_000.0)], cpu_peak_gflops=160.0)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "CPU float32 (jax, measured)" in labels and "CPU bfloat16 (jax, measured)" in labels
    texts = [t.get_text() for t in ax.texts]
    assert "T4 16-bit tensor (reference peak)" in texts and any("fp32 peak" in t for t in texts)
    assert ax.get_yscale() == "log" and "GFLOP/s" in ax.get_ylabel()
    plt.close(fig)


def test_plot_roofline_can_label_reference_roofs():
    fig, ax = plt.subplots()
    plot_roofline(ax, [Roof("mine", 100, 20, measured=True), Roof("V100 fp32", 15_700, 900)],
                  label_roofs=True)
    assert [t.get_text() for t in ax.texts] == ["V100 fp32"]
    plt.close(fig)


def test_stream_uses_the_course_definition_of_usable_cores(monkeypatch):
    import utils.bandwidth

    monkeypatch.setattr(utils.bandwidth, "usable_core_count", lambda: 3)
    result = stream("copy", array_mb=1, min_time=0.001, min_repeats=1)
    assert result.threads == 3
