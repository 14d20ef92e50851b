"""Does the input pipeline keep up with the model? A benchmark, not a test.

    python -m tests.benchmarks.bench_input_pipeline [--preset binder] [--batch-size 64]
        [--images 4096] [--steps 40] [--rounds 3] [--dataset auto]

Trains the same AlexNet (utils.models) in one process on (a) "synthetic data", one batch
repeated with no input pipeline (utils.datasets.synthetic_batches), and (b) the real pipeline
(utils.datasets.load_dataset + make_pipeline: resize, cache, shuffle, batch, prefetch, in
tf.data; with KERAS_BACKEND=jax, or where TensorFlow is absent, utils.datasets.array_batches,
a keras.utils.PyDataset). One
epoch of the real pipeline runs first to fill its cache; then the two alternate for
``--rounds`` rounds of ``--steps`` steps so that drifting machine load affects both alike.
Prints each measurement (utils.throughput), the medians and the ratio real / synthetic; the
course's target is at least 90 %.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="binder", help="utils.models.PRESETS key")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=4096, help="training images")
    parser.add_argument("--steps", type=int, default=40, help="steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dataset", default="auto", help="auto, cifar10 or generated")
    args = parser.parse_args()

    import keras

    from utils.datasets import array_batches, load_dataset, make_pipeline, synthetic_batches
    from utils.hardware import hardware_report
    from utils.models import PRESETS, build_alexnet
    from utils.throughput import ThroughputCallback

    preset = PRESETS[args.preset]
    size, width, batch = preset["input_size"], preset["width"], args.batch_size
    report = hardware_report()
    print(f"machine: {report.cpu.model}, {report.cpu.usable_cores:g} usable cores, "
          f"accelerator: {report.accelerator}")
    data = load_dataset(args.dataset, train_size=args.images, test_size=batch)
    model = build_alexnet(size, data.num_classes, width)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    print(f"model: AlexNet {args.preset} ({size}x{size}, width {width}), "
          f"{model.count_params():,} parameters, batch {batch}")

    on_tensorflow = keras.config.backend() == "tensorflow"
    pipeline = make_pipeline if on_tensorflow else array_batches
    print(f"Keras on {keras.config.backend()}: the real pipeline is {pipeline.__name__}")
    real = pipeline(data.x_train, data.y_train, image_size=size, batch_size=batch)
    synthetic = synthetic_batches(batch, size, data.num_classes)
    start = time.perf_counter()
    model.fit(real, epochs=1, verbose=0, shuffle=False)  # fills the cache, traces the step
    print(f"first epoch of the real pipeline (resize + cache fill + tracing): "
          f"{time.perf_counter() - start:.1f} s")
    real_repeated = real.repeat() if on_tensorflow else real.repeated()

    rates: dict[str, list[float]] = {"synthetic": [], "real": []}
    for round_ in range(args.rounds):
        for kind, dataset in (("synthetic", synthetic), ("real", real_repeated)):
            meter = ThroughputCallback(batch, warmup_steps=2, label=f"{kind:9s} round {round_}")
            model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False,
                      callbacks=[meter])
            rates[kind].append(meter.images_per_s)
            print(meter.result())
    synthetic_rate = statistics.median(rates["synthetic"])
    real_rate = statistics.median(rates["real"])
    ratio = real_rate / synthetic_rate
    print(f"median synthetic data: {synthetic_rate:,.1f} images/s")
    print(f"median real pipeline ({data.name}): {real_rate:,.1f} images/s")
    print(f"real / synthetic: {100 * ratio:.1f} % (target >= 90 %: "
          f"{'met' if ratio >= 0.9 else 'NOT met'})")


if __name__ == "__main__":
    main()
