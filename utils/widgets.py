"""Interactive controls that are safe in executed notebooks.

``ipywidgets.interact`` calls its function at once and writes the result into an Output widget
while the cell is still executing. Under papermill or nbval (nbclient) that capture can hang the
run for good (jupyter/nbclient#312, nteract/papermill#723). :func:`live` shows the controls and
an output area and calls the function only when a control changes, which in a live notebook is
when you move it and in an executed copy is never. Call the function once yourself, in plain
code, so that the executed copy shows a result.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["live"]


def live(function: Callable[..., Any], *, horizontal: bool = False, **controls: Any) -> Any:
    """Show ``controls`` (ipywidgets, by parameter name) above an output area and redraw
    ``function(**values)`` there whenever one of them changes.

    Returns the box that was displayed (``box.children`` are the controls, then the output).
    """
    import ipywidgets as widgets
    from IPython.display import display

    if not controls:
        raise ValueError("live() needs at least one control, e.g. years=IntRangeSlider(...)")
    area = widgets.Output()

    def redraw(_change: Any = None) -> None:
        with area:
            area.clear_output(wait=True)
            function(**{name: control.value for name, control in controls.items()})

    for control in controls.values():
        control.observe(redraw, names="value")
    row = (widgets.HBox if horizontal else widgets.VBox)(list(controls.values()))
    box = widgets.VBox([row, area])
    box.redraw = redraw  # for tests and for redrawing by hand
    display(box)
    return box
