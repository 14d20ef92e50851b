"""The chapter's claims, checked against the record, and the chapter's two scaling graphs.

Each lesson ends its part of the chapter with one cell::

    from utils.chapter import check_chapter

    check_chapter("01")

which prints every claim of that part (data/chapter_claims.csv): the chapter's figure, the
record's figure, the difference between them (computed here, never typed), the verdict and the
source. Verdicts:

* ``holds``: the record agrees (a rounded figure counts as agreeing: 1.5 for 1.4855);
* ``differs``: the record disagrees; the explanation says why, the printout by how much;
* ``typo``: the chapter's own number is misprinted (it contradicts the chapter's own words);
* ``unverified``: no public record at hand confirms or refutes it (a personal memory, a figure
  only the machine's owner published); the explanation says what is consistent with it.

Lessons 05 and 06 draw the chapter's graphs [16] and [17] (Campos et al., CCGrid 2017) with
:func:`chapter_graph`, from the published figures in data/campos2017.csv (the paper's
abstract) and data/scaling.csv (TensorFlow's K80 benchmarks, which stand in for the curves).
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

from utils import data
from utils.errors import ArgumentError, whole_number

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["VERDICTS", "claims", "check_chapter", "numeric", "difference", "chapter_graph",
           "GRAPHS"]

#: The verdicts a claim may carry (see the module docstring); data/chapter_claims.csv's schema
#: refuses any other.
VERDICTS = data.CLAIM_VERDICTS

#: Units printed with an SI prefix (1.1e15 FLOP/s -> 1.10 PFLOP/s); other large numbers are
#: printed as powers of ten (1e20 FLOP -> 1×10^20 FLOP), as the chapter writes them.
_SI_UNITS = ("FLOP/s",)


def claims(lesson: str | None = None) -> "pd.DataFrame":
    """The chapter's claims, all or those a lesson (``"01"``) checks."""
    table = data.load("chapter_claims")
    if lesson is None:
        return table
    lessons = sorted(set(table["lesson"].astype(str)))
    lesson = str(lesson).zfill(2)
    if lesson not in lessons:
        raise ArgumentError("lesson", lesson, f"is not a lesson with chapter claims; "
                            f"choose one of {', '.join(lessons)}")
    return table[table["lesson"].astype(str) == lesson]


