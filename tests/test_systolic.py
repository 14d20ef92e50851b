"""utils.systolic: the cycle-by-cycle simulation is exact and agrees with the cycle formula."""

from __future__ import annotations

import numpy as np
import pytest

from utils.errors import ArgumentError
from utils.systolic import (SystolicArray, matmul_cycles, plot_utilisation, plot_wavefront,
                            simulate, utilisation)

SHAPES = [  # (m, k, n, rows, cols): one tile, ragged tiles in k and n, a 1x1 grid, a tall grid
    (5, 3, 4, 3, 4),
    (7, 10, 9, 4, 3),
    (1, 1, 1, 1, 1),
    (16, 40, 33, 8, 8),
    (3, 2, 2, 6, 5),
]


@pytest.mark.parametrize("m,k,n,rows,cols", SHAPES)
def test_int8_product_is_exact_and_takes_the_formula_cycles(m, k, n, rows, cols):
    rng = np.random.default_rng(m * 100 + k)
    x = rng.integers(-128, 128, size=(m, k), dtype=np.int8)
    w = rng.integers(-128, 128, size=(k, n), dtype=np.int8)
    array = SystolicArray(rows, cols)
    run = simulate(x, w, array)
    assert run.result.dtype == np.int32
    assert np.array_equal(run.result, x.astype(np.int32) @ w.astype(np.int32))
    assert run.cycles == matmul_cycles(m, k, n, array)
    assert run.tiles == -(-k // rows) * -(-n // cols)
    assert run.busy_pe_cycles == m * k * n == run.macs  # every useful MAC counted once
    assert run.utilisation == pytest.approx(utilisation(m, k, n, array))
    assert len(run.active_per_cycle) == run.compute_cycles


def test_float_product_matches_numpy():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((6, 9)), rng.standard_normal((9, 5))
    run = simulate(x, w, SystolicArray(4, 4))
    np.testing.assert_allclose(run.result, x @ w, rtol=1e-12)


def test_the_wavefront_enters_skewed_and_drains():
    array = SystolicArray(4, 4)
    run = simulate(np.ones((10, 4), dtype=np.int8), np.ones((4, 4), dtype=np.int8), array,
                   keep_frames=True)
    frames = run.frames
    assert frames.shape == (run.compute_cycles, 4, 4)
    assert frames[0].sum() == 1 and frames[0][0, 0]  # only the top-left cell at cycle 0
    assert frames[1][1, 0] and frames[1][0, 1] and not frames[1][1, 1]  # a diagonal
    assert frames[-1].sum() == 1 and frames[-1][3, 3]  # the last cell drains last
    assert run.active_per_cycle.max() == array.pes  # full in the middle
    few = simulate(np.ones((4, 4)), np.ones((4, 4)), array)
    assert few.active_per_cycle.max() < array.pes  # 4 inputs never fill a 4 x 4 grid


def test_tpu_v1_figures():
    tpu = SystolicArray(256, 256, clock_hz=700e6)
    assert tpu.pes == 65_536
    assert tpu.peak_ops_per_s == 2 * 65_536 * 700e6
    # a 256^3 product: one tile, 256 + (256 + 510) cycles
    assert matmul_cycles(256, 256, 256, tpu) == 256 + 256 + 510
    assert utilisation(256, 256, 256, tpu) == pytest.approx(256 / 1022)
    # one row past the grid costs a whole tile of padding
    assert utilisation(257, 257, 257, tpu) < utilisation(256, 256, 256, tpu) / 3
    # big products approach full use; a batch of one barely uses the grid
    assert utilisation(8192, 8192, 8192, tpu) > 0.9
    assert utilisation(1, 256, 256, tpu) < 0.01


@pytest.mark.parametrize("x,w", [(np.ones((2, 3)), np.ones((2, 3))), (np.ones(3), np.ones(3)),
                                 (np.ones((0, 2)), np.ones((2, 2)))])
def test_bad_shapes_are_refused(x, w):
    with pytest.raises(ArgumentError, match=r"must be \(m, k\) and \(k, n\)"):
        simulate(x, w, SystolicArray(2, 2))


@pytest.mark.parametrize("rows,cols,clock", [(0, 4, None), (4, -1, None), (2.5, 2, None),
                                             (True, 2, None), (2, 2, 0.0)])
def test_bad_arrays_are_refused(rows, cols, clock):
    with pytest.raises(ArgumentError, match="rows|cols|clock_hz"):
        SystolicArray(rows, cols, clock_hz=clock)


def test_bad_matrix_sizes_are_refused():
    with pytest.raises(ArgumentError, match="k = 0 must be a whole number >= 1"):
        matmul_cycles(4, 0, 4, SystolicArray(2, 2))
    with pytest.raises(ArgumentError, match="n = 2.0 must be a whole number"):
        utilisation(4, 4, 2.0, SystolicArray(2, 2))


def test_plots():
    import matplotlib

    matplotlib.use("Agg")
    run = simulate(np.ones((6, 3)), np.ones((3, 3)), SystolicArray(3, 3), keep_frames=True)
    fig = plot_wavefront(run)
    assert len(fig.axes) == 6 and fig.axes[-1].get_ylabel() == "busy cells (%)"
    with pytest.raises(ArgumentError, match="keep_frames=True"):
        plot_wavefront(simulate(np.ones((2, 2)), np.ones((2, 2)), SystolicArray(2, 2)))
    left, right = plot_utilisation(SystolicArray(256, 256), max_n=1024).axes
    assert max(left.get_lines()[0].get_xdata()) == 1024
    assert max(right.get_lines()[0].get_ydata()) > 90  # a large batch fills the grid
