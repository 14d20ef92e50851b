"""Data-parallel training with ``tf.distribute.MirroredStrategy`` (lesson 05): which devices,
how many replicas, and the plumbing that lets one process compare 1, 2, 4, ... replicas.

* :func:`plan_replicas` decides, before TensorFlow starts, which devices the lesson mirrors
  over and which replica counts to measure:

  - two or more GPUs: the GPUs, one replica each;
  - one GPU: that GPU split into ``virtual_devices`` *logical* GPUs, each with a share of its
    memory (``tf.config.set_logical_device_configuration``);
  - no GPU: ``virtual_devices`` virtual CPU devices.

  Logical GPUs and virtual CPUs are slices of one processor: they show the mechanism and what
  the all-reduce costs, never a speedup from more hardware. A request the devices cannot
  serve raises :class:`~utils.errors.ArgumentError` naming the argument; a notebook reports it
  under its own parameter with :func:`utils.parameters.as_parameters`.
* :func:`setup_devices` configures them (before TensorFlow's first operation) and prints one
  line: asked for, found, used. Where nvidia-smi reports GPUs that TensorFlow cannot use (a
  CPU-only wheel, a driver mismatch) it falls back to virtual CPUs and says so.
* ``utils.strategy.mirrored_strategy`` then mirrors over the first *k* of those devices, with
  all-reduce keys of its own, so 1, 2, 4 ... replicas can train one after another in one process.
* :func:`max_weight_difference` compares two models' weights; :func:`draw_data_parallelism`
  draws the idea (replicas, per-replica and global batch, gradient all-reduce);
  :func:`plot_learning_rate_runs` draws the large-batch learning-rate experiment.

TensorFlow is imported inside the functions that need it; importing this module is cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from utils.errors import ArgumentError, whole_number

__all__ = [
    "ReplicaPlan",
    "DeviceSetup",
    "plan_replicas",
    "default_counts",
    "setup_devices",
    "configure_logical_gpus",
    "model_weights",
    "max_weight_difference",
    "draw_data_parallelism",
    "plot_learning_rate_runs",
]

#: Share of one GPU's memory given to its logical GPUs together (the rest is left to CUDA's
#: own context and libraries).
LOGICAL_GPU_MEMORY_SHARE = 0.9
#: Memory limit of each logical GPU when nvidia-smi did not report the GPU's memory, MB.
LOGICAL_GPU_FALLBACK_MB = 1024


# --------------------------------------------------------------------------------------------
# Which devices, how many replicas
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplicaPlan:
    """The devices data parallelism will use here and the replica counts to measure."""

    kind: str  # "GPU" (two or more GPUs), "logical GPU" (one GPU, split) or "CPU" (virtual)
    devices: int  # GPUs, or logical GPUs / virtual CPU devices to create
    counts: tuple[int, ...]  # replica counts to measure, 1 first
    gpus: int  # GPUs found
    memory_limit_mb: int | None = None  # memory of each logical GPU
    asked: tuple[int, ...] = ()  # the counts asked for (empty: 1, 2, 4, ... up to the devices)
    virtual_devices: int = 1  # devices to split one GPU or the CPU into
    global_batch: int | None = None  # the strong-scaling batch every count must divide

    @property
    def virtual(self) -> bool:
        """True when the replicas are slices of one processor (logical GPUs, virtual CPUs)."""
        return self.kind != "GPU"

    @property
    def line(self) -> str:
        counts = ", ".join(str(c) for c in self.counts)
        if self.kind == "GPU":
            return f"{self.gpus} GPUs found: measuring {counts} replica(s), one per GPU."
        shows = ("they show the mechanics and what the all-reduce costs, not a speedup from "
                 "more hardware")
        if self.kind == "logical GPU":
            return (f"1 GPU found: measuring {counts} replica(s) over {self.devices} logical "
                    f"GPUs of {self.memory_limit_mb} MB each, carved out of it. They share its "
                    f"compute and memory: {shows}.")
        return (f"no GPU found: measuring {counts} replica(s) over {self.devices} virtual CPU "
                f"devices, which share this machine's cores: {shows}.")

    def __str__(self) -> str:
        return self.line


def default_counts(devices: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to ``devices``, and ``devices`` itself when it is not a power of 2."""
    counts = [1]
    while counts[-1] * 2 <= devices:
        counts.append(counts[-1] * 2)
    if counts[-1] != devices:
        counts.append(devices)
    return tuple(counts)


