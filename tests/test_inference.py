"""utils.inference: latency percentiles, throughput and the batch a latency budget allows."""

from __future__ import annotations

import pytest

from utils import data
from utils.errors import ArgumentError
from utils.inference import (LatencyPoint, batch_sizes, largest_batch_within, latency_profile,
                             plot_latency, profile_frame, serving_table)


class FakeClock:
    """A clock that the fake model advances: each call costs 1 ms + 0.1 ms per example, and
    every 50th call of a batch size is 10 times slower (a tail)."""

    def __init__(self):
        self.now = 0.0
        self.calls = 0

    def __call__(self):
        return self.now

    def predict(self, batch):
        self.calls += 1
        cost = 1e-3 + 1e-4 * len(batch)
        self.now += cost * (10 if self.calls % 50 == 0 else 1)
        return batch


def test_profile_percentiles_and_throughput():
    clock = FakeClock()
    profile = latency_profile(clock.predict, lambda n: [0] * n, [1, 10, 100], calls=100,
                              warmup=2, clock=clock, sync=lambda result: None)
    assert [p.batch for p in profile] == [1, 10, 100]
    one, ten, hundred = profile
    assert one.p50_ms == pytest.approx(1.1)
    assert hundred.p50_ms == pytest.approx(11.0)
    assert one.p99_ms > 5 * one.p50_ms  # the slow calls show in p99, not in p50
    assert one.calls == 100
    assert one.first_call_ms == pytest.approx(1.1)
    assert hundred.predictions_per_s > ten.predictions_per_s > one.predictions_per_s
    assert hundred.predictions_per_s == pytest.approx(100 / (hundred.mean_ms / 1000))


def test_time_cap_keeps_a_minimum_of_calls():
    clock = FakeClock()
    [point] = latency_profile(clock.predict, lambda n: [0] * n, [100], calls=1000,
                              min_calls=20, max_seconds_per_size=0.05, clock=clock,
                              sync=lambda result: None)
    assert point.calls == 20  # 0.05 s would allow 4 calls of 11 ms, but 20 are kept


def test_every_result_is_waited_for():
    waited = []
    clock = FakeClock()
    latency_profile(clock.predict, lambda n: [0] * n, [1], calls=5, warmup=1, clock=clock,
                    sync=waited.append)
    assert len(waited) == 6


def point(batch, p99, mean):
    return LatencyPoint(batch=batch, calls=100, p50_ms=mean, p99_ms=p99, mean_ms=mean,
                        max_ms=p99, first_call_ms=mean)


def test_largest_batch_within_budget():
    profile = [point(1, 2.0, 1.0), point(16, 6.0, 4.0), point(64, 9.0, 8.0)]
    assert largest_batch_within(profile, 7.0).batch == 16
    assert largest_batch_within(profile, 100.0).batch == 64
    assert largest_batch_within(profile, 1.0) is None
    assert largest_batch_within(profile, 5.0, statistic="p50").batch == 16
    with pytest.raises(ArgumentError, match="budget_ms = 0 must be a number > 0"):
        largest_batch_within(profile, 0)


def test_batch_sizes():
    assert batch_sizes(64) == [1, 2, 4, 8, 16, 32, 64]
    assert batch_sizes(100, smallest=8) == [8, 16, 32, 64]
    assert batch_sizes(1) == [1]
    with pytest.raises(ArgumentError, match="largest = 4 must be a whole number >= 8"):
        batch_sizes(4, smallest=8)
    with pytest.raises(ArgumentError, match="smallest = 0"):
        batch_sizes(4, smallest=0)


def test_profile_frame():
    frame = profile_frame([point(1, 2.0, 1.0), point(2, 3.0, 1.0)])
    assert list(frame.index) == [1, 2]
    assert frame.loc[2, "predictions_per_s"] == pytest.approx(2000.0)


def test_warmup_is_required():
    with pytest.raises(ArgumentError, match="warmup = 0 .*first call compiles"):
        latency_profile(lambda b: b, lambda n: n, [1], warmup=0)
    with pytest.raises(ArgumentError, match="calls = 2.5 must be a whole number"):
        latency_profile(lambda b: b, lambda n: n, [1], calls=2.5)
    with pytest.raises(ArgumentError, match="max_seconds_per_size = -1"):
        latency_profile(lambda b: b, lambda n: n, [1], max_seconds_per_size=-1)


@pytest.fixture(scope="module")
def paper():
    return data.load("tpu_v1_paper").set_index("metric")


def test_serving_table_sets_this_machine_beside_the_paper(paper):
    profile = [point(1, 2.0, 1.0), point(16, 6.0, 4.0), point(64, 9.0, 8.0)]
    table = serving_table(profile, paper, "yours (CPU)")
    assert list(table.index) == ["Haswell CPU (paper)", "K80 GPU (paper)", "TPU v1 (paper)",
                                 "yours (CPU)"]
    yours = table.loc["yours (CPU)"]
    assert yours.iloc[0] == 16  # the batch within the paper's 7 ms
    assert yours["predictions/s"] == pytest.approx(16 / 4e-3)
    assert yours["% of its best throughput"] == pytest.approx(100 * 4000 / 8000)
    tpu = table.loc["TPU v1 (paper)"]
    assert tpu["% of its best throughput"] == pytest.approx(100 * 225000 / 280000)
    slow = serving_table([point(1, 8.0, 8.0)], paper, "slow")
    assert slow.loc["slow", "predictions/s"] == 0.0


def test_plot_latency_draws_both_panels(paper):
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_latency([point(1, 2.0, 1.0), point(2, 3.0, 1.5)], paper, limit_ms=7,
                       label="CPU", title="t")
    left, right = fig.axes
    assert left.get_xscale() == "log" and right.get_yscale() == "log"
    assert "ms" in left.get_ylabel() and "predictions per second" in right.get_ylabel()
    assert len(right.get_lines()) == 4  # yours and the paper's three machines
