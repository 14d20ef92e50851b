"""utils.data_parallel: the replica plan (no TensorFlow), and MirroredStrategy in fresh processes
(virtual devices are fixed once per process): the same weights as one device, strategies over
different device sets side by side, and clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_python

from utils.data_parallel import (
    default_counts,
    draw_data_parallelism,
    max_weight_difference,
    plan_replicas,
)
from utils.parameters import ParameterError

# ---- the plan, before TensorFlow starts --------------------------------------------------------


def test_default_counts():
    assert default_counts(1) == (1,)
    assert default_counts(4) == (1, 2, 4)
    assert default_counts(6) == (1, 2, 4, 6)
    assert default_counts(8) == (1, 2, 4, 8)


def test_no_gpu_means_virtual_cpus():
    plan = plan_replicas(None, gpus=0, virtual_cpus=4)
    assert (plan.kind, plan.devices, plan.counts, plan.virtual) == ("CPU", 4, (1, 2, 4), True)
    assert "no GPU found" in plan.line and "virtual CPU devices" in plan.line
    assert "not a speedup from more hardware" in plan.line


def test_one_gpu_is_not_enough_to_mirror_over():
    plan = plan_replicas(None, gpus=1, virtual_cpus=2)
    assert plan.virtual and plan.counts == (1, 2)
    assert "1 GPU found, and data parallelism needs at least two devices" in plan.line


def test_several_gpus_are_the_replicas():
    plan = plan_replicas(None, gpus=8, virtual_cpus=4)
    assert (plan.kind, plan.devices, plan.counts, plan.virtual) == ("GPU", 8, (1, 2, 4, 8), False)
    assert plan.line.startswith("8 GPUs found")
    assert plan_replicas([4, 1, 2, 2], gpus=4, virtual_cpus=1).counts == (1, 2, 4)


def test_more_replicas_than_devices_is_refused_with_the_fix():
    with pytest.raises(ParameterError) as info:
        plan_replicas([1, 2, 8], gpus=0, virtual_cpus=4)
    message = str(info.value)
    assert "REPLICAS = [1, 2, 8] asks for 8 replicas" in message
    assert "VIRTUAL_CPUS = 4 virtual CPU devices are configured" in message
    assert "raise VIRTUAL_CPUS to 8" in message
    with pytest.raises(ParameterError, match="this machine has 2 GPUs: ask for at most"):
        plan_replicas([1, 4], gpus=2, virtual_cpus=8)
    with pytest.raises(ParameterError, match=r"1 GPU is not enough to mirror over"):
        plan_replicas([1, 4], gpus=1, virtual_cpus=2)


def test_other_bad_plans_are_refused():
    with pytest.raises(ParameterError, match="must include 1"):
        plan_replicas([2, 4], gpus=0, virtual_cpus=4)
    with pytest.raises(ParameterError, match="whole numbers >= 1"):
        plan_replicas([1, 0], gpus=0, virtual_cpus=4)
    assert plan_replicas([], gpus=0, virtual_cpus=4).counts == (1, 2, 4)  # empty: the default
    with pytest.raises(ParameterError, match="VIRTUAL_CPUS = 0"):
        plan_replicas(None, gpus=0, virtual_cpus=0)
    with pytest.raises(ParameterError, match="GLOBAL_BATCH = 30 does not split evenly over 4 "
                                             "replicas; choose a multiple of 4"):
        plan_replicas(None, gpus=0, virtual_cpus=4, global_batch=30)
    with pytest.raises(ParameterError, match="multiple of 6"):
        plan_replicas([1, 2, 3], gpus=0, virtual_cpus=4, global_batch=8)


# ---- helpers -----------------------------------------------------------------------------------


def test_max_weight_difference():
    a = [np.zeros((2, 3), np.float32), np.ones(4, np.float32)]
    b = [np.zeros((2, 3), np.float32), np.ones(4, np.float32)]
    assert max_weight_difference(a, b) == 0.0
    b[1][2] = 1.5
    assert max_weight_difference(a, b) == 0.5
    with pytest.raises(ValueError, match="same weight shapes"):
        max_weight_difference(a, [np.zeros((3, 2))])


def test_the_picture_has_a_shard_and_a_replica_per_device():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw_data_parallelism(ax, replicas=3, global_batch=96, devices=["/gpu:0", "/gpu:1"])
    texts = [t.get_text() for t in ax.texts]
    assert sum("32 images" in t for t in texts) == 3
    assert any("/gpu:1" in t for t in texts) and any("device 2" in t for t in texts)
    assert any(t.startswith("all-reduce") and "/ 3" in t for t in texts)
    plt.close(fig)
    with pytest.raises(ValueError):
        draw_data_parallelism(ax, replicas=0)


# ---- MirroredStrategy, in fresh processes ------------------------------------------------------

#: Float32 sums in another order differ in the last bits; four SGD steps of this small CNN move
#: its weights by about 3e-2, while rounding leaves differences of a few 1e-8 (measured on a
#: 2-core CPU). 1e-6 is well above the rounding and far below a wrong or missing update.
TOLERANCE = 1e-6

SAME_WEIGHTS = """
from utils.data_parallel import plan_replicas, setup_devices, max_weight_difference, model_weights
from utils.strategy import mirrored_strategy
plan = plan_replicas(None, gpus=0, virtual_cpus=4, global_batch=32)
setup = setup_devices(plan)
import keras, numpy as np, tensorflow as tf

