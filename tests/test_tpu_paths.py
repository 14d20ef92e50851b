"""The paths to a TPU: choosing the Keras backend from the PCI bus and what is installed,
Keras on JAX in a separate process over simulated CPU devices, and notebook 07 on the paths a
machine without a TPU can exercise (its TensorFlow refusal, and a kernel with no TensorFlow at
all, as on Colab's TPU runtime)."""

from __future__ import annotations

import os
import sys
import types

import pytest
from conftest import run_python

import utils
from utils.backends import (BackendChoice, JaxProcessError, choose_backend, installed,
                            run_in_jax_process, tensorflow_supports_tpu)
from utils.strategy import DeviceError

TF_ONLY = {"tensorflow": "2.21.0", "tensorflow-tpu": None, "jax": None}
TF_AND_JAX = {"tensorflow": "2.21.0", "tensorflow-tpu": None, "jax": "0.10.2"}
TF_TPU = {"tensorflow": "2.20.0", "tensorflow-tpu": "2.20.0", "jax": None}
JAX_ONLY = {"tensorflow": None, "tensorflow-tpu": None, "jax": "0.6.0"}  # Colab's TPU runtime
NOTHING = {"tensorflow": None, "tensorflow-tpu": None, "jax": None}


@pytest.fixture
def tpu_machine(fake_system):
    fake_system.pci_device("0000:00:04.0", "0x1ae0", "0x0063")  # a TPU v5e chip
    return fake_system


@pytest.fixture
def plain_machine(fake_system):
    fake_system.pci_device("0000:00:05.0", "0x1ae0", "0x0042")  # Google's virtual NIC only
    return fake_system


def choose(machine, versions, asked="auto", modules=None, accelerator=None):
    return choose_backend(asked, paths=machine.paths, environ={}, versions=versions,
                          modules=modules or {}, accelerator=accelerator, announce=False)


def test_colab_tpu_runtime_takes_jax(tpu_machine):
    choice = choose(tpu_machine, JAX_ONLY)
    assert choice.backend == "jax" and choice.accelerator == "tpu"
    assert "a TPU v5e (1 chip(s), PCI bus)" in choice.line
    assert "no TensorFlow" in choice.line and "TensorFlow is not installed" in choice.line
    assert choice.versions["jax"] == "0.6.0"


def test_tpu_with_tensorflow_without_tpu_support_takes_jax(tpu_machine):
    choice = choose(tpu_machine, TF_AND_JAX)
    assert choice.backend == "jax"
    assert "TensorFlow has no TPU support" in choice.reason


def test_tpu_with_tensorflow_tpu_takes_tensorflow(tpu_machine):
    choice = choose(tpu_machine, TF_TPU)
    assert choice.backend == "tensorflow" and "TPUStrategy" in choice.reason
    assert "TensorFlow 2.20.0 with TPU support" in choice.line


def test_tpu_without_any_framework_is_refused(tpu_machine):
    with pytest.raises(DeviceError, match="neither JAX nor TensorFlow with TPU support"):
        choose(tpu_machine, TF_ONLY)


def test_no_tpu_prefers_tensorflow_then_jax(plain_machine):
    assert choose(plain_machine, TF_AND_JAX).backend == "tensorflow"
    choice = choose(plain_machine, JAX_ONLY, accelerator="gpu")
    assert choice.backend == "jax" and "drives the GPU" in choice.reason
    assert "no TPU (GPU is the fastest device)" in choice.found
    with pytest.raises(DeviceError, match="neither TensorFlow nor JAX is installed"):
        choose(plain_machine, NOTHING)


def test_tpu_named_by_the_environment_only():
    choice = choose_backend("auto", paths=utils.hardware.SystemPaths(sys=utils.REPO_ROOT / "x"),
                            environ={"TPU_ACCELERATOR_TYPE": "v5litepod-1"}, versions=JAX_ONLY,
                            modules={}, announce=False)
    assert choice.backend == "jax" and "environment variable TPU_ACCELERATOR_TYPE" in choice.found


