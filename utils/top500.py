"""Where a measured FLOP/s rate would have ranked in the TOP500 lists of the past.

The TOP500 ranks systems by their LINPACK (HPL) result, Rmax, in FP64. data/top500.csv holds,
per list, the Rmax of #1 and of #500. A rate at least #1's would have led that list; a rate at
least #500's would have entered it. Because both grow with time, a machine measured today was
#1 up to some list and on the list up to a later one; :func:`place` finds both.

Only #1 and #500 are in the data, so the rank between them is not estimated.
:func:`plot_top500` draws the lists with the Barcelona Supercomputing Center's systems and a
measured rate (lesson 01).
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import TYPE_CHECKING, Any

from utils.errors import ArgumentError, number

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Placement", "place", "list_name", "plot_top500"]


def list_name(date: Any) -> str:
    """A TOP500 edition by name: ``2013-06-01`` -> ``"June 2013"``."""
    import pandas as pd

    return f"{pd.Timestamp(date):%B %Y}"


@dataclass(frozen=True)
class Placement:
    """A rate placed against #1 and #500 of every list (``None`` where it never qualified)."""

    gflops: float
    first_list: Any
    latest_list: Any
    no1_from: Any | None
    no1_until: Any | None
    no1_count: int
    no1_rmax_tflops_at_until: float | None
    on_list_until: Any | None
    on_list_count: int
    no1_rmax_tflops_first: float
    no500_rmax_tflops_first: float
    no500_rmax_tflops_latest: float

    @property
    def is_no1_today(self) -> bool:
        """True if the rate beats #1 of the latest list."""
        return self.no1_until is not None and self.no1_until == self.latest_list

    @property
    def is_on_list_today(self) -> bool:
        """True if the rate would enter the latest list."""
        return self.on_list_until is not None and self.on_list_until == self.latest_list

    def lines(self) -> list[str]:
        """Plain sentences saying where the rate would have ranked."""
        rate = f"{self.gflops:,.1f} GFLOP/s"
        out = []
        if self.no1_until is None:
            out.append(f"{rate} would never have been #1: #1 of the first list "
                       f"({list_name(self.first_list)}) reached "
                       f"{self.no1_rmax_tflops_first * 1e3:,.1f} GFLOP/s.")
        elif self.is_no1_today:
            out.append(f"{rate} would be #1 even in the latest list "
                       f"({list_name(self.latest_list)}).")
        else:
            span = (f"in {list_name(self.no1_until)} only" if self.no1_count == 1 else
                    f"in {self.no1_count} lists, from {list_name(self.no1_from)} to "
                    f"{list_name(self.no1_until)}")
            out.append(f"{rate} would have been #1 {span} (#1 then: "
                       f"{self.no1_rmax_tflops_at_until * 1e3:,.1f} GFLOP/s).")
        if self.on_list_until is None:
            out.append(f"It would never have entered the TOP500: #500 of the first list "
                       f"({list_name(self.first_list)}) reached "
                       f"{self.no500_rmax_tflops_first * 1e3:,.3g} GFLOP/s.")
        elif self.is_on_list_today:
            out.append(f"It would still enter the latest list ({list_name(self.latest_list)}; "
                       f"#500 there: {self.no500_rmax_tflops_latest * 1e3:,.0f} GFLOP/s).")
        else:
            out.append(f"It would have entered the list at or above #500 until "
                       f"{list_name(self.on_list_until)}; after that #500 was faster.")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def place(gflops: float, lists: pd.DataFrame | None = None) -> Placement:
    """Place a rate (GFLOP/s, ideally FP64 as TOP500 measures) against every TOP500 list.

    Args:
        gflops: the rate to place, in GFLOP/s.
        lists: the TOP500 table (default ``utils.data.load("top500")``); needs the columns
            ``list``, ``rmax_no1_tflops`` and ``rmax_no500_tflops``.

    Raises:
        ArgumentError: the rate is not a positive finite number, or the table is empty.
    """
    gflops = number(gflops, "gflops", above=0, hint="a rate in GFLOP/s")
    if lists is None:
        from utils import data

        lists = data.load("top500")
    if len(lists) == 0:
        raise ArgumentError("lists", "no rows", "must hold at least one TOP500 list")
    table = lists.sort_values("list").reset_index(drop=True)
    tflops = gflops / 1e3
    no1 = table[table["rmax_no1_tflops"] <= tflops]
    on = table[table["rmax_no500_tflops"] <= tflops]
    first, latest = table.iloc[0], table.iloc[-1]
    return Placement(
        gflops=float(gflops),
        first_list=first["list"],
        latest_list=latest["list"],
        no1_from=no1["list"].iloc[0] if len(no1) else None,
        no1_until=no1["list"].iloc[-1] if len(no1) else None,
        no1_count=len(no1),
        no1_rmax_tflops_at_until=float(no1["rmax_no1_tflops"].iloc[-1]) if len(no1) else None,
        on_list_until=on["list"].iloc[-1] if len(on) else None,
        on_list_count=len(on),
        no1_rmax_tflops_first=float(first["rmax_no1_tflops"]),
        no500_rmax_tflops_first=float(first["rmax_no500_tflops"]),
        no500_rmax_tflops_latest=float(latest["rmax_no500_tflops"]),
    )


