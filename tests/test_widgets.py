"""utils.widgets: controls that redraw on change and never during execution, show their
labels and readouts in full, and a slider over powers of two."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from utils.errors import ArgumentError
from utils.widgets import _CHAR_PX, fit_text, live, pow2_slider


def test_live_calls_the_function_only_when_a_control_changes(capsys):
    calls = []
    years = widgets.IntRangeSlider(value=(1971, 2023), min=1971, max=2023)
    scale = widgets.FloatSlider(value=1.0, min=0.5, max=2.0)
    box = live(lambda years, scale: calls.append((years, scale)), years=years, scale=scale)
    assert calls == []  # nothing drawn while the cell executes
    years.value = (1990, 2010)
    assert calls == [((1990, 2010), 1.0)]
    scale.value = 2.0
    assert calls[-1] == ((1990, 2010), 2.0)
    assert box.children[0].children == (years, scale)
    assert isinstance(box.children[1], widgets.Output)


def test_live_needs_a_control():
    with pytest.raises(ArgumentError, match="at least one control"):
        live(print)


def _px(control) -> int:
    return int(control.layout.width.removesuffix("px"))


def test_a_year_range_readout_gets_room_for_both_years():
    # Lesson 01's slider: ipywidgets' 300 px default clipped "1971 – 2023" to "1971 – 202".
    slider = fit_text(widgets.IntRangeSlider(value=(1971, 2023), min=1971, max=2023,
                                             description="years"))
    assert slider.style.description_width == "initial"
    needed = _CHAR_PX * len("years" + "2023 – 2023") + 160
    assert _px(slider) > needed and _px(slider) > 300


def test_a_long_description_is_never_cut_and_widens_the_control():
    # Lesson 07's slider: its label showed as "p99 budg…".
    long = fit_text(widgets.FloatLogSlider(value=10, base=10, min=-1, max=3,
                                           description="p99 budget (ms)"))
    longer = fit_text(widgets.FloatLogSlider(value=10, base=10, min=-1, max=3,
                                             description="p99 latency budget (ms)"))
    assert long.style.description_width == "initial"
    assert _px(long) >= _CHAR_PX * len("p99 budget (ms)" + "1e+03") + 160
    assert _px(longer) - _px(long) == _CHAR_PX * len("latency ")


def test_a_width_set_by_hand_is_kept():
    slider = fit_text(widgets.IntSlider(description="n", layout=widgets.Layout(width="120px")))
    assert slider.layout.width == "120px"


def test_controls_without_readout_keep_their_layout():
    picker = fit_text(widgets.SelectMultiple(options=["a", "b"], description="models"))
    assert picker.layout.width is None and picker.style.description_width == "initial"
    hidden = fit_text(widgets.IntSlider(readout=False))
    assert hidden.layout.width is None


def test_pow2_slider_steps_through_powers_of_two():
    slider = pow2_slider(1, 1024, value=8, description="replicas n")
    assert [value for _, value in slider.options] == [2**k for k in range(11)]
    assert slider.value == 8 and slider.label == "8"
    slider.index = 10
    assert slider.value == 1024 and slider.label == "1,024"
    assert slider.continuous_update is False
    assert pow2_slider(4, 16).value == 4


def test_pow2_slider_readout_is_sized_by_live():
    slider = fit_text(pow2_slider(1, 1024, description="replicas n"))
    assert _px(slider) >= _CHAR_PX * len("replicas n" + "1,024") + 160


@pytest.mark.parametrize("args, kwargs, message", [
    ((3, 16), {}, "minimum = 3 must be a power of two"),
    ((1, 1000), {}, "maximum = 1000 must be a power of two"),
    ((0, 8), {}, "minimum = 0 must be a whole number >= 1"),
    ((8, 4), {}, "maximum = 4 must be a whole number >= 8"),
    ((1, 8), {"value": 5}, "value = 5 must be a power of two from 1 to 8"),
    ((1, 8), {"value": 16}, "value = 16 must be a power of two from 1 to 8"),
])
def test_pow2_slider_refuses_what_is_not_a_power_of_two(args, kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        pow2_slider(*args, **kwargs)
