"""Inference serving: predictions per second against batch size, under a latency limit.

A server that answers requests can group them into batches. A bigger batch uses the hardware
better (more predictions per second) but every request in it waits for the whole batch (higher
latency). Services promise a latency for nearly every request, the 99th percentile (p99), so
the useful throughput is the one at the largest batch whose p99 latency stays within the
limit. The first TPU paper (Jouppi et al., ISCA 2017) compares CPU, GPU and TPU this way, at a
7 ms limit.

:func:`latency_profile` times every call separately (waiting for the device each time, as a
server must before it answers) and keeps the percentiles; :func:`largest_batch_within` picks
the batch a latency budget allows.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np

__all__ = [
    "LatencyPoint",
    "latency_profile",
    "largest_batch_within",
    "batch_sizes",
    "profile_frame",
]

Statistic = Literal["p50", "p99", "mean", "max"]


@dataclass(frozen=True)
class LatencyPoint:
    """Latency of one batch size: percentiles of per-call times, and the throughput."""

    batch: int
    calls: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    first_call_ms: float  # the first call, compilation included, not in the statistics

    @property
    def predictions_per_s(self) -> float:
        """Predictions per second when batches are served back to back: batch / mean time."""
        return self.batch / (self.mean_ms / 1000.0)

    def latency_ms(self, statistic: Statistic = "p99") -> float:
        return float(getattr(self, f"{statistic}_ms"))

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "predictions_per_s": self.predictions_per_s}


def batch_sizes(largest: int, smallest: int = 1) -> list[int]:
    """Powers of two times ``smallest``, from ``smallest`` up to ``largest`` (inclusive).

    ``smallest`` is the number of devices a batch is split over (each needs one example).
    """
    if smallest < 1 or largest < smallest:
        raise ValueError(f"batch sizes need 1 <= smallest <= largest, got {smallest} and "
                         f"{largest}.")
    sizes, size = [], smallest
    while size <= largest:
        sizes.append(size)
        size *= 2
    return sizes


def _wait(result: Any) -> None:
    from utils.timing import synchronize

    synchronize(result)


def latency_profile(
    predict: Callable[[Any], Any],
    make_batch: Callable[[int], Any],
    sizes: Sequence[int],
    *,
    calls: int = 100,
    min_calls: int = 20,
    max_seconds_per_size: float | None = None,
    warmup: int = 2,
    sync: Callable[[Any], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[LatencyPoint]:
    """Time ``predict(batch)`` call by call for every batch size in ``sizes``.

    Args:
        predict: runs the model on one batch and returns its output.
        make_batch: returns an input batch of the given size (made once per size, untimed).
        sizes: batch sizes to measure, in order.
        calls: timed calls per batch size (p99 needs about 100 to mean anything).
        min_calls: with ``max_seconds_per_size``, never fewer than this many calls.
        max_seconds_per_size: stop a batch size early after this many seconds of calls.
        warmup: untimed calls first (the first compiles; it is kept as ``first_call_ms``).
        sync: waits for the device to finish the result (default: TensorFlow/JAX aware).
        clock: the timer (tests pass a fake one).
    """
    if calls < 1 or warmup < 1 or min_calls < 1:
        raise ValueError("latency_profile needs calls >= 1, min_calls >= 1 and warmup >= 1 "
                         "(the first call compiles and must not be timed with the rest).")
    wait = sync or _wait
    points = []
    for size in sizes:
        batch = make_batch(int(size))
        first = None
        for i in range(warmup):
            start = clock()
            wait(predict(batch))
            if i == 0:
                first = clock() - start
        times: list[float] = []
        spent = 0.0
        while len(times) < calls:
            start = clock()
            wait(predict(batch))
            elapsed = clock() - start
            times.append(elapsed)
            spent += elapsed
            if (max_seconds_per_size is not None and spent >= max_seconds_per_size
                    and len(times) >= min_calls):
                break
        ms = np.asarray(times) * 1000.0
        points.append(LatencyPoint(
            batch=int(size), calls=len(times),
            p50_ms=float(np.percentile(ms, 50)), p99_ms=float(np.percentile(ms, 99)),
            mean_ms=float(ms.mean()), max_ms=float(ms.max()),
            first_call_ms=float((first or 0.0) * 1000.0)))
    return points


def largest_batch_within(profile: Iterable[LatencyPoint], budget_ms: float,
                         statistic: Statistic = "p99") -> LatencyPoint | None:
    """Among the measured batch sizes whose ``statistic`` latency is within ``budget_ms``, the
    one with the most predictions per second (usually the largest that fits); None if even the
    smallest batch is too slow."""
    if budget_ms <= 0:
        raise ValueError(f"the latency budget must be positive, got {budget_ms} ms.")
    within = [p for p in profile if p.latency_ms(statistic) <= budget_ms]
    return max(within, key=lambda p: p.predictions_per_s) if within else None


def profile_frame(profile: Iterable[LatencyPoint]) -> Any:
    """The profile as a pandas DataFrame indexed by batch size."""
    import pandas as pd

    return pd.DataFrame([p.as_row() for p in profile]).set_index("batch")
