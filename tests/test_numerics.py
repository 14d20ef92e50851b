"""utils.numerics: range, precision, bits and accumulation of float32, bfloat16 and float16."""

from __future__ import annotations

import math

import pytest

from types import SimpleNamespace

from utils.errors import ArgumentError
from utils.hardware import GPUInfo
from utils.numerics import (FORMATS, bit_fields, dtype, format_info, format_table, formats_here,
                            relative_error, round_to, running_sum, time_matmul)


@pytest.mark.parametrize("name,bits,exponent,mantissa,largest,eps", [
    ("float32", 32, 8, 23, 3.4028234663852886e38, 2.0**-23),
    ("bfloat16", 16, 8, 7, 3.3895313892515355e38, 2.0**-7),
    ("float16", 16, 5, 10, 65504.0, 2.0**-10),
    ("float8_e4m3fn", 8, 4, 3, 448.0, 2.0**-3),
    ("float8_e5m2", 8, 5, 2, 57344.0, 2.0**-2),
])
def test_format_limits(name, bits, exponent, mantissa, largest, eps):
    info = format_info(name)
    assert (info.bits, info.exponent_bits, info.mantissa_bits) == (bits, exponent, mantissa)
    assert info.max == largest
    assert info.eps == eps
    assert info.smallest_subnormal < info.smallest_normal


def test_bfloat16_has_float32_range_and_float16_does_not():
    f32, bf16, f16 = (format_info(n) for n in FORMATS)
    assert bf16.smallest_normal == f32.smallest_normal
    assert bf16.max == pytest.approx(f32.max, rel=0.01)
    assert f16.max < 1e5 and f16.eps < bf16.eps


def test_table_has_one_row_per_format():
    table = format_table()
    assert list(table.index) == list(FORMATS)
    assert table.loc["float16", "largest"] == 65504.0


def test_overflow_underflow_and_rounding():
    assert math.isinf(round_to(70000.0, "float16"))
    assert round_to(70000.0, "bfloat16") == 70144.0  # 7 mantissa bits: steps of 256 there
    assert round_to(70000.0, "float32") == 70000.0
    assert round_to(1e-8, "float16") == 0.0
    assert round_to(1e-8, "bfloat16") == pytest.approx(1e-8, rel=0.01)
    assert round_to(1 + 1 / 256, "bfloat16") == 1.0
    assert round_to(1 + 1 / 256, "float16") == 1 + 1 / 256


def test_overflow_does_not_warn(recwarn):
    round_to(1e6, "float16")
    bit_fields(1e6, "float16")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_bit_fields():
    assert str(bit_fields(1.0, "float32")) == "0 | 01111111 | " + "0" * 23
    assert str(bit_fields(-2.0, "bfloat16")) == "1 | 10000000 | 0000000"
    fields = bit_fields(300.0, "float16")
    assert (fields.sign, fields.exponent, fields.mantissa) == ("0", "10111", "0010110000")
    assert bit_fields(1e6, "float16").exponent == "11111"  # infinity


def test_running_sum_stagnates_in_16_bits():
    values = [0.01] * 10_000
    assert running_sum(values, "float32") == pytest.approx(100.0, rel=1e-3)
    assert running_sum(values, "bfloat16") == 4.0
    assert running_sum(values, "float16") == 32.0


def test_unknown_format_is_refused():
    with pytest.raises(ArgumentError, match="name = 'float12' is not a number format"):
        dtype("float12")


def test_missing_ml_dtypes_is_explained(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(ArgumentError, match="needs the ml_dtypes package"):
        dtype("bfloat16")
    assert dtype("float16").itemsize == 2  # NumPy's own formats still work


def report(accelerator, simd=(), cc=None, name="GPU"):
    gpus = [GPUInfo(name=name, compute_capability=cc)] if accelerator == "gpu" else []
    return SimpleNamespace(accelerator=accelerator, gpus=gpus,
                           cpu=SimpleNamespace(simd=list(simd)))


def measured(formats):
    return [name for name, skipped in formats.items() if skipped is None]


def test_formats_here_by_device():
    zen4 = report("cpu", simd=["avx2", "avx512f", "avx512_bf16"])
    assert measured(formats_here(zen4)) == ["float32", "bfloat16"]
    # the cause of "oneDNN supports DT_HALF only on platforms with AVX-512": no AVX512_FP16
    assert "float16" in formats_here(zen4)["float16"]
    sapphire = report("cpu", simd=["avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16"])
    assert measured(formats_here(sapphire)) == ["float32", "bfloat16", "float16"]
    assert measured(formats_here(report("cpu", simd=["avx2"]))) == ["float32"]
    t4 = report("gpu", cc="7.5", name="Tesla T4")
    assert measured(formats_here(t4)) == ["float32", "float16"]
    assert "8.0 or later, this one has 7.5" in formats_here(t4)["tf32"] and "bfloat16" in formats_here(t4)["bfloat16"]
    a100 = report("gpu", cc="8.0", name="NVIDIA A100-SXM4-40GB")
    assert measured(formats_here(a100)) == ["float32", "tf32", "bfloat16", "float16"]
    assert measured(formats_here(report("tpu"))) == ["float32", "bfloat16"]
    # the CPU of a GPU machine, where the framework cannot use the GPU
    assert measured(formats_here(a100, kind="cpu")) == ["float32"]


def test_relative_error_per_matrix():
    import numpy as np

    exact = np.stack([np.eye(2), 2 * np.eye(2)])
    result = exact.copy()
    result[1, 0, 0] += 0.2  # an error of 0.2 on a matrix of norm 2 sqrt(2)
    errors = relative_error(result.astype(np.float32), exact)
    assert errors.shape == (2,)
    assert errors[0] == 0
    assert errors[1] == pytest.approx(0.2 / (2 * math.sqrt(2)))


def test_time_matmul_on_this_cpu_and_refusals():
    stats = time_matmul("float32", 64, min_time=0.01)
    assert stats.n >= 3 and stats.rate(2 * 64**3) > 0
    assert "64x64 float32 matmul" in stats.label
    with pytest.raises(ArgumentError, match="fmt = 'float64'"):
        time_matmul("float64", 64)
    with pytest.raises(ArgumentError, match="n = 0"):
        time_matmul("float32", 0)
