"""Data-parallel training across processes with MultiWorkerMirroredStrategy.

Every worker runs this same script. On one machine utils.cluster.launch starts the workers and
gives each a TF_CONFIG; on a Slurm cluster `srun python -m utils.workers.multiworker_train`
starts one per node and SlurmClusterResolver reads Slurm's variables instead.

Keras 3's model.fit does not work with this strategy (keras-team/keras#20585), so the training
loop is written out: strategy.run runs one step on every replica, tf.nn.compute_average_loss
divides by the global batch, and apply_gradients all-reduces (sums) the gradients of all
replicas before updating, so every worker keeps identical weights.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

STARTED = time.perf_counter()

import numpy as np  # noqa: E402

from utils.cluster import die_with_parent, save_result  # noqa: E402

die_with_parent()  # a worker ends with the notebook (or test) that started it
os.environ["KERAS_BACKEND"] = "tensorflow"  # the loop below is TensorFlow's
# TensorFlow Lite imports JAX whenever it is installed; this worker never uses it, and keeping it
# out saves each worker about 100 MB and a second of start-up.
sys.modules.setdefault("jax", None)  # type: ignore[assignment]

import keras  # noqa: E402  (after die_with_parent: importing TensorFlow takes seconds)
import tensorflow as tf  # noqa: E402


# ---- cluster ----
class SlurmResolver(tf.distribute.cluster_resolver.SlurmClusterResolver):
    """TensorFlow's SlurmClusterResolver, fixed for nodes without GPUs. TensorFlow's own gives
    task i of a node the i-th slice of its GPUs; with no GPU it asks nvidia-smi (missing) and
    then divides by zero. Here a CPU node gives task i the port port_base + i, and no GPU."""

    def __init__(self, port_base: int, gpus_per_node: int | None = None) -> None:
        if gpus_per_node is None:  # as Slurm sets it for --gres=gpu:N, else what nvidia-smi lists
            gpus_per_node = count_gpus()
        super().__init__(port_base=port_base, gpus_per_node=gpus_per_node)

    def cluster_spec(self) -> tf.train.ClusterSpec:
        if self._gpus_per_task > 0:  # GPUs: TensorFlow's own allocation
            return super().cluster_spec()
        tasks = [f"{host}:{self._port_base + i}"  # hosts sorted, as TensorFlow's own does
                 for host, count in sorted(self._task_configuration.items()) for i in range(count)]
        self.task_type, self.task_id = "worker", self._rank
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # no task may take a GPU it was not given
        return tf.train.ClusterSpec({"worker": tasks})


def make_resolver(args: argparse.Namespace) -> tf.distribute.cluster_resolver.ClusterResolver:
    """Who the workers are: TF_CONFIG on this machine (utils.cluster sets it), Slurm's
    variables (SLURM_PROCID, SLURM_STEP_NODELIST, ...) on a cluster, where srun starts us."""
    if not os.environ.get("TF_CONFIG") and "SLURM_PROCID" in os.environ:
        return SlurmResolver(port_base=args.port_base, gpus_per_node=args.gpus_per_node)
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def make_strategy(args: argparse.Namespace) -> tf.distribute.Strategy:
    """One replica per local GPU (or the CPU); gradients all-reduced across all workers."""
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=make_resolver(args))


# ---- data ----
def make_dataset(context: tf.distribute.InputContext, args: argparse.Namespace) -> tf.data.Dataset:
    """Synthetic 28x28 images: one faint pattern per class under noise; each worker reads its shard."""
    rng = np.random.default_rng(args.seed)
    patterns = rng.standard_normal((10, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, args.examples)
    noise = rng.standard_normal((args.examples, 28, 28, 1), dtype=np.float32)
    images = 0.5 * patterns[labels] + noise
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
    batch = context.get_per_replica_batch_size(args.global_batch)
    return dataset.repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ---- model ----
def make_model(args: argparse.Namespace) -> keras.Model:
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(args.hidden_units, activation="relu"),
        keras.layers.Dense(10),
    ])


# ---- training loop ----
def train(args: argparse.Namespace) -> dict:
    strategy = make_strategy(args)
    args.global_batch = args.batch_per_replica * strategy.num_replicas_in_sync
    dataset = strategy.distribute_datasets_from_function(lambda ctx: make_dataset(ctx, args))

    with strategy.scope():  # variables created here are mirrored on every replica
        keras.utils.set_random_seed(args.seed)
        model = make_model(args)
        optimizer = keras.optimizers.SGD(learning_rate=args.learning_rate, momentum=0.9)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    @tf.function
    def train_step(iterator):
        def replica_step(images, labels):  # runs on every replica, on its part of the batch
            with tf.GradientTape() as tape:
                per_example_loss = loss_fn(labels, model(images, training=True))
                loss = tf.nn.compute_average_loss(per_example_loss,
                                                  global_batch_size=args.global_batch)
            gradients = tape.gradient(loss, model.trainable_variables)
            # apply_gradients first all-reduces (sums) the gradients across all replicas
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss

        per_replica_loss = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)

    worker = strategy.cluster_resolver.task_id or 0  # this worker's index in the cluster
    iterator = iter(dataset)
    step_times = []
    for step in range(1, args.steps + 1):
        inject_fault(args, worker, step)
        start = time.perf_counter()
        loss = float(train_step(iterator))  # float() waits for the step to finish
        step_times.append(time.perf_counter() - start)
        if step == 1 or step % args.log_every == 0 or step == args.steps:
            print(f"step {step}/{args.steps}  loss {loss:.4f}  {1e3 * step_times[-1]:.1f} ms",
                  flush=True)
    return summarize(args, strategy, model, step_times, loss, worker)
# ---- end ----


def count_gpus() -> int:
    """GPUs this task may use: CUDA_VISIBLE_DEVICES where set (Slurm sets it for --gres), else
    what nvidia-smi lists, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        listing = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in listing.splitlines())


