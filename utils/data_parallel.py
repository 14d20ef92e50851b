"""Data-parallel training with ``tf.distribute.MirroredStrategy``: which devices, how many
replicas, and the plumbing that lets one process compare 1, 2, 4, ... replicas.

* :func:`plan_replicas` decides, before TensorFlow starts, which devices the lesson mirrors
  over (all GPUs when there are two or more, else N virtual CPU devices) and which replica
  counts to measure; a request for more replicas than devices is refused with one line saying
  what is here and what to change.
* :func:`setup_devices` configures them (virtual CPUs must be set before TensorFlow's first
  operation) and prints one line: asked for, found, used.
* ``utils.strategy.mirrored_strategy`` then mirrors over the first *k* of those devices, with
  all-reduce keys of its own, so 1, 2, 4 ... replicas can train one after another in one process.
* :func:`max_weight_difference` compares two models' weights; :func:`draw_data_parallelism`
  draws the idea (replicas, per-replica and global batch, gradient all-reduce).

TensorFlow is imported inside the functions that need it; importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = [
    "ReplicaPlan",
    "plan_replicas",
    "default_counts",
    "setup_devices",
    "model_weights",
    "max_weight_difference",
    "draw_data_parallelism",
]


# --------------------------------------------------------------------------------------------
# Which devices, how many replicas
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplicaPlan:
    """The devices data parallelism will use here and the replica counts to measure."""

    kind: str  # "GPU" (two or more GPUs) or "CPU" (virtual CPU devices)
    devices: int  # GPUs found, or virtual CPU devices to create
    counts: tuple[int, ...]  # replica counts to measure, 1 first
    gpus: int  # GPUs found (0 or 1 when kind is "CPU")

    @property
    def virtual(self) -> bool:
        """True when the replicas are virtual CPU devices sharing the same cores."""
        return self.kind == "CPU"

    @property
    def line(self) -> str:
        counts = ", ".join(str(c) for c in self.counts)
        if not self.virtual:
            return (f"{self.gpus} GPUs found: measuring {counts} replica(s), one per GPU.")
        why = ("no GPU found" if self.gpus == 0 else
               "1 GPU found, and data parallelism needs at least two devices")
        return (f"{why}: measuring {counts} replica(s) over {self.devices} virtual CPU "
                "devices, which share this machine's cores (they show the mechanics and the "
                "overhead, not a speedup from more hardware).")

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


def plan_replicas(asked: Sequence[int] | None, *, gpus: int, virtual_cpus: int,
                  global_batch: int | None = None, name: str = "REPLICAS",
                  virtual_name: str = "VIRTUAL_CPUS", batch_name: str = "GLOBAL_BATCH"
                  ) -> ReplicaPlan:
    """Decide the devices and the replica counts, without starting TensorFlow.

    Args:
        asked: replica counts to measure; None or empty for 1, 2, 4, ... up to the devices
            here.
        gpus: GPUs on this machine (``len(hardware_report().gpus)``).
        virtual_cpus: virtual CPU devices to create when there are fewer than two GPUs.
        global_batch: the fixed global batch of strong scaling; every count must divide it.
        name, virtual_name, batch_name: the parameter names used in messages.

    Raises:
        ParameterError: a count larger than the devices here, no 1 among the counts (the
            baseline), or a global batch that does not split evenly.
    """
    from utils.parameters import ParameterError

    if isinstance(virtual_cpus, bool) or not isinstance(virtual_cpus, int) or virtual_cpus < 1:
        raise ParameterError(f"{virtual_name} = {virtual_cpus!r} must be a whole number >= 1.")
    kind, devices = ("GPU", gpus) if gpus >= 2 else ("CPU", virtual_cpus)
    if not asked:
        counts = default_counts(devices)
    else:
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in asked):
            raise ParameterError(f"{name} = {list(asked)!r} must list whole numbers >= 1 (or "
                                 "be empty for 1, 2, 4, ... up to the devices here).")
        counts = tuple(sorted(set(asked)))
        if counts[0] != 1:
            raise ParameterError(f"{name} = {list(asked)!r} must include 1: speedup and "
                                 "efficiency are measured against one replica.")
        if counts[-1] > devices:
            here = (f"this machine has {gpus} GPUs" if kind == "GPU" else
                    f"{virtual_name} = {virtual_cpus} virtual CPU devices are configured"
                    + (" (1 GPU is not enough to mirror over)" if gpus == 1 else ""))
            fix = ("ask for at most that many, or leave it empty" if kind == "GPU" else
                   f"raise {virtual_name} to {counts[-1]} or drop the larger counts")
            raise ParameterError(f"{name} = {list(asked)!r} asks for {counts[-1]} replicas, "
                                 f"but {here}: {fix}.")
    if global_batch is not None:
        uneven = [c for c in counts if global_batch % c]
        if uneven:
            raise ParameterError(f"{batch_name} = {global_batch} does not split evenly over "
                                 f"{uneven[0]} replicas; choose a multiple of "
                                 f"{_lcm(counts)}.")
    return ReplicaPlan(kind, devices, counts, gpus)


def _lcm(values: Sequence[int]) -> int:
    import math

    out = 1
    for value in values:
        out = out * value // math.gcd(out, value)
    return out


@dataclass
class DeviceSetup:
    """The device names replicas run on, and the one-line story of how they were chosen."""

    devices: list[str]
    line: str
    plan: ReplicaPlan | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.line


def setup_devices(plan: ReplicaPlan, *, announce: bool = True) -> DeviceSetup:
    """Create the devices of ``plan`` and print one line: asked for, found, used.

    Two or more GPUs: all of them (``utils.strategy.choose_strategy("mirrored")``). Otherwise
    ``plan.devices`` virtual CPU devices, configured before TensorFlow's first operation (with
    one GPU present too; the GPU is left alone).

    Raises:
        DeviceError: TensorFlow already started with another number of CPU devices (restart
            the kernel), or fewer GPUs visible to TensorFlow than the plan expects.
    """
    from utils.strategy import DeviceError, choose_strategy, configure_virtual_cpus

    if not plan.virtual:
        choice = choose_strategy("mirrored", announce=announce)
        if len(choice.devices) < plan.devices:
            raise DeviceError(f"{plan.devices} GPUs were found, but TensorFlow sees only "
                              f"{len(choice.devices)}; check CUDA_VISIBLE_DEVICES and the "
                              "TensorFlow installation (pip install 'tensorflow[and-cuda]').")
        return DeviceSetup(list(choice.devices), choice.line, plan)
    if plan.gpus == 0:
        choice = choose_strategy("mirrored", virtual_cpus=plan.devices, announce=announce)
        return DeviceSetup(list(choice.devices), choice.line, plan)
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:  # leave the GPU's memory to whoever else uses it
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    names = configure_virtual_cpus(plan.devices)
    line = (f"Asked for 'mirrored' over {plan.devices} virtual CPU devices; found "
            f"{plan.gpus} GPU(s) and {len(names)} CPU device(s) (virtual); using "
            f"MirroredStrategy over {len(names)} virtual CPU device(s), which share the same "
            "cores (one GPU cannot be mirrored over).")
    if announce:
        print(line)
    return DeviceSetup(names, line, plan)


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
        ValueError: the two do not have the same weight shapes.
    """
    import numpy as np

    wa = a if isinstance(a, list) else model_weights(a)
    wb = b if isinstance(b, list) else model_weights(b)
    if len(wa) != len(wb) or any(np.shape(x) != np.shape(y) for x, y in zip(wa, wb)):
        raise ValueError("the two models do not have the same weight shapes")
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

    if replicas < 1:
        raise ValueError("replicas must be >= 1")
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