rng = np.random.default_rng(0)
x = rng.normal(size=(128, 16, 16, 3)).astype("float32")
y = rng.integers(0, 5, 128).astype("int32")
batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # 4 global batches, fixed order

def train(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(5)])
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = model_weights(model)
    model.fit(batches, epochs=1, verbose=0, shuffle=False)
    return model, start

single, start = train(tf.distribute.OneDeviceStrategy(setup.devices[0]))
print("MOVED", max_weight_difference(single, start))
for k in (2, 4, 1, 2):  # strategies over different device sets, one after another
    mirrored, begin = train(mirrored_strategy(setup.devices, k))
    print("START", k, max_weight_difference(start, begin))
    print("GAP", k, mirrored.distribute_strategy.num_replicas_in_sync, max_weight_difference(single, mirrored))
"""


def values(out, key):
    return [line.split()[1:] for line in out.splitlines() if line.startswith(key + " ")]


def test_mirrored_on_virtual_devices_gives_the_weights_of_one_device():
    result = run_python(SAME_WEIGHTS)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "using MirroredStrategy over 4 virtual CPU device(s)" in out
    moved = float(values(out, "MOVED")[0][0])
    assert moved > 1e-3  # training did change the weights
    assert all(float(gap) == 0.0 for _, gap in values(out, "START"))  # same starting point
    gaps = values(out, "GAP")
    assert [(int(k), int(n)) for k, n, _ in gaps] == [(2, 2), (4, 4), (1, 1), (2, 2)]
    for k, _, gap in gaps:
        assert float(gap) <= TOLERANCE, f"{k} replicas differ from one device by {gap}"


def test_refusals_are_one_clear_line_never_a_tensorflow_traceback():
    result = run_python("""
        from utils.data_parallel import plan_replicas, setup_devices
        from utils.strategy import mirrored_strategy
        from utils.strategy import DeviceError
        setup = setup_devices(plan_replicas(None, gpus=0, virtual_cpus=2), announce=False)
        for call in (lambda: mirrored_strategy(setup.devices, 4),
                     lambda: mirrored_strategy(setup.devices, 0),
                     lambda: setup_devices(plan_replicas(None, gpus=0, virtual_cpus=4))):
            try:
                call()
                print('ACCEPTED')
            except DeviceError as error:
                print('REFUSED', error)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(("REFUSED", "ACCEPTED"))]
    assert len(lines) == 3 and all(line.startswith("REFUSED") for line in lines), result.stdout
    assert "4 replicas asked for, but only 2 device(s) are configured" in lines[0]
    assert "replicas must be a whole number >= 1" in lines[1]
    assert "Restart the kernel" in lines[2]
    assert "Traceback" not in result.stdout


def test_one_gpu_plan_mirrors_over_virtual_cpus_and_says_why():
    # a plan made on a machine with one GPU, carried out here (where TensorFlow sees no GPU)
    result = run_python("""
        from utils.data_parallel import ReplicaPlan, setup_devices
        from utils.strategy import mirrored_strategy
        setup = setup_devices(ReplicaPlan("CPU", 3, (1, 2, 3), 1))
        print("DEVICES", len(setup.devices), mirrored_strategy(setup.devices, 3).num_replicas_in_sync)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "found 1 GPU(s) and 3 CPU device(s) (virtual)" in result.stdout
    assert "one GPU cannot be mirrored over" in result.stdout
    assert "DEVICES 3 3" in result.stdout
