"""Checking a learner's answer to an exercise, from this machine's own measurements.

An exercise whose answer depends on the machine ends with a cell like::

    # Your answer: the speedup of the 4096 product over the 64 one (a number)
    my_answer = ...
    check_answer(my_answer, expected=rate_4096 / rate_64, rtol=0.25,
                 why="the large product keeps the vector units busy; the small one is "
                     "dominated by call overhead")

Until the learner replaces ``...``, the cell says what to do and nothing fails (so the
notebook still runs top to bottom under papermill). A number within the tolerance is
accepted with the reason; another gets a hint, never a traceback. Exercises whose answer is
the same everywhere reveal it in a collapsed ``<details>`` block instead.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["check_answer"]


def check_answer(answer: Any, expected: float | str | bool, *, rtol: float = 0.05,
                 atol: float = 0.0, unit: str = "", why: str = "",
                 hint: str = "") -> bool | None:
    """Say whether ``answer`` matches ``expected`` and why; return True, False, or None when
    no answer was given yet.

    Numbers match within ``rtol`` (relative) or ``atol`` (absolute); texts match ignoring case
    and surrounding spaces; booleans match exactly. ``why`` is shown with a right answer,
    ``hint`` with a wrong one (the expected value is shown only once the answer is right, so
    the learner still has something to find).
    """
    unit_text = f" {unit}" if unit else ""
    if answer is ... or answer is None:
        print("No answer yet: replace ... with your answer and run this cell again.")
        return None
    if isinstance(expected, bool) or isinstance(answer, bool):
        right = answer is expected or answer == expected
    elif isinstance(expected, str):
        right = isinstance(answer, str) and answer.strip().lower() == expected.strip().lower()
    elif isinstance(answer, numbers.Real) and math.isfinite(float(answer)):
        right = math.isclose(float(answer), float(expected), rel_tol=rtol, abs_tol=atol)
    else:
        print(f"Your answer {answer!r} is not a number; write a number{unit_text}, e.g. 12.5.")
        return False
    if right:
        shown = expected if isinstance(expected, (str, bool)) else f"{float(expected):.4g}"
        print(f"Right: {shown}{unit_text}." + (f" {why}" if why else ""))
        return True
    tolerance = f" (within {rtol:.0%})" if isinstance(expected, numbers.Real) and rtol else ""
    print(f"Not yet: {answer!r}{unit_text} does not match{tolerance}."
          + (f" Hint: {hint}" if hint else " Look again at the measurement above."))
    return False
