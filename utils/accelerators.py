"""GPUs and TPUs by their data sheets (data/accelerators.csv): find this machine's device among
them, and draw the generations.

``nvidia-smi`` says "Tesla T4" or "NVIDIA A100-SXM4-40GB", the PCI bus says "TPU v5e"; the data
file names devices "Tesla T4", "A100 SXM4 40GB", "TPU v5e". :func:`datasheet_row` matches them
by the model name (``t4``, ``a100``, ``tpu v5e``) in whole words, so "A10" never matches an
A100. Where several rows share the model, the board's form factor (SXM, PCIe) and memory size in
the reported name pick one; NVIDIA names its PCIe boards as such, so a name without a form
factor is an SXM board. A name that still fits several rows, or none, gives None: the lesson
then says so instead of guessing.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

__all__ = ["table", "model_key", "datasheet_row", "device_kind", "keras_device_kind",
           "NodeParts", "node_parts", "plot_generations", "plot_bandwidths"]

_BRANDS = ("nvidia", "tesla", "geforce", "google", "cloud")
#: Columns of data/accelerators.csv that data.load keeps as text; :func:`table` makes them numbers.
_NUMERIC_EXTRAS = ("tf32_tensor_tflops", "mxu_rows", "pod_chips", "tensor_cores",
                   "boost_clock_mhz")


def table(kinds: tuple[str, ...] = ("GPU", "TPU")) -> Any:
    """data/accelerators.csv as a DataFrame (rows of ``kinds``; the file also holds a CPU
    socket), with ``peak_matrix_tflops`` added: the fastest dense matrix rate of each device
    (16-bit tensor cores or MXUs where it has them, else 8-bit for the inference-only TPU v1,
    else float32 for GPUs before tensor cores)."""
    import pandas as pd

    from utils import data

    frame = data.load("accelerators")
    frame = frame[frame["kind"].isin(kinds)].reset_index(drop=True)
    for column in _NUMERIC_EXTRAS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column])
    frame["peak_matrix_tflops"] = (frame["fp16_bf16_tensor_tflops"].fillna(frame["int8_tops"])
                                   .fillna(frame["fp32_tflops"]))
    return frame


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s_\-]+", text.lower().replace("(board)", "")) if w]


def model_key(device: str) -> str:
    """The model part of a data-file device name: ``"Tesla V100 SXM2"`` -> ``"v100"``,
    ``"TPU v5e"`` -> ``"tpu v5e"``, ``"GTX 580"`` -> ``"gtx 580"``."""
    words = [w for w in _words(device) if w not in _BRANDS]
    if not words:
        return ""
    if words[0] in ("tpu", "gtx", "rtx") and len(words) > 1:
        return f"{words[0]} {words[1]}"
    return words[0]


def _form_factor(text: str) -> str | None:
    """``"pcie"``, ``"sxm"`` or ``"nvl"`` when the name says which board it is."""
    for word in _words(text):
        for form in ("pcie", "sxm", "nvl"):
            if word.startswith(form):
                return form
    return None


def _memory_gb(text: str) -> float | None:
    found = re.search(r"(?<![a-z0-9.])(\d+)\s*gb\b", text.lower())
    return float(found.group(1)) if found else None


def _fits(name: str, row: Any, memory_gb: float | None) -> bool:
    """Whether the device row can be the board called ``name`` (form factor and memory)."""
    named, listed = _form_factor(name), _form_factor(str(row["device"]))
    if named != listed and not (named is None and listed == "sxm") and listed is not None:
        return False  # "H100 PCIe" is not the SXM row; a name with no form factor is SXM
    memory = _memory_gb(name) or memory_gb
    row_memory = row.get("memory_gb")
    if memory is None or row_memory is None or row_memory != row_memory:  # NaN
        return True
    return abs(float(row_memory) - memory) <= 0.15 * float(row_memory)  # GiB against GB


def datasheet_row(name: str | None, frame: Any, memory_gb: float | None = None) -> Any | None:
    """The one row of ``frame`` (data/accelerators.csv, e.g. from :func:`table`) that the
    device ``name`` (as nvidia-smi or the TPU detection reports it) refers to; None if no row
    or several rows fit.

    ``memory_gb`` (nvidia-smi's memory, in GiB) separates boards whose names do not say it.
    """
    if not name:
        return None
    text = " ".join(_words(name))
    # TPU_ACCELERATOR_TYPE names: "v5litepod-8" is a TPU v5e, "v4-8" a TPU v4
    text = re.sub(r"^v(\d)litepod\b", r"v\1e", text)
    text = re.sub(r"^(v\d[a-z]?)\b", r"tpu \1", text)
    tokens = set(re.split(r"[\s/]+", text))  # "TPU v2/v3" names two models
    candidates = []
    for index, row in frame.iterrows():
        key = model_key(str(row["device"]))
        if key and set(key.split()) <= tokens:  # whole words only: "a10" is not "a100"
            candidates.append(index)
    candidates = [i for i in candidates if _fits(name, frame.loc[i], memory_gb)]
    return frame.loc[candidates[0]] if len(candidates) == 1 else None


def device_kind(device: str | None) -> str:
    """``"tpu"``, ``"gpu"`` or ``"cpu"``: the kind of a framework's device name
    (``"/job:localhost/replica:0/task:0/device:GPU:0"``, ``"TPU:0"``, ``"tpu:0"``, ``"/cpu:0"``);
    ``"cpu"`` when there is none."""
    name = (device or "").lower()
    if "tpu" in name:
        return "tpu"
    return "gpu" if any(word in name for word in ("gpu", "cuda", "rocm")) else "cpu"


def keras_device_kind() -> str:
    """Where eager ``keras.ops`` run by default in this kernel: ``"tpu"``, ``"gpu"`` or
    ``"cpu"`` (a GPU that nvidia-smi lists but the framework cannot use counts as the CPU)."""
    import keras

    if keras.config.backend() == "jax":
        import jax

        return device_kind(jax.default_backend())
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


class NodeParts(NamedTuple):
    """A node as TOP500 describes it: CPU sockets (cores and clock each) and accelerators."""

    sockets: int
    cpu: str
    cores: int | None  # per socket
    ghz: float | None
    accelerators: int
    accelerator: str


def node_parts(architecture: str) -> NodeParts:
    """The parts of a node from a description such as data/bsc_systems.csv's ``architecture``:
    ``"2x POWER9 22C 3.1GHz + 4x V100 per node, dual-rail EDR IB"`` gives 2 sockets of
    22 cores at 3.1 GHz and 4 V100. Cores and clock are None where the text gives none.

    Raises:
        ArgumentError: the text does not read "Nx CPU ... + Mx ACCELERATOR per node".
    """
    from utils.errors import ArgumentError

    found = re.search(r"(?<![\w.])(\d+)x (.+?) \+ (\d+)x (.+?) per node", architecture)
    if not found:
        raise ArgumentError("architecture", architecture, "does not read 'Nx CPU + Mx "
                            "ACCELERATOR per node'")
    sockets, cpu, count, accelerator = found.groups()
    clocked = re.match(r"(.+?) (\d+)C ([\d.]+)\s*GHz$", cpu)
    cores, ghz = (int(clocked.group(2)), float(clocked.group(3))) if clocked else (None, None)
    return NodeParts(int(sockets), clocked.group(1) if clocked else cpu, cores, ghz, int(count),
                     accelerator)


def plot_bandwidths(bars: dict[str, tuple[float, bool]], title: str) -> Any:
    """A bar per ``label: (GB/s, measured)`` on a log scale, each with its value; measured bars
    orange, figures from data/ blue. Returns the figure."""
    import matplotlib.pyplot as plt

    from utils.plotting import MEASURED, REFERENCE

    fig, ax = plt.subplots(figsize=(9, 4))
    values = [value for value, _ in bars.values()]
    ax.bar(list(bars), values, color=[MEASURED if measured else REFERENCE
                                      for _, measured in bars.values()])
    for i, value in enumerate(values):
        ax.text(i, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("bandwidth (GB/s, log scale)")
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(title)
    return fig


def plot_generations(frame: Any, *, yours_name: str, yours_tflops: float, yours_gbs: float,
                     yours_year: int, yours_label: str) -> Any:
    """Two panels: each device's peak matrix rate by year, and against its memory bandwidth
    (marker area ~ memory), with this machine's measured rate as an orange star. Returns the
    figure."""
    import matplotlib.pyplot as plt

    from utils.plotting import MEASURED, REFERENCE

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for kind, marker in (("GPU", "o"), ("TPU", "s")):
        rows = frame[frame["kind"] == kind]
        left.scatter(rows["year"], rows["peak_matrix_tflops"], marker=marker, color=REFERENCE,
                     label=f"{kind}s (data sheets)")
        right.scatter(rows["mem_bw_gbs"], rows["peak_matrix_tflops"], marker=marker,
                      color=REFERENCE, s=10 + 2 * rows["memory_gb"].fillna(8))
        offset = (4, 3) if kind == "GPU" else (4, -9)  # TPU names below their markers
        for _, row in rows.iterrows():
            for ax, x in ((left, row["year"]), (right, row["mem_bw_gbs"])):
                ax.annotate(row["device"], (x, row["peak_matrix_tflops"]), fontsize=6,
                            xytext=offset, textcoords="offset points")
    label = f"yours: {yours_name} ({yours_label}, measured)"
    left.scatter([yours_year], [yours_tflops], marker="*", s=200, color=MEASURED, label=label)
    right.scatter([yours_gbs], [yours_tflops], marker="*", s=200, color=MEASURED)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_ylabel("peak matrix rate (TFLOP/s, log scale)")
    left.set_xlabel("year")
    left.legend(fontsize=8, loc="upper left")
    right.set_xscale("log")
    right.set_xlabel("memory bandwidth (GB/s, log scale); marker area ~ memory")
    fig.suptitle("Accelerator generations (blue, data/accelerators.csv) and your device "
                 "(orange)")
    return fig