def _short(system: str) -> str | None:
    """``MareNostrum 5 ACC`` -> ``MN5 ACC``; ``None`` for partial or expanded installations."""
    if "(" in system or not system.startswith("MareNostrum"):
        return None
    return re.sub(r"^MareNostrum (\d)", r"MN\1", system)


def plot_top500(lists: pd.DataFrame, systems: pd.DataFrame | None = None,
                placement: Placement | None = None, *, ax: Any = None) -> Any:
    """#1, #500 and the sum of every list; MareNostrum's entries (``systems``: bsc_systems
    indexed by system); and, with a :class:`Placement`, the placed rate as a horizontal line
    with the last list it would have led and entered. Returns the axes."""
    import matplotlib.pyplot as plt

    from utils.plotting import HIGHLIGHT, MEASURED, REFERENCE

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 5))
    ax.plot(lists["list"], lists["rmax_sum_tflops"], color="gray", label="sum of all 500")
    ax.plot(lists["list"], lists["rmax_no1_tflops"], color=REFERENCE, label="#1")
    ax.plot(lists["list"], lists["rmax_no500_tflops"], color=REFERENCE, ls="--", label="#500")
    marenostrum = [] if systems is None else \
        [(n, r) for n, r in systems.iterrows() if n.startswith("MareNostrum")]
    for i, (name, row) in enumerate(marenostrum):
        ax.plot(row["top500_list"], row["rmax_tflops"], "D", color=HIGHLIGHT, ms=6,
                label="MareNostrum (MN), TOP500 rank" if i == 0 else None)
        if _short(name):
            above = "ACC" in name  # keep the two MN5 labels apart
            ax.annotate(f"{_short(name)} #{row['rank']}", (row["top500_list"], row["rmax_tflops"]),
                        xytext=(0, 7 if above else -14), textcoords="offset points",
                        fontsize=8, ha="center")
    if placement is not None:
        by_list = lists.set_index("list")
        ax.axhline(placement.gflops / 1e3, color=MEASURED, lw=1.5,
                   label=f"this machine, float64 matmul ({placement.gflops:,.0f} GFLOP/s)")
        for when, column, marker, text in (
                (placement.no1_until, "rmax_no1_tflops", "o", "last list it would have led"),
                (placement.on_list_until, "rmax_no500_tflops", "s",
                 "last list it would have entered")):
            if when is not None:
                ax.plot(when, by_list.loc[when, column], marker, color=MEASURED, ms=9,
                        label=f"{text}: {list_name(when)}")
    ax.set_yscale("log")
    ax.set_xlabel("TOP500 list")
    ax.set_ylabel("Rmax (TFLOP/s, float64 LINPACK, log scale)")
    ax.set_title("TOP500: #1, #500 and the sum" + (", with MareNostrum" if marenostrum else ""))
    ax.legend(loc="lower right", fontsize=8)
    return ax
