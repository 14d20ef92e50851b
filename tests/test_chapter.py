"""utils.chapter: the chapter's claims, each with a source, a verdict and a record that agrees with
the data files; check_chapter's printout; the chapter's two scaling graphs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from utils import chapter, data  # noqa: E402
from utils.errors import ArgumentError  # noqa: E402

# ---- the chapter's scaling graphs [16] and [17] ----------------------------------------------


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("number", [16, 17])
def test_chapter_graph_draws_data_with_units_ideal_line_and_caption(number, capsys):
    ax = chapter.chapter_graph(number)
    caption = capsys.readouterr().out
    assert f"graph [{number}]" in caption and "CCGrid 2017" in caption
    assert "not in a published table" in caption  # says what could not be recovered
    assert "TensorFlow's published benchmarks" in caption  # and what stands in
    assert "data/campos2017.csv and data/scaling.csv" in caption
    assert "(×" in ax.get_ylabel() and ax.get_xlabel()
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(label.startswith("ideal") for label in labels)
    ideal = next(line for line in ax.get_lines() if line.get_label().startswith("ideal"))
    assert np.array_equal(ideal.get_xdata(), ideal.get_ydata())
    stand_in = next(line for line in ax.get_lines() if line.get_label().startswith("stand-in"))
    x, y = stand_in.get_xdata(), stand_in.get_ydata()
    assert x[0] == 1 and y[0] == pytest.approx(1)
    assert np.all(np.diff(y) > 0) and np.all(y <= x + 1e-9)  # grows, never above ideal


def test_graph_16_is_the_k80_server_of_scaling_csv(capsys):
    ax = chapter.chapter_graph(16)
    capsys.readouterr()
    table = data.load("scaling")
    rows = table[(table["hardware"] == "GCE K80 (one server)") & (table["model"] == "ResNet-50")]
    stand_in = next(line for line in ax.get_lines() if line.get_label().startswith("stand-in"))
    assert list(stand_in.get_xdata()) == list(rows["devices"])
    assert list(stand_in.get_ydata()) == pytest.approx(list(rows["speedup"]), abs=0.006)


def test_graph_17_marks_the_papers_published_point(capsys):
    ax = chapter.chapter_graph(17)
    caption = capsys.readouterr().out
    paper = data.load("campos2017").set_index("quantity")["value"]
    point = next(line for line in ax.get_lines() if line.get_label().startswith("the paper"))
    assert list(point.get_xdata()) == [paper["nodes_largest_run"]]
    assert list(point.get_ydata()) == [paper["speedup_largest_run_over_one_node"]]
    assert f"{paper['speedup_largest_run_over_one_node']:g} times one server's" in caption


def test_chapter_graph_uses_the_axes_it_is_given(capsys):
    _, ax = plt.subplots()
    assert chapter.chapter_graph(17, ax=ax) is ax


@pytest.mark.parametrize("bad", [15, 0, "16", 16.0])
def test_chapter_graph_refuses_other_numbers(bad):
    with pytest.raises(ArgumentError, match="number = "):
        chapter.chapter_graph(bad)