def numeric(value: object) -> float | None:
    """``value`` as a float when it is one number (``"1.1e15"``), else None (``"5-6"``, text)."""
    if value is None:
        return None
    try:
        number = float(str(value).replace(",", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def difference(chapter: object, record: object) -> str:
    """How the chapter's figure compares with the record's, in words; empty if not two numbers.

    Empty when they agree within 0.5 % or are not two numbers. Within a factor of 2 the gap is
    a percentage of the record; beyond, a ratio.
    """
    value, reference = numeric(chapter), numeric(record)
    if value is None or reference is None or reference == 0:
        return ""
    ratio = value / reference
    if abs(ratio - 1) < 0.005:
        return ""
    if 0.5 <= ratio <= 2:
        side = "above" if ratio > 1 else "below"
        return f"the chapter's figure is {abs(ratio - 1) * 100:.1f} % {side} the record's"
    if ratio > 1:
        return f"the chapter's figure is {ratio:,.4g} times the record's"
    return f"the chapter's figure is 1/{1 / ratio:,.4g} of the record's"


def _figure(value: object, unit: str) -> str:
    number = numeric(value)
    if number is None:
        text = "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
            else str(value)
        return f"{text} {unit}".strip() if text != "-" else text
    if unit in _SI_UNITS:
        from utils.units import si

        return si(number, unit, digits=4)
    if unit == "year":
        return f"{number:.0f}"
    if abs(number) >= 1e6:
        mantissa, exponent = f"{number:.4e}".split("e")
        text = f"{float(mantissa):g}×10^{int(exponent)}"
    else:
        text = f"{number:,.4g}" if abs(number) < 1e4 else f"{number:,.0f}"
    return f"{text} {unit}".strip()


def _wrap(label: str, text: str) -> str:
    return textwrap.fill(f"{label}: {text}", width=100, initial_indent="    ",
                         subsequent_indent="        ", break_on_hyphens=False)


def check_chapter(lesson: str) -> "pd.DataFrame":
    """Print this lesson's chapter claims with the record, the difference and a verdict.

    Returns the claims (a DataFrame) so a notebook can use them further.
    """
    table = claims(lesson)
    section = ", ".join(dict.fromkeys(table["section"]))
    counts = table["verdict"].value_counts()
    tally = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    print(f"Checking the chapter ({section}): {len(table)} claim(s) from "
          f"data/chapter_claims.csv: {tally}")
    for row in table.itertuples(index=False):
        unit = row.unit if isinstance(row.unit, str) else ""
        print(f"\n[{row.verdict}] {row.claim}")
        line = f"    chapter: {_figure(row.value, unit)}"
        if isinstance(row.record_value, str) and row.record_value:
            line += f"   record: {_figure(row.record_value, unit)}"
        gap = difference(row.value, row.record_value)
        print(line + (f"   ({gap})" if gap else ""))
        if isinstance(row.explanation, str) and row.explanation:
            print(_wrap("why", row.explanation))
        print(_wrap("source", row.source))
    return table


# --------------------------------------------------------------------------------------------
# The chapter's scaling graphs [16] and [17]
# --------------------------------------------------------------------------------------------

#: What each graph of the chapter showed, and what stands in for its figures here.
GRAPHS = {
    16: "the training speedup of the authors' network on the GPUs of one BSC server with two "
        "K80 cards (up to 4 GPUs), against one GPU",
    17: "the training speedup over servers of 4 GPUs each (two K80 cards), against one server",
}

_PAPER = ("Campos, Sastre, Yagues, Torres and Giro-i-Nieto, \"Scaling a convolutional neural "
          "network for classification of adjective noun pairs with TensorFlow on GPU clusters\", "
          "CCGrid 2017")


def _group(table: "pd.DataFrame", source: str, hardware: str, model: str) -> "pd.DataFrame":
    rows = table[(table["source"] == source) & (table["hardware"] == hardware)
                 & (table["model"] == model)]
    return rows.sort_values("devices")


def chapter_graph(number: int, ax: Any = None) -> Any:
    """Draw the chapter's scaling graph ``number`` (16 or 17) from published figures in data/.

    Prints a caption: what the chapter's graph showed, what is drawn, its source, and what
    stands in where the paper's figures are not recoverable. Returns the matplotlib Axes (a
    new figure's unless ``ax`` is given).
    """
    number = whole_number(number, "number")
    if number not in GRAPHS:
        raise ArgumentError("number", number, "is not one of the chapter's scaling graphs",
                            "choose 16 (GPUs in one server) or 17 (servers of 4 GPUs)")
    import matplotlib.pyplot as plt
    import numpy as np

    from utils.plotting import HIGHLIGHT, REFERENCE

    table = data.load("scaling")
    paper = data.load("campos2017").set_index("quantity")["value"]
    node = int(paper["gpus_per_node"])
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.2))
    if number == 16:
        rows = _group(table, "TF benchmarks 2017", "GCE K80 (one server)", "ResNet-50")
        x = rows["devices"].to_numpy()
        y = rows["images_per_s"].to_numpy() / rows["images_per_s"].iloc[0]
        ax.axvspan(x.min(), node, color=HIGHLIGHT, alpha=0.08,
                   label=f"the paper's range: the {node} GPUs of one BSC server")
        ax.plot(x, y, "o-", color=REFERENCE,
                label="stand-in: ResNet-50 on K80 GPUs of one server (TF benchmarks 2017)")
        ax.set_xlabel("GPUs in one server (log scale)")
        ax.set_ylabel("speedup over 1 GPU (×, log scale)")
        at_node = float(y[x == node][0])
        drawn = (f"Drawn instead: ResNet-50 training on 1 to {x.max()} K80 GPUs of one Google "
                 f"Compute Engine server, from TensorFlow's published benchmarks (May 2017; "
                 f"synthetic data, batch {int(rows['batch_per_device'].iloc[0])} per GPU), "
                 f"speedup = images/s over the 1-GPU images/s: {at_node:.2f} times on {node} "
                 f"GPUs ({100 * at_node / node:.0f} % efficiency), the same GPU and era as the "
                 "paper's.")
        missing = ("The paper's abstract describes its curve as near-linear; its measured "
                   "values are not in a published table this course could recover.")
    else:
        rows = _group(table, "TF benchmarks 2017", "AWS K80 distributed", "ResNet-50")
        per_node = int(rows["devices_per_node"].iloc[0])
        rows = rows[rows["devices"] >= per_node]
        x = (rows["devices"] / per_node).to_numpy()
        y = rows["images_per_s"].to_numpy() / rows["images_per_s"].iloc[0]
        ax.plot(x, y, "o-", color=REFERENCE,
                label=f"stand-in: ResNet-50 on servers of {per_node} K80 GPUs (TF benchmarks "
                      "2017)")
        nodes, speedup = int(paper["nodes_largest_run"]), paper["speedup_largest_run_over_one_node"]
        ax.plot([nodes], [speedup], "*", ms=14, color=HIGHLIGHT,
                label=f"the paper: {nodes} servers of {node} GPUs")
        ax.set_xlabel("servers (nodes, log scale)")
        ax.set_ylabel("speedup over one server (×, log scale)")
        last, x = int(x[-1]), np.append(x, nodes)
        drawn = (f"Drawn: the paper's one published point, {speedup:g} times one server's "
                 f"throughput on {nodes} servers of {node} GPUs ({100 * speedup / nodes:.0f} % "
                 f"efficiency; its abstract), and for the curve's shape ResNet-50 on 1 to "
                 f"{last} Amazon p2.8xlarge servers of {per_node} K80 GPUs, from TensorFlow's "
                 f"published benchmarks (May 2017), speedup = images/s over one server's: "
                 f"{y[-1]:.2f} times on {last} servers ({100 * y[-1] / last:.0f} % efficiency).")
        missing = ("The paper's intermediate points are not in a published table this course "
                   "could recover.")
    ideal = np.array([1, x.max()])
    ax.plot(ideal, ideal, ":", color="gray", label="ideal: speedup = devices")
    ticks = sorted({int(v) for v in x})
    for axis, scale in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
        scale("log", base=2)  # log-log: ideal scaling is the diagonal
        axis.set_ticks(ticks, [str(t) for t in ticks])
    ax.set_title(f"Chapter graph [{number}], reproduced from published data")
    ax.legend(fontsize=7)
    print(f"The chapter's graph [{number}] ({_PAPER}) showed {GRAPHS[number]}. {missing} "
          f"{drawn} Sources: data/campos2017.csv and data/scaling.csv (provenance in "
          "data/SOURCES.md).")
    return ax
