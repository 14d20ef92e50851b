"""utils.scaling: speedup and efficiency, Amdahl and Gustafson, the ring all-reduce cost model,
ResNet-50 on paper, and the published scaling data it is set against."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import utils
from utils import data
from utils.interconnect import ring_allreduce_seconds
from utils.errors import ArgumentError
from utils.scaling import (
    amdahl_speedup,
    gustafson_fraction,
    gustafson_speedup,
    karp_flatt,
    plot_cost_model,
    plot_laws,
    plot_scaling,
    predicted_efficiency,
    published_scaling,
    resnet50_counts,
    scaling_table,
    speedup,
)

# ---- speedup and efficiency ------------------------------------------------------------------


def test_speedup():
    assert speedup(300.0, 100.0) == 3.0
    assert speedup(np.float64(2.0), np.int64(1)) == 2.0  # values out of pandas work too
    for bad in (0, -1.0, float("nan"), True, "3"):
        with pytest.raises(ArgumentError, match="rate"):
            speedup(bad, 1.0)


def test_strong_scaling_table():
    table = scaling_table([4, 1, 2], [250.0, 100.0, 180.0], mode="strong", batch=64)
    assert list(table["replicas"]) == [1, 2, 4]  # sorted, the smallest is the baseline
    assert list(table["global_batch"]) == [64, 64, 64]
    assert list(table["per_replica_batch"]) == [64, 32, 16]
    assert list(table["speedup"]) == pytest.approx([1.0, 1.8, 2.5])
    assert list(table["efficiency_pct"]) == pytest.approx([100.0, 90.0, 62.5])
    assert table.attrs["mode"] == "strong"


def test_weak_scaling_table():
    table = scaling_table([1, 2, 4], [100.0, 190.0, 360.0], mode="weak", batch=32)
    assert list(table["global_batch"]) == [32, 64, 128]
    assert list(table["per_replica_batch"]) == [32, 32, 32]
    assert list(table["efficiency_pct"]) == pytest.approx([100.0, 95.0, 90.0])


def test_scaling_table_refuses_what_cannot_be_measured():
    with pytest.raises(ArgumentError, match="does not split evenly over 3"):
        scaling_table([1, 3], [1.0, 2.0], mode="strong", batch=64)
    with pytest.raises(ArgumentError, match="'strong' or 'weak'"):
        scaling_table([1, 2], [1.0, 2.0], mode="both", batch=64)
    with pytest.raises(ArgumentError, match="as long as replicas"):
        scaling_table([1, 2], [1.0], mode="weak", batch=8)


# ---- the laws ----------------------------------------------------------------------------------


def test_amdahl():
    assert amdahl_speedup(0.0, 16) == 16
    assert amdahl_speedup(1.0, 16) == 1
    assert amdahl_speedup(0.05, 8) == pytest.approx(1 / (0.05 + 0.95 / 8))
    # never above 1 / s, approached as n grows
    assert amdahl_speedup(0.1, 10**9) == pytest.approx(10, rel=1e-6)
    assert all(amdahl_speedup(0.1, n) < 10 for n in (2, 64, 4096))
    with pytest.raises(ArgumentError, match=r"serial_fraction = 1.5 must be a number >= 0 and <= 1"):
        amdahl_speedup(1.5, 4)


def test_gustafson():
    assert gustafson_speedup(0.0, 64) == 64
    assert gustafson_speedup(1.0, 64) == 1
    assert gustafson_speedup(0.05, 8) == pytest.approx(0.05 + 0.95 * 8)
    assert gustafson_speedup(0.25, 1024) > amdahl_speedup(0.25, 1024)


def test_karp_flatt_inverts_amdahl_and_gustafson_fraction_inverts_gustafson():
    for s in (0.0, 0.01, 0.05, 0.3):
        for p in (2, 8, 100):
            assert karp_flatt(amdahl_speedup(s, p), p) == pytest.approx(s, abs=1e-12)
            assert gustafson_fraction(gustafson_speedup(s, p), p) == pytest.approx(s, abs=1e-12)
    for inverse in (karp_flatt, gustafson_fraction):
        with pytest.raises(ArgumentError, match="devices = 1 must be a whole number >= 2"):
            inverse(1.0, 1)


def test_weak_scaling_data_read_with_each_law():
    # AlexNet on the DGX-1 is weak scaling: Gustafson's s is the share of the 8-GPU step lost,
    # close to 1 - efficiency; Amdahl's reading (Karp-Flatt) would cap the speedup, wrongly.
    last = published_scaling()["AlexNet"].iloc[-1]
    s = gustafson_fraction(last["speedup"], last["devices"])
    assert s == pytest.approx((8 - 5.97) / 7)
    assert s == pytest.approx(1 - last["efficiency_pct"] / 100, abs=0.05)
    assert gustafson_speedup(s, 1024) > 1 / karp_flatt(last["speedup"], last["devices"])


# ---- the cost model ----------------------------------------------------------------------------


def test_predicted_efficiency_with_and_without_overlap():
    compute, n, beta = 0.1, 50e6, 10e9
    comm = ring_allreduce_seconds(n, 8, beta)
    assert predicted_efficiency(compute, n, 8, beta) == pytest.approx(compute / (compute + comm))
    assert predicted_efficiency(compute, n, 1, beta) == 1.0
    assert predicted_efficiency(compute, n, 8, beta, overlap=1.0) == 1.0  # comm < compute: hidden
    half = predicted_efficiency(compute, n, 8, beta, overlap=0.5)
    assert half == pytest.approx(compute / (compute + comm / 2))
    # overlap cannot hide more than the compute time
    assert predicted_efficiency(0.001, n, 8, beta, overlap=1.0) == pytest.approx(
        0.001 / (0.001 + comm - 0.001))
    with pytest.raises(ArgumentError, match="overlap = 1.5"):
        predicted_efficiency(compute, n, 8, beta, overlap=1.5)


def test_resnet50_counts_match_the_known_figures():
    keras_like = resnet50_counts()
    paper = resnet50_counts(conv_bias=False)
    assert keras_like.parameters == 25_583_592  # keras.applications.ResNet50: trainable weights
    assert paper.parameters == 25_557_032  # He et al. 2016 (no convolution biases)
    assert keras_like.macs == paper.macs
    assert 3.8e9 < paper.macs < 3.9e9  # "3.8 x 10^9 FLOPs" (multiply-adds) in the paper
    assert keras_like.forward_flops == 2 * keras_like.macs
    assert keras_like.training_flops == 6 * keras_like.macs
    names = [name for name, _, _ in keras_like.layers]
    assert len([n for n in names if n.endswith("_0")]) == 4  # one projection per stage
    assert len([n for n in names if n.startswith("conv")]) == 1 + 3 * 16 + 4
    assert names[-1] == "predictions"
    assert resnet50_counts(num_classes=10).parameters == 25_583_592 - 2048 * 990 - 990


def test_resnet50_matches_keras_applications():
    import keras

    model = keras.applications.ResNet50(weights=None)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    counts = resnet50_counts()
    assert trainable == counts.parameters
    by_layer = {name: params for name, params, _ in counts.layers}
    assert int(model.get_layer("conv1_conv").count_params()) + 2 * 64 == by_layer["conv1"]
    assert (int(model.get_layer("conv3_block1_2_conv").count_params()) + 2 * 128
            == by_layer["conv3_block1_2"])
    assert tuple(model.get_layer("conv5_block3_out").output.shape[1:3]) == (7, 7)
    del model


# ---- the published data --------------------------------------------------------------------------


def test_references_are_numbers_and_add_up():
    refs = data.load("scaling")
    assert refs["images_per_s"].dtype == float and str(refs["batch_per_device"].dtype) == "Int64"
    for (source, hardware, model), rows in refs.groupby(["source", "hardware", "model"]):
        for row in rows.itertuples():
            if row.speedup == row.speedup:  # efficiency agrees with the (rounded) speedup
                rounding = 0.005 if row.speedup < 10 else 0.05  # 2 decimals below 10, else 1
                assert row.efficiency_pct == pytest.approx(
                    100 * row.speedup / row.devices, abs=100 * rounding / row.devices + 0.05), \
                    (model, row.devices)
        one = rows[rows["devices"] == 1]
        if len(one) and one["images_per_s"].notna().all():
            base = float(one["images_per_s"].iloc[0])
            for row in rows.itertuples():
                assert row.speedup == pytest.approx(row.images_per_s / base, abs=0.006), \
                    (hardware, model, row.devices)
    dgx_alexnet = refs[(refs["hardware"] == "DGX-1 P100 NVLink") & (refs["model"] == "AlexNet")]
    assert list(dgx_alexnet["efficiency_pct"]) == [100.0, 94.7, 88.0, 74.6]
    assert set(dgx_alexnet["batch_per_device"]) == {512}


def test_published_scaling_by_model():
    published = published_scaling()
    assert list(published) == ["AlexNet", "ResNet-50"]
    assert list(published["AlexNet"]["devices"]) == [1, 2, 4, 8]
    with pytest.raises(ArgumentError, match="no row for"):
        published_scaling(models=("LeNet",))


def test_the_plots_draw_what_they_are_given():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from utils.interconnect import links

    published = published_scaling()
    strong = scaling_table([1, 2, 4], [100.0, 150.0, 180.0], mode="strong", batch=64)
    weak = scaling_table([1, 2, 4], [100.0, 190.0, 360.0], mode="weak", batch=32)
    fig = plot_scaling(strong, weak, published, shared_hardware=True, title="here")
    left, middle, right = fig.axes
    assert list(left.lines[0].get_ydata()) == [100.0, 150.0, 180.0]
    assert any("same hardware" in line.get_label() for line in middle.lines)
    assert right.get_ylabel() == "parallel efficiency (%)"
    plt.close(fig)
    fig = plot_scaling(None, None, published, shared_hardware=False, title="published only")
    assert not any("measured" in line.get_label() for line in fig.axes[1].lines)
    plt.close(fig)
    link_table = links()
    fig = plot_cost_model({"AlexNet": (0.17, 249_513_376)}, link_table, published, measured=weak,
                          largest=16)
    curves = [line for line in fig.axes[0].lines if "model" in line.get_label()]
    assert len(curves) == len(link_table)
    assert list(curves[0].get_xdata()) == [1, 2, 4, 8, 16]
    assert curves[0].get_ydata()[0] == 100.0  # one device all-reduces nothing
    plt.close(fig)
    fig = plot_laws(0.1, 8, published, strong, largest=64)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert any(label.startswith("Amdahl") for label in labels)
    assert any(label.startswith("Gustafson") for label in labels)
    plt.close(fig)


def test_a_malformed_reference_names_the_line(tmp_path):
    shutil.copy(utils.DATA_DIR / "scaling.csv", tmp_path / "scaling.csv")
    text = (tmp_path / "scaling.csv").read_text().replace(",64,219,", ",64,2 19,", 1)
    (tmp_path / "scaling.csv").write_text(text)
    with pytest.raises(data.DataFileError, match=r"line 2, column 'images_per_s'"):
        data.load("scaling", tmp_path)


def test_importing_scaling_is_cheap():
    from conftest import run_python

    result = run_python("import sys, utils.scaling, utils.data_parallel\n"
                        "print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"
