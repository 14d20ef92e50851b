"""utils.accelerators: the data-sheet table and matching device names to its rows."""

from __future__ import annotations

import math
import sys

import pandas as pd
import pytest

from utils.accelerators import (datasheet_row, device_kind, model_key, node_parts,
                                plot_bandwidths, plot_generations, table)
from utils.errors import ArgumentError


@pytest.fixture(scope="module")
def sheets():
    return table()


def matched(name, sheets, memory_gb=None):
    row = datasheet_row(name, sheets, memory_gb)
    return None if row is None else row["device"]


@pytest.mark.parametrize("name, device", [
    ("Tesla T4", "Tesla T4"),                       # Colab's T4, as nvidia-smi names it
    ("NVIDIA A100-SXM4-40GB", "A100 SXM4 40GB"),    # Colab's A100
    ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM5"),         # an SXM board: no form factor in its name
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA L4", "L4"),
    ("Tesla V100-SXM2-16GB", "Tesla V100 SXM2"),
    ("NVIDIA GeForce GTX 580", "GTX 580"),
    ("TPU v5e", "TPU v5e"),
    ("TPU v6e", "TPU v6e Trillium"),
    ("v5litepod-8", "TPU v5e"),                     # TPU_ACCELERATOR_TYPE spelling
    ("v4-8", "TPU v4"),
])
def test_reported_names_find_their_data_sheet(sheets, name, device):
    assert matched(name, sheets) == device


@pytest.mark.parametrize("name", [
    "NVIDIA A10",            # not an A100
    "NVIDIA L40S",           # not an L4
    "NVIDIA A100 80GB PCIe",  # the data file has no PCIe A100: do not give the SXM figures
    "Tesla V100-PCIE-16GB",  # nor a PCIe V100
    "NVIDIA H100 NVL",
    "NVIDIA GeForce RTX 4090",
    "TPU v2/v3",             # the PCI id both share: ambiguous
    "TPU",
    "",
    None,
])
def test_unknown_or_ambiguous_names_find_nothing(sheets, name):
    assert matched(name, sheets) is None


def test_memory_from_nvidia_smi_separates_boards_whose_name_does_not():
    frame = pd.DataFrame({"device": ["A100 SXM4 40GB", "A100 SXM4 80GB"],
                          "memory_gb": [40.0, 80.0]})
    assert matched("NVIDIA A100-SXM4", frame) is None  # two rows fit: refuse to guess
    assert matched("NVIDIA A100-SXM4", frame, memory_gb=39.4) == "A100 SXM4 40GB"  # GiB
    assert matched("NVIDIA A100-SXM4", frame, memory_gb=79.2) == "A100 SXM4 80GB"


def test_model_key():
    assert model_key("Tesla V100 SXM2") == "v100"
    assert model_key("TPU v6e Trillium") == "tpu v6e"
    assert model_key("Tesla K80 (board)") == "k80"
    assert model_key("GTX 580") == "gtx 580"
    assert model_key("NVIDIA") == ""


def test_table_has_numeric_extras_and_the_fastest_matrix_rate(sheets):
    rows = sheets.set_index("device")
    assert rows.loc["TPU v6e Trillium", "mxu_rows"] == 256
    assert rows.loc["TPU v5e", "mxu_rows"] == 128
    assert rows.loc["A100 SXM4 40GB", "tf32_tensor_tflops"] == 156
    assert math.isnan(rows.loc["Tesla T4", "tf32_tensor_tflops"])  # Turing has no TF32
    assert rows.loc["Tesla V100 SXM2", "peak_matrix_tflops"] == 125  # tensor cores
    assert rows.loc["TPU v1", "peak_matrix_tflops"] == 92  # 8-bit only
    assert rows.loc["GTX 580", "peak_matrix_tflops"] == rows.loc["GTX 580", "fp32_tflops"]
    assert rows.loc["Tesla V100 SXM2", "tensor_cores"] == 640
    assert sheets["device"].is_unique
    assert set(sheets["kind"]) == {"GPU", "TPU"}  # the CPU row only on request
    assert "POWER9 22C (AC922)" in set(table(kinds=("CPU",))["device"])


def test_plot_generations_marks_the_measured_device(sheets):
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_generations(sheets, yours_name="this CPU", yours_tflops=0.2, yours_gbs=30,
                           yours_year=2026, yours_label="float32")
    left, right = fig.axes
    assert left.get_yscale() == "log" and right.get_xscale() == "log"
    assert "TFLOP/s" in left.get_ylabel() and "GB/s" in right.get_xlabel()
    assert any("yours: this CPU" in t.get_text() for t in left.get_legend().get_texts())


@pytest.mark.parametrize("device, kind", [
    ("/job:localhost/replica:0/task:0/device:GPU:0", "gpu"), ("TPU:0", "tpu"), ("tpu:3", "tpu"),
    ("gpu:0", "gpu"), ("cuda:0", "gpu"), ("/cpu:0", "cpu"), ("TFRT_CPU_0", "cpu"), ("/device:CPU:0", "cpu"), ("", "cpu"), (None, "cpu"),
])
def test_device_kind(device, kind):
    assert device_kind(device) == kind


def test_keras_device_kind(monkeypatch):
    from types import SimpleNamespace

    from utils.accelerators import keras_device_kind

    for backend, kind in (("tpu", "tpu"), ("gpu", "gpu"), ("cpu", "cpu")):
        monkeypatch.setitem(sys.modules, "keras",
                            SimpleNamespace(config=SimpleNamespace(backend=lambda: "jax")))
        monkeypatch.setitem(sys.modules, "jax", SimpleNamespace(default_backend=lambda b=backend: b))
        assert keras_device_kind() == kind
    gpus = []
    monkeypatch.setitem(sys.modules, "keras",
                        SimpleNamespace(config=SimpleNamespace(backend=lambda: "tensorflow")))
    monkeypatch.setitem(sys.modules, "tensorflow", SimpleNamespace(config=SimpleNamespace(
        list_logical_devices=lambda kind: list(gpus))))
    assert keras_device_kind() == "cpu"  # a GPU TensorFlow cannot use is not this kernel's device
    gpus.append("GPU:0")
    assert keras_device_kind() == "gpu"


def test_node_parts_from_the_bsc_systems_file():
    from utils import data

    systems = data.load("bsc_systems").set_index("system")
    cte = node_parts(systems.loc["CTE-POWER", "architecture"])
    assert cte == (2, "POWER9", 22, 3.1, 4, "V100")
    mino = node_parts(systems.loc["MinoTauro", "architecture"])
    assert (mino.sockets, mino.cores, mino.ghz, mino.accelerators) == (2, 6, 2.53, 2)
    assert mino.accelerator == "Tesla M2090"
    mn5 = node_parts(systems.loc["MareNostrum 5 ACC", "architecture"])
    assert (mn5.cores, mn5.ghz, mn5.accelerators, mn5.accelerator) == (None, None, 4, "H100 64GB")
    with pytest.raises(ArgumentError, match="does not read"):
        node_parts("IBM JS20 PPC970 2.2GHz, Myrinet")


def test_plot_bandwidths():
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_bandwidths({"here": (20.0, True), "V100 HBM2": (900.0, False)}, "t")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "GB/s" in ax.get_ylabel()
    colours = [bar.get_facecolor() for bar in ax.patches]
    assert colours[0] != colours[1]  # measured and reference differ
