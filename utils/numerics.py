"""Floating-point number formats used for deep learning: float32, bfloat16, float16 (and fp8).

A binary floating-point number is ``(-1)^sign x 1.mantissa x 2^(exponent - bias)``. The
exponent bits set the *range* (the largest and smallest numbers), the mantissa bits the
*precision* (machine epsilon, the gap between 1 and the next number). bfloat16 keeps float32's
8 exponent bits (same range) and cuts the mantissa to 7 bits; float16 splits its 16 bits as
5 + 10, so it is more precise than bfloat16 but overflows above 65,504.

NumPy has float32 and float16; bfloat16 and the 8-bit formats come from ``ml_dtypes``, which
JAX and TensorFlow install (it is imported only when one of those formats is asked for).

Which formats a device computes natively, and so which ones a lesson times there, is
:func:`formats_here`: float32 everywhere (on NVIDIA GPUs with TF32 off), TF32 on NVIDIA GPUs of
compute capability 8.0 and later, and the 16-bit formats where the device has arithmetic for
them. A format the device lacks is skipped with one line saying why: timing it would measure a
software emulation (and, for float16 on most CPUs, make TensorFlow's oneDNN print
``oneDNN supports DT_HALF only on platforms with AVX-512``, which means AVX512_FP16 or AMX_FP16).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from utils.errors import ArgumentError

__all__ = [
    "FORMATS",
    "MATMUL_FORMATS",
    "formats_here",
    "time_matmul",
    "relative_error",
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
#: The formats a matrix product can be timed in: TF32 is float32 data multiplied on NVIDIA
#: tensor cores with float16's 10-bit mantissa and float32's range.
MATMUL_FORMATS = ("float32", "tf32", "bfloat16", "float16")

_NUMPY = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
_ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2")
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def dtype(name: str) -> np.dtype:
    """The NumPy dtype of format ``name`` (``"float32"``, ``"bfloat16"``, ``"float16"``, ...).

    Raises:
        ArgumentError: an unknown format, or ``ml_dtypes`` missing for bfloat16/fp8.
    """
    if name in _NUMPY:
        return np.dtype(_NUMPY[name])
    if name in _ML_DTYPES:
        try:
            import ml_dtypes
        except ImportError:
            raise ArgumentError("name", name, "needs the ml_dtypes package",
                                "pip install ml_dtypes (JAX and TensorFlow install it)") from None
        return np.dtype(getattr(ml_dtypes, name))
    known = ", ".join([*_NUMPY, *_ML_DTYPES])
    raise ArgumentError("name", name, "is not a number format the course knows",
                        f"choose one of {known}")


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


def formats_here(report: Any, kind: str | None = None) -> dict[str, str | None]:
    """Each of :data:`MATMUL_FORMATS` -> None where the device computes it natively (time it),
    else one line saying why it is skipped.

    ``report`` is a :class:`utils.hardware.HardwareReport`; ``kind`` (``"cpu"``, ``"gpu"``,
    ``"tpu"``) is the device the framework computes on, by default the fastest in the report
    (pass ``"cpu"`` where the framework cannot use the GPU the report lists). TF32 is
    :attr:`utils.hardware.GPUInfo.tf32`; the 16-bit answers are
    :func:`utils.models.precision_support`'s, where "runs, but slowly" also means skipped.
    """
    from utils.models import precision_support

    kind = kind or report.accelerator
    support = precision_support(report, kind)
    out: dict[str, str | None] = {"float32": None}
    gpu = report.gpus[0] if kind == "gpu" and report.gpus else None
    if gpu is not None and gpu.tf32:
        out["tf32"] = None
    elif gpu is not None:
        out["tf32"] = (f"{gpu.name} has no TF32 (it needs compute capability 8.0 or later, "
                       f"this one has {gpu.compute_capability or 'an unknown one'})")
    else:
        out["tf32"] = f"TF32 is a format of NVIDIA tensor cores, not of this {kind.upper()}"
    for name in ("bfloat16", "float16"):
        note = support.get(f"mixed_{name}")
        out[name] = None if note is None else note.split(": ", 1)[-1].removeprefix("runs, but ")
    return out


def time_matmul(fmt: str, n: int, *, min_time: float = 1.0, seed: int = 0) -> Any:
    """Time an n x n by n x n product in ``fmt`` (one of :data:`MATMUL_FORMATS`) with
    ``keras.ops.matmul`` on Keras's backend and device; returns :class:`utils.timing.Stats`.

    float32 runs with TF32 off and ``"tf32"`` with it on (float32 data), through
    :func:`utils.backends.matmul_precision`; the 16-bit formats convert the operands. Call it
    inside :func:`utils.backends.on_first_device` to pick the device.
    """
    import keras

    from utils.backends import matmul_precision
    from utils.errors import whole_number
    from utils.timing import benchmark

    if fmt not in MATMUL_FORMATS:
        raise ArgumentError("fmt", fmt, "is not a format a matmul is timed in",
                            f"choose one of {', '.join(MATMUL_FORMATS)}")
    n = whole_number(n, "n")
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    dtype = "float32" if fmt == "tf32" else fmt
    with matmul_precision("tf32" if fmt == "tf32" else "float32"):
        x, y = (keras.ops.convert_to_tensor(m, dtype=dtype) for m in (a, b))
        return benchmark(keras.ops.matmul, x, y, min_time=min_time, label=f"{n}x{n} {fmt} matmul")


def relative_error(result: Any, exact: Any) -> np.ndarray:
    """Frobenius-norm error of each matrix of ``result`` (shape (..., rows, cols)) against
    ``exact``, relative to the exact matrix's norm, computed in float64."""
    result = np.asarray(result, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    diff = (result - exact).reshape(*exact.shape[:-2], -1)
    return np.linalg.norm(diff, axis=-1) / np.linalg.norm(exact.reshape(*exact.shape[:-2], -1),
                                                          axis=-1)
