"""How much does utils.timing.benchmark itself cost? A benchmark, not a test.

    python -m tests.benchmarks.bench_timing_overhead

Times an empty function through benchmark() and compares it with a bare perf_counter loop;
prints the overhead per call (inside a repeat) and per repeat (loop set-up, sync check,
bookkeeping). Numbers are reported in utils/timing.py's docstring and the closing notes.
"""

from __future__ import annotations

import statistics
import time

from utils.timing import benchmark


def empty() -> None:
    return None


def bare_loop(number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        empty()
    return (time.perf_counter() - start) / number


def main() -> None:
    number = 10_000
    bare = statistics.median(bare_loop(number) for _ in range(50))
    stats = benchmark(empty, number=number, min_time=0.5, min_repeats=50)
    per_call = stats.median - bare
    single = benchmark(empty, number=1, min_time=0.5, min_repeats=2000, max_repeats=20000)
    per_repeat = single.median - bare
    print(f"bare Python call of an empty function: {bare * 1e9:8.1f} ns")
    print(f"benchmark(), per call inside a repeat:  {stats.median * 1e9:8.1f} ns "
          f"(overhead {per_call * 1e9:+.1f} ns)")
    print(f"benchmark(), one call per repeat:       {single.median * 1e9:8.1f} ns "
          f"(overhead per repeat {per_repeat * 1e6:+.2f} µs, sync='auto' included)")


if __name__ == "__main__":
    main()
