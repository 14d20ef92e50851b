"""Check a notebook's parameters right after its ``parameters`` cell.

The parameters cell declares each parameter with a type annotation and a comment::

    MATRIX_SIZES: list[int] = [128, 256, 512]  # square sizes n of the matmul sweep
    DEVICE: str = "auto"                       # "auto", "cpu" or "gpu"

and the next cell checks them::

    check_parameters(globals(), MATRIX_SIZES=Rule(min=16, max=8192),
                     DEVICE=Rule(choices=["auto", "cpu", "gpu"]))

The type comes from the annotation; ``Rule`` adds a range or a list of choices. Use plain
annotations in the parameters cell (``int``, ``float``, ``bool``, ``str``, ``list[int]``...):
papermill cannot parse ``int | None`` there and would not see the parameter, so use a sentinel
value instead (``LIMIT: int = 0  # 0 means no limit``). :func:`check_value` itself understands
unions, for checks outside the parameters cell. A wrong value
raises :class:`ParameterError`, which names the parameter, the value and what is allowed, and
shows in Jupyter as one line instead of a traceback.
"""

from __future__ import annotations

import types
import typing
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from utils.errors import ArgumentError, CourseError

__all__ = ["Rule", "ParameterError", "as_parameters", "check_parameters", "check_value",
           "describe_type"]


class ParameterError(CourseError, ValueError):
    """A notebook parameter has a wrong type, is out of range or is not one of the choices."""


@dataclass(frozen=True)
class Rule:
    """What a parameter may be beyond its type: a closed range and/or a list of choices.

    For a list parameter the range applies to every item; ``min_len``/``max_len`` bound its
    length.
    """

    min: float | None = None
    max: float | None = None
    choices: Sequence[Any] | None = None
    min_len: int | None = 1
    max_len: int | None = None


def describe_type(annotation: Any) -> str:
    """A readable name for an annotation: ``list[int]``, ``float``, ``str or None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) if a is not type(None) else "None"
                           for a in typing.get_args(annotation))
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        inner = describe_type(args[0]) if args else "any"
        return f"{origin.__name__}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def _matches(value: Any, annotation: Any) -> bool:
    if annotation is Any:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(annotation)
        return not args or all(_matches(item, args[0]) for item in value)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # an annotation we do not understand: do not block the notebook


def _example(annotation: Any) -> str:
    examples = {int: "8", float: "0.5", bool: "True", str: '"auto"'}
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        item = examples.get(args[0], "...") if args else "..."
        return f"[{item}, {item}]"
    return examples.get(annotation, "")


def check_value(name: str, value: Any, annotation: Any = Any, rule: Rule | None = None) -> None:
    """Raise :class:`ParameterError` unless ``value`` fits ``annotation`` and ``rule``."""
    if not _matches(value, annotation):
        example = _example(annotation)
        hint = f" (for example {name} = {example})" if example else ""
        raise ParameterError(
            f"{name} = {value!r} has the wrong type: expected {describe_type(annotation)}"
            f"{hint}, got {type(value).__name__}."
        )
    if rule is None or value is None:
        return
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if isinstance(value, (list, tuple)):
        if rule.min_len is not None and len(value) < rule.min_len:
            raise ParameterError(f"{name} = {value!r} is too short: it needs at least "
                                 f"{rule.min_len} item(s).")
        if rule.max_len is not None and len(value) > rule.max_len:
            raise ParameterError(f"{name} = {value!r} is too long: at most {rule.max_len} "
                                 "items are allowed.")
    for item in items:
        if rule.choices is not None and item not in rule.choices:
            allowed = ", ".join(repr(c) for c in rule.choices)
            raise ParameterError(f"{name} = {value!r} is not allowed: choose one of {allowed}.")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            low = rule.min if rule.min is not None else None
            high = rule.max if rule.max is not None else None
            if (low is not None and item < low) or (high is not None and item > high):
                what = f"every item of {name}" if isinstance(value, (list, tuple)) else name
                parts = ([f"{low:g}"] if low is not None else []) + [what]
                bounds = " <= ".join(parts + ([f"{high:g}"] if high is not None else []))
                raise ParameterError(f"{name} = {value!r} is out of range: allowed {bounds}.")


def check_parameters(namespace: Mapping[str, Any], /, **rules: Rule) -> dict[str, Any]:
    """Check the notebook's parameters in ``namespace`` (pass ``globals()``).

    Every name annotated in the parameters cell (``NAME: type = value``, upper-case names) is
    checked against its annotation; the keyword arguments add a :class:`Rule` per name.
    Returns the parameters as a dict, for printing or saving with the results.

    Raises:
        ParameterError: naming the parameter, its value and what is allowed.
    """
    annotations = dict(namespace.get("__annotations__", {}))
    names = [n for n in annotations if n.isupper()]
    unknown = [n for n in rules if n not in annotations]
    if unknown:
        raise ParameterError(
            f"no parameter named {', '.join(unknown)} is declared in the parameters cell; "
            f"declared: {', '.join(names) or 'none'}."
        )
    values = {}
    for name in names:
        if name not in namespace:
            raise ParameterError(f"{name} is annotated but has no value; give it a default in "
                                 "the parameters cell.")
        check_value(name, namespace[name], annotations[name], rules.get(name))
        values[name] = namespace[name]
    return values


@contextmanager
def as_parameters(**names: str) -> Iterator[None]:
    """Report a library's :class:`~utils.errors.ArgumentError` under the notebook's parameter.

    ``with as_parameters(input_size="IMAGE_SIZE"): build_alexnet(input_size=IMAGE_SIZE)``
    turns "input_size = 4 must be ..." into the :class:`ParameterError` "IMAGE_SIZE = 4 must
    be ...". Errors about arguments not named here pass through unchanged.
    """
    try:
        yield
    except ArgumentError as error:
        if error.argument not in names:
            raise
        raise ParameterError(error.describe(names[error.argument])) from None
