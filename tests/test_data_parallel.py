"""utils.data_parallel: the replica plan (no TensorFlow), and MirroredStrategy in fresh processes
(virtual devices are fixed once per process): the same weights as one device, strategies over
different device sets side by side, and clear refusals."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import run_python

from utils.data_parallel import (
    LOGICAL_GPU_MEMORY_SHARE,
    default_counts,
    draw_data_parallelism,
    max_weight_difference,
    plan_replicas,
)
from utils.errors import ArgumentError
from utils.hardware import GPUInfo, HardwareReport
from utils.parameters import ParameterError, as_parameters

# ---- the plan, before TensorFlow starts --------------------------------------------------------


def test_default_counts():
    assert default_counts(1) == (1,)
    assert default_counts(4) == (1, 2, 4)
    assert default_counts(6) == (1, 2, 4, 6)
    assert default_counts(8) == (1, 2, 4, 8)


def test_no_gpu_means_virtual_cpus():
    plan = plan_replicas(None, gpus=0, virtual_devices=4)
    assert (plan.kind, plan.devices, plan.counts, plan.virtual) == ("CPU", 4, (1, 2, 4), True)
    assert "no GPU found" in plan.line and "virtual CPU devices" in plan.line
    assert "not a speedup from more hardware" in plan.line


def faked_report(*gpus: GPUInfo) -> HardwareReport:
    """A hardware report as hardware_report() gives it on a machine with these GPUs."""
    from utils.hardware import CPUInfo, TPUInfo

    return HardwareReport(runtime="colab", os="Linux", python="3.12", packages={},
                          keras_backend="tensorflow", cpu=CPUInfo(), memory_total_gb=12.7,
                          memory_available_gb=11.0, memory_limit_gb=None, gpus=list(gpus),
                          tpu=TPUInfo())


def test_one_gpu_is_split_into_logical_gpus_with_a_share_of_its_memory():
    # the report of a Colab T4 (nvidia-smi: 15360 MiB), as the notebook passes it
    report = faked_report(GPUInfo("Tesla T4", memory_gb=15.0, compute_capability="7.5"))
    assert report.accelerator == "gpu"
    plan = plan_replicas(None, gpus=report.gpus, virtual_devices=4, global_batch=64)
    assert (plan.kind, plan.devices, plan.counts, plan.gpus) == ("logical GPU", 4, (1, 2, 4), 1)
    assert plan.virtual  # four slices of one GPU: no more hardware than one replica has
    assert plan.memory_limit_mb == int(15.0 * 1024 * LOGICAL_GPU_MEMORY_SHARE / 4)
    assert plan.memory_limit_mb * 4 < 15.0 * 1024  # room left for CUDA's own context
    line = plan.line
    assert "1 GPU found" in line and "4 logical GPUs" in line
    assert f"{plan.memory_limit_mb} MB each" in line
    assert "what the all-reduce costs" in line and "not a speedup" in line
    assert "virtual CPU" not in line  # the GPU is used, not left idle
    # memory unknown (nvidia-smi without a memory column): a fixed, modest share
    unknown = plan_replicas([1, 2], gpus=[GPUInfo("GPU")], virtual_devices=2)
    assert unknown.kind == "logical GPU" and unknown.memory_limit_mb == 1024


def test_several_gpus_are_the_replicas():
    plan = plan_replicas(None, gpus=8, virtual_devices=4)
    assert (plan.kind, plan.devices, plan.counts, plan.virtual) == ("GPU", 8, (1, 2, 4, 8), False)
    assert plan.line.startswith("8 GPUs found")
    assert plan_replicas([4, 1, 2, 2], gpus=4, virtual_devices=1).counts == (1, 2, 4)
    report = faked_report(*[GPUInfo("Tesla V100-SXM2-16GB", memory_gb=16.0)] * 4)
    assert plan_replicas(None, gpus=report.gpus, virtual_devices=2).counts == (1, 2, 4)


def test_more_replicas_than_devices_is_refused_under_the_notebooks_name():
    with pytest.raises(ArgumentError) as info:
        plan_replicas([1, 2, 8], gpus=0, virtual_devices=4)
    assert info.value.argument == "replicas"
    message = str(info.value)
    assert "replicas = [1, 2, 8] asks for 8 replicas, but the CPU is split into 4" in message
    assert "split into 8 devices or drop the larger counts" in message
    with pytest.raises(ParameterError) as info:  # as the notebook reports it
        with as_parameters(replicas="REPLICAS"):
            plan_replicas([1, 2, 8], gpus=0, virtual_devices=4)
    assert str(info.value).startswith("REPLICAS = [1, 2, 8] asks for 8 replicas")
    with pytest.raises(ArgumentError, match="this machine has 2 GPUs; ask for at most"):
        plan_replicas([1, 4], gpus=2, virtual_devices=8)
    with pytest.raises(ArgumentError, match="its one GPU is split into 2 logical GPUs"):
        plan_replicas([1, 4], gpus=1, virtual_devices=2)


def test_other_bad_plans_are_refused():
    with pytest.raises(ArgumentError, match="must include 1"):
        plan_replicas([2, 4], gpus=0, virtual_devices=4)
    with pytest.raises(ArgumentError, match=r"replicas = \[1, 0\] must list whole numbers >= 1"):
        plan_replicas([1, 0], gpus=0, virtual_devices=4)
    assert plan_replicas([], gpus=0, virtual_devices=4).counts == (1, 2, 4)  # empty: the default
    with pytest.raises(ArgumentError, match="virtual_devices = 0") as info:
        plan_replicas(None, gpus=0, virtual_devices=0)
    assert info.value.argument == "virtual_devices"
    with pytest.raises(ArgumentError, match="global_batch = 30 does not split evenly over 4 "
                                            "replicas; choose a multiple of 4"):
        plan_replicas(None, gpus=0, virtual_devices=4, global_batch=30)
    with pytest.raises(ArgumentError, match="multiple of 6"):
        plan_replicas([1, 2, 3], gpus=0, virtual_devices=4, global_batch=8)


# ---- helpers -----------------------------------------------------------------------------------


def test_max_weight_difference():
    a = [np.zeros((2, 3), np.float32), np.ones(4, np.float32)]
    b = [np.zeros((2, 3), np.float32), np.ones(4, np.float32)]
    assert max_weight_difference(a, b) == 0.0
    b[1][2] = 1.5
    assert max_weight_difference(a, b) == 0.5
    with pytest.raises(ArgumentError, match="same weight shapes"):
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
    with pytest.raises(ArgumentError):
        draw_data_parallelism(ax, replicas=0)


# ---- MirroredStrategy, in fresh processes ------------------------------------------------------

#: Float32 sums in another order differ in the last bits; four SGD steps of this small CNN move
#: its weights by about 3e-2, while rounding leaves differences of a few 1e-8 (measured on a
#: 2-core CPU). 1e-6 is well above the rounding and far below a wrong or missing update.
TOLERANCE = 1e-6

SAME_WEIGHTS = """
from utils.data_parallel import plan_replicas, setup_devices, max_weight_difference, model_weights
from utils.strategy import mirrored_strategy
plan = plan_replicas(None, gpus=0, virtual_devices=4, global_batch=32)
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
    assert "found no GPU; using MirroredStrategy over 4 virtual CPU devices" in out
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
        setup = setup_devices(plan_replicas(None, gpus=0, virtual_devices=2), announce=False)
        for call in (lambda: mirrored_strategy(setup.devices, 4),
                     lambda: mirrored_strategy(setup.devices, 0),
                     lambda: setup_devices(plan_replicas(None, gpus=0, virtual_devices=4))):
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


