"""Programs the lessons run as separate processes (``python -m utils.workers.<name>``).

``multiworker_train``: data-parallel training with MultiWorkerMirroredStrategy, started by
:func:`utils.cluster.launch` on this machine or by ``srun`` on a Slurm cluster.
``mpi_allreduce``: the MPI all-reduce benchmark started by :func:`utils.mpi.allreduce_benchmark`.
"""
