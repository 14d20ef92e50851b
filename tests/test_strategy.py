"""utils.strategy in fresh processes (TensorFlow and JAX fix their devices once per process)."""

from __future__ import annotations

import textwrap

import pytest
from conftest import run_python
from simulate import environment

TRAIN = """
import numpy as np, keras
with choice.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
history = model.fit(np.ones((32, 4)), np.ones((32, 1)), batch_size=8, epochs=1, verbose=0)
print("replicas", choice.num_replicas, "loss", round(history.history["loss"][0], 3) >= 0)
"""


def check(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_auto_on_a_cpu_machine_uses_one_device_and_says_so():
    out = check(run_python("from utils.strategy import choose_strategy\n"
                           "choice = choose_strategy('auto')\n" + TRAIN))
    assert "Asked for 'auto'; found no TPU, no GPU" in out
    assert "using OneDeviceStrategy on" in out and "replicas 1" in out


def test_mirrored_over_virtual_cpus_trains():
    out = check(run_python("from utils.strategy import choose_strategy\n"
                           "choice = choose_strategy('mirrored', virtual_cpus=2)\n" + TRAIN))
    assert "MirroredStrategy over 2 virtual CPU device(s), which share the same cores" in out
    assert "replicas 2" in out


def test_more_replicas_than_devices_is_refused_clearly():
    out = check(run_python("""
        import tensorflow as tf
        tf.constant(1.0)  # TensorFlow has started: no more virtual devices
        from utils.strategy import DeviceError, choose_strategy, configure_virtual_cpus
        for call in (lambda: choose_strategy('mirrored', replicas=4),
                     lambda: configure_virtual_cpus(2),
                     lambda: choose_strategy('tpu'),
                     lambda: choose_strategy('gpus')):
            try:
                call()
            except DeviceError as error:
                print('REFUSED', error)
    """))
    lines = [line for line in out.splitlines() if line.startswith("REFUSED")]
    assert len(lines) == 4
    assert "Restart the kernel" in lines[0] and "Restart the kernel" in lines[1]
    assert "no TPU found on this machine" in lines[2]
    assert "unknown strategy 'gpus'" in lines[3]


def test_tpu_seen_but_not_usable_by_tensorflow():
    out = check(run_python("""
        from utils.strategy import DeviceError, choose_strategy
        try:
            choose_strategy('tpu')
        except DeviceError as error:
            print('REFUSED', error)
        choice = choose_strategy('auto')
    """, env={"TPU_ACCELERATOR_TYPE": "v5litepod-1"}))
    assert "REFUSED a v5litepod-1 was found, but TensorFlow could not start it" in out
    assert "choose_distribution" in out
    assert "TPU not usable" in out and "using OneDeviceStrategy" in out


def test_jax_backend_data_parallel_on_simulated_cpus():
    out = check(run_python("""
        from utils.strategy import configure_jax_cpu_devices, choose_distribution
        configure_jax_cpu_devices(4)
        import keras, numpy as np
        choice = choose_distribution()
        keras.distribution.set_distribution(choice.distribution)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.ones((32, 4)), np.ones((32, 1)), batch_size=8, epochs=1, verbose=0)
        print("replicas", choice.num_replicas)
        try:
            configure_jax_cpu_devices(2)
        except Exception as error:
            print("REFUSED", error)
    """, env={"KERAS_BACKEND": "jax"}))
    assert "DataParallel over 4 CPU device(s) (simulated on the host CPU)" in out
    assert "replicas 4" in out and "REFUSED JAX is already running with 4" in out


def test_distribution_on_tensorflow_backend_is_refused():
    out = check(run_python("""
        from utils.strategy import DeviceError, choose_distribution
        try:
            choose_distribution()
        except DeviceError as error:
            print("REFUSED", error)
    """, env={"KERAS_BACKEND": "tensorflow"}))
    assert "REFUSED keras.distribution needs the JAX backend" in out


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_invalid_virtual_cpu_counts(bad):
    from utils.strategy import DeviceError, configure_jax_cpu_devices

    with pytest.raises(DeviceError, match="must be >= 1"):
        configure_jax_cpu_devices(bad)


def test_two_mirrored_strategies_of_different_sizes_train_in_one_process():
    out = check(run_python("""
        from utils.strategy import choose_strategy, configure_virtual_cpus
        import numpy as np, keras
        configure_virtual_cpus(4)
        for replicas in (4, 2, 4):
            choice = choose_strategy('mirrored', replicas=replicas, announce=False)
            with choice.strategy.scope():
                model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
                model.compile(optimizer="sgd", loss="mse")
            model.fit(np.ones((32, 4)), np.ones((32, 1)), batch_size=8, epochs=1, verbose=0)
            print("trained on", choice.num_replicas)
    """))
    assert out.count("trained on") == 3 and "trained on 2" in out


# --------------------------------------------------------------------------------------------
# Without TensorFlow, or with Keras on JAX: choose_strategy gives the JAX choice
# --------------------------------------------------------------------------------------------

def test_auto_without_tensorflow_trains_on_jax_and_never_imports_tensorflow(tmp_path):
    out = check(run_python(textwrap.dedent("""
        import sys
        from utils.strategy import DeviceError, choose_strategy
        for kind in ("mirrored", "one_device", "default"):
            try:
                choose_strategy(kind)
            except DeviceError as error:
                print("REFUSED", error)
        choice = choose_strategy("auto")
    """) + TRAIN + textwrap.dedent("""
        print("BACKEND", keras.config.backend(), type(choice).__name__)
        print("TF IMPORTED", sys.modules.get("tensorflow") is not None)
    """), env=environment("no-tensorflow", tmp_path)))
    refused = [line for line in out.splitlines() if line.startswith("REFUSED")]
    assert len(refused) == 3
    assert all("TensorFlow is not installed here" in line and "Use 'auto'" in line
               for line in refused)
    assert "TensorFlow is not installed here (as on Colab's TPU runtime); using DataParallel " \
           "over 1 CPU device(s)." in out
    assert "replicas 1" in out and "BACKEND jax DistributionChoice" in out
    assert "TF IMPORTED False" in out


def test_keras_on_jax_with_tensorflow_installed_uses_keras_distribution():
    out = check(run_python("""
        import sys
        from utils.strategy import choose_strategy
        choice = choose_strategy("auto", virtual_cpus=2, replicas=2)
        print("TF IMPORTED", "tensorflow" in sys.modules, choice.num_replicas)
    """, env={"KERAS_BACKEND": "jax"}))
    assert "Keras runs on JAX in this kernel" in out
    assert "DataParallel over 2 CPU device(s) (simulated on the host CPU)" in out
    assert "TF IMPORTED False 2" in out


def test_simulated_tpu_is_named_and_the_cpu_used(tmp_path):
    out = check(run_python("""
        from utils.strategy import choose_strategy
        choose_strategy("tpu")
    """, env=environment("colab-tpu", tmp_path)))
    assert "a TPU v5e is on the PCI bus but JAX sees no TPU: it is simulated (colab-tpu)" in out
    assert "using DataParallel over 1 CPU device(s)" in out


def test_gpu_listed_by_nvidia_smi_but_unusable_is_named(tmp_path):
    env = environment("gpu-unusable", tmp_path)
    env.pop("COURSE_SIMULATED")  # as on a real machine with a CPU-only TensorFlow
    out = check(run_python("""
        from utils.strategy import choose_strategy
        choose_strategy("auto")
    """, env=env))
    assert ("nvidia-smi lists a GPU, NVIDIA GeForce RTX 3080, that TensorFlow cannot use: a "
            "TensorFlow build without GPU support, or a CUDA and driver mismatch; the CPU does "
            "the work") in out
    assert "using OneDeviceStrategy on /device:CPU:0" in out