class FakeTensorFlow:
    """Just enough of ``tf.config`` to split a GPU or the CPU, recording what the code asked for
    (this machine's TensorFlow sees no GPU, so the call itself is tested, not its effect)."""

    def __init__(self, gpus: int) -> None:
        self.physical = {"GPU": [f"PhysicalDevice(GPU:{i})" for i in range(gpus)],
                         "CPU": ["PhysicalDevice(CPU:0)"]}
        self.logical = {kind: [f"/device:{kind}:{i}" for i in range(len(devices))]
                        for kind, devices in self.physical.items()}
        self.calls: list[tuple[str, list[int | None]]] = []
        fake = self

        class LogicalDeviceConfiguration:
            def __init__(self, memory_limit=None):
                self.memory_limit = memory_limit

        class Device:
            def __init__(self, name):
                self.name = name

        class Config:
            def list_physical_devices(self, kind):
                return list(fake.physical[kind])

            def get_logical_device_configuration(self, device):
                return None

            def set_logical_device_configuration(self, device, configs):
                fake.calls.append((device, [c.memory_limit for c in configs]))
                kind = "GPU" if "GPU" in device else "CPU"
                fake.logical[kind] = [f"/device:{kind}:{i}" for i in range(len(configs))]

            def list_logical_devices(self, kind):
                return [Device(name) for name in fake.logical[kind]]

        Config.LogicalDeviceConfiguration = LogicalDeviceConfiguration
        self.config = Config()


