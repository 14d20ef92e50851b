"""The course's one error family and its validators."""

from __future__ import annotations

import inspect

import pytest

import utils
from utils.errors import ArgumentError, CourseError, number, whole_number
from utils.parameters import ParameterError, as_parameters


def test_every_course_error_derives_from_the_one_base():
    import importlib
    import pkgutil

    found = []
    for info in pkgutil.iter_modules(utils.__path__):
        module = importlib.import_module(f"utils.{info.name}")
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, Exception) and \
                    obj.__module__ == module.__name__:
                found.append(obj)
                assert issubclass(obj, CourseError), f"utils.{info.name}.{name}"
                assert obj is CourseError or "_render_traceback_" not in vars(obj), \
                    f"{name} renders itself; CourseError already does"
    assert len(found) >= 9


def test_course_error_renders_as_one_line_in_jupyter():
    error = CourseError("no TPU found; pick a TPU runtime")
    assert error._render_traceback_() == ["CourseError: no TPU found; pick a TPU runtime"]


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4", None])
def test_whole_number_refuses(value):
    with pytest.raises(ArgumentError, match=r"^replicas = .* must be a whole number >= 1"):
        whole_number(value, "replicas")


def test_whole_number_accepts_numpy_integers_and_bounds():
    import numpy as np

    assert whole_number(np.int64(4), "n", minimum=1, maximum=4) == 4
    with pytest.raises(ArgumentError, match="<= 4"):
        whole_number(5, "n", maximum=4)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "1", None])
def test_number_above_zero_refuses(value):
    with pytest.raises(ArgumentError, match="> 0"):
        number(value, "seconds", above=0)


def test_number_in_closed_range():
    assert number(0.5, "fraction", minimum=0, maximum=1) == 0.5
    with pytest.raises(ArgumentError, match=">= 0 and <= 1"):
        number(1.5, "fraction", minimum=0, maximum=1)


def test_domain_subclass_is_raised_with_its_hint():
    class ModelError(ArgumentError):
        pass

    with pytest.raises(ModelError, match=r"width = 9 .*; widths above 4 do not fit"):
        number(9, "width", above=0, maximum=4, error=ModelError,
               hint="widths above 4 do not fit")


def test_as_parameters_names_the_notebook_parameter():
    with pytest.raises(ParameterError, match=r"^IMAGE_SIZE = 4 must be a whole number >= 32"):
        with as_parameters(input_size="IMAGE_SIZE"):
            whole_number(4, "input_size", minimum=32)


def test_as_parameters_lets_other_errors_through():
    with pytest.raises(ArgumentError, match="^depth = 0"):
        with as_parameters(input_size="IMAGE_SIZE"):
            whole_number(0, "depth")
    with pytest.raises(KeyError):
        with as_parameters(input_size="IMAGE_SIZE"):
            raise KeyError("a bug keeps its traceback")
