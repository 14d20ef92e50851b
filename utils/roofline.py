"""The roofline model: attainable FLOP/s = min(peak FLOP/s, bandwidth x arithmetic intensity).

Arithmetic intensity is FLOPs per byte moved to or from memory. A kernel left of the *ridge
point* (peak / bandwidth) is memory-bound, right of it compute-bound. Williams, Waterman and
Patterson, "Roofline", CACM 2009.

The plots of lesson 02 live here too: :func:`plot_roofline` (roofs and kernels),
:func:`plot_matmul_sweep` (measured matmul throughput against size, with reference peaks) and
:func:`reference_roofs` / :func:`reference_peaks`, which read reference devices from
``data/accelerators.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from utils.errors import number

__all__ = [
    "Roof",
    "KernelPoint",
    "attainable_gflops",
    "matmul_intensity",
    "elementwise_intensity",
    "reference_roofs",
    "reference_peaks",
    "plot_roofline",
    "plot_matmul_sweep",
]

#: accelerators.csv's peak columns, by the short name a lesson shows.
PEAK_COLUMNS = {"fp32": "fp32_tflops", "tf32 tensor": "tf32_tensor_tflops",
                "16-bit tensor": "fp16_bf16_tensor_tflops"}


@dataclass(frozen=True)
class Roof:
    """A machine's roof: peak compute (GFLOP/s) and memory bandwidth (GB/s)."""

    name: str
    peak_gflops: float
    bandwidth_gbs: float
    measured: bool = False

    @property
    def ridge(self) -> float:
        """Intensity (FLOP/byte) where the memory slope meets the compute roof."""
        return self.peak_gflops / self.bandwidth_gbs


@dataclass(frozen=True)
class KernelPoint:
    """A kernel at its arithmetic intensity, with its measured rate when there is one."""

    name: str
    intensity: float
    gflops: float | None = None


def attainable_gflops(roof: Roof, intensity: float) -> float:
    """The roofline bound for a kernel of ``intensity`` FLOP/byte on ``roof``."""
    number(intensity, "intensity", above=0, hint="arithmetic intensity is FLOPs per byte")
    return min(roof.peak_gflops, roof.bandwidth_gbs * intensity)


def matmul_intensity(n: int, bytes_per_element: int = 4) -> float:
    """FLOP/byte of an n x n matrix product that reads A and B and writes C once: 2n^3 / 3n^2b."""
    return 2 * n**3 / (3 * n**2 * bytes_per_element)


def elementwise_intensity(flops_per_element: float = 1, arrays: int = 3,
                          bytes_per_element: int = 4) -> float:
    """FLOP/byte of an elementwise op (``c = a + b``: 1 FLOP over 3 arrays of 4 bytes)."""
    return flops_per_element / (arrays * bytes_per_element)


def _peak_gflops(table: Any, device: str, kind: str) -> float | None:
    """A device's peak in GFLOP/s from accelerators.csv (``kind`` a :data:`PEAK_COLUMNS` key),
    or None when the device or the figure is missing."""
    import math

    if device not in table.index or PEAK_COLUMNS[kind] not in table.columns:
        return None
    value = table.loc[device, PEAK_COLUMNS[kind]]
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value) * 1e3


def reference_peaks(table: Any, devices: Sequence[tuple[str, str]]) -> list[tuple[str, float]]:
    """``(label, GFLOP/s)`` for each ``(device, kind)`` found in ``table`` (accelerators.csv
    indexed by device; ``kind`` is a :data:`PEAK_COLUMNS` key: ``"fp32"``, ``"tf32 tensor"`` or
    ``"16-bit tensor"``)."""
    peaks = ((device, kind, _peak_gflops(table, device, kind)) for device, kind in devices)
    return [(f"{device} {kind}", peak) for device, kind, peak in peaks if peak is not None]


def reference_roofs(table: Any, devices: Sequence[tuple[str, str]]) -> list[Roof]:
    """The roofs of reference devices: each ``(device, kind)`` peak from ``table``
    (accelerators.csv indexed by device) over the device's memory bandwidth."""
    roofs = []
    for device, kind in devices:
        peak = _peak_gflops(table, device, kind)
        if peak is not None:
            roofs.append(Roof(f"{device} {kind}", peak, float(table.loc[device, "mem_bw_gbs"])))
    return roofs


