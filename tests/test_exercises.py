"""check_answer: says right, not yet, or what to do, and never raises."""

from __future__ import annotations

import pytest

from utils.exercises import check_answer


def test_no_answer_yet_says_what_to_do(capsys):
    assert check_answer(..., 3.0) is None
    assert "replace ..." in capsys.readouterr().out


def test_right_within_tolerance_shows_why(capsys):
    assert check_answer(10.4, 10.0, rtol=0.05, why="because") is True
    out = capsys.readouterr().out
    assert out.startswith("Right: 10") and "because" in out


def test_wrong_gives_the_hint_not_the_answer(capsys):
    assert check_answer(12.0, 10.0, rtol=0.05, hint="count the FLOPs") is False
    out = capsys.readouterr().out
    assert "Hint: count the FLOPs" in out and "10" not in out.replace("(within 5%)", "")


@pytest.mark.parametrize("answer,expected,result", [
    (" Compute-bound ", "compute-bound", True), ("memory", "compute-bound", False),
    (True, True, True), (False, True, False), (0.0, 0.0, True), (0.01, 0.0, False)])
def test_texts_booleans_and_zero(answer, expected, result):
    assert check_answer(answer, expected) is result


def test_not_a_number(capsys):
    assert check_answer("lots", 3.0) is False
    assert "not a number" in capsys.readouterr().out
