"""Every notebook in notebooks/ runs top to bottom in the smoke profile, once, through the
runner; the cells marked NBVAL_CHECK_OUTPUT in the source must then show the outputs saved there
(nbval's comparison, on that same executed copy: see tests/test_nbval.py).

Durations and peak memory are printed (see them with pytest -s) and reported, not asserted:
shared machines are noisy. The executed copies and their kernel logs stay in
build/smoke-runs/NN_topic/ for inspection.
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
def test_notebook_runs_in_smoke_profile_and_checked_outputs_match(path):
    runs = runner.plan([str(path)], "smoke")
    # one folder per notebook: parallel workers never share a kernel's working directory
    [result] = runner.execute(runs, OUTPUT / path.stem, overwrite=True, progress_bar=False,
                              log=lambda line: None)
    print(f"{path.stem}: {result.status} in {result.duration_s:.1f} s, "
          f"peak memory {result.peak_memory_mb} MB")
    assert result.status == "ok", f"{result.error}\nfull log: {result.log}"
    differences = nbs.checked_output_differences(nbs.read(path), nbs.read(result.output))
    assert not differences, ("checked outputs differ from the saved ones (if the change is "
                             f"intended: course refresh {path.stem}):\n" + "\n".join(differences))
