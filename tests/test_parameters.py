"""utils.parameters: a wrong parameter is named, with its value and what is allowed."""

from __future__ import annotations

import pytest

from utils.parameters import ParameterError, Rule, check_parameters, check_value, describe_type


def namespace(**values):
    annotations = {"SIZES": list[int], "RATE": float, "EPOCHS": int, "DEVICE": str,
                   "FAST": bool, "LIMIT": int | None}
    defaults = dict(SIZES=[64, 128], RATE=0.5, EPOCHS=3, DEVICE="auto", FAST=True, LIMIT=None)
    return {"__annotations__": annotations, **defaults, **values}


RULES = dict(SIZES=Rule(min=16, max=4096), RATE=Rule(min=0, max=1), EPOCHS=Rule(min=1, max=100),
             DEVICE=Rule(choices=["auto", "cpu", "gpu"]))


def test_valid_parameters_are_returned():
    values = check_parameters(namespace(), **RULES)
    assert values["SIZES"] == [64, 128] and values["LIMIT"] is None


def test_int_is_accepted_for_float_but_bool_is_not_an_int():
    check_parameters(namespace(RATE=1), **RULES)
    with pytest.raises(ParameterError, match=r"EPOCHS = True has the wrong type: expected int"):
        check_parameters(namespace(EPOCHS=True), **RULES)


@pytest.mark.parametrize("change, message", [
    (dict(EPOCHS=-1), r"EPOCHS = -1 is out of range: allowed 1 <= EPOCHS <= 100"),
    (dict(SIZES=[64, 8]), r"SIZES = \[64, 8\] is out of range: allowed 16 <= every item of SIZES"),
    (dict(SIZES="64"), r"SIZES = '64' has the wrong type: expected list\[int\] \(for example"),
    (dict(SIZES=[]), r"SIZES = \[\] is too short"),
    (dict(DEVICE="tpu"), r"DEVICE = 'tpu' is not allowed: choose one of 'auto', 'cpu', 'gpu'"),
    (dict(RATE="fast"), r"RATE = 'fast' has the wrong type: expected float"),
    (dict(LIMIT="x"), r"LIMIT = 'x' has the wrong type: expected int or None"),
])
def test_bad_values_name_parameter_value_and_allowed(change, message):
    with pytest.raises(ParameterError, match=message):
        check_parameters(namespace(**change), **RULES)


def test_rule_for_an_undeclared_name_is_refused():
    with pytest.raises(ParameterError, match="no parameter named BATCH"):
        check_parameters(namespace(), BATCH=Rule(min=1))


def test_annotated_parameter_without_value():
    ns = namespace()
    del ns["RATE"]
    with pytest.raises(ParameterError, match="RATE is annotated but has no value"):
        check_parameters(ns)


def test_error_renders_as_one_line_in_ipython():
    with pytest.raises(ParameterError) as info:
        check_value("N", 0, int, Rule(min=1))
    assert info.value._render_traceback_() == ["ParameterError: N = 0 is out of range: allowed 1 <= N."]


def test_describe_type():
    assert describe_type(list[float]) == "list[float]"
    assert describe_type(int | None) == "int or None"
