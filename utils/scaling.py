"""How well training scales: speedup, efficiency, the laws that bound them, and a cost model.

Measured side:

* :func:`speedup` and :func:`efficiency`: throughput on *n* devices over throughput on one, and
  that speedup over *n* (100 % is perfect scaling).
* :func:`scaling_table`: one row per replica count (global and per-replica batch, images/s,
  speedup, efficiency) for *strong* scaling (the global batch is fixed, each replica gets a
  smaller share) or *weak* scaling (the per-replica batch is fixed, the global batch grows).
* :func:`karp_flatt`: the serial fraction a measured speedup implies (Karp and Flatt, 1990).

Laws:

* :func:`amdahl_speedup`: a fixed problem with serial fraction *s* on *n* processors,
  ``1 / (s + (1 - s) / n)`` (Amdahl, 1967); it never exceeds ``1 / s``.
* :func:`gustafson_speedup`: the problem grows with *n*, ``s + (1 - s) n`` (Gustafson, 1988).

Cost model of one data-parallel step (no framework needed, so notebooks can check it with nbval):

* :func:`predicted_efficiency`: compute time of a step against compute plus the all-reduce
  that cannot be hidden behind it, the all-reduce priced by
  :func:`utils.interconnect.ring_allreduce_seconds` (the alpha-beta model of a ring; Patarasuk
  and Yuan, 2009) over the links of data/interconnects.csv.
* :func:`resnet50_counts`: ResNet-50's parameters and multiply-adds, layer by layer on paper
  (the AlexNet counterpart is :func:`utils.models.alexnet_layers`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from utils.interconnect import ring_allreduce_seconds

__all__ = [
    "speedup",
    "efficiency",
    "scaling_table",
    "amdahl_speedup",
    "gustafson_speedup",
    "karp_flatt",
    "laws_table",
    "predicted_efficiency",
    "ModelCounts",
    "resnet50_counts",
]

# --------------------------------------------------------------------------------------------
# Measured speedup and efficiency
# --------------------------------------------------------------------------------------------

def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _fraction(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"the serial fraction must be in [0, 1], got {value!r}")
    return float(value)


def speedup(rate: float, base_rate: float) -> float:
    """How many times faster: ``rate / base_rate`` (throughputs, e.g. images/s)."""
    return _positive("rate", rate) / _positive("base_rate", base_rate)


def efficiency(speedup_value: float, devices: int) -> float:
    """Parallel efficiency as a fraction: speedup over the number of devices (1.0 is perfect)."""
    return _positive("speedup", speedup_value) / _count("devices", devices)


def scaling_table(replicas: Sequence[int], images_per_s: Sequence[float], *, mode: str,
                  batch: int) -> Any:
    """A scaling measurement as a DataFrame, one row per replica count.

    Args:
        replicas: replica counts measured; the smallest is the baseline (usually 1).
        images_per_s: the throughput measured at each count.
        mode: ``"strong"`` (``batch`` is the global batch, split over the replicas) or
            ``"weak"`` (``batch`` is each replica's batch; the global batch grows).
        batch: the global batch (strong) or the per-replica batch (weak).

    Columns: ``replicas``, ``global_batch``, ``per_replica_batch``, ``images_per_s``,
    ``speedup`` (over the baseline) and ``efficiency_pct`` (speedup over the replica ratio,
    in %). Raises ValueError on mismatched lengths, an unknown mode or a global batch that does
    not split evenly.
    """
    import pandas as pd

    if mode not in ("strong", "weak"):
        raise ValueError(f"mode must be 'strong' or 'weak', got {mode!r}")
    if len(replicas) != len(images_per_s) or not replicas:
        raise ValueError("replicas and images_per_s must be non-empty and of the same length")
    _count("batch", batch)
    pairs = sorted(zip(replicas, images_per_s))
    base_n, base_rate = pairs[0]
    rows = []
    for n, rate in pairs:
        _count("replicas", n)
        if mode == "strong" and batch % n:
            raise ValueError(f"a global batch of {batch} does not split evenly over {n} "
                             "replicas")
        s = speedup(rate, base_rate)
        rows.append({"replicas": n,
                     "global_batch": batch if mode == "strong" else batch * n,
                     "per_replica_batch": batch // n if mode == "strong" else batch,
                     "images_per_s": float(rate), "speedup": s,
                     "efficiency_pct": 100 * s / (n / base_n)})
    frame = pd.DataFrame(rows)
    frame.attrs["mode"] = mode
    return frame


def karp_flatt(speedup_value: float, devices: int) -> float:
    """The experimentally determined serial fraction (Karp and Flatt, 1990).

    ``e = (1/S - 1/p) / (1 - 1/p)``: the fraction *s* for which Amdahl's law would give the
    measured speedup *S* on *p* devices. A value that stays put as *p* grows points to work
    that does not parallelise; one that grows points to overhead that grows with *p*.
    """
    p = _count("devices", devices)
    if p == 1:
        raise ValueError("the serial fraction needs at least 2 devices")
    s = _positive("speedup", speedup_value)
    return (1 / s - 1 / p) / (1 - 1 / p)


# --------------------------------------------------------------------------------------------
# Amdahl and Gustafson
# --------------------------------------------------------------------------------------------

def amdahl_speedup(serial_fraction: float, n: int) -> float:
    """Amdahl's law: speedup of a *fixed* problem whose ``serial_fraction`` runs on one
    processor while the rest is split over ``n``: ``1 / (s + (1 - s) / n)``."""
    s = _fraction(serial_fraction)
    return 1 / (s + (1 - s) / _count("n", n))


def gustafson_speedup(serial_fraction: float, n: int) -> float:
    """Gustafson's law: scaled speedup when the problem grows with ``n`` and the serial part
    keeps its time: ``s + (1 - s) n``, where ``s`` is the serial fraction of the run on ``n``
    processors."""
    s = _fraction(serial_fraction)
    return s + (1 - s) * _count("n", n)


def laws_table(serial_fractions: Iterable[float], counts: Iterable[int]) -> Any:
    """Amdahl and Gustafson speedups for every serial fraction and processor count, as a
    DataFrame with columns ``serial_fraction``, ``n``, ``amdahl``, ``gustafson`` and
    ``amdahl_limit`` (``1 / s``, the most any number of processors gives)."""
    import pandas as pd

    rows = []
    for s in serial_fractions:
        for n in counts:
            rows.append({"serial_fraction": _fraction(s), "n": n,
                         "amdahl": amdahl_speedup(s, n), "gustafson": gustafson_speedup(s, n),
                         "amdahl_limit": math.inf if s == 0 else 1 / s})
    return pd.DataFrame(rows)


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
    compute = _positive("compute_s", compute_s)
    if not 0 <= overlap <= 1:
        raise ValueError(f"overlap must be in [0, 1], got {overlap!r}")
    comm = ring_allreduce_seconds(nbytes, devices, bandwidth_bytes_per_s, latency_s)
    exposed = comm - min(overlap * comm, compute)
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

    @property
    def macs_per_parameter(self) -> float:
        """Forward multiply-adds per parameter per image: how much arithmetic each weight
        (and so each byte all-reduced) pays for."""
        return self.macs / self.parameters


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
    size = _count("input_size", input_size)

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
