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

from utils.errors import number, whole_number

__all__ = [
    "LatencyPoint",
    "latency_profile",
    "largest_batch_within",
    "batch_sizes",
    "profile_frame",
    "PAPER_HARDWARE",
    "serving_table",
    "plot_latency",
]

#: The columns of data/tpu_v1_paper.csv and the hardware each one is.
PAPER_HARDWARE = {"cpu_haswell_e5_2699v3": "Haswell CPU", "gpu_k80": "K80 GPU",
                  "tpu_v1": "TPU v1"}

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
    smallest = whole_number(smallest, "smallest", minimum=1)
    largest = whole_number(largest, "largest", minimum=smallest,
                           hint="the largest batch cannot be below the smallest")
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
    whole_number(calls, "calls")
    whole_number(min_calls, "min_calls")
    whole_number(warmup, "warmup", hint="the first call compiles and must not be timed with "
                                        "the rest")
    if max_seconds_per_size is not None:
        number(max_seconds_per_size, "max_seconds_per_size", above=0)
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
    number(budget_ms, "budget_ms", above=0)
    within = [p for p in profile if p.latency_ms(statistic) <= budget_ms]
    return max(within, key=lambda p: p.predictions_per_s) if within else None


def profile_frame(profile: Iterable[LatencyPoint]) -> Any:
    """The profile as a pandas DataFrame indexed by batch size."""
    import pandas as pd

    return pd.DataFrame([p.as_row() for p in profile]).set_index("batch")


def serving_table(profile: Sequence[LatencyPoint], paper: Any, label: str) -> Any:
    """The paper's question for each machine: the batch served within the paper's p99 limit,
    its predictions per second, and that rate as a share of the machine's best.

    ``paper`` is data/tpu_v1_paper.csv indexed by ``metric``; ``profile`` this machine's,
    judged at the same limit; ``label`` names it.
    """
    import pandas as pd

    limit_ms = float(paper.loc["MLP0 99th-percentile latency limit", "tpu_v1"])
    rows = []
    for column, name in PAPER_HARDWARE.items():
        limited = paper.loc["MLP0 inferences/s within 7 ms 99th-percentile latency", column]
        best = paper.loc["MLP0 inferences/s with no latency limit", column]
        rows.append((f"{name} (paper)", paper.loc["batch size that meets 7 ms", column],
                     limited, 100 * limited / best))
    within = largest_batch_within(profile, limit_ms)
    best_rate = max(p.predictions_per_s for p in profile)
    if within is None:
        rows.append((label, None, 0.0, 0.0))
    else:
        rows.append((label, within.batch, within.predictions_per_s,
                     100 * within.predictions_per_s / best_rate))
    return pd.DataFrame(rows, columns=["hardware", f"batch within {limit_ms:g} ms p99",
                                       "predictions/s", "% of its best throughput"]
                        ).set_index("hardware")


def plot_latency(profile: Sequence[LatencyPoint], paper: Any, *, limit_ms: float, label: str,
                 title: str) -> Any:
    """Latency (p50, p99) and predictions per second against batch size, measured (orange)
    beside the paper's CPU, GPU and TPU (blue) at the batch meeting 7 ms and at their best
    throughput. Returns the figure."""
    import matplotlib.pyplot as plt

    from utils.plotting import HIGHLIGHT, MEASURED, REFERENCE

    sizes = [p.batch for p in profile]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(sizes, [p.p50_ms for p in profile], "o-", color=MEASURED, label="yours, p50")
    left.plot(sizes, [p.p99_ms for p in profile], "s--", color=MEASURED, label="yours, p99")
    right.plot(sizes, [p.predictions_per_s for p in profile], "o-", color=MEASURED,
               label=f"yours ({label})")
    batches = ["batch size that meets 7 ms", "MLP0 batch size at maximum throughput"]
    p99s = ["MLP0 99th-percentile latency at the batch that meets 7 ms",
            "MLP0 99th-percentile latency at maximum throughput"]
    rates = ["MLP0 inferences/s within 7 ms 99th-percentile latency",
             "MLP0 inferences/s with no latency limit"]
    for (column, name), marker in zip(PAPER_HARDWARE.items(), "v^D"):
        x = [paper.loc[row, column] for row in batches]
        left.plot(x, [paper.loc[row, column] for row in p99s], marker, color=REFERENCE,
                  label=f"{name}, p99 (paper)", alpha=0.8)
        right.plot(x, [paper.loc[row, column] for row in rates], marker, color=REFERENCE,
                   label=f"{name} (paper)", alpha=0.8)
    left.axhline(limit_ms, color=HIGHLIGHT, lw=1, label=f"{limit_ms:g} ms limit")
    for ax, ylabel in ((left, "latency per batch (ms, log scale)"),
                       (right, "predictions per second (log scale)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (log scale)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return fig
