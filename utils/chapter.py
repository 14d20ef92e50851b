"""The chapter's claims, checked against the record (data/chapter_claims.csv).

Each lesson ends its part of the chapter with one cell::

    from utils.chapter import check_chapter

    check_chapter("01")

which prints every claim of that part with the chapter's figure, the record's figure, the
source and the verdict (holds, differs and by how much, or a typo), all read from the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from utils import data
from utils.errors import ArgumentError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["VERDICTS", "claims", "check_chapter"]

#: The verdicts a claim may carry.
VERDICTS = ("holds", "differs", "typo")

_MARK = {"holds": "holds  ", "differs": "differs", "typo": "typo   "}


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


def _figure(value: object, unit: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{value} {unit}".strip()
    return f"{number:,.4g} {unit}".strip()


def check_chapter(lesson: str) -> "pd.DataFrame":
    """Print this lesson's chapter claims with the record and a verdict; return them."""
    table = claims(lesson)
    section = ", ".join(dict.fromkeys(table["section"]))
    print(f"Checking the chapter ({section}): {len(table)} claim(s), from "
          "data/chapter_claims.csv")
    for row in table.itertuples(index=False):
        print(f"\n[{_MARK.get(row.verdict, row.verdict)}] {row.claim}")
        print(f"    chapter: {_figure(row.value, row.unit)}   record: "
              f"{_figure(row.record_value, row.unit)}")
        if getattr(row, "explanation", ""):
            print(f"    {row.explanation}")
        print(f"    source: {row.source}")
    return table
