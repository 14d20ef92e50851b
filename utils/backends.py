"""Which backend Keras runs on here, and running Keras code on JAX in a separate process.

Keras 3 runs the same model code on TensorFlow or on JAX; the backend is fixed when Keras is
first imported (``KERAS_BACKEND``). Where a TPU is concerned the choice matters:

* TensorFlow reaches a TPU through ``TPUStrategy`` only when it was built with TPU support
  (the ``tensorflow-tpu`` package on Cloud TPU VMs);
* Colab's TPU runtime has JAX and no TensorFlow, so there Keras must run on JAX and spreads a
  batch over the TPU cores with ``keras.distribution.DataParallel``.

:func:`choose_backend` decides without importing either framework (it reads the PCI bus and
what is installed) and says why in one line; :func:`use_keras_backend` also sets
``KERAS_BACKEND`` so that the next ``import keras`` takes it (a lesson's first code cell).

Number formats: on GPUs of compute capability 8.0 and newer (A100, L4, H100...) TensorFlow runs
float32 matmuls as TF32 by default. :func:`matmul_precision` measures true float32 (TF32 off) or
TF32 on purpose, in TensorFlow and JAX alike; :func:`has_tf32` says whether the device the
framework computes on has TF32 at all.

:func:`run_in_jax_process` runs a function of
Keras code in a fresh Python process on the JAX backend, over simulated CPU devices, so a kernel
already running Keras on TensorFlow can show the JAX path too.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import textwrap
import time
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterator, Mapping

from utils.errors import ArgumentError, CourseError
from utils.hardware import HardwareReport, SystemPaths, detect_gpus, detect_tpu, importable
from utils.strategy import DeviceError

__all__ = [
    "BACKENDS",
    "BackendChoice",
    "choose_backend",
    "use_keras_backend",
    "MATMUL_FORMATS",
    "matmul_precision",
    "has_tf32",
    "installed",
    "tensorflow_supports_tpu",
    "JaxProcessResult",
    "JaxProcessError",
    "run_in_jax_process",
    "on_first_device",
]

BACKENDS = ("auto", "tensorflow", "jax")


@dataclass(frozen=True)
class BackendChoice:
    """The Keras backend chosen for this kernel, and why."""

    backend: str  # "tensorflow" or "jax"
    asked: str
    found: str
    reason: str
    accelerator: str  # "tpu", "gpu" or "cpu": what the hardware offers (PCI bus, nvidia-smi)
    versions: Mapping[str, str | None] = field(default_factory=dict)  # what is installed

    @property
    def line(self) -> str:
        return (f"Asked for {self.asked!r}; found {self.found}; Keras runs on {self.backend}: "
                f"{self.reason}.")

    def __str__(self) -> str:
        return self.line


def _module_present(name: str) -> bool:
    return importable(name)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def installed(module_present: Callable[[str], bool] = _module_present,
              version: Callable[[str], str | None] = _version) -> dict[str, str | None]:
    """Versions of ``tensorflow``, ``tensorflow-tpu`` and ``jax`` that can be imported here.

    A framework counts only if its module can be found (so a kernel where ``import tensorflow``
    is blocked counts as having none); the version is ``"?"`` when the metadata is missing.
    """
    found: dict[str, str | None] = {}
    tf = module_present("tensorflow")
    found["tensorflow"] = (version("tensorflow") or version("tensorflow-cpu")
                           or version("tensorflow-tpu") or "?") if tf else None
    found["tensorflow-tpu"] = version("tensorflow-tpu") if tf else None
    found["jax"] = (version("jax") or "?") if module_present("jax") else None
    return found


def tensorflow_supports_tpu(versions: Mapping[str, str | None]) -> bool:
    """True when the TensorFlow installed here was built for TPUs (``tensorflow-tpu``)."""
    return bool(versions.get("tensorflow") and versions.get("tensorflow-tpu"))


def _loaded_keras_backend(modules: Mapping[str, Any]) -> str | None:
    keras = modules.get("keras")
    if keras is None:
        return None
    try:
        return str(keras.config.backend())
    except Exception:
        return None


def choose_backend(
    asked: str = "auto",
    *,
    accelerator: str | None = None,
    paths: SystemPaths | None = None,
    environ: Mapping[str, str] | None = None,
    versions: Mapping[str, str | None] | None = None,
    modules: Mapping[str, Any] | None = None,
    announce: bool = True,
) -> BackendChoice:
    """Choose the Keras backend for this kernel and print one line: asked, found, used.

    ``"auto"``: a ``KERAS_BACKEND`` already set in the environment (``tensorflow`` or ``jax``,
    if installed); else with a TPU, TensorFlow if it has TPU support, else JAX; without a TPU,
    TensorFlow if installed (it drives the GPU or CPU), else JAX. ``"tensorflow"`` and
    ``"jax"`` are taken as asked when that framework is installed. Imports neither framework;
    set ``os.environ["KERAS_BACKEND"]`` to the result before importing Keras
    (:func:`use_keras_backend` does both).

    Args:
        accelerator: ``"tpu"``, ``"gpu"`` or ``"cpu"`` as :func:`utils.hardware.hardware_report`
            found it (default: a TPU from the PCI bus, else a GPU if nvidia-smi lists one, else
            ``"cpu"``).
        paths, environ: where to look for a TPU, and the environment (tests fake them).
        versions: what is installed (default :func:`installed`).
        modules: the loaded modules (default ``sys.modules``): a Keras already imported fixes
            the backend for the rest of the kernel's life.

    Raises:
        DeviceError: an unknown choice, a framework that is not installed, no framework at all,
            or Keras already imported on another backend (restart the kernel).
    """
    if asked not in BACKENDS:
        raise DeviceError(f"unknown backend {asked!r}; choose one of {', '.join(BACKENDS)}.")
    versions = installed() if versions is None else versions
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    tpu = detect_tpu(paths, environ)
    if accelerator is None:
        accelerator = "tpu" if tpu.chips else "gpu" if detect_gpus()[0] else "cpu"
    tf_version, jax_version = versions.get("tensorflow"), versions.get("jax")
    tf_tpu = tensorflow_supports_tpu(versions)
    parts = [f"a {tpu.version} ({tpu.chips} chip(s), {tpu.source})" if tpu.chips
             else f"no TPU ({accelerator.upper()} is the fastest device)"]
    parts.append(f"TensorFlow {tf_version}" + (" with TPU support" if tf_tpu else "")
                 if tf_version else "no TensorFlow")
    parts.append(f"JAX {jax_version}" if jax_version else "no JAX")
    found = ", ".join(parts)

    def chosen(backend: str, reason: str) -> BackendChoice:
        choice = BackendChoice(backend, asked, found, reason, accelerator, dict(versions))
        if announce:
            print(choice.line)
        return choice

    loaded = _loaded_keras_backend(modules)
    if loaded is not None:
        if asked not in ("auto", loaded):
            raise DeviceError(
                f"Keras is already imported on {loaded!r} in this kernel and its backend cannot "
                f"change. Restart the kernel (Kernel > Restart) and run from the top to use "
                f"{asked!r}.")
        return chosen(loaded, "Keras was already imported on this backend in this kernel")

    if asked == "tensorflow":
        if not tf_version:
            raise DeviceError("TensorFlow is not installed here (Colab's TPU runtime has none); "
                              "use 'auto' or 'jax'.")
        reason = "as asked"
        if tpu.chips and not tf_tpu:
            reason += (" (this TensorFlow has no TPU support, so TPUStrategy will be refused; "
                       "'auto' would use JAX)")
        return chosen("tensorflow", reason)
    if asked == "jax":
        if not jax_version:
            raise DeviceError("JAX is not installed here; use 'auto' or 'tensorflow', or "
                              "pip install jax.")
        return chosen("jax", "as asked")

    # auto
    preset = environ.get("KERAS_BACKEND", "")
    if preset in ("tensorflow", "jax") and versions.get(preset):
        return chosen(preset, f"KERAS_BACKEND={preset} was set before this kernel started")
    if tpu.chips:
        if tf_tpu:
            choice = ("tensorflow", "TensorFlow with TPU support drives the TPU through "
                                    "TPUStrategy")
        elif jax_version:
            why = "has no TPU support" if tf_version else "is not installed"
            choice = ("jax", f"TensorFlow {why}, so Keras on JAX drives the TPU "
                             "(keras.distribution)")
        else:
            raise DeviceError(f"a {tpu.version} was found but neither JAX nor TensorFlow with "
                              "TPU support is installed: pip install 'jax[tpu]'.")
    elif tf_version:
        choice = ("tensorflow", "TensorFlow is installed and tf.distribute drives the "
                                + ("GPU if this TensorFlow can use it" if accelerator == "gpu"
                                   else accelerator.upper()))
    elif jax_version:
        choice = ("jax", f"TensorFlow is not installed; Keras on JAX drives the "
                         f"{accelerator.upper()}")
    else:
        raise DeviceError("neither TensorFlow nor JAX is installed; install the course's "
                          "environment (python3 course lab) or pip install jax.")
    return chosen(*choice)


def use_keras_backend(asked: str = "auto", **kwargs: Any) -> BackendChoice:
    """Choose the Keras backend, set ``KERAS_BACKEND`` for the next ``import keras``, print one
    line (asked, found, used) and return the choice (``.backend`` is "tensorflow" or "jax").

    Call it in a lesson's first code cell, before anything imports Keras. Once Keras is
    imported, its backend is fixed for the kernel's life and is what this returns (asking for
    another one is refused: restart the kernel). ``kwargs`` go to :func:`choose_backend`.

    Raises:
        DeviceError: as :func:`choose_backend`.
    """
    choice = choose_backend(asked, **kwargs)
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = choice.backend
    return choice


#: Formats :func:`matmul_precision` sets: true float32, or TF32 (10-bit mantissa inputs).
MATMUL_FORMATS = ("float32", "tf32")


@contextmanager
def matmul_precision(fmt: str) -> Iterator[None]:
    """A context in which float32 matmuls run as ``fmt``: ``"float32"`` (TF32 off) or ``"tf32"``.

    TensorFlow runs float32 matmuls and convolutions as TF32 by default on GPUs that have it
    (compute capability >= 8.0); a rate measured so is a TF32 rate. Inside this context:

    * TensorFlow, if already imported: ``enable_tensor_float_32_execution(fmt == "tf32")``,
      the previous setting restored afterwards;
    * JAX, if already imported: ``jax.default_matmul_precision("highest")`` for float32,
      ``("tensorfloat32")`` for TF32.

    A framework not yet imported is left alone (import it first). On a CPU, or a GPU without
    TF32, both formats compute float32: ask :func:`has_tf32` before labelling a rate TF32.

    Raises:
        ArgumentError: ``fmt`` is not one of :data:`MATMUL_FORMATS`.
    """
    if fmt not in MATMUL_FORMATS:
        raise ArgumentError("fmt", fmt, f"must be one of {', '.join(map(repr, MATMUL_FORMATS))}")
    with ExitStack() as stack:
        tf = sys.modules.get("tensorflow")
        if tf is not None:
            experimental = tf.config.experimental
            before = bool(experimental.tensor_float_32_execution_enabled())
            experimental.enable_tensor_float_32_execution(fmt == "tf32")
            stack.callback(experimental.enable_tensor_float_32_execution, before)
        jax = sys.modules.get("jax")
        if jax is not None:
            stack.enter_context(jax.default_matmul_precision(
                "tensorfloat32" if fmt == "tf32" else "highest"))
        yield


def _framework_uses_gpu(modules: Mapping[str, Any]) -> bool | None:
    """Whether the already imported framework computes on a GPU (None: neither imported)."""
    tf, jax = modules.get("tensorflow"), modules.get("jax")
    keras = modules.get("keras")
    backend = _loaded_keras_backend(modules) if keras is not None else None
    if jax is not None and (backend == "jax" or tf is None):
        try:
            return jax.default_backend() == "gpu"
        except Exception:
            return False
    if tf is not None:
        try:
            return bool(tf.config.list_physical_devices("GPU"))
        except Exception:
            return False
    return None


def has_tf32(report: HardwareReport | None = None, *,
             modules: Mapping[str, Any] | None = None) -> bool:
    """True when the device this kernel computes on has TF32: its first GPU has compute
    capability >= 8.0 (from the hardware report) *and* the imported framework (TensorFlow, or
    JAX when Keras runs on it) really computes on a GPU. A GPU that nvidia-smi lists but the
    framework cannot use (a CPU-only build, or a simulated GPU) has no TF32 here: the CPU does
    the work, in float32.
    """
    from utils.hardware import hardware_report

    report = hardware_report() if report is None else report
    if not report.gpus or not report.gpus[0].tf32 or report.simulated:
        return False  # a simulated GPU computes nothing: the CPU does, in float32
    uses_gpu = _framework_uses_gpu(sys.modules if modules is None else modules)
    return bool(uses_gpu) if uses_gpu is not None else True


def on_first_device(choice: Any) -> AbstractContextManager:
    """A context in which eager Keras operations run on the first device of ``choice``.

    ``choice`` is what :func:`utils.strategy.choose_strategy` (TensorFlow) or
    :func:`utils.strategy.choose_distribution` (JAX) returned. Outside a strategy, TensorFlow
    runs eager operations on the GPU if there is one but on the host CPU of a TPU machine, so
    timing ``keras.ops`` on a TPU needs this; JAX's default device is already the first TPU or
    GPU. With no listed device, nothing changes.
    """
    devices = list(getattr(choice, "devices", []) or [])
    if not devices:
        return nullcontext()
    name = devices[0]
    if hasattr(choice, "distribution"):  # Keras on JAX: names like "tpu:0"
        import jax

        platform, _, index = name.partition(":")
        matches = [d for d in jax.devices(platform) if str(d.id) == index]
        return jax.default_device(matches[0] if matches else jax.devices(platform)[0])
    import tensorflow as tf

    return tf.device(name)


# --------------------------------------------------------------------------------------------
# Keras on JAX in a separate process
# --------------------------------------------------------------------------------------------

_MARKER = "@@jax-process-result@@"


class JaxProcessError(CourseError, RuntimeError):
    """The JAX process failed; the message holds the last lines it wrote."""


@dataclass(frozen=True)
class JaxProcessResult:
    """What the function returned in the JAX process, what it printed, and what it cost."""

    value: Any
    output: str
    seconds: float
    peak_memory_mb: float | None
    script: str


def _driver(source: str, name: str, devices: int, kwargs: dict[str, Any]) -> str:
    return "\n".join([
        "import json, os, sys",
        "from utils.processes import die_with_parent",
        "die_with_parent()   # ends with the kernel that started it, even a killed one",
        "os.environ['KERAS_BACKEND'] = 'jax'   # chosen before Keras is imported",
        "os.environ['JAX_PLATFORMS'] = 'cpu'   # leave any GPU or TPU to the notebook's kernel",
        "from utils.strategy import choose_distribution, configure_jax_cpu_devices",
        f"configure_jax_cpu_devices({devices})   # simulated devices, before JAX starts",
        "import keras",
        "choice = choose_distribution('cpu')   # keras.distribution.DataParallel",
        "",
        source,
        "",
        f"value = {name}(choice.distribution.scope(), **json.loads({json.dumps(kwargs)!r}))",
        f"print({_MARKER!r} + json.dumps(value))",
        "",
    ])


def run_in_jax_process(fn: Callable[..., Any], /, *, devices: int = 2, timeout: float = 600,
                       echo: bool = True, **kwargs: Any) -> JaxProcessResult:
    """Run ``fn(scope, **kwargs)`` in a fresh Python process with Keras on JAX.

    The process sets ``KERAS_BACKEND=jax`` and ``devices`` simulated CPU devices before Keras
    is imported, calls :func:`utils.strategy.choose_distribution` (which prints its one line),
    and passes ``choice.distribution.scope()`` as ``fn``'s first argument: the same call a
    kernel on the JAX backend makes itself. ``fn`` travels as its source code, so it must be
    a ``def`` that imports what it needs inside; ``kwargs`` and its return value must be
    JSON-serialisable.

    Args:
        devices: simulated CPU devices (``--xla_force_host_platform_device_count``).
        timeout: seconds before the process is stopped.
        echo: print what the process printed.

    Raises:
        ValueError: ``fn``'s source cannot be found, or ``kwargs`` are not JSON-serialisable.
        JaxProcessError: the process failed or timed out (its last lines are in the message).
    """
    from utils.memory import PeakMemory, rss_bytes
    from utils.processes import (Child, Launcher, ProcessTimeout, course_pythonpath,
                                 exit_text)

    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        raise ValueError(f"devices must be a whole number >= 1, got {devices!r}.")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        raise ValueError(f"the source of {fn!r} cannot be found; define it with def in a "
                         "notebook cell or a module.") from None
    if fn.__name__ == "<lambda>":
        raise ValueError("pass a function defined with def, not a lambda.")
    try:
        json.dumps(kwargs)
    except TypeError as error:
        raise ValueError(f"the arguments must be JSON-serialisable ({error}).") from None
    script = _driver(source, fn.__name__, devices, kwargs)

    env = dict(os.environ)
    env["PYTHONPATH"] = course_pythonpath(env.get("PYTHONPATH"))  # the same checkout's utils
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def show(child: Child, line: str) -> None:
        if echo and not line.startswith(_MARKER):
            print(line, flush=True)

    start = time.perf_counter()
    with Launcher(on_line=show, label="JAX") as group:  # stopped on error, timeout, interrupt
        process = group.start([sys.executable, "-c", script], env=env, separate_stderr=True)
        with PeakMemory(measure=lambda: rss_bytes(process.pid)) as peak:
            try:
                group.wait(timeout)
            except ProcessTimeout:
                raise JaxProcessError(f"the JAX process ran past {timeout:g} s and was stopped."
                                      ) from None
    seconds = time.perf_counter() - start
    results = [line for line in process.lines if line.startswith(_MARKER)]
    output = "\n".join(line for line in process.lines if not line.startswith(_MARKER))
    if process.returncode != 0 or not results:
        tail = "\n".join((process.stderr() or output).strip().splitlines()[-8:])
        raise JaxProcessError(f"the JAX process failed ({exit_text(process.returncode)}):\n"
                              f"{tail}")
    return JaxProcessResult(json.loads(results[-1][len(_MARKER):]), output, seconds,
                            peak.megabytes, script)
