"""Interactive controls that are safe in executed notebooks, and readable in every front end.

``ipywidgets.interact`` calls its function at once and writes the result into an Output widget
while the cell is still executing. Under papermill or nbval (nbclient) that capture can hang the
run for good (jupyter/nbclient#312, nteract/papermill#723). :func:`live` shows the controls and
an output area and calls the function only when a control changes, which in a live notebook is
when you move it and in an executed copy is never. Call the function once yourself, in plain
code, so that the executed copy shows a result::

    import ipywidgets as widgets
    from utils.widgets import live, pow2_slider

    show(1990, 2010)                          # what an executed copy shows
    live(lambda years: show(*years),
         years=widgets.IntRangeSlider(value=(1990, 2010), min=1971, max=2023,
                                      description="years"))
    live(show_laws, replicas=pow2_slider(1, 1024, value=8, description="replicas n"))

No label or readout is cut. ipywidgets gives a slider's description a fixed width (longer ones
end in "…") and lets the readout shrink below its text when the slider is narrow (a year range
showed as ``1971 – 202``). :func:`live` passes every control through :func:`fit_text`, which
lets the description take the width of its text and widens the control so that its longest
readout fits. A width you set yourself (``layout.width``) is kept.

:func:`pow2_slider` steps through powers of two (1, 2, 4, ... 1024): for counts such as replicas
or batch sizes that grow by doubling, where a linear slider from 1 to 1024 jumps in steps of
dozens and cannot reach 2 or 4 by dragging.
"""

from __future__ import annotations

from typing import Any, Callable

from utils.errors import ArgumentError, whole_number

__all__ = ["live", "pow2_slider", "fit_text"]

# Pixel widths used to size a control: an estimate of the widest character of the widgets'
# font (13 px system UI), ipywidgets' slider track basis and the margins around its parts.
_CHAR_PX = 8
_TRACK_PX = 160
_MARGINS_PX = 40


def _readout_texts(control: Any) -> list[str]:
    """The texts a control's readout can show at its extremes (empty if it has none)."""
    if not getattr(control, "readout", False):
        return []
    if hasattr(control, "_options_labels"):  # SelectionSlider, SelectionRangeSlider
        labels = [str(label) for label in control._options_labels] or [""]
        widest = max(labels, key=len)
        return [f"{widest} – {widest}" if isinstance(control.value, tuple) else widest]
    form = getattr(control, "readout_format", "")
    low, high = control.min, control.max
    if hasattr(control, "base"):  # FloatLogSlider: min and max are exponents
        low, high = control.base**low, control.base**high
    texts = [format(low, form), format(high, form)]
    if isinstance(control.value, tuple):  # a range slider shows "low – high"
        widest = max(texts, key=len)
        return [f"{widest} – {widest}"]
    return texts


def fit_text(control: Any) -> Any:
    """Make ``control``'s description and readout show in full; return the control.

    The description takes the width of its text (``style.description_width = "initial"``) and,
    unless ``layout.width`` is already set, the control gets wide enough for the description,
    the slider track and its longest readout.
    """
    description = str(getattr(control, "description", "") or "")
    style = getattr(control, "style", None)
    if description and style is not None and hasattr(style, "description_width"):
        style.description_width = "initial"
    readouts = _readout_texts(control)
    if readouts and getattr(control.layout, "width", None) is None:
        readout = max(len(text) for text in readouts)
        width = _CHAR_PX * (len(description) + readout) + _TRACK_PX + _MARGINS_PX
        control.layout.width = f"{max(width, 300)}px"
    return control


def pow2_slider(minimum: int = 1, maximum: int = 1024, *, value: int | None = None,
                description: str = "", continuous_update: bool = False,
                **kwargs: Any) -> Any:
    """A slider over the powers of two from ``minimum`` to ``maximum`` (both powers of two).

    Returns an ``ipywidgets.SelectionSlider`` whose ``value`` is the int itself (``value``
    defaults to ``minimum``; one that is not a power of two in range is refused). Extra keyword
    arguments go to the slider (``style``, ``layout``...).
    """
    import ipywidgets as widgets

    low = whole_number(minimum, "minimum", minimum=1)
    high = whole_number(maximum, "maximum", minimum=low)
    for name, number in (("minimum", low), ("maximum", high)):
        if number & (number - 1):
            raise ArgumentError(name, number, "must be a power of two",
                                "e.g. 1, 2, 4, ... 1024")
    options = [1 << k for k in range(low.bit_length() - 1, high.bit_length())]
    chosen = low if value is None else value
    if chosen not in options:
        raise ArgumentError("value", value, f"must be a power of two from {low} to {high}")
    return widgets.SelectionSlider(options=[(f"{v:,}", v) for v in options], value=chosen,
                                   description=description,
                                   continuous_update=continuous_update, **kwargs)


def live(function: Callable[..., Any], *, horizontal: bool = False, **controls: Any) -> Any:
    """Show ``controls`` (ipywidgets, by parameter name) above an output area and redraw
    ``function(**values)`` there whenever one of them changes.

    Each control goes through :func:`fit_text` first, so no description or readout is cut.
    Returns the box that was displayed (``box.children`` are the controls, then the output).
    """
    import ipywidgets as widgets
    from IPython.display import display

    if not controls:
        raise ArgumentError("controls", {}, "must name at least one control",
                            "e.g. live(show, years=IntRangeSlider(...))")
    area = widgets.Output()

    def redraw(_change: Any = None) -> None:
        with area:
            area.clear_output(wait=True)
            function(**{name: control.value for name, control in controls.items()})

    for control in controls.values():
        fit_text(control)
        control.observe(redraw, names="value")
    row = (widgets.HBox if horizontal else widgets.VBox)(list(controls.values()))
    box = widgets.VBox([row, area])
    box.redraw = redraw  # for tests and for redrawing by hand
    display(box)
    return box
