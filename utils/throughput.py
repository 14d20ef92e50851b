"""Training throughput: images per second and time per step, measured while ``fit`` runs.

:class:`ThroughputMeter` does the bookkeeping with no framework (tests drive it with a fake
clock); :class:`ThroughputCallback` is the Keras callback around it::

    from utils.throughput import ThroughputCallback

    meter = ThroughputCallback(batch_size=BATCH_SIZE)
    model.fit(train, epochs=EPOCHS, callbacks=[meter])
    print(meter.result())          # steady-state images/s, median step time, first step

A step is timed from the end of the previous step to the end of this one, so input-pipeline
waits and callback work between steps count (as they do for the learner waiting). Keras hands
``on_train_batch_end`` the step's loss as a Python number, which waits for the device, so GPU
and TPU steps are timed to completion, not just queued. The first ``warmup_steps`` steps
(tracing, compilation, filling caches) are reported apart and left out of the steady state.

``ThroughputCallback`` subclasses ``keras.callbacks.Callback``; the class is created on first
use, so importing this module does not import Keras.
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from utils.errors import whole_number

__all__ = ["ThroughputResult", "ThroughputMeter", "ThroughputCallback", "plot_history"]  # noqa: F822 (lazy)


@dataclass(frozen=True)
class ThroughputResult:
    """What a :class:`ThroughputMeter` measured (seconds, images)."""

    batch_size: int
    step_times: tuple[float, ...]  # every step, in order (warm-up included)
    steps_per_call: tuple[int, ...]  # training steps each timed interval covered
    warmup_steps: int
    epoch_times: tuple[float, ...] = ()  # epoch start to its last step's end (no validation)
    epoch_images: tuple[int, ...] = ()
    label: str = ""

    @property
    def steady(self) -> tuple[float, ...]:
        """Seconds per training step after the warm-up."""
        per_step = [t / n for t, n in zip(self.step_times, self.steps_per_call)]
        return tuple(per_step[self.warmup_steps:]) or tuple(per_step[-1:])

    @property
    def steps(self) -> int:
        return sum(self.steps_per_call)

    @property
    def first_step_s(self) -> float | None:
        """The first step (tracing and compilation included)."""
        return self.step_times[0] if self.step_times else None

    @property
    def step_time_s(self) -> float:
        """Median seconds per step in the steady state (nan before any step)."""
        return statistics.median(self.steady) if self.step_times else float("nan")

    @property
    def images_per_s(self) -> float:
        """Steady-state training throughput: batch size over the median step time."""
        step = self.step_time_s
        return self.batch_size / step if step and step == step else float("nan")

    @property
    def spread_pct(self) -> float:
        """Interquartile range of the steady step times, as a percentage of the median."""
        steady = self.steady
        if len(steady) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(steady, n=4, method="inclusive")
        return 100 * (q3 - q1) / statistics.median(steady)

    @property
    def epoch_images_per_s(self) -> tuple[float, ...]:
        """Images over wall time of each whole epoch (the first includes the warm-up)."""
        return tuple(n / t for n, t in zip(self.epoch_images, self.epoch_times) if t > 0)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "batch_size": self.batch_size, "steps": self.steps,
                "images_per_s": self.images_per_s, "step_time_s": self.step_time_s,
                "first_step_s": self.first_step_s, "spread_pct": self.spread_pct,
                "epoch_images_per_s": list(self.epoch_images_per_s)}

    def __str__(self) -> str:
        from utils.units import duration, si

        head = f"{self.label}: " if self.label else ""
        if not self.step_times:
            return f"{head}no training step was timed"
        return (f"{head}{self.images_per_s:,.1f} images/s (batch {self.batch_size}, median step "
                f"{duration(self.step_time_s)} over {len(self.steady)} steps, IQR "
                f"{self.spread_pct:.0f} %; first step {si(self.first_step_s, 's')})")


class ThroughputMeter:
    """Times training steps and epochs; no framework needed.

    Call :meth:`begin_step` before a step (or a group of ``steps`` steps), :meth:`end_step`
    after it, and :meth:`begin_epoch` / :meth:`end_epoch` around epochs.
    """

    def __init__(self, batch_size: int, *, warmup_steps: int = 2, label: str = "",
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.batch_size = whole_number(batch_size, "batch_size")
        self.warmup_steps = whole_number(warmup_steps, "warmup_steps", minimum=0)
        self.label = label
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget everything measured."""
        self._times: list[float] = []
        self._steps: list[int] = []
        self._epoch_times: list[float] = []
        self._epoch_images: list[int] = []
        self._last_end: float | None = None
        self._step_start: float | None = None
        self._epoch_start: float | None = None
        self._epoch_steps = 0

    def begin_epoch(self) -> None:
        self._epoch_start = self.clock()
        self._epoch_steps = 0

    def begin_step(self) -> None:
        now = self.clock()
        self._step_start = now if self._last_end is None else self._last_end

    def end_step(self, steps: int = 1) -> None:
        now = self.clock()
        start = self._step_start if self._step_start is not None else self._last_end
        if start is None:
            start = now
        self._times.append(now - start)
        self._steps.append(max(1, steps))
        self._epoch_steps += max(1, steps)
        self._last_end = now
        self._step_start = None

    def end_epoch(self) -> None:
        if self._epoch_start is None:
            return
        end = self._last_end if self._epoch_steps and self._last_end is not None else self.clock()
        self._epoch_times.append(end - self._epoch_start)
        self._epoch_images.append(self._epoch_steps * self.batch_size)
        self._epoch_start = None
        self._last_end = None  # time between epochs (validation) is not a training step

    def result(self) -> ThroughputResult:
        return ThroughputResult(self.batch_size, tuple(self._times), tuple(self._steps),
                                self.warmup_steps, tuple(self._epoch_times),
                                tuple(self._epoch_images), self.label)


