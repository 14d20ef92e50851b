"""utils.throughput: the bookkeeping on a fake clock, and the Keras callback on a real fit."""

from __future__ import annotations

import math

import pytest
from conftest import run_python

from utils.errors import ArgumentError
from utils.throughput import ThroughputMeter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run_epoch(meter, clock, step_seconds, gap=0.0, steps_per_call=1):
    meter.begin_epoch()
    for seconds in step_seconds:
        meter.begin_step()
        clock.advance(seconds)
        meter.end_step(steps_per_call)
        clock.advance(gap)
    clock.advance(5.0)  # validation after the last step: not training time
    meter.end_epoch()


def test_steady_state_leaves_out_the_warmup():
    clock = FakeClock()
    meter = ThroughputMeter(32, warmup_steps=2, label="test", clock=clock)
    run_epoch(meter, clock, [3.0, 0.6, 0.5, 0.5, 0.4, 0.5])
    result = meter.result()
    assert result.first_step_s == pytest.approx(3.0)
    assert result.steady == pytest.approx((0.5, 0.5, 0.4, 0.5))
    assert result.step_time_s == pytest.approx(0.5)
    assert result.images_per_s == pytest.approx(64.0)
    assert result.steps == 6
    assert result.epoch_times == pytest.approx((5.5,))  # validation excluded
    assert result.epoch_images == (192,)
    assert "64.0 images/s" in str(result) and str(result).startswith("test: ")


def test_time_between_steps_counts_as_waiting_for_data():
    clock = FakeClock()
    meter = ThroughputMeter(10, warmup_steps=0, clock=clock)
    run_epoch(meter, clock, [0.1, 0.1, 0.1], gap=0.1)
    # the first step is timed from its own start, the others from the previous step's end
    assert meter.result().step_times == pytest.approx((0.1, 0.2, 0.2))


def test_several_steps_per_call_and_epochs():
    clock = FakeClock()
    meter = ThroughputMeter(8, warmup_steps=1, clock=clock)
    run_epoch(meter, clock, [2.0, 1.0, 1.0], steps_per_call=4)
    run_epoch(meter, clock, [1.0, 1.0], steps_per_call=4)
    result = meter.result()
    assert result.steps == 20 and result.step_time_s == pytest.approx(0.25)
    assert result.images_per_s == pytest.approx(32.0)
    assert result.epoch_images == (96, 64)
    assert result.epoch_images_per_s == pytest.approx((24.0, 32.0))


def test_nothing_measured_and_bad_arguments():
    result = ThroughputMeter(4).result()
    assert math.isnan(result.images_per_s) and "no training step" in str(result)
    with pytest.raises(ArgumentError, match="batch_size = 0 must be a whole number >= 1"):
        ThroughputMeter(0)
    with pytest.raises(ArgumentError, match="batch_size = 2.0 must be a whole number"):
        ThroughputMeter(2.0)
    with pytest.raises(ArgumentError, match="warmup_steps = -1 must be a whole number >= 0"):
        ThroughputMeter(4, warmup_steps=-1)


def test_callback_times_a_real_fit():
    import keras
    import numpy as np

    from utils.throughput import ThroughputCallback

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    meter = ThroughputCallback(batch_size=8, warmup_steps=1, label="dense")
    assert isinstance(meter, keras.callbacks.Callback)
    model.fit(np.ones((64, 4)), np.ones((64, 3)), batch_size=8, epochs=2, verbose=0,
              validation_data=(np.ones((16, 4)), np.ones((16, 3))), callbacks=[meter])
    result = meter.result()
    assert result.steps == 16 and len(result.step_times) == 16
    assert result.epoch_images == (64, 64)
    assert 0 < result.images_per_s < math.inf and meter.images_per_s == result.images_per_s
    assert result.to_dict()["steps"] == 16
    assert meter.model is None, "a finished measurement lets go of the model"
    model.fit(np.ones((16, 4)), np.ones((16, 3)), batch_size=8, epochs=1, verbose=0,
              callbacks=[meter])
    assert meter.result().steps == 2, "a new fit starts a new measurement"


def test_callback_counts_steps_per_execution():
    import keras
    import numpy as np

    from utils.throughput import ThroughputCallback

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
    meter = ThroughputCallback(batch_size=8, warmup_steps=0)
    model.fit(np.ones((128, 4)), np.ones((128, 3)), batch_size=8, epochs=1, verbose=0,
              callbacks=[meter])
    assert meter.result().steps == 16 and len(meter.result().step_times) == 4


def test_importing_the_module_does_not_import_keras():
    result = run_python("import sys, utils.throughput\nprint('keras' in sys.modules, "
                        "'tensorflow' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_plot_history_draws_training_validation_and_chance():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from utils.throughput import plot_history

    history = {"loss": [2.3, 1.9, 1.5], "val_loss": [2.2, 2.0, 1.8],
               "accuracy": [0.1, 0.3, 0.5], "val_accuracy": [0.12, 0.25, 0.4]}
    fig = plot_history(history, chance=0.1, title="AlexNet")
    loss_ax, accuracy_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["training", "validation"]
    assert list(accuracy_ax.get_lines()[1].get_ydata()) == history["val_accuracy"]
    assert accuracy_ax.get_lines()[-1].get_label() == "chance"
    assert loss_ax.get_ylabel() == "cross-entropy loss" and fig._suptitle.get_text() == "AlexNet"
    plt.close(fig)
    only_training = plot_history({"loss": [1.0], "accuracy": [0.5]})
    assert [line.get_label() for line in only_training.axes[0].get_lines()] == ["training"]
    plt.close(only_training)
