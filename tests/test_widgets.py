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


# --------------------------------------------------------------------------------------------
# In a real browser: JupyterLab renders the controls, and no readout or label is cut.
# --------------------------------------------------------------------------------------------

_LAB_CELLS = ['''
import sys
sys.path.insert(0, {root!r})
import ipywidgets as widgets
from IPython.display import display
from utils.widgets import live, pow2_slider


def sliders():
    # lesson 01's year range, lesson 07's latency budget, lesson 04's years beside a list
    return (widgets.IntRangeSlider(value=(1971, 2023), min=1971, max=2023, description="years"),
            widgets.FloatLogSlider(value=10, base=10, min=-1, max=3, description="p99 budget (ms)"),
            widgets.IntRangeSlider(value=(2012, 2024), min=2012, max=2024, description="years"))


a, b, c = sliders()
display(widgets.HTML("<b id='plain'>plain ipywidgets</b>"), widgets.VBox([a, b]),
        widgets.HBox([widgets.SelectMultiple(options=["AlexNet"], description="models"), c]))
''', '''
display(widgets.HTML("<b id='live'>through live()</b>"))
a, b, c = sliders()
live(print, years=a)
live(print, budget_ms=b)
live(print, horizontal=True, years=c,
     models=widgets.SelectMultiple(options=["AlexNet", "GPT-3 175B"], description="models"))
live(print, replicas=pow2_slider(1, 1024, value=1024, description="replicas n"));
''']

# JupyterLab 4 says idle in its execution indicator before the kernel has started; the status
# bar's "| Idle" comes only once it has.
_KERNEL_IDLE = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
    .some(el => el.textContent.trim().endsWith('| Idle'))
  && !!document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']")"""

_MEASURE = """() => {
  const marker = document.querySelector('#live');
  return [...document.querySelectorAll('.widget-readout, .widget-label')]
    .filter(el => el.offsetParent && el.style.display !== 'none')
    .map(el => ({text: el.textContent, cut: el.scrollWidth > el.clientWidth + 1,
                 live: !!(marker.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING)}));
}"""


@pytest.mark.browser
def test_jupyterlab_shows_every_label_and_readout_in_full(tmp_path):
    """Plain ipywidgets cut "1971 – 2023" and "p99 budget (ms)" (issue 13); through live()
    nothing is cut. The plain controls are measured too, so the test can see a cut."""
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import nbformat

    import utils

    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright "
                                     "(and apt-get install chromium) to run the browser tests")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium: apt-get install chromium to run the browser tests")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        c.format(root=str(utils.REPO_ROOT)) if "{root" in c else c) for c in _LAB_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "widgets.ipynb")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
         f"--port={port}", "--ServerApp.token=", "--ServerApp.password=", "--LabApp.news_url=",
         f"--ServerApp.root_dir={tmp_path}"],
        stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or lab.poll() is not None:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()}")
                time.sleep(1)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            try:
                page.goto(f"http://127.0.0.1:{port}/lab/tree/widgets.ipynb", timeout=120_000)
                page.wait_for_selector(".jp-Notebook", timeout=120_000)
                page.wait_for_function(_KERNEL_IDLE, timeout=180_000)  # a kernel, started
                time.sleep(3)
                page.wait_for_function(_KERNEL_IDLE, timeout=60_000)
                page.click(".lm-MenuBar-itemLabel:text-is('Run')")
                page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
                page.wait_for_function("document.querySelectorAll('.widget-readout').length >= 7",
                                       timeout=180_000)
                time.sleep(2)  # let the layout settle (3 readouts plain, 4 through live)
                seen = page.evaluate(_MEASURE)
            except Exception:
                page.screenshot(path=str(tmp_path / "widgets.png"), full_page=True)
                raise
            finally:
                browser.close()
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
    plain = {row["text"] for row in seen if not row["live"] and row["cut"]}
    assert {"1971 – 2023", "p99 budget (ms)"} <= plain  # the flaw is visible to this test
    cut = [row["text"] for row in seen if row["live"] and row["cut"]]
    assert not cut, f"cut through live(): {cut}"
    assert {"1971 – 2023", "2012 – 2024", "p99 budget (ms)", "1,024"} <= \
        {row["text"] for row in seen if row["live"]}
