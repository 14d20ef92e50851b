"""A weight-stationary systolic array, simulated cycle by cycle with NumPy.

The matrix unit of Google's first TPU is a grid of multiply-accumulate cells (PEs), 256 x 256
of them, 8-bit multipliers with 32-bit accumulators. *Weight-stationary* means that each PE
holds one weight while the activations flow through the grid:

* activations enter at the left edge and move one PE to the right per cycle; row ``i`` of the
  grid receives input feature ``i``, delayed by ``i`` cycles (the *skew*), so that a diagonal
  wavefront sweeps across the grid;
* partial sums move one PE down per cycle; each PE adds ``activation x weight`` to the sum
  coming from above, so the bottom of column ``j`` emits one finished output ``y[m, j]`` per
  cycle.

For ``y = x @ w`` with ``x`` of shape (m, k) and ``w`` of shape (k, n) on a grid of
``rows x cols`` PEs, ``w`` is cut into tiles of ``rows x cols`` weights (zero-padded at the
edges). The model here runs one tile at a time: the tile's weights are shifted in (``rows``
cycles; only the first load shows, later ones overlap the previous tile's work because the
TPU double-buffers its weights), then the ``m`` rows of activations stream through, and the
grid fills and drains::

    cycles per tile = m + rows + cols - 2
    total cycles    = rows + tiles x (m + rows + cols - 2)

:func:`simulate` moves every value through every register and counts the cycles;
:func:`matmul_cycles` is the closed formula (the tests check that they agree), cheap enough to
sweep matrix sizes on a 256 x 256 array. Real TPUs also overlap the fill and drain of
consecutive tiles, so this model is a little pessimistic for many tiles; the shape of the
utilisation curve (padding waste, fill and drain) is the point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from utils.errors import ArgumentError, number, whole_number

__all__ = ["SystolicArray", "MatmulRun", "simulate", "matmul_cycles", "utilisation",
           "plot_wavefront", "plot_utilisation"]


@dataclass(frozen=True)
class SystolicArray:
    """A grid of ``rows x cols`` multiply-accumulate cells, optionally with its clock."""

    rows: int
    cols: int
    clock_hz: float | None = None

    def __post_init__(self) -> None:
        whole_number(self.rows, "rows")
        whole_number(self.cols, "cols")
        if self.clock_hz is not None:
            number(self.clock_hz, "clock_hz", above=0)

    @property
    def pes(self) -> int:
        """Number of processing elements (multiply-accumulate cells)."""
        return self.rows * self.cols

    @property
    def peak_ops_per_s(self) -> float | None:
        """Peak operations per second: 2 per MAC (multiply and add) per PE per cycle."""
        return None if self.clock_hz is None else 2.0 * self.pes * self.clock_hz


@dataclass(frozen=True)
class MatmulRun:
    """The outcome of one simulated matrix product."""

    result: np.ndarray
    array: SystolicArray
    shape: tuple[int, int, int]  # (m, k, n)
    tiles: int
    weight_load_cycles: int
    compute_cycles: int
    busy_pe_cycles: int  # PE-cycles that multiplied a real activation by a real weight
    active_per_cycle: np.ndarray  # PEs doing useful work in each compute cycle (all tiles)
    frames: np.ndarray | None = None  # (cycles, rows, cols) busy masks of the first tile

    @property
    def cycles(self) -> int:
        """All cycles: the first weight load plus every tile's fill, stream and drain."""
        return self.weight_load_cycles + self.compute_cycles

    @property
    def macs(self) -> int:
        """Useful multiply-accumulates: m x k x n."""
        m, k, n = self.shape
        return m * k * n

    @property
    def utilisation(self) -> float:
        """Useful MACs over what the array could have done in the same cycles (0..1)."""
        return self.macs / (self.array.pes * self.cycles)


def _accumulator_dtype(x: np.ndarray, w: np.ndarray) -> Any:
    if np.issubdtype(x.dtype, np.integer) and np.issubdtype(w.dtype, np.integer):
        return np.int32  # as the TPU: 8-bit products summed in 32-bit accumulators
    return np.float64


