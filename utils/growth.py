"""Exponential growth, fitted: doubling times with their uncertainty, and extrapolation.

Moore's law, the TOP500 and the compute used to train AI models all grow exponentially:
``y = y0 * 2**(x / T)`` with a doubling time ``T``. Taking ``log2`` makes that a straight
line, ``log2(y) = a + b*x`` with ``b = 1/T`` doublings per unit of ``x``, so an ordinary
least-squares line through ``(x, log2 y)`` gives the doubling time. The slope's standard error
(from the residuals) says how well the data pin it down; its confidence interval uses
Student's t with ``n - 2`` degrees of freedom. The interval of ``T`` is the slope's interval
inverted (``T = 1/b`` is not symmetric around its estimate); the standard error of ``T`` is the
first-order (delta-method) value ``se(b) / b**2``.

Data a line cannot be fitted through (fewer than three points in range, a value that is not
positive, all points in the same year) raise :class:`FitError`; a bad argument raises
:class:`utils.errors.ArgumentError`. :func:`plot_growth` draws points with their fitted line on
a log scale (lessons 01 and 04); :func:`plot_training_times` draws how long trainings take at
given rates (lesson 04).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Collection, Mapping, Sequence

from utils.errors import CourseError, number

__all__ = ["ExponentialFit", "FitError", "fit_exponential", "decimal_year", "dates_of",
           "plot_growth", "plot_training_times"]


class FitError(CourseError, ValueError):
    """The points given cannot be fitted by an exponential (too few, or not positive...)."""


@dataclass(frozen=True)
class ExponentialFit:
    """A least-squares line through ``(x, log2 y)``: ``log2 y = intercept + slope * x``.

    ``x`` is usually a (decimal) year, so the slope is in doublings per year and the doubling
    time in years.
    """

    slope: float
    intercept: float
    slope_se: float
    n: int
    x_min: float
    x_max: float
    r_squared: float
    confidence: float = 0.95
    t_critical: float = math.nan

    @property
    def doubling_time(self) -> float:
        """Units of ``x`` per doubling (``inf`` for no growth, negative for a decline)."""
        return 1.0 / self.slope if self.slope != 0 else math.inf

    @property
    def doubling_time_se(self) -> float:
        """Standard error of the doubling time, to first order: ``se(slope) / slope**2``."""
        return self.slope_se / self.slope**2 if self.slope != 0 else math.inf

    @property
    def slope_ci(self) -> tuple[float, float]:
        """Confidence interval of the slope (doublings per unit of ``x``)."""
        half = self.t_critical * self.slope_se
        return self.slope - half, self.slope + half

    @property
    def doubling_time_ci(self) -> tuple[float, float]:
        """Confidence interval of the doubling time: the slope's interval inverted.

        When the slope's interval reaches zero the data cannot rule out "no growth", and the
        upper end is ``inf``.
        """
        low, high = self.slope_ci
        if self.slope <= 0 or low <= 0:
            return (1.0 / high if high > 0 else math.inf), math.inf
        return 1.0 / high, 1.0 / low

    @property
    def factor_per_unit(self) -> float:
        """Growth factor per unit of ``x`` (per year): ``2**slope``."""
        return 2.0**self.slope

    def predict(self, x: Any) -> Any:
        """The fitted ``y`` at ``x`` (a number or a NumPy array)."""
        import numpy as np

        return np.power(2.0, self.intercept + self.slope * np.asarray(x, dtype=float))

    def x_reaching(self, y: float) -> float:
        """The ``x`` (year) at which the fitted curve reaches ``y``."""
        y = number(y, "y", above=0, hint="a curve of positive values reaches only those")
        if self.slope == 0:
            return math.inf
        return (math.log2(y) - self.intercept) / self.slope

    def describe(self, unit: str = "years", scale: float = 1.0, digits: int = 3) -> str:
        """One line: doubling time with standard error and confidence interval.

        ``scale`` converts units of ``x`` (e.g. ``12`` to show years as months) and ``unit``
        names the result.
        """
        low, high = self.doubling_time_ci

        def fmt(value: float) -> str:
            return "inf" if math.isinf(value) else f"{value * scale:#.{digits}g}".rstrip(".")

        return (f"doubling time {fmt(self.doubling_time)} {unit} "
                f"(standard error {fmt(self.doubling_time_se)}, "
                f"{100 * self.confidence:.0f} % interval {fmt(low)}-{fmt(high)}; "
                f"{self.n} points, {math.floor(self.x_min)}-{math.floor(self.x_max)}, "
                f"R² {self.r_squared:.2f})")

    def __str__(self) -> str:
        return self.describe()


def decimal_year(dates: Any) -> Any:
    """Dates (anything pandas reads as datetimes) as decimal years: 2012-07-01 -> 2012.50."""
    import numpy as np
    import pandas as pd

    stamps = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(dates)))
    starts = pd.to_datetime({"year": stamps.year, "month": 1, "day": 1})
    ends = pd.to_datetime({"year": stamps.year + 1, "month": 1, "day": 1})
    fraction = (stamps - pd.DatetimeIndex(starts)) / (pd.DatetimeIndex(ends)
                                                      - pd.DatetimeIndex(starts))
    return np.asarray(stamps.year + np.asarray(fraction), dtype=float)


def fit_exponential(x: Sequence[float] | Any, y: Sequence[float] | Any, *,
                    x_min: float | None = None, x_max: float | None = None,
                    confidence: float = 0.95) -> ExponentialFit:
    """Fit ``y = 2**(intercept + slope*x)`` by least squares on ``log2 y``.

    Args:
        x: positions, usually years (decimal years for dates: :func:`decimal_year`).
        y: positive values (transistors, FLOP/s, petaflop/s-days).
        x_min, x_max: keep only points with ``x_min <= x <= x_max`` (inclusive).
        confidence: level of the confidence intervals (0.95 gives 95 % intervals).

    Raises:
        FitError: ``x`` and ``y`` differ in length, a kept ``y`` is not positive, fewer
            than three points are in range (two points leave no residual to estimate an
            uncertainty from), or all kept ``x`` are equal.
        ArgumentError: ``confidence`` is not between 0 and 1.
    """
    import numpy as np
    from scipy import stats

    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise FitError(f"x and y differ in length ({xs.size} and {ys.size}).")
    number(confidence, "confidence", above=0, maximum=0.999, hint="0.95 gives 95 % intervals")
    keep = np.isfinite(xs) & np.isfinite(ys)
    if x_min is not None:
        keep &= xs >= x_min
    if x_max is not None:
        keep &= xs <= x_max
    xs, ys = xs[keep], ys[keep]
    span = f"{x_min if x_min is not None else '-inf'} to {x_max if x_max is not None else 'inf'}"
    if xs.size < 3:
        raise FitError(f"an exponential fit needs at least 3 points; {xs.size} lie in the "
                         f"range {span}. Widen the range.")
    if np.any(ys <= 0):
        raise FitError("every y must be positive to take its logarithm; found "
                         f"{ys[ys <= 0][0]:g}.")
    if np.ptp(xs) == 0:
        raise FitError(f"all {xs.size} points have the same x ({xs[0]:g}); no slope to fit.")
    result = stats.linregress(xs, np.log2(ys))
    t_critical = float(stats.t.ppf(0.5 + confidence / 2, xs.size - 2))
    return ExponentialFit(
        slope=float(result.slope),
        intercept=float(result.intercept),
        slope_se=float(result.stderr),
        n=int(xs.size),
        x_min=float(xs.min()),
        x_max=float(xs.max()),
        r_squared=float(result.rvalue**2),
        confidence=confidence,
        t_critical=t_critical,
    )


def dates_of(years: Any) -> Any:
    """Decimal years as dates (NumPy ``datetime64[D]``): the inverse of :func:`decimal_year`,
    to draw a fitted line on a date axis."""
    import numpy as np

    years = np.atleast_1d(np.asarray(years, dtype=float))
    whole = np.floor(years).astype(int)
    starts = np.array([f"{y:04d}-01-01" for y in whole], dtype="datetime64[D]")
    ends = np.array([f"{y + 1:04d}-01-01" for y in whole], dtype="datetime64[D]")
    days = np.rint((years - whole) * (ends - starts).astype(float)).astype(int)
    return starts + days.astype("timedelta64[D]")


def plot_growth(x: Any, y: Any, fit: ExponentialFit | None = None, *, ax: Any = None,
                chosen: Any = None, labels: Sequence[str] | None = None,
                annotate: Collection[str] = (), label: str | None = None,
                fit_label: str | None = None, xlabel: str = "year", ylabel: str = "",
                title: str = "") -> Any:
    """Points on a log scale with their fitted exponential; return the axes.

    ``x`` are years (numbers) or dates: on a date axis the fit, made on decimal years, is
    drawn through :func:`dates_of`. ``chosen`` (a boolean mask) draws the points left out of
    the fit in light grey; ``labels`` name the points and those in ``annotate`` are written
    beside them.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from utils.plotting import HIGHLIGHT, REFERENCE, annotate_points

    if ax is None:
        _, ax = plt.subplots()
    xs, ys = pd.Series(list(x)), pd.Series(np.asarray(y, dtype=float))
    inside = pd.Series(True, index=xs.index) if chosen is None else \
        pd.Series(np.asarray(chosen, dtype=bool))
    if not inside.all():
        ax.scatter(xs[~inside], ys[~inside], s=10, color="lightgray", label="not fitted")
    ax.scatter(xs[inside], ys[inside], s=14, color=REFERENCE, zorder=3, label=label)
    if labels is not None and annotate:
        named = pd.Series(list(labels)).isin(list(annotate)) & inside
        annotate_points(ax, xs[named], ys[named], pd.Series(list(labels))[named], fontsize=7)
    if fit is not None:
        line = np.linspace(fit.x_min, fit.x_max, 60)
        dated = pd.api.types.is_datetime64_any_dtype(xs)
        ax.plot(dates_of(line) if dated else line, fit.predict(line), color=HIGHLIGHT,
                label=fit_label)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if label or fit_label:
        ax.legend(loc="upper left")
    return ax


