"""Floating-point number formats used for deep learning: float32, bfloat16, float16 (and fp8).

A binary floating-point number is ``(-1)^sign x 1.mantissa x 2^(exponent - bias)``. The
exponent bits set the *range* (the largest and smallest numbers), the mantissa bits the
*precision* (machine epsilon, the gap between 1 and the next number). bfloat16 keeps float32's
8 exponent bits (same range) and cuts the mantissa to 7 bits; float16 splits its 16 bits as
5 + 10, so it is more precise than bfloat16 but overflows above 65,504.

NumPy has float32 and float16; bfloat16 and the 8-bit formats come from ``ml_dtypes``, which
JAX and TensorFlow install (it is imported only when one of those formats is asked for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

__all__ = [
    "FORMATS",
    "FormatInfo",
    "BitFields",
    "dtype",
    "format_info",
    "format_table",
    "round_to",
    "bit_fields",
    "running_sum",
]

#: The formats the course compares, widest first.
FORMATS = ("float32", "bfloat16", "float16")

_NUMPY = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
_ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2")
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def dtype(name: str) -> np.dtype:
    """The NumPy dtype of format ``name`` (``"float32"``, ``"bfloat16"``, ``"float16"``, ...).

    Raises:
        ValueError: an unknown format, or ``ml_dtypes`` missing for bfloat16/fp8.
    """
    if name in _NUMPY:
        return np.dtype(_NUMPY[name])
    if name in _ML_DTYPES:
        try:
            import ml_dtypes
        except ImportError:
            raise ValueError(f"{name} needs the ml_dtypes package (JAX and TensorFlow install "
                             "it): pip install ml_dtypes") from None
        return np.dtype(getattr(ml_dtypes, name))
    known = ", ".join([*_NUMPY, *_ML_DTYPES])
    raise ValueError(f"unknown number format {name!r}; choose one of {known}.")


def _finfo(name: str) -> Any:
    if name in _NUMPY:
        return np.finfo(_NUMPY[name])
    import ml_dtypes

    return ml_dtypes.finfo(dtype(name))


@dataclass(frozen=True)
class FormatInfo:
    """Range and precision of one format."""

    name: str
    bits: int
    exponent_bits: int
    mantissa_bits: int  # stored fraction bits (the leading 1 is implicit)
    max: float  # largest finite number
    smallest_normal: float
    smallest_subnormal: float
    eps: float  # machine epsilon: the gap between 1 and the next number
    decimal_digits: int  # about how many significant decimal digits survive

    def as_row(self) -> dict[str, Any]:
        return {
            "format": self.name,
            "bits": self.bits,
            "exponent bits": self.exponent_bits,
            "mantissa bits": self.mantissa_bits,
            "largest": self.max,
            "smallest normal": self.smallest_normal,
            "machine epsilon": self.eps,
            "decimal digits": self.decimal_digits,
        }


def format_info(name: str) -> FormatInfo:
    """Bits, range and precision of format ``name``."""
    info = _finfo(name)
    bits = int(info.bits)
    mantissa = int(-round(np.log2(float(info.eps))))
    return FormatInfo(
        name=name,
        bits=bits,
        exponent_bits=bits - 1 - mantissa,
        mantissa_bits=mantissa,
        max=float(info.max),
        smallest_normal=float(info.smallest_normal),
        smallest_subnormal=float(info.smallest_subnormal),
        eps=float(info.eps),
        decimal_digits=int(info.precision),
    )


def format_table(names: Iterable[str] = FORMATS) -> Any:
    """A pandas DataFrame with one row of :class:`FormatInfo` per format."""
    import pandas as pd

    return pd.DataFrame([format_info(n).as_row() for n in names]).set_index("format")


def round_to(value: float, name: str) -> float:
    """``value`` stored in format ``name`` and read back: rounded, ``inf`` if it overflows."""
    with np.errstate(over="ignore"):
        return float(np.asarray(value, dtype=np.float64).astype(dtype(name)))


@dataclass(frozen=True)
class BitFields:
    """The stored bits of one number: sign, exponent, mantissa."""

    value: float
    name: str
    sign: str
    exponent: str
    mantissa: str

    def __str__(self) -> str:
        return f"{self.sign} | {self.exponent} | {self.mantissa}"


def bit_fields(value: float, name: str) -> BitFields:
    """The sign, exponent and mantissa bits of ``value`` stored in format ``name``."""
    info = format_info(name)
    with np.errstate(over="ignore"):
        stored = np.asarray([value], dtype=np.float64).astype(dtype(name))
    raw = int(stored.view(_UINT[info.bits])[0])
    text = format(raw, f"0{info.bits}b")
    return BitFields(float(stored[0]), name, text[0], text[1:1 + info.exponent_bits],
                     text[1 + info.exponent_bits:])


def running_sum(values: Iterable[float], name: str) -> float:
    """Add ``values`` one at a time, rounding the running total to format ``name`` each step.

    This is what an accumulator of that width does; once the total is large, small addends
    fall below half its last digit and are lost (the sum *stagnates*). Matrix units therefore
    multiply in 16 (or 8) bits but accumulate in 32.
    """
    kind = dtype(name)
    total = np.zeros((), dtype=kind)
    with np.errstate(over="ignore"):
        for value in values:
            total = (total + np.asarray(value, dtype=kind)).astype(kind)
    return float(total)