def simulate(x: Any, w: Any, array: SystolicArray, *, keep_frames: bool = False) -> MatmulRun:
    """Compute ``x @ w`` on a weight-stationary systolic array, one clock cycle at a time.

    Args:
        x: activations, shape (m, k): m input vectors (a batch) of k features.
        w: weights, shape (k, n).
        array: the grid of PEs.
        keep_frames: also keep, for the first tile, which PEs were busy in each cycle (for
            drawing the wavefront; use small arrays).

    Integer inputs (such as int8) accumulate in int32, as on the TPU; floats in float64.

    Raises:
        ArgumentError: the shapes do not fit together.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0] or 0 in x.shape + w.shape:
        raise ArgumentError("the shapes of x and w", (x.shape, w.shape),
                            "must be (m, k) and (k, n) with the same k > 0")
    m, k = x.shape
    n = w.shape[1]
    rows, cols = array.rows, array.cols
    acc = _accumulator_dtype(x, w)
    result = np.zeros((m, n), dtype=acc)
    row_ids, col_ids = np.arange(rows), np.arange(cols)
    cycles_per_tile = m + rows + cols - 2
    active: list[np.ndarray] = []
    frames: list[np.ndarray] = []
    busy_total = 0
    tiles = 0
    for k0 in range(0, k, rows):
        kk = min(rows, k - k0)
        for n0 in range(0, n, cols):
            nn = min(cols, n - n0)
            tiles += 1
            # Load the tile's weights into the grid (zero where the tile is smaller).
            weights = np.zeros((rows, cols), dtype=acc)
            weights[:kk, :nn] = w[k0:k0 + kk, n0:n0 + nn]
            real_weight = np.zeros((rows, cols), dtype=bool)
            real_weight[:kk, :nn] = True
            inputs = np.zeros((m, rows), dtype=acc)
            inputs[:, :kk] = x[:, k0:k0 + kk]
            # The registers: the activation each PE holds, whether it is real, its partial sum.
            act = np.zeros((rows, cols), dtype=acc)
            valid = np.zeros((rows, cols), dtype=bool)
            psum = np.zeros((rows, cols), dtype=acc)
            out = np.zeros((m, cols), dtype=acc)
            tile_active = np.zeros(cycles_per_tile, dtype=np.int64)
            for t in range(cycles_per_tile):
                # Activations move one PE right; row i of the left edge takes x[t - i, i].
                act[:, 1:] = act[:, :-1]
                valid[:, 1:] = valid[:, :-1]
                m_in = t - row_ids
                entering = (m_in >= 0) & (m_in < m)
                act[:, 0] = np.where(entering, inputs[np.clip(m_in, 0, m - 1), row_ids], 0)
                valid[:, 0] = entering
                # Partial sums move one PE down; every PE adds its product.
                psum[1:, :] = psum[:-1, :]
                psum[0, :] = 0
                psum += act * weights
                busy = valid & real_weight
                tile_active[t] = np.count_nonzero(busy)
                if keep_frames and tiles == 1:
                    frames.append(busy.copy())
                # The bottom row holds finished sums: column j has y[t - (rows - 1) - j, j].
                m_out = t - (rows - 1) - col_ids
                done = (m_out >= 0) & (m_out < m)
                out[m_out[done], col_ids[done]] = psum[rows - 1, done]
            result[:, n0:n0 + nn] += out[:, :nn]
            busy_total += int(tile_active.sum())
            active.append(tile_active)
    return MatmulRun(
        result=result,
        array=array,
        shape=(m, k, n),
        tiles=tiles,
        weight_load_cycles=rows,
        compute_cycles=tiles * cycles_per_tile,
        busy_pe_cycles=busy_total,
        active_per_cycle=np.concatenate(active),
        frames=np.stack(frames) if keep_frames else None,
    )


def matmul_cycles(m: int, k: int, n: int, array: SystolicArray) -> int:
    """Cycles :func:`simulate` takes for an (m, k) x (k, n) product, by formula.

    ``rows + tiles x (m + rows + cols - 2)`` with ``tiles = ceil(k / rows) x ceil(n / cols)``.
    """
    for name, value in (("m", m), ("k", k), ("n", n)):
        whole_number(value, name)
    tiles = math.ceil(k / array.rows) * math.ceil(n / array.cols)
    return array.rows + tiles * (m + array.rows + array.cols - 2)


def utilisation(m: int, k: int, n: int, array: SystolicArray) -> float:
    """Fraction of the array's multiply-accumulate slots doing useful work (0..1)."""
    return m * k * n / (array.pes * matmul_cycles(m, k, n, array))


def plot_wavefront(run: MatmulRun, cycles_shown: int = 5) -> Any:
    """A few cycles of the first tile (orange = a cell multiplying) and the share of busy cells
    in every cycle: the wavefront fills the grid and drains. ``run`` needs ``keep_frames``."""
    import matplotlib.pyplot as plt

    from utils.plotting import MEASURED

    if run.frames is None:
        raise ArgumentError("run", "a run without frames", "must come from "
                            "simulate(..., keep_frames=True)")
    shown = np.linspace(0, len(run.frames) - 1, cycles_shown).round().astype(int)
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(12, 2.8),
                             gridspec_kw={"width_ratios": [1] * len(shown) + [2]})
    for ax, t in zip(axes, shown):
        ax.imshow(run.frames[t], cmap="Oranges", vmin=0, vmax=1)
        ax.set_title(f"cycle {t}")
        ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
    axes[-1].plot(run.active_per_cycle / run.array.pes * 100, color=MEASURED)
    axes[-1].set_xlabel("clock cycle")
    axes[-1].set_ylabel("busy cells (%)")
    axes[-1].set_title("fill, full, drain")
    fig.tight_layout()
    rows, cols = run.array.rows, run.array.cols
    fig.suptitle(f"A {rows} x {cols} weight-stationary array, {run.shape[0]} inputs "
                 "(orange = multiplying)", y=1.05)
    return fig


def plot_utilisation(array: SystolicArray, max_n: int = 8192, max_batch: int = 16384) -> Any:
    """Utilisation of ``array`` (by :func:`utilisation`) for square n x n by n x n products, and
    for one layer the size of the grid against the batch size. Returns the figure."""
    import matplotlib.pyplot as plt

    from utils.plotting import REFERENCE

    sizes = np.arange(64, max_n + 1, 64)
    batches = np.unique(np.geomspace(1, max_batch, 57).astype(int))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(sizes, [100 * utilisation(int(n), int(n), int(n), array) for n in sizes],
              color=REFERENCE)
    left.set_xlabel("n of an n x n by n x n product (log scale)")
    left.set_title(f"Square products on a {array.rows} x {array.cols} grid")
    right.plot(batches, [100 * utilisation(int(b), array.rows, array.cols, array)
                         for b in batches], color=REFERENCE)
    right.set_xlabel(f"batch size (inputs through one {array.rows} x {array.cols} layer, "
                     "log scale)")
    right.set_title("Batching keeps the grid busy")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_ylabel("matrix-unit utilisation (%)")
    return fig
