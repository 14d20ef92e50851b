"""utils.growth: exponential least-squares fits, doubling times and their uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from utils.errors import ArgumentError
from utils.growth import (ExponentialFit, FitError, dates_of, decimal_year, fit_exponential,
                          plot_growth, plot_training_times)


def test_exact_doubling_every_two_years_is_recovered():
    years = np.arange(1970, 2021)
    values = 1000 * 2.0 ** ((years - 1970) / 2)
    fit = fit_exponential(years, values)
    assert fit.doubling_time == pytest.approx(2.0, rel=1e-9)
    assert fit.slope_se == pytest.approx(0.0, abs=1e-9)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.factor_per_unit == pytest.approx(math.sqrt(2))
    assert fit.predict(1980) == pytest.approx(1000 * 2**5)
    assert fit.x_reaching(1000 * 2**10) == pytest.approx(1990)


def test_uncertainty_matches_textbook_formulas():
    rng = np.random.default_rng(1)
    x = np.linspace(0, 10, 40)
    log2y = 3 + 0.5 * x + rng.normal(0, 0.3, x.size)
    fit = fit_exponential(x, 2.0**log2y)
    residuals = log2y - (fit.intercept + fit.slope * x)
    s2 = (residuals**2).sum() / (x.size - 2)
    se = math.sqrt(s2 / ((x - x.mean()) ** 2).sum())
    assert fit.slope_se == pytest.approx(se, rel=1e-9)
    assert fit.doubling_time_se == pytest.approx(se / fit.slope**2, rel=1e-9)
    assert fit.t_critical == pytest.approx(2.024, abs=1e-3)  # t(0.975, 38)
    low, high = fit.doubling_time_ci
    assert low < fit.doubling_time < high
    assert low == pytest.approx(1 / (fit.slope + fit.t_critical * se))
    assert high == pytest.approx(1 / (fit.slope - fit.t_critical * se))


def test_noisier_data_give_wider_intervals():
    rng = np.random.default_rng(2)
    x = np.linspace(0, 10, 30)
    quiet = fit_exponential(x, 2.0 ** (0.5 * x + rng.normal(0, 0.1, x.size)))
    noisy = fit_exponential(x, 2.0 ** (0.5 * x + rng.normal(0, 1.0, x.size)))
    width = lambda f: f.doubling_time_ci[1] - f.doubling_time_ci[0]  # noqa: E731
    assert width(noisy) > 3 * width(quiet)


def test_range_keeps_only_points_inside_inclusive():
    years = np.array([2000, 2001, 2002, 2003, 2010, 2011])
    values = np.array([1, 2, 4, 8, 1e9, 1e12])
    fit = fit_exponential(years, values, x_min=2000, x_max=2003)
    assert fit.n == 4 and fit.x_min == 2000 and fit.x_max == 2003
    assert fit.doubling_time == pytest.approx(1.0)


def test_missing_values_are_dropped():
    fit = fit_exponential([0, 1, 2, 3, 4], [1, 2, np.nan, 8, 16])
    assert fit.n == 4 and fit.doubling_time == pytest.approx(1.0)


def test_too_few_points_name_the_range():
    with pytest.raises(FitError, match="at least 3 points; 2 lie in the range 2000 to 2001"):
        fit_exponential([2000, 2001, 2005], [1, 2, 3], x_min=2000, x_max=2001)


def test_bad_inputs_are_refused():
    with pytest.raises(FitError, match="positive"):
        fit_exponential([1, 2, 3], [1, 0, 4])
    with pytest.raises(FitError, match="differ in length"):
        fit_exponential([1, 2, 3], [1, 2])
    with pytest.raises(FitError, match="same x"):
        fit_exponential([5, 5, 5], [1, 2, 3])
    with pytest.raises(ArgumentError, match="confidence = 95 must be a number > 0 and <= 0.999"):
        fit_exponential([1, 2, 3], [1, 2, 4], confidence=95)


def test_interval_reaching_no_growth_is_open_ended():
    fit = ExponentialFit(slope=0.1, intercept=0, slope_se=0.2, n=5, x_min=0, x_max=4,
                         r_squared=0.1, t_critical=3.18)
    low, high = fit.doubling_time_ci
    assert math.isinf(high) and low == pytest.approx(1 / (0.1 + 3.18 * 0.2))
    assert "inf" in fit.describe()


def test_describe_scales_units():
    fit = fit_exponential([2012, 2013, 2014, 2015], [1, 16, 256, 4096])  # 4 doublings a year
    assert fit.describe("months", 12).startswith("doubling time 3.00 months")
    assert "4 points, 2012-2015" in str(fit)


def test_x_reaching_refuses_non_positive():
    fit = fit_exponential([0, 1, 2], [1, 2, 4])
    with pytest.raises(ArgumentError, match="y = 0 must be a number > 0"):
        fit.x_reaching(0)


def test_decimal_year():
    years = decimal_year(pd.to_datetime(["2012-01-01", "2012-07-02", "2013-01-01"]))
    assert years[0] == 2012.0 and years[2] == 2013.0
    assert years[1] == pytest.approx(2012 + 183 / 366)  # 2012 is a leap year
    assert decimal_year("2000-01-01")[0] == 2000.0


def test_dates_of_inverts_decimal_year():
    dates = pd.to_datetime(["2012-01-01", "2012-07-02", "2017-10-19", "2024-12-31"])
    back = dates_of(decimal_year(dates))
    assert list(back) == list(dates.values.astype("datetime64[D]"))


def test_plot_growth_draws_the_points_and_the_fit_on_a_log_scale():
    import matplotlib

    matplotlib.use("Agg")
    years = np.arange(2000, 2010)
    values = 2.0 ** (years - 2000)
    fit = fit_exponential(years, values, x_max=2005)
    ax = plot_growth(years, values, fit, chosen=years <= 2005, labels=[str(y) for y in years],
                     annotate={"2001", "2009"}, fit_label="fit")
    assert ax.get_yscale() == "log"
    [line] = ax.get_lines()
    assert line.get_xdata()[0] == 2000 and line.get_xdata()[-1] == 2005
    assert [t.get_text() for t in ax.texts] == ["2001"]  # 2009 is not fitted: not annotated
    assert len(ax.collections) == 2  # the grey points left out, the fitted ones


def test_plot_growth_draws_the_fit_on_a_date_axis():
    import matplotlib

    matplotlib.use("Agg")
    dates = pd.to_datetime(["2012-06-01", "2014-06-01", "2016-06-01", "2018-06-01"])
    fit = fit_exponential(decimal_year(dates), [1, 10, 100, 1000])
    ax = plot_growth(dates, [1, 10, 100, 1000], fit)
    [line] = ax.get_lines()
    assert np.asarray(line.get_xdata()).dtype.kind == "M"  # dates, not decimal years


def test_plot_training_times_draws_one_bar_per_model_and_rate():
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_training_times({"a": 8.64e19, "b": 8.64e21}, {"here": 1e12, "there": 1e15},
                             measured="here")
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == pytest.approx(sorted([8.64e7, 8.64e9, 8.64e4, 8.64e6]))
    assert ax.get_xscale() == "log"
    assert ax.get_yticklabels()[0].get_color() == "tab:orange"
