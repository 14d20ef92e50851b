"""One plot style for the course: readable sizes, light grids, and fixed colours for what was
measured in this run (orange) against reference figures from data/ (blue)."""

from __future__ import annotations

from typing import Any

__all__ = ["MEASURED", "REFERENCE", "HIGHLIGHT", "use_course_style", "annotate_points"]

MEASURED = "tab:orange"   # a number measured in this run on this machine
REFERENCE = "tab:blue"    # a number read from data/
HIGHLIGHT = "tab:red"     # a system the lesson singles out (MareNostrum, AlexNet, ...)

_STYLE = {
    "figure.figsize": (8.0, 4.5),
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "legend.frameon": False,
}


def use_course_style() -> None:
    """Apply the course's matplotlib settings to every later plot in this kernel."""
    import matplotlib as mpl

    mpl.rcParams.update(_STYLE)


def annotate_points(ax: Any, xs: Any, ys: Any, labels: Any, *, fontsize: int = 8,
                    offset: tuple[int, int] = (4, 4)) -> None:
    """Write a small label beside each point (x, y)."""
    for x, y, label in zip(xs, ys, labels):
        ax.annotate(str(label), (x, y), xytext=offset, textcoords="offset points",
                    fontsize=fontsize)