def test_explicit_choices(tpu_machine, plain_machine):
    choice = choose(tpu_machine, TF_AND_JAX, asked="tensorflow")
    assert choice.backend == "tensorflow" and "TPUStrategy will be refused" in choice.reason
    assert choose(plain_machine, TF_AND_JAX, asked="jax").backend == "jax"
    with pytest.raises(DeviceError, match="TensorFlow is not installed here"):
        choose(plain_machine, JAX_ONLY, asked="tensorflow")
    with pytest.raises(DeviceError, match="JAX is not installed here"):
        choose(plain_machine, TF_ONLY, asked="jax")
    with pytest.raises(DeviceError, match="unknown backend 'torch'"):
        choose(plain_machine, TF_AND_JAX, asked="torch")


def fake_keras(backend):
    return {"keras": types.SimpleNamespace(config=types.SimpleNamespace(backend=lambda: backend))}


def test_keras_already_imported_fixes_the_backend(plain_machine):
    choice = choose(plain_machine, TF_AND_JAX, modules=fake_keras("jax"))
    assert choice.backend == "jax" and "already imported" in choice.reason
    with pytest.raises(DeviceError, match="Restart the kernel"):
        choose(plain_machine, TF_AND_JAX, asked="tensorflow", modules=fake_keras("jax"))


def test_announces_one_line(plain_machine, capsys):
    choice = choose_backend("auto", paths=plain_machine.paths, environ={}, versions=TF_AND_JAX,
                            modules={})
    assert isinstance(choice, BackendChoice)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("Asked for 'auto'; found no TPU")


def test_installed_counts_only_importable_frameworks():
    versions = {"tensorflow": "2.21.0", "tensorflow-tpu": None, "jax": "0.10.2"}
    found = installed(module_present=lambda name: name == "jax", version=versions.get)
    assert found == {"tensorflow": None, "tensorflow-tpu": None, "jax": "0.10.2"}
    found = installed(module_present=lambda name: True,
                      version={"tensorflow-tpu": "2.20.0"}.get)
    assert found["tensorflow"] == "2.20.0" and tensorflow_supports_tpu(found)
    assert not tensorflow_supports_tpu(TF_AND_JAX)


def test_installed_handles_a_blocked_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if TensorFlow were absent
    assert installed()["tensorflow"] is None


# --------------------------------------------------------------------------------------------
# Keras on JAX in a separate process
# --------------------------------------------------------------------------------------------

def tiny_training(scope, samples, epochs=1):
    import keras
    import numpy as np

    x = np.ones((samples, 4), dtype="float32")
    with scope:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(x, np.ones((samples, 1)), batch_size=8, epochs=epochs, verbose=0)
    import jax

    return {"backend": keras.config.backend(), "devices": len(jax.devices()),
            "loss": float(history.history["loss"][-1]),
            "tensorflow_imported": "tensorflow" in sys.modules}


def failing_training(scope, message):
    raise RuntimeError(message)


def test_jax_process_trains_on_simulated_devices(capsys):
    result = run_in_jax_process(tiny_training, devices=4, samples=32)
    assert result.value["backend"] == "jax" and result.value["devices"] == 4
    assert result.value["loss"] >= 0
    assert not result.value["tensorflow_imported"]  # the JAX path never needs TensorFlow
    assert "DataParallel over 4 CPU device(s)" in capsys.readouterr().out
    assert "KERAS_BACKEND" in result.script and result.seconds > 0
    assert result.peak_memory_mb is None or result.peak_memory_mb > 10


def test_jax_process_failure_is_reported():
    with pytest.raises(JaxProcessError, match="RuntimeError: no luck"):
        run_in_jax_process(failing_training, message="no luck", echo=False)


def test_jax_process_refuses_what_cannot_travel():
    with pytest.raises(ValueError, match="JSON-serialisable"):
        run_in_jax_process(tiny_training, samples=object())
    with pytest.raises(ValueError, match="not a lambda"):
        run_in_jax_process(lambda scope: 1)
    with pytest.raises(ValueError, match="source of"):
        run_in_jax_process(len)
    with pytest.raises(ValueError, match="devices must be"):
        run_in_jax_process(tiny_training, devices=0, samples=8)


