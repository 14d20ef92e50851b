"""Exponential growth, fitted: doubling times with their uncertainty, and extrapolation.

Moore's law, the TOP500 and the compute used to train AI models all grow exponentially:
``y = y0 * 2**(x / T)`` with a doubling time ``T``. Taking ``log2`` makes that a straight
line, ``log2(y) = a + b*x`` with ``b = 1/T`` doublings per unit of ``x``, so an ordinary
least-squares line through ``(x, log2 y)`` gives the doubling time. The slope's standard error
(from the residuals) says how well the data pin it down; its confidence interval uses
Student's t with ``n - 2`` degrees of freedom. The interval of ``T`` is the slope's interval
inverted (``T = 1/b`` is not symmetric around its estimate); the standard error of ``T`` is the
first-order (delta-method) value ``se(b) / b**2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["ExponentialFit", "fit_exponential", "decimal_year"]


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
        if y <= 0:
            raise ValueError(f"y must be positive to be reached by a growing curve, got {y}.")
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
        ValueError: ``x`` and ``y`` differ in length, a kept ``y`` is not positive, fewer
            than three points are in range (two points leave no residual to estimate an
            uncertainty from), or all kept ``x`` are equal.
    """
    import numpy as np
    from scipy import stats

    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length ({xs.size} and {ys.size}).")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}.")
    keep = np.isfinite(xs) & np.isfinite(ys)
    if x_min is not None:
        keep &= xs >= x_min
    if x_max is not None:
        keep &= xs <= x_max
    xs, ys = xs[keep], ys[keep]
    span = f"{x_min if x_min is not None else '-inf'} to {x_max if x_max is not None else 'inf'}"
    if xs.size < 3:
        raise ValueError(f"an exponential fit needs at least 3 points; {xs.size} lie in the "
                         f"range {span}. Widen the range.")
    if np.any(ys <= 0):
        raise ValueError("every y must be positive to take its logarithm; found "
                         f"{ys[ys <= 0][0]:g}.")
    if np.ptp(xs) == 0:
        raise ValueError(f"all {xs.size} points have the same x ({xs[0]:g}); no slope to fit.")
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