@functools.cache
def _callback_class() -> Any:
    import keras

    class ThroughputCallback(keras.callbacks.Callback):
        """Keras callback: images/s and step time of ``fit``, warm-up apart.

        It lets go of the model when training ends (the numbers stay), so a finished
        measurement does not keep a model and its optimizer in memory.

        Args:
            batch_size: the (global) batch size ``fit`` trains with; with a ``tf.data``
                pipeline, batch it with ``drop_remainder=True`` so every step is full.
            warmup_steps: steps at the start left out of the steady state (tracing,
                compilation, cache filling).
            label: a name for the printed result.
        """

        async_safe = False  # it must run in step with training to time it

        def __init__(self, batch_size: int, warmup_steps: int = 2, label: str = "") -> None:
            super().__init__()
            self.meter = ThroughputMeter(batch_size, warmup_steps=warmup_steps, label=label)
            self._begin = 0

        def on_train_begin(self, logs: Any = None) -> None:
            self.meter.reset()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.meter.begin_epoch()

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._begin = batch
            self.meter.begin_step()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            from utils.timing import synchronize

            synchronize(list((logs or {}).values()))  # already numbers in Keras 3: no-op
            self.meter.end_step(steps=batch - self._begin + 1)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.meter.end_epoch()

        def on_train_end(self, logs: Any = None) -> None:
            self.set_model(None)  # a measurement should not keep a trained model in memory

        def result(self) -> ThroughputResult:
            """What was measured so far."""
            return self.meter.result()

        @property
        def images_per_s(self) -> float:
            return self.meter.result().images_per_s

        @property
        def step_time_s(self) -> float:
            return self.meter.result().step_time_s

    return ThroughputCallback


def __getattr__(name: str) -> Any:  # ThroughputCallback is built (and Keras imported) on use
    if name == "ThroughputCallback":
        return _callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plot_history(history: Mapping[str, Sequence[float]], *, chance: float | None = None,
                 title: str = "") -> Any:
    """Loss and accuracy per epoch, training (solid) and validation (dashed), side by side.

    ``history`` is ``model.fit(...).history`` (``loss``, ``accuracy`` and their ``val_``
    twins, whichever are there); ``chance`` draws the accuracy of guessing. Returns the figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from utils.plotting import MEASURED

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, label in zip(axes, ("loss", "accuracy"), ("cross-entropy loss", "accuracy")):
        for key, style, alpha, name in ((metric, "o-", 1.0, "training"),
                                        (f"val_{metric}", "s--", 0.6, "validation")):
            if history.get(key):
                epochs = np.arange(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], style, color=MEASURED, alpha=alpha, label=name)
                ax.set_xticks(epochs)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    if chance is not None:
        axes[1].axhline(chance, color="gray", ls=":", label="chance")
    axes[1].set_ylim(0, 1)
    for ax in axes:
        ax.legend()
    fig.suptitle(title)
    return fig
