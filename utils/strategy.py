"""Choose the devices a model trains on, and say so in one line: asked for, found, used.

TensorFlow backend: :func:`choose_strategy` returns a ``tf.distribute`` strategy.

* ``"auto"``: a TPU (``TPUClusterResolver(tpu="local")``), else all GPUs (``MirroredStrategy``),
  else the one GPU, else the CPU (or N virtual CPUs when ``virtual_cpus`` is given).
* ``"default"``: TensorFlow's default strategy (no distribution).
* ``"one_device"``: ``OneDeviceStrategy`` on the first GPU, else the CPU.
* ``"cpu"``: ``OneDeviceStrategy`` on the CPU even when a GPU is present.
* ``"mirrored"``: ``MirroredStrategy`` over all GPUs (or ``replicas`` of them); with no GPU,
  over N virtual CPU devices (``virtual_cpus``), which show the mechanics, not a speedup.
* ``"tpu"``: ``TPUStrategy``; refused with an explanation where no TPU can be used.

Virtual CPU devices must be configured before TensorFlow initialises its devices (before the
first operation); :func:`configure_virtual_cpus` says when it is too late and the kernel must be
restarted.

JAX backend: :func:`choose_distribution` returns ``keras.distribution.DataParallel`` over the
devices JAX sees (TPU cores, GPUs, or CPU devices simulated with
:func:`configure_jax_cpu_devices`).

Where TensorFlow is absent (Colab's TPU runtime) or Keras runs on JAX, ``choose_strategy("auto")``
never imports TensorFlow: it returns :func:`choose_distribution`'s choice instead. Both choices
have ``.line``, ``.devices``, ``.num_replicas`` and ``.scope()``, the context in which a model is
built and compiled, so a lesson's training cell is the same on either backend. Asking for a
TensorFlow-only kind (``"mirrored"``, ``"one_device"``, ``"default"``) there is refused with a
message saying what to use instead.

A GPU that nvidia-smi lists but the framework cannot use (a CPU-only build, a driver mismatch,
or a GPU simulated by ``tests/simulate.py``) is named in the line, so the learner knows the CPU
does the work. In a simulated runtime (``COURSE_SIMULATED``) a simulated TPU the framework
cannot start is reported the same way and the CPU is used, rather than stopping the lesson.
"""

from __future__ import annotations

import itertools
import os
import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Sequence

from utils.errors import CourseError

__all__ = [
    "KINDS",
    "TENSORFLOW_ONLY_KINDS",
    "DeviceError",
    "StrategyChoice",
    "DistributionChoice",
    "choose_strategy",
    "mirrored_strategy",
    "configure_virtual_cpus",
    "choose_distribution",
    "configure_jax_cpu_devices",
]

KINDS = ("auto", "default", "one_device", "cpu", "mirrored", "tpu")
#: Kinds that exist only as ``tf.distribute`` strategies (no Keras-on-JAX counterpart).
TENSORFLOW_ONLY_KINDS = ("default", "one_device", "mirrored")


class DeviceError(CourseError, RuntimeError):
    """The devices asked for cannot be used here; the message says why and what to do."""


@dataclass
class _Choice:
    """What was asked for, what was found, what is used: the one line every choice prints."""

    asked: str
    found: str
    used: str
    devices: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        return f"Asked for {self.asked}; found {self.found}; using {self.used}."

    def __str__(self) -> str:
        return self.line

    def scope(self) -> AbstractContextManager:
        """The context in which the model is built and compiled."""
        raise NotImplementedError


@dataclass
class StrategyChoice(_Choice):
    """A ``tf.distribute`` strategy and the one-line story of how it was chosen."""

    strategy: Any = None
    backend = "tensorflow"

    @property
    def num_replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def scope(self) -> AbstractContextManager:
        """``strategy.scope()``: variables made inside are placed (and mirrored) by it."""
        return self.strategy.scope()


@dataclass
class DistributionChoice(_Choice):
    """A ``keras.distribution`` object (JAX backend) and how it was chosen."""

    distribution: Any = None
    backend = "jax"

    @property
    def num_replicas(self) -> int:
        return len(self.devices)

    def scope(self) -> AbstractContextManager:
        """``distribution.scope()``: Keras lays out variables and batches over the devices."""
        return self.distribution.scope()


