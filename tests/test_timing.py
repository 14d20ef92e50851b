"""utils.timing: warm-up, repeats, synchronisation and statistics."""

from __future__ import annotations

import time

import pytest

from utils.timing import Stats, benchmark, synchronize


def test_sleeping_function_is_timed_at_least_its_sleep():
    stats = benchmark(time.sleep, 0.002, min_time=0.05, min_repeats=5, number=1)
    assert stats.n >= 5
    assert stats.min >= 0.002
    assert stats.median >= 0.002


def test_fast_function_is_called_many_times_per_repeat():
    stats = benchmark(lambda: sum(range(10)), min_time=0.02)
    assert stats.number > 10
    assert stats.median < 0.001


def test_first_call_is_timed_apart_from_the_steady_state():
    calls = []

    def slow_first() -> None:
        if not calls:
            time.sleep(0.05)
        calls.append(1)

    stats = benchmark(slow_first, warmup=1, min_time=0.01, number=1)
    assert stats.first_call >= 0.05
    assert stats.median < 0.01


def test_custom_sync_receives_the_last_result_once_per_repeat():
    seen = []
    stats = benchmark(lambda: "result", warmup=2, min_time=0, min_repeats=4, max_repeats=4,
                      number=3, sync=seen.append)
    assert stats.n == 4
    assert seen == ["result"] * (2 + 4)


def test_auto_sync_waits_on_jax_like_arrays():
    class DeviceArray:
        waited = 0

        def block_until_ready(self) -> "DeviceArray":
            DeviceArray.waited += 1
            return self

    benchmark(DeviceArray, warmup=0, min_time=0, min_repeats=3, max_repeats=3, number=2)
    assert DeviceArray.waited == 3
    synchronize([DeviceArray(), {"x": DeviceArray()}])
    assert DeviceArray.waited == 5


def test_auto_sync_handles_tensorflow_tensors():
    tf = pytest.importorskip("tensorflow")
    a = tf.random.normal((64, 64))
    stats = benchmark(tf.matmul, a, a, min_time=0.01)
    assert stats.median > 0
    synchronize(a)  # must not raise on a CPU-only machine


def test_no_sync_is_allowed():
    stats = benchmark(lambda: 1, sync=None, min_time=0.005)
    assert stats.n >= 3


def test_max_time_stops_early():
    stats = benchmark(time.sleep, 0.01, number=1, warmup=0, min_time=10, min_repeats=100,
                      max_repeats=200, max_time=0.03)
    assert stats.n < 100


def test_statistics_and_rate():
    stats = Stats(times=(1.0, 2.0, 3.0, 4.0, 100.0), number=1, label="x")
    assert stats.median == 3.0 and stats.min == 1.0 and stats.max == 100.0
    assert stats.iqr == pytest.approx(2.0)
    assert stats.spread_pct == pytest.approx(200 / 3)
    assert stats.rate(6.0) == pytest.approx(2.0)
    assert stats.rate(6.0, statistic="min") == pytest.approx(6.0)
    assert stats.to_dict()["n"] == 5
    assert "per call" in str(stats) and str(stats).startswith("x:")


@pytest.mark.parametrize("kwargs", [dict(min_repeats=0), dict(warmup=-1),
                                    dict(min_repeats=5, max_repeats=2), dict(min_time=-1)])
def test_invalid_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        benchmark(lambda: None, **kwargs)
