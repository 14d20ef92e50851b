"""Helpers for the course *Supercomputing, the heart of Deep Learning*.

The package is flat on purpose: a lesson reads ``from utils.timing import benchmark``, and a
learner should not have to learn a package tree to follow a notebook. The groups below are the
architecture; each line names a module, the lessons that import it (``-`` for none: the
command line, tests and other modules use it) and what it is for. A test keeps this map, the
README's and the notebooks' imports in step.

Lesson runtime: what every notebook's own cells use

- ``parameters`` (00-08): check a notebook's parameters; ``as_parameters`` names them in errors
- ``results`` (00-08): record a lesson's headline measurements in the executed notebook
- ``exercises`` (00-05, 07, 08): ``check_answer``, an exercise checked against this machine
- ``chapter`` (01-08): the chapter's claims with record, source and verdict; its two graphs
- ``widgets`` (01, 04, 05, 07): controls that redraw only on change, labels never cut
- ``plotting`` (00-08): one plot style; colours for measured against reference figures
- ``units`` (00-04, 06, 07): numbers with units for people (``si``, ``duration``)
- ``errors`` (-): the one error family (``CourseError``) and the argument validators

Measuring

- ``timing`` (00-02, 04, 07, 08): warm up, repeat, median and best, wait for the device
- ``memory`` (-): a process tree's peak memory (PSS), for ``course run``
- ``bandwidth`` (02, 07, 08): STREAM-style memory bandwidth with NumPy
- ``throughput`` (03, 05, 07): images per second while ``fit`` runs

This machine

- ``hardware`` (00-08): CPU, cores, clock, peak, memory, GPUs, TPU, runtime; no runtime started

Devices and backends

- ``backends`` (00-05, 07, 08): the Keras backend (TensorFlow or JAX), TF32 on and off, a JAX
  process beside a TensorFlow kernel
- ``strategy`` (00, 03, 05, 07): which devices train, in one announced line
- ``data_parallel`` (05): replicas on GPUs, one GPU split, or virtual CPUs; MirroredStrategy
- ``accelerators`` (07, 08): GPUs and TPUs by their data sheets
- ``numerics`` (07, 08): number formats, which ones a device computes, their matmul rates

Models and data

- ``data`` (00-08): the curated figures in data/, validated
- ``datasets`` (03, 05): images to train on (CIFAR-10 or generated), any Keras backend
- ``models`` (02, 03, 05): AlexNet in Keras 3 and its arithmetic on paper

Models on paper

- ``growth`` (01, 04): exponential fits and doubling times
- ``top500`` (01): where a rate would have ranked in the TOP500
- ``roofline`` (02, 07, 08): attainable FLOP/s against arithmetic intensity
- ``scaling`` (05, 06): speedup, efficiency, Amdahl, Gustafson, Karp-Flatt, cost models
- ``interconnect`` (05, 06): reference links and the ring all-reduce alpha-beta model
- ``systolic`` (07): a weight-stationary systolic array, cycle by cycle
- ``inference`` (07): serving latency and throughput against batch size

Distributed

- ``processes`` (-): the one launcher of child processes (process group, timeout, interrupt)
- ``cluster`` (06): one program as N worker processes, the way a cluster runs it on N nodes
- ``mpi`` (06): MPI all-reduce latency and bandwidth, fitted
- ``slurm`` (06): the sbatch script of the lesson's job, and submitting it
- ``workers`` (-): the programs the distributed lessons start (``python -m utils.workers.X``)

Tooling

- ``cli`` (-): the ``course`` command (run, lab, list, hardware, report, book, new, refresh)
- ``runner`` (-): execute notebooks with papermill; summary.json and results.csv
- ``notebooks`` (-): the notebooks as files: discover, strip, compare checked outputs, kernel
- ``report`` (-): ``course report``, one HTML page for a run or a class
- ``book`` (-): ``course book``, the executed course as a static website

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