def test_on_first_device_places_eager_ops():
    out = run_python("""
        from utils.backends import on_first_device
        from utils.strategy import choose_strategy
        import keras
        choice = choose_strategy("cpu", announce=False)
        with on_first_device(choice):
            y = keras.ops.matmul(keras.ops.ones((2, 2)), keras.ops.ones((2, 2)))
        print("DEVICE", y.device)
        class Nothing: devices = []
        with on_first_device(Nothing()):
            print("NOTHING ok")
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DEVICE /job:localhost/replica:0/task:0/device:CPU:0" in out.stdout
    assert "NOTHING ok" in out.stdout
    out = run_python("""
        from utils.strategy import choose_distribution, configure_jax_cpu_devices
        configure_jax_cpu_devices(2)
        import keras
        from utils.backends import on_first_device
        choice = choose_distribution(announce=False)
        choice.devices.reverse()   # make the first listed device cpu:1
        with on_first_device(choice):
            y = keras.ops.ones((2,))
        print("DEVICE", y.device)
    """, env={"KERAS_BACKEND": "jax"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DEVICE cpu:1" in out.stdout or "DEVICE TFRT_CPU_1" in out.stdout


# --------------------------------------------------------------------------------------------
# Notebook 07 on the paths this machine can exercise
# --------------------------------------------------------------------------------------------

NOTEBOOK = utils.NOTEBOOKS_DIR / "07_tpus_and_specialized_hardware.ipynb"


def run_notebook(tmp_path, monkeypatch, overrides, env):
    from utils import runner

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runs = runner.plan([str(NOTEBOOK)], "smoke", overrides=overrides)
    [result] = runner.execute(runs, tmp_path / "out", progress_bar=False, log=lambda s: None)
    return result


@pytest.mark.notebooks
@pytest.mark.timeout(600)
def test_notebook_runs_without_tensorflow_as_on_colab_tpu_runtime(tmp_path, monkeypatch):
    """Colab's TPU runtime has JAX and no TensorFlow: block `import tensorflow` in the kernel
    and the notebook must still run top to bottom, with Keras on JAX in the kernel."""
    import nbformat

    site = tmp_path / "no_tensorflow"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nsys.modules['tensorflow'] = None  # as on Colab's TPU runtime\n")
    path = f"{site}:{utils.REPO_ROOT}"
    result = run_notebook(tmp_path, monkeypatch, {}, {"PYTHONPATH": path})
    assert result.status == "ok", result.error
    executed = nbformat.read(result.output, as_version=4)
    text = "\n".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))
    assert "no TensorFlow" in text and "Keras runs on jax" in text
    assert "DataParallel over 2 CPU device(s)" in text
    assert "This kernel runs Keras on JAX" in text


@pytest.mark.notebooks
@pytest.mark.timeout(600)
def test_notebook_refuses_tensorflow_on_a_tpu_it_cannot_start(tmp_path, monkeypatch):
    """A TPU (named by the environment here) that this TensorFlow cannot start: asked for
    TensorFlow, the notebook stops at the device choice with one clear line."""
    result = run_notebook(tmp_path, monkeypatch, {"BACKEND": "tensorflow"},
                          {"TPU_ACCELERATOR_TYPE": "v5litepod-1"})
    assert result.status == "failed"
    assert "DeviceError" in result.error and "TensorFlow could not start it" in result.error


@pytest.mark.notebooks
@pytest.mark.timeout(600)
def test_notebook_on_jax_refuses_a_tpu_jax_cannot_see(tmp_path, monkeypatch):
    """With 'auto' and a TPU that TensorFlow cannot use, the notebook takes JAX; where JAX sees
    no TPU either (here: the TPU is only named by the environment) it stops clearly instead of
    quietly training on the CPU."""
    result = run_notebook(tmp_path, monkeypatch, {}, {"TPU_ACCELERATOR_TYPE": "v5litepod-1"})
    assert result.status == "failed"
    assert "DeviceError" in result.error and "no TPU visible to JAX" in result.error


# --------------------------------------------------------------------------------------------
# use_keras_backend, matmul_precision and has_tf32 (the contract lessons build on)
# --------------------------------------------------------------------------------------------

def test_keras_backend_preset_in_the_environment_is_kept(plain_machine):
    choice = choose_backend("auto", paths=plain_machine.paths, environ={"KERAS_BACKEND": "jax"},
                            versions=TF_AND_JAX, modules={}, announce=False)
    assert choice.backend == "jax" and "KERAS_BACKEND=jax was set" in choice.reason
    choice = choose_backend("auto", paths=plain_machine.paths, environ={"KERAS_BACKEND": "jax"},
                            versions=TF_ONLY, modules={}, announce=False)
    assert choice.backend == "tensorflow"  # a preset the kernel cannot honour is ignored


def test_use_keras_backend_sets_the_variable_before_keras(plain_machine, monkeypatch, capsys):
    from utils.backends import use_keras_backend

    monkeypatch.setenv("KERAS_BACKEND", "")  # recorded, so the value set below is undone
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    choice = use_keras_backend("jax", paths=plain_machine.paths, versions=TF_AND_JAX)
    assert choice.backend == "jax" and os.environ["KERAS_BACKEND"] == "jax"
    assert capsys.readouterr().out.startswith("Asked for 'jax'; found")
    monkeypatch.setitem(sys.modules, "keras", fake_keras("tensorflow")["keras"])
    choice = use_keras_backend("auto", paths=plain_machine.paths, versions=TF_AND_JAX)
    assert choice.backend == "tensorflow" and os.environ["KERAS_BACKEND"] == "jax"  # untouched


def test_matmul_precision_switches_tf32_and_restores_it():
    out = run_python("""
        import jax, tensorflow as tf
        from utils.backends import matmul_precision
        from utils.errors import ArgumentError
        experimental = tf.config.experimental
        print("TF before", experimental.tensor_float_32_execution_enabled())
        with matmul_precision("float32"):
            print("TF float32", experimental.tensor_float_32_execution_enabled(),
                  "JAX", jax.config.jax_default_matmul_precision)
        print("TF after", experimental.tensor_float_32_execution_enabled(),
              "JAX", jax.config.jax_default_matmul_precision)
        experimental.enable_tensor_float_32_execution(False)
        with matmul_precision("tf32"):
            print("TF tf32", experimental.tensor_float_32_execution_enabled(),
                  "JAX", jax.config.jax_default_matmul_precision)
        print("TF restored", experimental.tensor_float_32_execution_enabled())
        try:
            with matmul_precision("float16"):
                pass
        except ArgumentError as error:
            print("REFUSED", error)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout
    assert "TF before True" in lines and "TF float32 False JAX highest" in lines
    assert "TF after True JAX None" in lines
    assert "TF tf32 True JAX tensorfloat32" in lines and "TF restored False" in lines
    assert "REFUSED fmt = 'float16' must be one of 'float32', 'tf32'" in lines


def test_matmul_precision_leaves_absent_frameworks_alone(monkeypatch):
    from utils.backends import matmul_precision

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "jax", None)
    with matmul_precision("float32"):
        pass  # nothing imported, nothing to set, no error


