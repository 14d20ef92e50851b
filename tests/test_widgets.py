"""utils.widgets.live: controls that redraw on change and never during execution."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from utils.widgets import live


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
    with pytest.raises(ValueError, match="at least one control"):
        live(print)
