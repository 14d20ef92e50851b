"""utils.units: numbers people can read."""

import pytest

from utils.units import bytes_, duration, si


@pytest.mark.parametrize("value, unit, expected", [
    (1.5e12, "FLOP/s", "1.50 TFLOP/s"),
    (176e9, "FLOP/s", "176 GFLOP/s"),
    (0.000191, "s", "191 µs"),
    (999.96, "B", "1.00 kB"),
    (0, "s", "0 s"),
])
def test_si(value, unit, expected):
    assert si(value, unit) == expected


@pytest.mark.parametrize("seconds, expected", [
    (0.5, "500 ms"), (90, "1.5 minutes"), (9e6, "104 days"), (3600, "1 hour"),
    (3.2e10, "1.01 millennia"), (float("inf"), "forever"),
])
def test_duration(seconds, expected):
    assert duration(seconds) == expected


def test_bytes():
    assert bytes_(2.5e9) == "2.50 GB"