def _report(capability, simulated=None):
    from utils.hardware import CPUInfo, GPUInfo, HardwareReport, TPUInfo

    gpus = [GPUInfo("GPU", compute_capability=capability)] if capability else []
    return HardwareReport("local", None, "3.12", {}, None, CPUInfo(), None, None, None, gpus,
                          TPUInfo(), simulated=simulated)


def _framework(gpus):
    return types.SimpleNamespace(config=types.SimpleNamespace(
        list_physical_devices=lambda kind: ["GPU:0"] * gpus))


@pytest.mark.parametrize("capability, simulated, modules, expected", [
    ("8.0", None, {"tensorflow": _framework(1)}, True),     # A100 that TensorFlow uses
    ("8.0", None, {"tensorflow": _framework(0)}, False),    # A100 TensorFlow cannot use
    ("7.5", None, {"tensorflow": _framework(1)}, False),    # T4: no TF32
    ("8.9", "colab-a100", {}, False),                       # a simulated GPU computes nothing
    ("9.0", None, {}, True),                                # no framework yet: the report
    (None, None, {"tensorflow": _framework(1)}, False),     # no GPU at all
])
def test_has_tf32(capability, simulated, modules, expected):
    from utils.backends import has_tf32

    assert has_tf32(_report(capability, simulated), modules=modules) is expected


def test_has_tf32_follows_jax_when_keras_runs_on_it():
    from utils.backends import has_tf32

    jax = types.SimpleNamespace(default_backend=lambda: "cpu")
    modules = {"jax": jax, "tensorflow": _framework(1), **fake_keras("jax")}
    assert has_tf32(_report("8.0"), modules=modules) is False
    jax.default_backend = lambda: "gpu"
    assert has_tf32(_report("8.0"), modules=modules) is True