def _tensorflow_present() -> bool:
    """TensorFlow can be imported here (a blocked or missing module counts as absent)."""
    from utils.hardware import importable

    return importable("tensorflow")


def _keras_backend() -> str:
    """The backend Keras runs on, or will run on when imported, without importing it."""
    from utils.hardware import _keras_backend as backend

    return backend(os.environ) or "tensorflow"


def _unusable_gpus(framework_gpus: int, framework: str) -> str:
    """A note for GPUs that nvidia-smi lists but ``framework`` does not see ("" if none)."""
    if framework_gpus:
        return ""
    from utils.hardware import detect_gpus, simulated

    listed, _ = detect_gpus()
    if not listed:
        return ""
    names = ", ".join(sorted({gpu.name for gpu in listed}))
    runtime = simulated()
    why = (f"simulated by the {runtime} runtime: it computes nothing" if runtime else
           f"a {framework} build without GPU support, or a CUDA and driver mismatch")
    count = f"{len(listed)} GPUs" if len(listed) > 1 else "a GPU"
    return (f" (nvidia-smi lists {count}, {names}, that {framework} cannot use: {why}; "
            "the CPU does the work)")


# --------------------------------------------------------------------------------------------
# TensorFlow
# --------------------------------------------------------------------------------------------

def _tf() -> Any:
    import tensorflow as tf

    return tf


def _tf_initialized(tf: Any) -> bool:
    """True once TensorFlow has created its devices (after which they cannot change)."""
    try:
        from tensorflow.python.eager import context

        return context.context()._context_handle is not None
    except Exception:
        return False