def plot_training_times(flop: Mapping[str, float], rates: Mapping[str, float], *,
                        measured: str | None = None, ax: Any = None) -> Any:
    """Horizontal bars: how long each training (``flop``, FLOPs by model) takes at each rate
    (``rates``, FLOP/s by device), on a log time axis with an hour, a day, a year and a
    millennium marked. The row named ``measured`` is coloured as this run's measurement."""
    import matplotlib.pyplot as plt
    import numpy as np

    from utils.plotting import MEASURED

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.55 * len(rates) + 1.5))
    names = list(rates)
    rows = np.arange(len(names))
    shades = plt.get_cmap("Blues")(np.linspace(0.4, 0.95, len(flop)))
    height = 0.8 / len(flop)
    for i, (model, work) in enumerate(flop.items()):
        offset = (i - (len(flop) - 1) / 2) * height
        ax.barh(rows + offset, [work / rates[name] for name in names], height=height,
                color=shades[i], label=model)
    ax.set_yticks(rows, names)
    if measured in rates:
        ax.get_yticklabels()[names.index(measured)].set_color(MEASURED)
    ax.set_ylim(len(names) - 0.5, -1.0)
    year = 365.25 * 86400
    for seconds, unit in ((3600, "hour"), (86400, "day"), (year, "year"),
                          (1000 * year, "millennium")):
        ax.axvline(seconds, color="gray", lw=0.8, ls=":")
        ax.text(seconds, -0.65, f" 1 {unit}", fontsize=8, color="gray")
    ax.set_xscale("log")
    ax.set_xlabel("time to train at that rate (seconds, log scale)")
    ax.legend(loc="lower right")
    return ax
