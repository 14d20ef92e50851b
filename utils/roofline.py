"""The roofline model: attainable FLOP/s = min(peak FLOP/s, bandwidth x arithmetic intensity).

Arithmetic intensity is FLOPs per byte moved to or from memory. A kernel left of the *ridge
point* (peak / bandwidth) is memory-bound, right of it compute-bound. Williams, Waterman and
Patterson, "Roofline", CACM 2009.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

__all__ = [
    "Roof",
    "KernelPoint",
    "attainable_gflops",
    "matmul_intensity",
    "elementwise_intensity",
    "plot_roofline",
]


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
    if intensity <= 0:
        raise ValueError("arithmetic intensity must be positive")
    return min(roof.peak_gflops, roof.bandwidth_gbs * intensity)


def matmul_intensity(n: int, bytes_per_element: int = 4) -> float:
    """FLOP/byte of an n x n matrix product that reads A and B and writes C once: 2n^3 / 3n^2b."""
    return 2 * n**3 / (3 * n**2 * bytes_per_element)


def elementwise_intensity(flops_per_element: float = 1, arrays: int = 3,
                          bytes_per_element: int = 4) -> float:
    """FLOP/byte of an elementwise op (``c = a + b``: 1 FLOP over 3 arrays of 4 bytes)."""
    return flops_per_element / (arrays * bytes_per_element)


def plot_roofline(ax: Any, roofs: Sequence[Roof], points: Sequence[KernelPoint] = (),
                  intensity_range: tuple[float, float] = (1 / 64, 4096)) -> None:
    """Draw roofs (measured ones solid orange, references blue, each with its own dash
    pattern) and kernel points on log-log axes labelled in FLOP/byte and GFLOP/s."""
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
