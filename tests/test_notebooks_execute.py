"""Every notebook in notebooks/ runs top to bottom in the smoke profile through the runner.

Durations and peak memory are printed (see them with pytest -s) and reported, not asserted:
shared machines are noisy. The executed copies stay in build/smoke-runs/ for inspection.
"""

from __future__ import annotations

import pytest

import utils
from utils import notebooks as nbs
from utils import runner

NOTEBOOKS = nbs.discover()
OUTPUT = utils.REPO_ROOT / "build" / "smoke-runs"


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path):
    runs = runner.plan([str(path)], "smoke")
    [result] = runner.execute(runs, OUTPUT, overwrite=True, progress_bar=False)
    print(f"{path.stem}: {result.status} in {result.duration_s:.1f} s, "
          f"peak memory {result.peak_memory_mb} MB")
    assert result.status == "ok", result.error
