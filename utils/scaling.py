"""How well training scales: speedup, efficiency, the laws that bound them, and a cost model.

Used by lesson 05 (and ``resnet50_counts`` by lesson 06).

Measured side:

* :func:`speedup`: throughput on *n* devices over throughput on one; the efficiency is that
  speedup over *n* (100 % is perfect scaling).
* :func:`scaling_table`: one row per replica count (global and per-replica batch, images/s,
  speedup, efficiency) for *strong* scaling (the global batch is fixed, each replica gets a
  smaller share) or *weak* scaling (the per-replica batch is fixed, the global batch grows).

Laws, and which measurement each one reads:

* :func:`amdahl_speedup`: a *fixed* problem (strong scaling) with serial fraction *s* on *n*
  processors, ``1 / (s + (1 - s) / n)`` (Amdahl, 1967); it never exceeds ``1 / s``.
  :func:`karp_flatt` runs it backwards: the *s* a measured strong-scaling speedup implies
  (Karp and Flatt, 1990).
* :func:`gustafson_speedup`: the problem grows with *n* (weak scaling), ``s + (1 - s) n``
  (Gustafson, 1988), where *s* is the serial share of the run on *n* processors; it has no
  limit. :func:`gustafson_fraction` runs it backwards for a weak-scaling speedup.

Cost model of one data-parallel step (no framework needed, so notebooks can check it with nbval):

* :func:`predicted_efficiency`: compute time of a step against compute plus the all-reduce
  that cannot be hidden behind it, the all-reduce priced by
  :func:`utils.interconnect.ring_allreduce_seconds` (the alpha-beta model of a ring; Patarasuk
  and Yuan, 2009) over the links of data/interconnects.csv. In weak scaling the ring's cost
  tends to a constant as devices are added, so the efficiency levels off instead of falling
  to zero: Gustafson's law, with the all-reduce as the serial part.
* :func:`resnet50_counts`: ResNet-50's parameters and multiply-adds, layer by layer on paper
  (the AlexNet counterpart is :func:`utils.models.alexnet_layers`).

Published results and plots: :func:`published_scaling` (data/scaling.csv), and the lesson's
long figures, :func:`plot_scaling`, :func:`plot_cost_model` and :func:`plot_laws`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from utils.errors import ArgumentError, number, whole_number
from utils.interconnect import Link, ring_allreduce_seconds

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "speedup",
    "scaling_table",
    "amdahl_speedup",
    "gustafson_speedup",
    "karp_flatt",
    "gustafson_fraction",
    "predicted_efficiency",
    "ModelCounts",
    "resnet50_counts",
    "published_scaling",
    "plot_scaling",
    "plot_cost_model",
    "plot_laws",
]

# --------------------------------------------------------------------------------------------
# Measured speedup and efficiency
# --------------------------------------------------------------------------------------------


def _fraction(value: float, argument: str = "serial_fraction") -> float:
    return number(value, argument, minimum=0, maximum=1)


def speedup(rate: float, base_rate: float) -> float:
    """How many times faster: ``rate / base_rate`` (throughputs, e.g. images/s)."""
    return number(rate, "rate", above=0) / number(base_rate, "base_rate", above=0)


def scaling_table(replicas: Sequence[int], images_per_s: Sequence[float], *, mode: str,
                  batch: int) -> "pd.DataFrame":
    """A scaling measurement as a DataFrame, one row per replica count.

    Args:
        replicas: replica counts measured; the smallest is the baseline (usually 1).
        images_per_s: the throughput measured at each count.
        mode: ``"strong"`` (``batch`` is the global batch, split over the replicas) or
            ``"weak"`` (``batch`` is each replica's batch; the global batch grows).
        batch: the global batch (strong) or the per-replica batch (weak).

    Columns: ``replicas``, ``global_batch``, ``per_replica_batch``, ``images_per_s``,
    ``speedup`` (over the baseline) and ``efficiency_pct`` (speedup over the replica ratio,
    in %).

    Raises:
        ArgumentError: mismatched lengths, an unknown mode, or a global batch that does not
            split evenly.
    """
    import pandas as pd

    if mode not in ("strong", "weak"):
        raise ArgumentError("mode", mode, "must be 'strong' or 'weak'")
    if len(replicas) != len(images_per_s) or not replicas:
        raise ArgumentError("images_per_s", list(images_per_s), "must be non-empty and as "
                            f"long as replicas ({len(replicas)})")
    whole_number(batch, "batch")
    pairs = sorted(zip(replicas, images_per_s))
    base_n, base_rate = pairs[0]
    rows = []
    for n, rate in pairs:
        whole_number(n, "replicas")
        if mode == "strong" and batch % n:
            raise ArgumentError("batch", batch, f"does not split evenly over {n} replicas",
                                f"choose a multiple of {n}")
        s = speedup(rate, base_rate)
        rows.append({"replicas": n,
                     "global_batch": batch if mode == "strong" else batch * n,
                     "per_replica_batch": batch // n if mode == "strong" else batch,
                     "images_per_s": float(rate), "speedup": s,
                     "efficiency_pct": 100 * s * base_n / n})
    frame = pd.DataFrame(rows)
    frame.attrs["mode"] = mode
    return frame


# --------------------------------------------------------------------------------------------
# Amdahl (strong scaling) and Gustafson (weak scaling)
# --------------------------------------------------------------------------------------------

def amdahl_speedup(serial_fraction: float, n: int) -> float:
    """Amdahl's law: speedup of a *fixed* problem whose ``serial_fraction`` runs on one
    processor while the rest is split over ``n``: ``1 / (s + (1 - s) / n)``."""
    s = _fraction(serial_fraction)
    return 1 / (s + (1 - s) / whole_number(n, "n"))


def gustafson_speedup(serial_fraction: float, n: int) -> float:
    """Gustafson's law: scaled speedup when the problem grows with ``n`` and the serial part
    keeps its time: ``s + (1 - s) n``, where ``s`` is the serial fraction of the run on ``n``
    processors."""
    s = _fraction(serial_fraction)
    return s + (1 - s) * whole_number(n, "n")


def karp_flatt(speedup_value: float, devices: int) -> float:
    """The serial fraction a *strong-scaling* speedup implies (Karp and Flatt, 1990).

    ``e = (1/S - 1/p) / (1 - 1/p)``: the fraction *s* for which Amdahl's law would give the
    measured speedup *S* on *p* devices. A value that stays put as *p* grows points to work
    that does not parallelise; one that grows points to overhead that grows with *p*. Read
    weak-scaling results with :func:`gustafson_fraction` instead.
    """
    p = whole_number(devices, "devices", minimum=2)
    s = number(speedup_value, "speedup", above=0)
    return (1 / s - 1 / p) / (1 - 1 / p)


def gustafson_fraction(speedup_value: float, devices: int) -> float:
    """The serial fraction a *weak-scaling* speedup implies: Gustafson's law solved for *s*,
    ``s = (p - S) / (p - 1)``: the share of the *p*-device step spent on work that did not
    grow with the devices (in data parallelism, mostly the exposed all-reduce)."""
    p = whole_number(devices, "devices", minimum=2)
    s = number(speedup_value, "speedup", above=0)
    return (p - s) / (p - 1)


# --------------------------------------------------------------------------------------------
# The efficiency the alpha-beta model predicts
# --------------------------------------------------------------------------------------------

def predicted_efficiency(compute_s: float, nbytes: float, devices: int,
                         bandwidth_bytes_per_s: float, latency_s: float = 0.0, *,
                         overlap: float = 0.0) -> float:
    """Weak-scaling efficiency the alpha-beta model predicts for one training step.

    Each device computes for ``compute_s`` (its own share of the batch, as on one device),
    then all-reduces ``nbytes`` of gradients. A fraction ``overlap`` of the all-reduce may run
    while the backward pass still computes (0: none, the pessimistic case; 1: all of it, as far
    as the compute time can cover it). The efficiency is
    ``compute / (compute + exposed all-reduce)``.
    """
    compute = number(compute_s, "compute_s", above=0)
    share = number(overlap, "overlap", minimum=0, maximum=1)
    comm = ring_allreduce_seconds(nbytes, devices, bandwidth_bytes_per_s, latency_s)
    exposed = comm - min(share * comm, compute)
    return compute / (compute + exposed)


# --------------------------------------------------------------------------------------------
# ResNet-50 on paper
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelCounts:
    """A network's size on paper: trainable parameters and forward multiply-adds per image."""

    name: str
    parameters: int
    macs: int
    layers: tuple[tuple[str, int, int], ...] = ()  # (name, parameters, macs)

    @property
    def forward_flops(self) -> int:
        """Forward FLOPs per image: 2 per multiply-add."""
        return 2 * self.macs

    @property
    def training_flops(self) -> int:
        """FLOPs of one training step per image (3 x forward, as utils.models counts)."""
        return 3 * self.forward_flops


def resnet50_counts(input_size: int = 224, num_classes: int = 1000, *,
                    conv_bias: bool = True) -> ModelCounts:
    """ResNet-50 (He et al. 2016) counted layer by layer, as ``keras.applications.ResNet50``
    builds it.

    A 7x7 stride-2 convolution, 3x3 max pooling, then four stages of 3, 4, 6 and 3 bottleneck
    blocks (1x1, 3x3, 1x1 convolutions of 64/64/256 ... 512/512/2048 filters; the first block of
    a stage has a 1x1 projection shortcut and, from stage 3 on, stride 2), global average
    pooling and a dense classifier. Batch normalisation adds two trainable values per channel
    (its moving statistics are not trained and not counted). ``conv_bias``: Keras's convolutions
    have biases; the paper's do not. Only convolutions and the dense layer count as
    multiply-adds.
    """
    layers: list[tuple[str, int, int]] = []
    size = whole_number(input_size, "input_size", minimum=32)
    whole_number(num_classes, "num_classes")

    def conv(name: str, cin: int, cout: int, kernel: int, stride: int, pad: int) -> int:
        nonlocal size
        size = (size + 2 * pad - kernel) // stride + 1
        params = kernel * kernel * cin * cout + (cout if conv_bias else 0) + 2 * cout  # + BN
        layers.append((name, params, size * size * kernel * kernel * cin * cout))
        return cout

    channels = conv("conv1", 3, 64, 7, 2, 3)
    size = (size + 2 - 3) // 2 + 1  # 3x3 max pooling, stride 2, padding 1
    stages = ((2, 3, 64, 1), (3, 4, 128, 2), (4, 6, 256, 2), (5, 3, 512, 2))
    for stage, blocks, width, first_stride in stages:
        for block in range(1, blocks + 1):
            stride = first_stride if block == 1 else 1
            start, cin = size, channels
            prefix = f"conv{stage}_block{block}"
            conv(f"{prefix}_1", cin, width, 1, stride, 0)
            conv(f"{prefix}_2", width, width, 3, 1, 1)
            channels = conv(f"{prefix}_3", width, 4 * width, 1, 1, 0)
            if block == 1:
                end, size = size, start
                conv(f"{prefix}_0", cin, 4 * width, 1, stride, 0)  # projection shortcut
                size = end
    layers.append(("predictions", channels * num_classes + num_classes,
                   channels * num_classes))
    return ModelCounts("ResNet-50", sum(p for _, p, _ in layers), sum(m for _, _, m in layers),
                       tuple(layers))


# --------------------------------------------------------------------------------------------
# Published results, and the lesson's figures
# --------------------------------------------------------------------------------------------

#: The hardware of data/scaling.csv whose per-model curves lesson 05 sets beside its own.
DGX1 = "DGX-1 P100 NVLink"


def published_scaling(hardware: str = DGX1, models: Sequence[str] = ("AlexNet", "ResNet-50"),
                      data_dir: object = None) -> dict[str, "pd.DataFrame"]:
    """Published weak-scaling results of data/scaling.csv for one machine, by model, each
    sorted by devices (columns as in the file: devices, speedup, efficiency_pct, ...).

    Raises:
        ArgumentError: no row for that hardware and model.
    """
    from utils import data

    table = data.load("scaling", data_dir)
    out = {}
    for model in models:
        rows = table[(table["hardware"] == hardware) & (table["model"] == model)]
        if rows.empty:
            raise ArgumentError("models", list(models), f"includes {model!r}, which "
                                f"data/scaling.csv has no row for on {hardware!r}")
        out[model] = rows.sort_values("devices").reset_index(drop=True)
    return out


def _log2_axis(ax: Any, counts: Sequence[int], label: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(counts), [str(c) for c in counts])
    ax.set_xlabel(label)


def _powers_of_two(largest: int) -> list[int]:
    out = [1]
    while out[-1] < largest:
        out.append(out[-1] * 2)
    return out


def plot_scaling(strong: "pd.DataFrame | None", weak: "pd.DataFrame | None",
                 published: Mapping[str, "pd.DataFrame"], *, shared_hardware: bool,
                 title: str) -> Any:
    """Throughput, speedup and efficiency against replicas: this run's strong and weak
    scaling (orange) beside published weak scaling (blue) and the ideal (grey).

    ``shared_hardware``: the replicas share one processor (virtual CPUs, logical GPUs), so one
    replica's throughput, not *n* times it, is the most they can reach; a line shows it.
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    from utils.plotting import HIGHLIGHT, MEASURED, REFERENCE

    measured = [t for t in (strong, weak) if t is not None]
    most = max([8] + [int(t["replicas"].max()) for t in measured])
    counts = _powers_of_two(most)
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4.2))
    for table, marker, name in ((strong, "o-", "strong"), (weak, "s--", "weak")):
        if table is None:
            continue
        for ax, column in ((left, "images_per_s"), (middle, "speedup"),
                           (right, "efficiency_pct")):
            ax.plot(table["replicas"], table[column], marker, color=MEASURED,
                    label=f"{name} scaling (measured here)")
    for (name, rows), marker in zip(published.items(), ("^-", "v-")):
        for ax, column in ((middle, "speedup"), (right, "efficiency_pct")):
            ax.plot(rows["devices"], rows[column], marker, color=REFERENCE, alpha=0.8,
                    label=f"{name}, {DGX1}, weak scaling (published)")
    middle.plot(counts, counts, ":", color="gray", label="ideal: speedup = replicas")
    right.axhline(100, ls=":", color="gray", label="ideal: 100 %")
    if shared_hardware:
        middle.axhline(1, ls="-.", color=HIGHLIGHT, lw=1, label="1 replica's throughput "
                       "(the same hardware)")
        right.plot(counts, [100 / c for c in counts], "-.", color=HIGHLIGHT, lw=1,
                   label="1 replica's throughput (the same hardware)")
    left.set(ylabel="training throughput (images/s)", title=title)
    middle.set(ylabel="speedup over 1 replica (x)", title="Speedup")
    right.set(ylabel="parallel efficiency (%)", title="Efficiency", ylim=(0, 120))
    for ax in (left, middle, right):
        _log2_axis(ax, counts, "replicas (devices, log scale)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return fig


def plot_cost_model(networks: Mapping[str, tuple[float, int]], link_table: Mapping[str, Link],
                    published: Mapping[str, "pd.DataFrame"], *,
                    measured: "pd.DataFrame | None" = None, measured_label: str = "",
                    overlap: float = 0.0, largest: int = 256) -> Any:
    """Weak-scaling efficiency the ring model predicts (:func:`predicted_efficiency`) for
    each network, ``{name: (compute seconds per step, gradient bytes)}``, over each link,
    from 1 to ``largest`` devices, against the published points and this run's weak scaling.
    Returns the figure."""
    import matplotlib.pyplot as plt

    from utils.plotting import HIGHLIGHT, MEASURED, REFERENCE

    counts = _powers_of_two(whole_number(largest, "largest", minimum=2))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    styles = [":", "-", "-.", "--", (0, (1, 3)), (0, (5, 1))]
    for (name, (compute_s, nbytes)), colour in zip(networks.items(),
                                                   (HIGHLIGHT, REFERENCE, "tab:green")):
        for (link_name, link), style in zip(link_table.items(), styles):
            effs = [100 * predicted_efficiency(compute_s, nbytes, p, link.bandwidth_bytes_per_s,
                                               overlap=overlap) for p in counts]
            ax.plot(counts, effs, linestyle=style, color=colour, alpha=0.7,
                    label=f"{name}, model, {link_name}")
        if name in published:
            rows = published[name]
            ax.plot(rows["devices"], rows["efficiency_pct"], "o", color=colour, ms=8,
                    label=f"{name}, {DGX1} (published)")
    if measured is not None:
        ax.plot(measured["replicas"], measured["efficiency_pct"], "s--", color=MEASURED,
                label=measured_label or "weak scaling, measured here")
    _log2_axis(ax, counts, "devices (log scale)")
    ax.set(ylabel="weak-scaling efficiency (%)", ylim=(0, 105),
           title=f"Ring all-reduce model (overlap {overlap:.0%}) against published and "
                 "measured efficiency")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return fig


def plot_laws(serial_fraction: float, replicas: int, published: Mapping[str, "pd.DataFrame"],
              strong: "pd.DataFrame | None" = None, largest: int = 1024) -> Any:
    """Amdahl's and Gustafson's speedups for one serial fraction, from 1 to ``largest``
    processors (log-log), with the published weak-scaling points (read them against
    Gustafson) and this run's strong scaling (read it against Amdahl); a vertical line marks
    ``replicas``. Returns the figure."""
    import matplotlib.pyplot as plt

    from utils.plotting import HIGHLIGHT, MEASURED, REFERENCE

    s = _fraction(serial_fraction)
    counts = _powers_of_two(whole_number(largest, "largest"))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(counts, counts, ":", color="gray", label="ideal")
    ax.plot(counts, [amdahl_speedup(s, n) for n in counts], "-", color=REFERENCE,
            label=f"Amdahl, s = {s:.3f}: fixed problem (strong scaling)")
    ax.plot(counts, [gustafson_speedup(s, n) for n in counts], "--", color=REFERENCE,
            label=f"Gustafson, s = {s:.3f}: problem grows with n (weak scaling)")
    for name, rows in published.items():
        ax.plot(rows["devices"], rows["speedup"], "o", ms=6,
                color=HIGHLIGHT if name == "AlexNet" else REFERENCE,
                label=f"{name}, {DGX1}, weak scaling (published)")
    if strong is not None:
        ax.plot(strong["replicas"], strong["speedup"], "s", color=MEASURED, ms=6,
                label="strong scaling, measured here")
    ax.axvline(whole_number(replicas, "replicas"), color=MEASURED, lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set(xlabel="processors n (log scale)", ylabel="speedup (x, log scale)")
    ax.legend(fontsize=8)
    return fig
