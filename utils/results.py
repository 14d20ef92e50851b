"""Recorded results: the figures a lesson measured, kept in the executed notebook.

A lesson records each headline measurement where it prints it::

    from utils.results import record

    gflops = record("matmul_gflops", stats.rate(flop) / 1e9, "GFLOP/s",
                    "best float32 matmul rate of NumPy on this CPU", section="2. Measuring")

``record`` returns the value, shows one small line ("recorded for your report: ...") and puts
the result in the cell's output under its own MIME type, :data:`MIME_TYPE`. Tools read them
back from an executed notebook without running anything (:func:`read_results`): ``course run``
gathers them into ``summary.json`` and ``results.csv``; ``course report`` draws them.

A name is unique within a lesson (recording it again replaces it); the lesson is the notebook's
file name, filled in by the reader, or given explicitly.
"""

from __future__ import annotations

import html
import json
import math
import numbers
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from utils.errors import ArgumentError

__all__ = ["MIME_TYPE", "Result", "record", "read_results", "result_from_output"]

#: The MIME type of a recorded result in a notebook's outputs (a JSON object).
MIME_TYPE = "application/vnd.course.result+json"

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True)
class Result:
    """One recorded figure: what it is, its value and unit, and where it came from."""

    name: str
    value: float | int | str
    unit: str
    description: str
    lesson: str = ""
    section: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.name} = {_format(self.value)} {self.unit}".rstrip()


def _format(value: float | int | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _clean_value(name: str, value: Any) -> float | int | str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        # NumPy scalars are numbers.Real; arrays and None are not results.
        raise ArgumentError("value", value, "must be a number or a short text",
                            f"record one figure per name ({name})")
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ArgumentError("value", value, "must be a finite number",
                            f"the measurement behind {name} did not produce one")
    return value


def record(name: str, value: Any, unit: str, description: str, *, section: str = "",
           lesson: str = "", show: bool = True) -> Any:
    """Record a result of this lesson and return ``value`` unchanged.

    Args:
        name: a short identifier, lower case with underscores (``matmul_gflops``).
        value: a number (NumPy scalars are fine) or a short text (a device's name).
        unit: its unit (``GFLOP/s``, ``images/s``, ``s``; ``""`` for a pure number).
        description: one line a reader understands without the notebook.
        section: the lesson's section it comes from.
        lesson: the notebook's stem; leave empty and readers take it from the file name.
        show: display the result (its MIME bundle); ``False`` returns it silently.
    """
    if not name or set(name) - _NAME_CHARS or not name[0].isalpha():
        raise ArgumentError("name", name, "must be lower case letters, digits and underscores, "
                            "starting with a letter")
    result = Result(name, _clean_value(name, value), unit, description, lesson, section)
    if show:
        from IPython.display import display

        text = f"recorded for your report: {result}"
        bundle = {
            MIME_TYPE: result.as_dict(),
            "text/plain": text,
            "text/html": f'<div class="course-result" style="font-size:0.8em;color:#666">'
                         f"&#128204; {html.escape(text)}</div>",
        }
        display(bundle, raw=True)
    return value


def result_from_output(output: dict[str, Any], lesson: str = "") -> Result | None:
    """The result held by one notebook output, or None if it holds none."""
    data = output.get("data") or {}
    payload = data.get(MIME_TYPE)
    if payload is None:
        return None
    if isinstance(payload, str):  # some writers store JSON MIME types as text
        payload = json.loads(payload)
    fields = {k: payload.get(k, "") for k in ("name", "value", "unit", "description",
                                                "lesson", "section")}
    fields["lesson"] = fields["lesson"] or lesson
    return Result(**fields)


def read_results(notebook: Path | str | dict[str, Any]) -> list[Result]:
    """Every result recorded in an executed notebook (a path or a parsed notebook dict), in
    order; a name recorded twice keeps its last value."""
    lesson = ""
    if not isinstance(notebook, dict):
        path = Path(notebook)
        lesson = path.stem
        notebook = json.loads(path.read_text(encoding="utf-8"))
    found: dict[str, Result] = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) or []:
            result = result_from_output(output, lesson)
            if result is not None:
                found.pop(result.name, None)
                found[result.name] = result
    return list(found.values())
