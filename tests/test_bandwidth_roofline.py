"""utils.bandwidth (STREAM kernels) and utils.roofline (the model and its plot)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from utils.bandwidth import BYTES_PER_ELEMENT, stream  # noqa: E402
from utils.roofline import (  # noqa: E402
    KernelPoint,
    Roof,
    attainable_gflops,
    elementwise_intensity,
    matmul_intensity,
    plot_roofline,
)


@pytest.mark.parametrize("kernel", sorted(BYTES_PER_ELEMENT))
def test_stream_kernels_compute_and_report_a_rate(kernel):
    result = stream(kernel, array_mb=4, min_time=0.01, min_repeats=2, threads=2)
    assert result.gb_per_s > 0.05
    assert result.threads == 2 and result.array_mb == pytest.approx(4.0, rel=0.01)
    assert f"STREAM {kernel}" in str(result)
    assert result.best_gb_per_s >= result.gb_per_s


def test_stream_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown STREAM kernel"):
        stream("fma")
    with pytest.raises(ValueError, match="must be positive"):
        stream(array_mb=0)


def test_roofline_bounds_and_ridge():
    v100 = Roof("V100", peak_gflops=15_700, bandwidth_gbs=900)
    assert v100.ridge == pytest.approx(17.44, rel=1e-3)
    assert attainable_gflops(v100, 1.0) == 900
    assert attainable_gflops(v100, 1000.0) == 15_700
    with pytest.raises(ValueError):
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
