"""Helpers for the course *Supercomputing, the heart of Deep Learning*.

Each module holds one noun: ``hardware`` (where the code runs), ``timing`` (how long it
takes), ``strategy`` (which devices train), ``parameters`` (notebook parameters), ``data``
(the curated figures in data/), ``runner`` (executing notebooks for instructors).

Importing this package is cheap: TensorFlow, Keras and JAX are imported only by the
functions that need them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "DATA_DIR", "NOTEBOOKS_DIR", "REPOSITORY"]

#: ``owner/name`` of the course repository on GitHub (badges and the Colab setup cell use it).
REPOSITORY = "supercomputing-dl-course/supercomputing-heart-of-dl"

#: The repository root: the folder that holds utils/, data/ and notebooks/.
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Where the curated CSV files live; ``COURSE_DATA_DIR`` overrides it.
DATA_DIR = Path(os.environ.get("COURSE_DATA_DIR", REPO_ROOT / "data"))

#: Where the notebooks live.
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"

# TensorFlow's C++ start-up chatter goes to stderr and would differ between papermill and nbval
# runs; keep warnings and errors, drop the informational lines. A value the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