def _gpu_count_and_memory(gpus: int | Sequence[Any]) -> tuple[int, float | None]:
    if isinstance(gpus, int) and not isinstance(gpus, bool):
        return whole_number(gpus, "gpus", minimum=0), None
    memories = [getattr(g, "memory_gb", None) for g in gpus]
    known = [m for m in memories if m]
    return len(memories), (min(known) if known and len(known) == len(memories) else None)


def plan_replicas(replicas: Sequence[int] | None, *, gpus: int | Sequence[Any],
                  virtual_devices: int, global_batch: int | None = None) -> ReplicaPlan:
    """Decide the devices and the replica counts, without starting TensorFlow.

    Args:
        replicas: replica counts to measure; None or empty for 1, 2, 4, ... up to the devices
            here.
        gpus: the GPUs here, as ``hardware_report().gpus`` lists them (their memory sizes the
            logical GPUs), or just their number.
        virtual_devices: logical GPUs (one GPU) or virtual CPU devices (no GPU) to create when
            there are fewer than two GPUs.
        global_batch: the fixed global batch of strong scaling; every count must divide it.

    Raises:
        ArgumentError: ``replicas`` asks for more replicas than devices or leaves out 1 (the
            baseline), ``virtual_devices`` is not a whole number >= 1, or ``global_batch``
            does not split evenly over every count.
    """
    count, memory_gb = _gpu_count_and_memory(gpus)
    virtual_devices = whole_number(virtual_devices, "virtual_devices", minimum=1)
    limit = None
    if count >= 2:
        kind, devices = "GPU", count
    elif count == 1:
        kind, devices = "logical GPU", virtual_devices
        limit = (int(memory_gb * 1024 * LOGICAL_GPU_MEMORY_SHARE / devices) if memory_gb
                 else LOGICAL_GPU_FALLBACK_MB)
    else:
        kind, devices = "CPU", virtual_devices
    asked = tuple(replicas or ())
    if not asked:
        counts = default_counts(devices)
    else:
        try:
            for value in asked:
                whole_number(value, "replicas", minimum=1)
        except ArgumentError:
            raise ArgumentError("replicas", list(asked), "must list whole numbers >= 1",
                                "or be empty for 1, 2, 4, ... up to the devices here") from None
        counts = tuple(sorted(set(asked)))
        if counts[0] != 1:
            raise ArgumentError("replicas", list(asked), "must include 1: speedup and "
                                "efficiency are measured against one replica")
        if counts[-1] > devices:
            here = {"GPU": f"this machine has {count} GPUs",
                    "logical GPU": f"its one GPU is split into {devices} logical GPUs",
                    "CPU": f"the CPU is split into {devices} virtual devices"}[kind]
            fix = ("ask for at most that many, or leave it empty" if kind == "GPU" else
                   f"split into {counts[-1]} devices or drop the larger counts")
            raise ArgumentError("replicas", list(asked),
                                f"asks for {counts[-1]} replicas, but {here}", fix)
    if global_batch is not None:
        uneven = [c for c in counts if global_batch % c]
        if uneven:
            raise ArgumentError("global_batch", global_batch,
                                f"does not split evenly over {uneven[0]} replicas",
                                f"choose a multiple of {math.lcm(*counts)}")
    return ReplicaPlan(kind, devices, counts, count, limit, asked, virtual_devices,
                       global_batch)


@dataclass
class DeviceSetup:
    """The device names replicas run on, the plan they carry out (after any fallback), and
    the one-line story of how they were chosen."""

    devices: list[str]
    line: str
    plan: ReplicaPlan

    def __str__(self) -> str:
        return self.line


def configure_logical_gpus(n: int, memory_limit_mb: int) -> list[str]:
    """Split the first GPU into ``n`` logical GPUs of ``memory_limit_mb`` each; call it before
    TensorFlow's first operation. Returns the logical GPU names.

    Raises:
        DeviceError: TensorFlow sees no GPU, or already started with another number of GPUs.
    """
    import tensorflow as tf

    from utils.strategy import DeviceError

    n = whole_number(n, "n", minimum=1)
    limit = whole_number(memory_limit_mb, "memory_limit_mb", minimum=1)
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise DeviceError("TensorFlow sees no GPU to split into logical GPUs.")
    try:
        tf.config.set_logical_device_configuration(
            gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=limit)
                      for _ in range(n)])
    except RuntimeError:
        pass  # TensorFlow already started: checked below
    names = [d.name for d in tf.config.list_logical_devices("GPU")]
    if len(names) != n:
        raise DeviceError(
            f"TensorFlow already started with {len(names)} GPU device(s), and logical GPUs can "
            "only be set before its first operation. Restart the kernel (Kernel > Restart) and "
            f"run the notebook from the top so that {n} logical GPUs are configured first.")
    return names


