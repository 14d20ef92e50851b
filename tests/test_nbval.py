"""nbval over every notebook: each is prepared with the smoke profile's parameters (papermill
--prepare-only), then `pytest --nbval-lax` executes it and compares the cells marked
NBVAL_CHECK_OUTPUT with their saved outputs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from utils import notebooks as nbs
from utils import runner

NOTEBOOKS = nbs.discover()


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_nbval_checked_outputs_match(path, tmp_path):
    runs = runner.plan([str(path)], "smoke")
    runner.execute(runs, tmp_path, prepare_only=True, log=lambda s: None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path / path.name)],
        capture_output=True, text=True, cwd=tmp_path, timeout=880)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
