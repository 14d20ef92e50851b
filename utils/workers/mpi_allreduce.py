"""All-reduce time against message size across MPI ranks (mpi4py), started by mpirun:

    mpirun -n 2 python -m utils.workers.mpi_allreduce --sizes 8 1024 1048576 --output out.json

Every rank sums a float32 buffer with every other rank (MPI_Allreduce). For each size the ranks
agree on an iteration count (rank 0 decides from the fastest of three timed calls), run it once
to warm up, then ``--repeats`` times, keeping per repeat the slowest rank's mean time per call. Rank 0 writes the JSON result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI


def measure(comm: MPI.Comm, size_bytes: int, min_time_s: float, repeats: int,
            max_iterations: int) -> dict:
    count = max(1, size_bytes // 4)
    send = np.full(count, comm.rank + 1, dtype=np.float32)
    recv = np.empty_like(send)
    comm.Allreduce(send, recv, op=MPI.SUM)  # warm-up, and a check of the sum
    expected = comm.size * (comm.size + 1) / 2
    if not np.all(recv == expected):
        raise RuntimeError(f"all-reduce of {size_bytes} B gave a wrong sum on rank {comm.rank}")
    once = []
    for _ in range(3):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(send, recv, op=MPI.SUM)
        once.append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
    iterations = comm.bcast(int(min(max_iterations, max(1, min_time_s / max(min(once), 1e-9)))),
                            root=0)
    for _ in range(iterations):  # warm-up at this size: buffers, caches, protocol set-up
        comm.Allreduce(send, recv, op=MPI.SUM)
    per_call = []
    for _ in range(repeats):
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(iterations):
            comm.Allreduce(send, recv, op=MPI.SUM)
        elapsed = (time.perf_counter() - start) / iterations
        per_call.append(comm.allreduce(elapsed, op=MPI.MAX))  # the slowest rank sets the pace
    return {"size_bytes": 4 * count, "median_s": statistics.median(per_call),
            "min_s": min(per_call), "iterations": iterations, "repeats": repeats}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MPI all-reduce latency and bandwidth")
    parser.add_argument("--sizes", type=int, nargs="+", required=True, help="message sizes in bytes")
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per repeat, at least")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-iterations", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=None, help="JSON file written by rank 0")
    args = parser.parse_args(argv)

    comm = MPI.COMM_WORLD
    rows = [measure(comm, size, args.min_time, args.repeats, args.max_iterations)
            for size in args.sizes]
    hosts = comm.gather(MPI.Get_processor_name(), root=0)
    if comm.rank == 0:
        result = {"nprocs": comm.size, "hosts": hosts,
                  "library": MPI.Get_library_version().strip().splitlines()[0],
                  "rows": rows}
        text = json.dumps(result)
        if args.output:
            args.output.write_text(text)
        for row in rows:
            print(f"{row['size_bytes']:>12d} B  {1e6 * row['median_s']:12.2f} us", flush=True)


if __name__ == "__main__":
    main()