def setup_devices(plan: ReplicaPlan, *, announce: bool = True) -> DeviceSetup:
    """Create the devices of ``plan`` and print one line: asked for, found, used.

    Where the plan counted on GPUs that TensorFlow cannot use (nvidia-smi sees them, but the
    TensorFlow wheel has no CUDA, or CUDA does not match the driver), the replicas run on
    virtual CPU devices instead, re-planned with the same request, and the line says why.

    Raises:
        DeviceError: TensorFlow already started with other devices (restart the kernel), or it
            sees fewer GPUs than the plan expects (but some).
        ArgumentError: the fallback to virtual CPUs cannot serve the counts asked for.
    """
    import tensorflow as tf

    from utils.hardware import simulated
    from utils.strategy import DeviceError, configure_virtual_cpus

    tf_gpus = tf.config.list_physical_devices("GPU")
    asked = f"{', '.join(map(str, plan.counts))} replica(s)"
    if plan.kind != "CPU" and not tf_gpus:
        fallback = plan_replicas(plan.asked, gpus=0, virtual_devices=plan.virtual_devices,
                                 global_batch=plan.global_batch)
        names = configure_virtual_cpus(fallback.devices)
        runtime = simulated()
        why = (f"simulated by the {runtime} runtime: it computes nothing" if runtime else
               "a CPU-only TensorFlow, or CUDA not matching the driver")
        line = (f"Asked for {asked} on {plan.gpus} GPU(s); found {plan.gpus} GPU(s) that "
                f"nvidia-smi reports but TensorFlow cannot use ({why}); using {len(names)} "
                "virtual CPU devices instead, which share this machine's cores.")
        return _announce(DeviceSetup(names, line, fallback), announce)
    if plan.kind == "CPU":
        names = configure_virtual_cpus(plan.devices)
        line = (f"Asked for {asked}; found no GPU; using MirroredStrategy over {len(names)} "
                "virtual CPU devices, which share this machine's cores.")
        return _announce(DeviceSetup(names, line, plan), announce)
    if plan.kind == "logical GPU":
        names = configure_logical_gpus(plan.devices, plan.memory_limit_mb or
                                       LOGICAL_GPU_FALLBACK_MB)
        line = (f"Asked for {asked}; found 1 GPU; using MirroredStrategy over {len(names)} "
                f"logical GPUs of {plan.memory_limit_mb} MB each, which share that GPU.")
        return _announce(DeviceSetup(names, line, plan), announce)
    for gpu in tf_gpus:
        try:  # leave the GPUs' memory to whoever else uses them
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    if len(tf_gpus) < plan.devices:
        raise DeviceError(f"{plan.devices} GPUs were found, but TensorFlow sees only "
                          f"{len(tf_gpus)}; check CUDA_VISIBLE_DEVICES and the TensorFlow "
                          "installation (pip install 'tensorflow[and-cuda]').")
    names = [d.name for d in tf.config.list_logical_devices("GPU")][:plan.devices]
    line = (f"Asked for {asked}; found {len(tf_gpus)} GPUs; using MirroredStrategy over "
            f"{len(names)} GPUs, one replica each.")
    return _announce(DeviceSetup(names, line, plan), announce)


def _announce(setup: DeviceSetup, announce: bool) -> DeviceSetup:
    if announce:
        print(setup.line)
    return setup


# --------------------------------------------------------------------------------------------
# Comparing models
# --------------------------------------------------------------------------------------------

def model_weights(model: Any) -> list[Any]:
    """The model's weights as NumPy arrays (mirrored variables give their first copy)."""
    import numpy as np

    return [np.asarray(w) for w in model.get_weights()]


