"""utils.top500: placing a measured rate against #1 and #500 of each TOP500 list."""

from __future__ import annotations

import pandas as pd
import pytest

from utils.errors import ArgumentError
from utils.top500 import list_name, place, plot_top500


@pytest.fixture
def lists():
    """Four fake lists: #1 and #500 grow tenfold per list (TFLOP/s)."""
    return pd.DataFrame({
        "list": pd.to_datetime(["2001-11-01", "2000-06-01", "2000-11-01", "2001-06-01"]),
        "rmax_no1_tflops": [1000.0, 1.0, 10.0, 100.0],
        "rmax_no500_tflops": [10.0, 0.01, 0.1, 1.0],
    })


def test_a_mid_rate_leads_early_lists_and_stays_on_later_ones(lists):
    p = place(20_000.0, lists)  # 20 TFLOP/s
    assert p.no1_count == 2
    assert p.no1_from == pd.Timestamp("2000-06-01") and p.no1_until == pd.Timestamp("2000-11-01")
    assert p.no1_rmax_tflops_at_until == 10.0
    assert p.on_list_until == pd.Timestamp("2001-11-01") and p.on_list_count == 4
    assert not p.is_no1_today and p.is_on_list_today
    text = str(p)
    assert "from June 2000 to November 2000" in text
    assert "still enter the latest list (November 2001" in text


def test_exactly_equal_rates_count(lists):
    p = place(1_000.0, lists)  # equals #1 of June 2000 and #500 of June 2001
    assert p.no1_until == pd.Timestamp("2000-06-01") and p.no1_count == 1
    assert "in June 2000 only" in str(p)
    assert p.on_list_until == pd.Timestamp("2001-06-01")
    assert "until June 2001; after that #500 was faster" in str(p)


def test_a_slow_rate_was_never_no1_and_never_listed(lists):
    p = place(5.0, lists)  # 0.005 TFLOP/s < #500 of the first list
    assert p.no1_until is None and p.on_list_until is None
    assert "never have been #1" in str(p) and "never have entered" in str(p)


def test_a_fast_rate_is_no1_today(lists):
    p = place(2e6, lists)
    assert p.is_no1_today and p.no1_count == 4
    assert "#1 even in the latest list (November 2001)" in str(p)


def test_non_monotonic_lists_report_the_last_qualifying_list():
    lists = pd.DataFrame({"list": pd.to_datetime(["2000-06-01", "2000-11-01", "2001-06-01"]),
                          "rmax_no1_tflops": [1.0, 3.0, 2.0],
                          "rmax_no500_tflops": [0.1, 0.2, 0.3]})
    p = place(2_500.0, lists)
    assert p.no1_count == 2 and p.no1_until == pd.Timestamp("2001-06-01")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "100"])
def test_bad_rates_are_refused(lists, bad):
    with pytest.raises(ArgumentError, match=r"gflops = .* must be a (finite )?number"):
        place(bad, lists)


def test_empty_table_is_refused(lists):
    with pytest.raises(ArgumentError, match="at least one TOP500 list"):
        place(10.0, lists.iloc[0:0])


def test_the_bundled_lists_by_default():
    p = place(200.0)  # 0.2 TFLOP/s: above every #1 up to November 1995 (0.17 TFLOP/s)
    assert list_name(p.no1_until) == "November 1995"
    assert list_name(p.first_list) == "June 1993"


def test_plot_top500_marks_the_placed_rate_and_marenostrum(lists):
    import matplotlib

    matplotlib.use("Agg")
    systems = pd.DataFrame({"top500_list": pd.to_datetime(["2000-11-01", "2001-06-01"]),
                            "rmax_tflops": [5.0, 50.0], "rank": [3, 7]},
                           index=pd.Index(["MareNostrum 1", "MareNostrum 1 (expanded)"],
                                          name="system"))
    lists["rmax_sum_tflops"] = lists["rmax_no1_tflops"] * 30
    ax = plot_top500(lists, systems, place(20_000.0, lists))
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["MN1 #3"]  # the expanded installation is drawn, not labelled
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "last list it would have led: November 2000" in legend
    assert "last list it would have entered: November 2001" in legend
    assert any(t.startswith("this machine, float64 matmul (20,000 GFLOP/s)") for t in legend)