def configure_virtual_cpus(n: int) -> list[str]:
    """Split the CPU into ``n`` logical devices for teaching data parallelism.

    Call it before any TensorFlow operation. Calling it again with the same ``n`` is harmless.
    Returns the logical CPU device names.

    Raises:
        DeviceError: TensorFlow already initialised with another number of CPU devices.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise DeviceError(f"virtual_cpus must be a whole number >= 1, got {n!r}.")
    tf = _tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    configured = tf.config.get_logical_device_configuration(cpu)
    if not _tf_initialized(tf) or configured is None:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
        except RuntimeError:
            pass  # already initialised: checked below
    names = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(names) != n:
        raise DeviceError(
            f"TensorFlow already started with {len(names)} CPU device(s), and virtual devices "
            f"can only be set before its first operation. Restart the kernel (Kernel > Restart) "
            f"and run the notebook from the top so that {n} virtual CPUs are configured first."
        )
    return names


_KEY_SPACING = 10_000
_next_key_base = itertools.count(1)


def mirrored_strategy(devices: Sequence[str], replicas: int | None = None) -> Any:
    """``tf.distribute.MirroredStrategy(devices[:replicas])``, safe to use beside others.

    TensorFlow numbers the all-reduce groups of every ``MirroredStrategy`` from the same start
    (``_collective_key_base``). A second strategy over a *different* set of devices in the same
    process then reuses the first one's group key and fails at its first all-reduce ("Device
    CPU:1 is joining a group with size 4, but that group has size 2"): measuring 1, 2 and 4
    replicas in one kernel needs each strategy to have keys of its own, which this gives. The
    cross-device algorithm stays TensorFlow's default (a ring on CPUs, NCCL on GPUs). Where a
    TensorFlow version lacks the attribute, the strategy reduces to one device instead
    (``tf.distribute.ReductionToOneDevice``), which has no keys to collide.

    Raises:
        DeviceError: more replicas asked for than devices given.
    """
    tf = _tf()
    devices = list(devices)
    replicas = len(devices) if replicas is None else replicas
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise DeviceError(f"replicas must be a whole number >= 1, got {replicas!r}.")
    if replicas > len(devices):
        raise DeviceError(f"{replicas} replicas asked for, but only {len(devices)} device(s) "
                          f"are configured ({', '.join(devices) or 'none'}); ask for at most "
                          f"{len(devices)}, or configure more virtual CPU devices before "
                          "TensorFlow starts (restart the kernel).")
    chosen = devices[:replicas]
    base = tf.distribute.MirroredStrategy
    if hasattr(base, "_collective_key_base"):
        keyed = type("MirroredStrategy", (base,),
                     {"_collective_key_base": _KEY_SPACING * next(_next_key_base),
                      "__doc__": base.__doc__})
        return keyed(chosen)
    return base(chosen, cross_device_ops=tf.distribute.ReductionToOneDevice())


def _found(tpu_cores: int, gpus: list[str], cpus: list[str]) -> str:
    parts = [f"{tpu_cores} TPU core(s)" if tpu_cores else "no TPU",
             f"{len(gpus)} GPU(s)" if gpus else "no GPU"]
    parts.append(f"{len(cpus)} CPU device(s)" + (" (virtual)" if len(cpus) > 1 else "")
                 if cpus else "a CPU")
    return ", ".join(parts)


def _connect_tpu(tf: Any) -> Any:
    """Return a TPUStrategy, or raise DeviceError saying why there is none."""
    from utils.hardware import detect_tpu

    tpu = detect_tpu()
    if not tpu.chips:
        raise DeviceError(
            "no TPU found on this machine (no TPU on the PCI bus). On Colab choose Runtime > "
            "Change runtime type > TPU; elsewhere use 'auto' to train on the GPU or CPU.")
    if not hasattr(tf.distribute, "cluster_resolver"):
        raise DeviceError("this TensorFlow has no TPU support.")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except Exception as error:
        raise DeviceError(
            f"a {tpu.version} was found, but TensorFlow could not start it "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). "
            "Colab's TPU runtime ships JAX, not TensorFlow with TPU support: use Keras on the "
            "JAX backend with utils.strategy.choose_distribution().") from None


def choose_strategy(kind: str = "auto", *, virtual_cpus: int | None = None,
                    replicas: int | None = None, announce: bool = True) -> StrategyChoice:
    """Choose a ``tf.distribute`` strategy and print one line: asked for, found, used.

    Args:
        kind: one of :data:`KINDS`.
        virtual_cpus: with no GPU, split the CPU into this many devices and mirror over them.
        replicas: for ``"mirrored"``, how many devices to use (default: all found).
        announce: print the line (it is also in the returned object's ``line``).

    Where TensorFlow is absent or Keras runs on JAX, returns a :class:`DistributionChoice`
    (``keras.distribution`` over the devices JAX sees) for ``"auto"``, ``"tpu"`` and
    ``"cpu"``, without importing TensorFlow; ``virtual_cpus`` then sets JAX's CPU devices.

    Raises:
        DeviceError: an unknown kind, no TPU for ``"tpu"``, more replicas than devices,
            virtual CPUs asked for after TensorFlow started, or a TensorFlow-only kind where
            TensorFlow is absent or Keras runs on JAX.
    """
    if kind not in KINDS:
        raise DeviceError(f"unknown strategy {kind!r}; choose one of {', '.join(KINDS)}.")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 1):
        raise DeviceError(f"replicas must be a whole number >= 1, got {replicas!r}.")
    if not _tensorflow_present() or _keras_backend() == "jax":
        return _choose_on_jax(kind, virtual_cpus=virtual_cpus, replicas=replicas,
                              announce=announce)
    tf = _tf()
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    if gpus and not _tf_initialized(tf):
        for gpu in tf.config.list_physical_devices("GPU"):
            try:  # let other libraries (and other notebooks) share the GPU
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass
    if not gpus and virtual_cpus:
        configure_virtual_cpus(virtual_cpus)
    elif not gpus and kind == "mirrored" and replicas and replicas > 1:
        # split the CPU only if it is not already split into enough devices
        configured = tf.config.get_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0])
        if not configured or len(configured) < replicas:
            configure_virtual_cpus(replicas)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    logical_gpus = [d.name for d in tf.config.list_logical_devices("GPU")] if gpus else []
    asked = repr(kind) + (f" with {replicas} replicas" if replicas else "")

    tpu_strategy, tpu_note = None, ""
    if kind == "tpu" and _simulated_tpu():
        try:
            tpu_strategy = _connect_tpu(tf)
        except DeviceError as error:
            tpu_note = f" (TPU not usable: {error})"
            kind, asked = "auto", asked + " (a simulated TPU, so 'auto')"
    elif kind == "tpu":
        tpu_strategy = _connect_tpu(tf)
    elif kind == "auto":
        from utils.hardware import detect_tpu

        if detect_tpu().chips:
            try:
                tpu_strategy = _connect_tpu(tf)
            except DeviceError as error:
                tpu_note = f" (TPU not usable: {error})"
    if tpu_strategy is not None:
        cores = int(tpu_strategy.num_replicas_in_sync)
        found = _found(cores, gpus, cpus)
        return _done(_strategy_choice(tpu_strategy, asked, found, f"TPUStrategy over {cores} TPU "
                                    "cores", [f"TPU:{i}" for i in range(cores)]), announce)

    found = _found(0, gpus, cpus) + tpu_note + _unusable_gpus(len(gpus), "TensorFlow")
    if kind == "default":
        return _done(_strategy_choice(tf.distribute.get_strategy(), asked, found,
                                    "the default strategy (no distribution)", []), announce)
    if kind == "cpu":
        return _done(_strategy_choice(tf.distribute.OneDeviceStrategy("/cpu:0"), asked, found,
                                    "OneDeviceStrategy on the CPU", ["/cpu:0"]), announce)

    pool, pool_kind = (logical_gpus, "GPU") if logical_gpus else (cpus, "CPU")
    if replicas is not None and replicas > len(pool):
        hint = ("pass virtual_cpus to split the CPU into more devices (before TensorFlow "
                "starts)" if pool_kind == "CPU" else "ask for at most that many replicas")
        raise DeviceError(f"{replicas} replicas asked for, but only {len(pool)} {pool_kind} "
                          f"device(s) are available; {hint}.")
    if kind == "one_device" or (kind == "auto" and len(pool) == 1) or (
            kind == "auto" and pool_kind == "CPU" and not virtual_cpus):
        device = pool[0]
        return _done(_strategy_choice(tf.distribute.OneDeviceStrategy(device), asked, found,
                                    f"OneDeviceStrategy on {device}", [device]), announce)
    chosen = pool[: replicas or len(pool)]
    what = f"{len(chosen)} GPU(s)" if pool_kind == "GPU" else (
        f"{len(chosen)} virtual CPU device(s), which share the same cores" if len(chosen) > 1
        else "the CPU alone (1 replica; pass virtual_cpus=N to see data parallelism)")
    strategy = mirrored_strategy(chosen)
    return _done(_strategy_choice(strategy, asked, found, f"MirroredStrategy over {what}",
                                chosen), announce)


def _simulated_tpu() -> bool:
    """A TPU is on the (simulated) PCI bus of a simulated runtime."""
    from utils.hardware import detect_tpu, simulated

    return bool(simulated()) and bool(detect_tpu().chips)


def _choose_on_jax(kind: str, *, virtual_cpus: int | None, replicas: int | None,
                   announce: bool) -> DistributionChoice:
    """:func:`choose_strategy` where TensorFlow is absent or Keras runs on JAX."""
    why = ("TensorFlow is not installed here (as on Colab's TPU runtime)"
           if not _tensorflow_present() else "Keras runs on JAX in this kernel")
    if kind in TENSORFLOW_ONLY_KINDS:
        raise DeviceError(
            f"strategy {kind!r} is a TensorFlow strategy (tf.distribute), and {why}. Use "
            "'auto' (Keras's own keras.distribution over the devices JAX sees, the same "
            "data parallelism), or run this notebook where TensorFlow is installed.")
    if "keras" not in sys.modules and not _tensorflow_present():
        os.environ["KERAS_BACKEND"] = "jax"  # the only backend here; set before Keras starts
    if virtual_cpus:
        configure_jax_cpu_devices(virtual_cpus)
    choice = choose_distribution(kind, replicas=replicas, announce=False)
    choice.found = f"{choice.found}; {why}"
    return _done(choice, announce)


def _strategy_choice(strategy: Any, asked: str, found: str, used: str,
                     devices: list[str]) -> StrategyChoice:
    return StrategyChoice(asked, found, used, list(devices), strategy=strategy)


def _distribution_choice(distribution: Any, asked: str, found: str, used: str,
                         devices: list[str]) -> DistributionChoice:
    return DistributionChoice(asked, found, used, list(devices), distribution=distribution)


def _done(choice: Any, announce: bool) -> Any:
    if announce:
        print(choice.line)
    return choice


# --------------------------------------------------------------------------------------------
# Keras on JAX
# --------------------------------------------------------------------------------------------

def configure_jax_cpu_devices(n: int) -> None:
    """Make JAX show ``n`` CPU devices (``XLA_FLAGS``); call it before JAX is imported.

    Raises:
        DeviceError: JAX is already imported with another number of CPU devices.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise DeviceError(f"the number of JAX CPU devices must be >= 1, got {n!r}.")
    flag = f"--xla_force_host_platform_device_count={n}"
    if "jax" in sys.modules:
        import jax

        count = len(jax.devices("cpu"))
        if count != n:
            raise DeviceError(
                f"JAX is already running with {count} CPU device(s); the count is fixed when "
                f"JAX starts. Restart the kernel and configure {n} devices before importing "
                "keras or jax.")
        return
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    os.environ["XLA_FLAGS"] = " ".join([*flags, flag])


def choose_distribution(kind: str = "auto", *, replicas: int | None = None,
                        announce: bool = True) -> DistributionChoice:
    """``keras.distribution.DataParallel`` over the devices JAX sees (Keras on JAX only).

    Args:
        kind: ``"auto"`` (all devices of the best kind: TPU, GPU, else CPU), ``"tpu"``,
            ``"gpu"`` or ``"cpu"``.
        replicas: use only the first ``replicas`` devices (default: all of them).

    In a simulated runtime (``COURSE_SIMULATED``) a simulated TPU that JAX cannot see is
    named in the line and the CPU is used, even when ``"tpu"`` is asked for.

    Raises:
        DeviceError: Keras is not on the JAX backend, the asked-for devices are absent, or more
            replicas than devices.
    """
    import keras

    backend = keras.config.backend()
    if backend != "jax":
        raise DeviceError(
            f"keras.distribution needs the JAX backend, but this kernel runs Keras on "
            f"{backend!r}. Set KERAS_BACKEND=jax before Keras is imported (restart the kernel), "
            "or run the JAX part in a separate process.")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)
                                 or replicas < 1):
        raise DeviceError(f"replicas must be a whole number >= 1, got {replicas!r}.")
    import jax

    by_kind = {}
    for platform in ("tpu", "gpu", "cpu"):
        try:
            by_kind[platform] = jax.devices(platform)
        except RuntimeError:
            by_kind[platform] = []
    found = ", ".join(f"{len(v)} {k.upper()} device(s)" for k, v in by_kind.items() if v)
    asked = repr(kind) + (f" with {replicas} replicas" if replicas else "")
    if not by_kind["tpu"] and (kind in ("auto", "tpu")):
        from utils.hardware import detect_tpu, simulated

        tpu = detect_tpu()
        if tpu.chips:
            runtime = simulated()
            where = ("on the PCI bus" if tpu.source == "PCI bus" else
                     f"named by the {tpu.source}")
            found += (f" (a {tpu.version} is {where} but JAX sees no TPU"
                      + (f": it is simulated ({runtime}) and computes nothing" if runtime else "")
                      + ")")
            if runtime and kind == "tpu":
                kind, asked = "auto", asked + " (a simulated TPU, so 'auto')"
    if not by_kind["gpu"] and kind in ("auto", "gpu"):
        found += _unusable_gpus(0, "JAX")
    if kind == "auto":
        platform = next(k for k in ("tpu", "gpu", "cpu") if by_kind[k])
    elif kind in by_kind:
        platform = kind
        if not by_kind[platform]:
            raise DeviceError(f"no {kind.upper()} visible to JAX (found {found}). On Colab pick "
                              "a GPU or TPU runtime; or use 'auto'.")
    else:
        raise DeviceError(f"unknown device kind {kind!r}; choose auto, tpu, gpu or cpu.")
    available = [f"{platform}:{d.id}" for d in by_kind[platform]]
    if replicas is not None and replicas > len(available):
        raise DeviceError(f"{replicas} replicas asked for, but JAX sees only {len(available)} "
                          f"{platform.upper()} device(s); ask for at most {len(available)}, or "
                          "configure more CPU devices before JAX starts (restart the kernel).")
    devices = available[: replicas or len(available)]
    distribution = keras.distribution.DataParallel(devices=devices)
    simulated_cpus = " (simulated on the host CPU)" if platform == "cpu" and len(devices) > 1 \
        else ""
    return _done(_distribution_choice(distribution, asked, found,
                                    f"DataParallel over {len(devices)} {platform.upper()} "
                                    f"device(s){simulated_cpus}", devices), announce)