def max_weight_difference(a: Any, b: Any) -> float:
    """Largest absolute difference between corresponding weights of two models (or two lists
    of arrays, as :func:`model_weights` returns).

    Raises:
        ArgumentError: the two do not have the same weight shapes.
    """
    import numpy as np

    wa = a if isinstance(a, list) else model_weights(a)
    wb = b if isinstance(b, list) else model_weights(b)
    if len(wa) != len(wb) or any(np.shape(x) != np.shape(y) for x, y in zip(wa, wb)):
        raise ArgumentError("b", f"{len(wb)} weights", "must have the same weight shapes as a")
    return max((float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
                for x, y in zip(wa, wb) if np.size(x)), default=0.0)


# --------------------------------------------------------------------------------------------
# The picture
# --------------------------------------------------------------------------------------------

def draw_data_parallelism(ax: Any, replicas: int = 4, global_batch: int = 256,
                          devices: Sequence[str] | None = None) -> None:
    """Draw data parallelism on ``ax``: a global batch split in per-replica shards, one model
    copy per device computing its own gradients, an all-reduce averaging them, and the same
    update applied to every copy."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from utils.plotting import HIGHLIGHT, MEASURED, REFERENCE

    replicas = whole_number(replicas, "replicas", minimum=1)
    names = list(devices or [])[:replicas]
    names += [f"device {i}" for i in range(len(names), replicas)]
    per = global_batch // replicas
    width = 1.0 / replicas
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")

    def box(x: float, y: float, w: float, h: float, text: str, colour: str, alpha: float,
            size: int = 8) -> None:
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.005,rounding_size=0.01",
                                    facecolor=colour, alpha=alpha, edgecolor="black", lw=0.8))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)

    def arrow(x0: float, y0: float, x1: float, y1: float, colour: str = "black") -> None:
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10,
                                     color=colour, lw=1))

    ax.text(0.5, 0.97, f"global batch: {global_batch} images", ha="center", va="center",
            fontsize=10, weight="bold")
    pad = 0.08 * width
    for i in range(replicas):
        x = i * width + pad
        w = width - 2 * pad
        centre = x + w / 2
        box(x, 0.84, w, 0.07, f"shard {i}: {per} images", MEASURED, 0.35)
        arrow(centre, 0.84, centre, 0.76)
        box(x, 0.58, w, 0.17, f"replica {i}\non {names[i]}\nmodel copy\n(same weights)",
            REFERENCE, 0.25)
        arrow(centre, 0.58, centre, 0.50)
        box(x, 0.42, w, 0.07, f"gradients g{i}", REFERENCE, 0.12)
        arrow(centre, 0.42, centre, 0.33)
        arrow(centre, 0.22, centre, 0.12, HIGHLIGHT)
        box(x, 0.03, w, 0.08, "same update\nw -= lr * g", REFERENCE, 0.25)
    terms = " + ".join(f"g{i}" for i in range(min(replicas, 4))) + (" + ..." if replicas > 4
                                                                     else "")
    box(0.02, 0.23, 0.96, 0.09, f"all-reduce: every replica receives g = ({terms}) / "
        f"{replicas}, the gradient of the whole global batch", HIGHLIGHT, 0.2, size=9)


# --------------------------------------------------------------------------------------------
# Large batches: the learning-rate experiment
# --------------------------------------------------------------------------------------------

def plot_learning_rate_runs(histories: Mapping[str, Mapping[str, Sequence[float]]], *,
                            chance: float, title: str) -> Any:
    """Training loss and validation accuracy per epoch of each run (Keras ``History.history``
    dicts by run name, all measured here), with chance accuracy marked. Returns the figure."""
    import matplotlib.pyplot as plt

    from utils.plotting import MEASURED

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    styles = ["o-", "s:", "^--", "D-", "v-."]
    colours = [MEASURED, "gray", "tab:purple", "tab:green", "tab:brown"]
    for (name, history), style, colour in zip(histories.items(), styles, colours):
        epochs = range(1, len(history["loss"]) + 1)
        left.plot(epochs, history["loss"], style, color=colour, label=name)
        right.plot(epochs, history["val_accuracy"], style, color=colour, label=name)
    right.axhline(chance, color="gray", lw=1, ls=":", label="chance")
    left.set_ylabel("training loss (cross-entropy)")
    right.set(ylabel="validation accuracy (fraction)", ylim=(0, 1.02))
    for ax in (left, right):
        ax.set_xlabel("epoch (the same images seen by every run)")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return fig
