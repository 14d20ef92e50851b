"""Numbers with units, for people: ``si(1.5e12, "FLOP/s")`` -> ``"1.50 TFLOP/s"``."""

from __future__ import annotations

import math

__all__ = ["si", "duration", "bytes_"]

_PREFIXES = [(1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"),
             (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")]


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """Format ``value`` with an SI prefix and ``digits`` significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0 or math.isinf(value):
        return f"{value:g} {unit}".strip()
    rounded = float(f"{value:.{digits}g}")  # round first: 999.96 B is 1.00 kB, not 1000 B
    for factor, prefix in _PREFIXES:
        if abs(rounded) >= factor:
            break
    scaled = rounded / factor
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(scaled)))))
    return f"{scaled:.{decimals}f} {prefix}{unit}".strip()


_SPANS = [(1000 * 365.25 * 86400, "millennia", "millennium"),
          (365.25 * 86400, "years", "year"),
          (86400, "days", "day"), (3600, "hours", "hour"), (60, "minutes", "minute")]


def duration(seconds: float) -> str:
    """Seconds in the unit a person would use: ``duration(9e6)`` -> ``"104 days"``."""
    if seconds is None or math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):
        return "forever"
    if seconds < 60:
        return si(seconds, "s")
    for span, plural, singular in _SPANS:
        if seconds >= span:
            value = seconds / span
            text = f"{value:.3g}" if value < 1000 else f"{value:,.0f}"
            return f"{text} {singular if text == '1' else plural}"
    return si(seconds, "s")


def bytes_(count: float) -> str:
    """Bytes with a decimal prefix: ``bytes_(2.5e9)`` -> ``"2.50 GB"``."""
    return si(count, "B")