def test_one_gpu_is_split_into_logical_gpus_for_mirrored_strategy(monkeypatch, capsys):
    from utils.data_parallel import setup_devices

    plan = plan_replicas(None, gpus=[GPUInfo("Tesla T4", memory_gb=15.0)], virtual_devices=4)
    fake = FakeTensorFlow(gpus=1)
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    setup = setup_devices(plan)
    assert fake.calls == [("PhysicalDevice(GPU:0)", [plan.memory_limit_mb] * 4)]
    assert setup.devices == [f"/device:GPU:{i}" for i in range(4)]
    assert setup.plan is plan
    printed = capsys.readouterr().out
    assert f"4 logical GPUs of {plan.memory_limit_mb} MB each, which share that GPU" in printed


def test_logical_gpus_set_too_late_ask_for_a_restart(monkeypatch):
    from utils.data_parallel import configure_logical_gpus
    from utils.strategy import DeviceError

    fake = FakeTensorFlow(gpus=1)

    def too_late(device, configs):
        raise RuntimeError("Virtual devices cannot be modified after being initialized")

    fake.config.set_logical_device_configuration = too_late
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    with pytest.raises(DeviceError, match="Restart the kernel"):
        configure_logical_gpus(4, 2048)
    monkeypatch.setitem(sys.modules, "tensorflow", FakeTensorFlow(gpus=0))
    with pytest.raises(DeviceError, match="sees no GPU"):
        configure_logical_gpus(2, 2048)


def test_a_simulated_gpu_is_said_to_be_simulated(monkeypatch, capsys):
    # colab-t4 (tests/simulate.py): nvidia-smi lists a T4, TensorFlow sees none
    from utils.data_parallel import setup_devices

    monkeypatch.setenv("COURSE_SIMULATED", "colab-t4")
    fake = FakeTensorFlow(gpus=0)
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    plan = plan_replicas(None, gpus=[GPUInfo("Tesla T4", memory_gb=15.0)], virtual_devices=2)
    setup = setup_devices(plan)
    assert fake.calls == [("PhysicalDevice(CPU:0)", [None, None])]  # virtual CPUs, no limit
    assert setup.plan.kind == "CPU" and setup.devices == ["/device:CPU:0", "/device:CPU:1"]
    assert "simulated by the colab-t4 runtime: it computes nothing" in capsys.readouterr().out


def test_a_gpu_tensorflow_cannot_use_falls_back_to_virtual_cpus_and_says_why(monkeypatch):
    # the one-GPU plan of a machine where nvidia-smi sees a GPU but TensorFlow (as here) does not
    monkeypatch.delenv("COURSE_SIMULATED", raising=False)
    result = run_python("""
        from utils.data_parallel import plan_replicas, setup_devices
        from utils.hardware import GPUInfo
        from utils.strategy import mirrored_strategy
        plan = plan_replicas(None, gpus=[GPUInfo("Tesla T4", memory_gb=15.0)], virtual_devices=3,
                             global_batch=6)
        setup = setup_devices(plan)
        print("PLAN", setup.plan.kind, setup.plan.counts)
        print("DEVICES", len(setup.devices), mirrored_strategy(setup.devices, 3).num_replicas_in_sync)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "found 1 GPU(s) that nvidia-smi reports but TensorFlow cannot use (a CPU-only" in out
    assert "using 3 virtual CPU devices instead" in out
    assert "PLAN CPU (1, 2, 3)" in out
    assert "DEVICES 3 3" in out