def inject_fault(args: argparse.Namespace, worker: int, step: int) -> None:
    """For the lesson's fault demonstrations only: does nothing unless --fault is given."""
    if args.fault is None or worker != args.fault_worker or step != args.fault_step:
        return
    if args.fault == "crash":
        raise RuntimeError(f"injected crash on worker {worker} at step {step}")
    print(f"hanging at step {step} (injected)", flush=True)
    while True:
        time.sleep(3600)


def time_allreduce(strategy: tf.distribute.Strategy, size: int, repeats: int = 10) -> float:
    """Median seconds of one all-reduce of ``size`` float32 numbers across all replicas: the
    communication a training step adds (every worker runs it the same number of times)."""
    with strategy.scope():
        values = tf.Variable(tf.ones([size]))

    @tf.function
    def all_reduce():
        return strategy.run(
            lambda: tf.distribute.get_replica_context().all_reduce("sum", values * 1.0))

    times = []
    for i in range(repeats + 2):  # two untimed calls: tracing and warm-up
        start = time.perf_counter()
        float(tf.reduce_sum(strategy.experimental_local_results(all_reduce())[0]))
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def summarize(args: argparse.Namespace, strategy: tf.distribute.Strategy, model: keras.Model,
              step_times: list[float], loss: float, worker: int) -> dict:
    """Throughput and step time of this worker, and its final weights, for the launcher."""
    timed = step_times[args.warmup_steps:] or step_times
    step_s = statistics.median(timed)
    spec = strategy.cluster_resolver.cluster_spec()
    workers = spec.num_tasks("worker") if "worker" in spec.jobs else 1
    local_replicas = strategy.num_replicas_in_sync // workers  # replicas on this worker
    parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    result = {
        "worker": worker,
        "host": socket.gethostname(),
        "workers": workers,
        "replicas_in_sync": strategy.num_replicas_in_sync,
        "local_replicas": local_replicas,
        "batch_per_replica": args.batch_per_replica,
        "global_batch": args.global_batch,
        "steps": args.steps,
        "timed_steps": len(timed),
        "first_step_s": step_times[0],
        "step_s": step_s,
        "step_iqr_s": float(np.subtract(*np.percentile(timed, [75, 25]))),
        "worker_images_per_s": args.batch_per_replica * local_replicas / step_s,
        "global_images_per_s": args.global_batch / step_s,
        "final_loss": loss,
        "parameters": parameters,
        "gradient_bytes": 4 * parameters,
        "allreduce_s": time_allreduce(strategy, parameters),
        "startup_s": time.perf_counter() - STARTED - sum(step_times),
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,  # Linux: kB
        "step_times_s": step_times,
    }
    weights = {f"{i:02d}.{v.path.replace('/', '.')}": v.numpy() for i, v in enumerate(model.weights)}
    save_result(result, weights, args.output_dir, index=worker)
    print(f"done: {result['replicas_in_sync']} replica(s) in sync, median step "
          f"{1e3 * step_s:.1f} ms, {result['worker_images_per_s']:.0f} images/s on this worker",
          flush=True)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="training steps")
    parser.add_argument("--warmup-steps", type=int, default=3,
                        help="first steps left out of the median step time (tracing)")
    parser.add_argument("--batch-per-replica", type=int, default=64, help="images per replica per step")
    parser.add_argument("--hidden-units", type=int, default=256, help="width of the dense layer")
    parser.add_argument("--learning-rate", type=float, default=0.03)
    parser.add_argument("--examples", type=int, default=2048, help="synthetic training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow threads per worker (0: TensorFlow chooses)")
    parser.add_argument("--log-every", type=int, default=10, help="print every N steps")
    parser.add_argument("--port-base", type=int, default=8888, help="first port on Slurm nodes")
    parser.add_argument("--gpus-per-node", type=int, default=None,
                        help="GPUs per Slurm node, 0 for CPU nodes (default: CUDA_VISIBLE_DEVICES "
                             "or nvidia-smi; none found means a CPU node)")
    parser.add_argument("--output-dir", default=None,
                        help="folder for worker-N.json/.npz (default: the launcher's)")
    parser.add_argument("--fault", choices=["crash", "hang"], default=None,
                        help="demonstration only: make one worker crash or hang")
    parser.add_argument("--fault-worker", type=int, default=1)
    parser.add_argument("--fault-step", type=int, default=3)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_per_replica < 1 or args.examples < args.batch_per_replica:
        parser.error("need steps >= 1, batch-per-replica >= 1 and examples >= batch-per-replica")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(2, args.threads))
    train(args)


if __name__ == "__main__":
    main()
