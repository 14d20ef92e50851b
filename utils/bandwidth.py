"""Memory bandwidth of this machine, measured STREAM-style with NumPy.

STREAM (McCalpin) times simple loops over arrays much larger than the caches and counts the
bytes each loop must move: *copy* ``a = b`` moves 16 bytes per float64 element, *triad*
``a = b + s*c`` moves 24. NumPy runs one ufunc at a time, so a triad written as
``np.add(b, s * c)`` would pass over memory three or four times; here each thread works through
cache-sized blocks (``a_blk = s*c_blk`` then ``a_blk += b_blk`` while ``a_blk`` is still in
cache), so main memory sees the same traffic as STREAM's fused loop. Threads split the arrays,
because one core rarely saturates memory; NumPy releases the GIL inside ufuncs.

The figure reported is STREAM's: counted bytes over the median time (``gb_per_s``) or over the
fastest repeat (``best_gb_per_s``); write-allocate traffic is not counted, as in STREAM.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from utils.errors import ArgumentError, number, whole_number
from utils.hardware import usable_core_count
from utils.timing import Stats, benchmark

__all__ = ["BandwidthResult", "stream", "BYTES_PER_ELEMENT"]

#: Bytes each kernel moves per float64 element, as STREAM counts them.
BYTES_PER_ELEMENT = {"copy": 16, "scale": 16, "add": 24, "triad": 24}

_BLOCK = 64 * 1024  # elements per block: 512 KB of float64, kept in a core's L2 cache


@dataclass(frozen=True)
class BandwidthResult:
    """One STREAM kernel's result."""

    kernel: str
    gb_per_s: float
    array_mb: float
    threads: int
    stats: Stats

    @property
    def best_gb_per_s(self) -> float:
        """Bandwidth of the fastest repeat (best-of, like a best-of matmul on a roofline)."""
        return self.gb_per_s * self.stats.median / self.stats.min

    def __str__(self) -> str:
        return (f"STREAM {self.kernel}: {self.gb_per_s:.1f} GB/s ({self.threads} thread(s), "
                f"3 arrays of {self.array_mb:.0f} MB, median of {self.stats.n})")


def stream(kernel: Literal["copy", "scale", "add", "triad"] = "triad", *,
           array_mb: float = 128.0, threads: int | None = None, min_time: float = 0.5,
           min_repeats: int = 5) -> BandwidthResult:
    """Measure memory bandwidth (GB/s, 10**9 bytes/s) with one STREAM kernel.

    Args:
        kernel: ``copy`` (a = b), ``scale`` (a = s*b), ``add`` (a = b + c), ``triad``
            (a = b + s*c).
        array_mb: size of each of the three float64 arrays. STREAM asks for at least four
            times the last-level cache; smaller arrays measure cache bandwidth instead.
        threads: worker threads (default: :func:`utils.hardware.usable_core_count`, the
            cores this process may keep busy, CPU quota and affinity respected).
        min_time, min_repeats: passed to :func:`utils.timing.benchmark`.
    """
    import numpy as np

    if kernel not in BYTES_PER_ELEMENT:
        raise ArgumentError("kernel", kernel, "is an unknown STREAM kernel",
                            "choose copy, scale, add or triad")
    number(array_mb, "array_mb", above=0, hint="it is the size of each array in MB")
    threads = usable_core_count() if threads is None else whole_number(threads, "threads")
    n = max(_BLOCK, int(array_mb * 1e6 / 8))
    a = np.zeros(n)
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    scalar = 3.0
    bounds = np.linspace(0, n, threads + 1).astype(int)

    def work(part: int) -> None:
        for start in range(bounds[part], bounds[part + 1], _BLOCK):
            stop = min(start + _BLOCK, bounds[part + 1])
            a_blk, b_blk, c_blk = a[start:stop], b[start:stop], c[start:stop]
            if kernel == "copy":
                np.copyto(a_blk, b_blk)
            elif kernel == "scale":
                np.multiply(b_blk, scalar, out=a_blk)
            elif kernel == "add":
                np.add(b_blk, c_blk, out=a_blk)
            else:
                np.multiply(c_blk, scalar, out=a_blk)
                a_blk += b_blk

    with ThreadPoolExecutor(max_workers=threads) as pool:
        def run() -> None:
            list(pool.map(work, range(threads)))

        stats = benchmark(run, warmup=1, min_time=min_time, min_repeats=min_repeats, number=1,
                          sync=None, label=f"STREAM {kernel}")
    expected = {"copy": 1.0, "scale": 3.0, "add": 3.0, "triad": 7.0}[kernel]
    if not (a[0] == expected and a[-1] == expected):
        raise RuntimeError(f"STREAM {kernel} computed a wrong result; the timing is void.")
    gb_per_s = BYTES_PER_ELEMENT[kernel] * n / stats.median / 1e9
    return BandwidthResult(kernel, gb_per_s, n * 8 / 1e6, threads, stats)
