"""Lesson 06's measurements on this machine, printed: MPI all-reduce latency and bandwidth
(alpha-beta fit) and the training step time with 1 and 2 MultiWorkerMirroredStrategy workers.

    python -m tests.benchmarks.bench_distributed [--steps 60] [--ranks 2] [--max-mb 64]
"""

from __future__ import annotations

import argparse

from utils import cluster, mpi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64, help="images per worker per step")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads per worker")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--max-mb", type=float, default=64.0)
    parser.add_argument("--min-time", type=float, default=0.05)
    args = parser.parse_args()

    problem = mpi.mpi_problem()
    if problem:
        print(f"MPI: skipped ({problem})")
    else:
        result = mpi.allreduce_benchmark(args.ranks, mpi.default_sizes(int(args.max_mb * 2**20)),
                                         min_time_s=args.min_time, echo=False)
        frame = result.frame()
        fit = mpi.fit_alpha_beta(frame["size_bytes"], frame["time_s"], result.nprocs)
        print(f"MPI all-reduce, {result.nprocs} ranks ({result.library[:40]}...):")
        for row in frame.itertuples():
            print(f"  {row.size_bytes:>10d} B  {1e6 * row.time_s:10.2f} us (median; min "
                  f"{1e6 * row.min_s:.2f})  bus bandwidth {row.busbw_gb_s:.3f} GB/s")
        print(f"  smallest-message latency {1e6 * frame['time_s'].iloc[0]:.2f} us; largest bus "
              f"bandwidth {frame['busbw_gb_s'].max():.2f} GB/s")
        print(f"  fit: {fit}")

    command = cluster.python_module("utils.workers.multiworker_train", "--steps", args.steps,
                                    "--batch-per-replica", args.batch, "--threads", args.threads)
    for workers in (1, 2):
        run = cluster.launch(command, workers, timeout_s=600, echo=False)
        steps = ", ".join(f"{1e3 * r['step_s']:.1f}" for r in run.results)
        rate = run.results[0]["global_batch"] / max(r["step_s"] for r in run.results)
        print(f"{workers} worker(s): median step {steps} ms per worker, {rate:.0f} images/s in "
              f"all, wall {run.wall_s:.1f} s, peak memory per worker "
              f"{max(r['peak_memory_mb'] for r in run.results):.0f} MB, all-reduce of "
              f"{run.results[0]['gradient_bytes'] / 1e6:.2f} MB of gradients "
              f"{1e3 * max(r['allreduce_s'] for r in run.results):.2f} ms"
              + (f", weights max difference {run.max_difference():g}" if workers > 1 else ""))


if __name__ == "__main__":
    main()