def plot_roofline(ax: Any, roofs: Sequence[Roof], points: Sequence[KernelPoint] = (),
                  intensity_range: tuple[float, float] = (1 / 64, 4096), *,
                  label_roofs: bool = False) -> None:
    """Draw roofs (measured ones solid orange, references blue, each with its own dash
    pattern) and kernel points on log-log axes labelled in FLOP/byte and GFLOP/s.
    ``label_roofs`` also writes each reference roof's name at the right end of its roof."""
    import numpy as np

    from utils.plotting import MEASURED, REFERENCE

    xs = np.geomspace(*intensity_range, 200)
    reference_styles = ["--", ":", "-.", (0, (5, 1, 1, 1))]
    references = 0
    for roof in roofs:
        ys = np.minimum(roof.peak_gflops, roof.bandwidth_gbs * xs)
        if roof.measured:
            style = dict(color=MEASURED, ls="-")
        else:  # every reference roof in blue, each with its own dash pattern
            style = dict(color=REFERENCE, ls=reference_styles[references % len(reference_styles)])
            references += 1
        tag = "measured" if roof.measured else "reference"
        ax.plot(xs, ys, lw=2, label=f"{roof.name} ({tag})", **style)
        ax.axvline(roof.ridge, color=style["color"], lw=0.6, alpha=0.4)
        if label_roofs and not roof.measured:
            ax.annotate(roof.name, (intensity_range[1], roof.peak_gflops), ha="right",
                        va="bottom", fontsize=8, color=REFERENCE)
    for point in points:
        if point.gflops is not None:
            ax.plot(point.intensity, point.gflops, "o", color=MEASURED, ms=7)
            ax.annotate(point.name, (point.intensity, point.gflops), xytext=(5, -12),
                        textcoords="offset points", fontsize=8)
        else:
            ax.axvline(point.intensity, color="gray", ls=":", lw=1)
            ax.annotate(point.name, (point.intensity, ax.get_ylim()[0] if ax.get_ylim()[0] > 0
                                     else 1.0), xytext=(3, 5), textcoords="offset points",
                        fontsize=8, rotation=90)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte, log scale)")
    ax.set_ylabel("attainable performance (GFLOP/s, log scale)")
    ax.legend(loc="lower right")


def plot_matmul_sweep(ax: Any, sweep: Any, references: Sequence[tuple[str, float]] = (), *,
                      cpu_peak_gflops: float | None = None) -> None:
    """Measured matrix-multiply throughput against size, beside reference peaks.

    ``sweep`` is a DataFrame with columns ``library``, ``device``, ``dtype``, ``n`` and
    ``GFLOP/s`` (one row per timed size); each (library, device, format) is one orange curve,
    its line style the format and its marker the library. ``references`` are ``(label,
    GFLOP/s)`` data-sheet peaks (dashed blue lines); ``cpu_peak_gflops`` this CPU's theoretical
    float32 peak (dotted orange). Log-log axes, labelled in units.
    """
    from utils.plotting import MEASURED, REFERENCE

    styles = {"float32": "-", "tf32": "-.", "bfloat16": "--", "float16": ":"}
    markers = {"tensorflow": "o", "jax": "s"}
    for (library, device, dtype), curve in sweep.groupby(["library", "device", "dtype"]):
        ax.plot(curve["n"], curve["GFLOP/s"], styles.get(dtype, "-"),
                marker=markers.get(library, "^"), color=MEASURED,
                alpha=1.0 if device != "CPU" or library == "tensorflow" else 0.55,
                label=f"{device} {dtype} ({library}, measured)")
    left = sweep["n"].min()
    lines = [(cpu_peak_gflops, MEASURED, ":", "this CPU's fp32 peak (formula)")] \
        if cpu_peak_gflops else []
    lines += [(gflops, REFERENCE, "--", f"{label} (reference peak)") for label, gflops in references]
    for gflops, colour, style, text in lines:
        ax.axhline(gflops, color=colour, ls=style, lw=0.8)
        ax.annotate(text, (left, gflops), xytext=(0, 3), textcoords="offset points",
                    fontsize=8, color=colour)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("matrix size n (n x n times n x n, log scale)")
    ax.set_ylabel("throughput (GFLOP/s, log scale)")
    ax.set_title("Matrix-multiply throughput: measured here (orange) and reference peaks (blue)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, ncol=3)
