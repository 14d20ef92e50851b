"""One family of errors for the whole course, and the small validators that raise them.

Every error the course raises on purpose derives from :class:`CourseError`. Its message says
what went wrong and what to do, and Jupyter shows it as one line instead of a traceback. The
command line catches ``CourseError`` only: anything else is a bug and keeps its traceback.

Library code raises errors named for its own domain (``DeviceError``, ``DataFileError``,
``ClusterError``...). A value a function cannot take raises :class:`ArgumentError`, which
remembers the argument's name, so a notebook can report it under its own parameter's name::

    from utils.parameters import as_parameters

    with as_parameters(input_size="IMAGE_SIZE"):
        model = build_alexnet(input_size=IMAGE_SIZE)   # "IMAGE_SIZE = 4 must be ..."

Validators replace the hand-written checks: :func:`whole_number` and :func:`number`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["CourseError", "ArgumentError", "whole_number", "number"]


class CourseError(Exception):
    """Base of every error the course raises on purpose; shown in Jupyter as one line."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"{type(self).__name__}: {self}"]


class ArgumentError(CourseError, ValueError):
    """A value a function cannot take.

    ``argument`` is the function's argument name; :meth:`describe` words the same problem for
    another name (a notebook's parameter), which :func:`utils.parameters.as_parameters` uses.
    """

    def __init__(self, argument: str, value: Any, requirement: str, hint: str = "") -> None:
        self.argument = argument
        self.value = value
        self.requirement = requirement
        self.hint = hint
        super().__init__(self.describe(argument))

    def describe(self, name: str) -> str:
        """The message, naming ``name`` as the culprit: ``NAME = value must be ... hint``."""
        text = f"{name} = {self.value!r} {self.requirement}"
        if self.hint:
            text = f"{text.rstrip('.')}; {self.hint}"
        return text if text.endswith((".", "?", "!")) else text + "."


def whole_number(value: Any, argument: str, *, minimum: int | None = 1,
                 maximum: int | None = None, error: type[ArgumentError] = ArgumentError,
                 hint: str = "") -> int:
    """Return ``value`` as an int if it is a whole number within ``[minimum, maximum]``.

    ``True``/``False`` and floats such as ``2.0`` are refused: a count is written as a whole
    number. ``error`` picks the domain's subclass of :class:`ArgumentError`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(argument, value, _requirement("a whole number", minimum, maximum), hint)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise error(argument, value, _requirement("a whole number", minimum, maximum), hint)
    return int(value)


def number(value: Any, argument: str, *, minimum: float | None = None,
           maximum: float | None = None, above: float | None = None,
           error: type[ArgumentError] = ArgumentError, hint: str = "") -> float:
    """Return ``value`` as a float if it is a finite real number in range.

    ``minimum`` and ``maximum`` are inclusive; ``above`` is an exclusive lower bound (``above=0``
    for "a positive number").
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise error(argument, value, _requirement("a finite number", minimum, maximum, above),
                    hint)
    too_low = (minimum is not None and value < minimum) or (above is not None and value <= above)
    if too_low or (maximum is not None and value > maximum):
        raise error(argument, value, _requirement("a number", minimum, maximum, above), hint)
    return float(value)


def _requirement(kind: str, minimum: float | None, maximum: float | None,
                 above: float | None = None) -> str:
    bounds = []
    if above is not None:
        bounds.append(f"> {above:g}")
    if minimum is not None:
        bounds.append(f">= {minimum:g}")
    if maximum is not None:
        bounds.append(f"<= {maximum:g}")
    return f"must be {kind}" + (f" {' and '.join(bounds)}" if bounds else "")
