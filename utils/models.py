"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) in Keras 3, with its arithmetic on paper.

The 2012 layout: five convolutions of 96, 256, 384, 384 and 256 filters (11x11 stride 4, 5x5,
3x3, 3x3, 3x3), overlapping 3x3 max pooling with stride 2 after the first, second and fifth,
ReLU everywhere, optional local response normalisation after the first two, then three dense
layers (4096, 4096, classes) with dropout after the first two (as in the paper's Caffe model). Three numbers size it:
``input_size`` (227 in the paper), ``num_classes`` (1000 for ImageNet) and ``width`` (a multiplier
on every layer's filters and units), so a network small enough for Binder and the full one are
one argument apart (see :data:`PRESETS`).

Two views of the same network:

* :func:`alexnet_layers` computes, with no framework, each layer's output shape, parameters and
  forward multiply-adds (MACs). One multiply-add is a multiplication and an addition: **2
  FLOPs**. :attr:`LayerSpec.flops` is ``2 x macs``. Only the convolutions and dense layers are
  counted (bias additions, ReLU, pooling, LRN and softmax are left out: well under 1 %).
  A training step costs about 3 times the forward FLOPs (forward, and a backward pass that
  computes gradients for both inputs and weights).
* :func:`build_alexnet` returns the Keras model. It uses Keras layers and ``keras.ops`` only, so
  it runs on the TensorFlow and the JAX backends. Its input is ``uint8`` or float pixels in
  [0, 255] (divided by 255 as the model's first operation); its output is float32 logits (also under a
  mixed-precision policy): compile it with ``from_logits=True``.

For the ungrouped network at 227x227 with 1000 classes: 62,378,344 parameters and 1.135 G
multiply-adds (2.27 GFLOP) per image forward. ``grouped=True`` gives the 2012 two-GPU layout
(conv2, conv4 and conv5 split in two groups): 60,965,224 parameters (data/alexnet.csv).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

from utils.errors import ArgumentError, number, whole_number

__all__ = [
    "ModelError",
    "PrecisionError",
    "LayerSpec",
    "MemoryEstimate",
    "PRESETS",
    "PRECISIONS",
    "FORMATS",
    "OPTIMIZER_SLOTS",
    "alexnet_layers",
    "alexnet_table",
    "min_input_size",
    "check_alexnet_arguments",
    "count_params",
    "forward_macs",
    "training_flops_per_image",
    "memory_estimate",
    "build_alexnet",
    "precision_support",
    "skipped_precisions",
    "check_precisions",
]


class ModelError(ArgumentError):
    """AlexNet cannot be built (or estimated) with this argument; the message says what fits.

    A notebook reports it under its own parameter with
    ``utils.parameters.as_parameters(input_size="INPUT_SIZE")``.
    """


class PrecisionError(ArgumentError):
    """A number format that is unknown, or that the device cannot compute in, was asked for."""

#: Named sizes: ``build_alexnet(**PRESETS["full"], num_classes=...)``. "full" is the 2012
#: network; "binder" fits a 1-2 GB Binder session and trains in minutes on two CPU cores;
#: "smoke" is the smallest that still has every layer (CI).
PRESETS: dict[str, dict[str, float | int]] = {
    "full": {"input_size": 227, "width": 1.0},
    "binder": {"input_size": 99, "width": 0.25},
    "smoke": {"input_size": 67, "width": 0.125},
}

#: Number formats the course trains in (lesson 03: Keras dtype policies) or times (lesson 02:
#: the bare formats ``"bfloat16"`` and ``"float16"``). ``"tf32"`` is float32 data multiplied on
#: NVIDIA tensor cores in TF32 (10-bit mantissa), a format of its own; ``"float32"`` is always
#: true float32 (TF32 off). A notebook that lists all of them means "each one this device has".
PRECISIONS = ("float32", "tf32", "mixed_bfloat16", "mixed_float16")
#: The same formats by their bare names, as lesson 02 times them.
FORMATS = ("float32", "tf32", "bfloat16", "float16")
_BARE = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}

#: Values an optimizer keeps per parameter: plain SGD none, SGD with momentum one (the
#: velocity; AlexNet 2012 used momentum 0.9), Adam two (first and second moments).
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2}

# (name, kind, filters or units, kernel, stride, padding, grouped in the 2012 layout)
_CONVS = (
    ("conv1", 96, 11, 4, "valid", False),
    ("conv2", 256, 5, 1, "same", True),
    ("conv3", 384, 3, 1, "same", False),
    ("conv4", 384, 3, 1, "same", True),
    ("conv5", 256, 3, 1, "same", True),
)
_POOL_AFTER = {"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"}
_LRN_AFTER = ("conv1", "conv2")
_DENSE = (("fc6", 4096), ("fc7", 4096))
_POOL_SIZE, _POOL_STRIDE = 3, 2


@dataclass(frozen=True)
class LayerSpec:
    """One layer of AlexNet on paper.

    ``macs`` are forward multiply-adds per image; ``matmul`` is the (M, K, N) shape of the
    matrix product the layer is (im2col for a convolution: M output pixels, K = kernel x kernel
    x input channels per group, N output channels per group; ``groups`` such products).
    """

    name: str
    kind: str  # "input", "conv", "lrn", "pool", "flatten", "dense"
    output_shape: tuple[int, ...]
    params: int = 0
    macs: int = 0
    kernel: int | None = None
    stride: int | None = None
    groups: int = 1
    matmul: tuple[int, int, int] | None = None

    @property
    def flops(self) -> int:
        """Forward FLOPs per image: 2 per multiply-add."""
        return 2 * self.macs

    @property
    def activations(self) -> int:
        """Values in this layer's output, per image."""
        out = 1
        for dim in self.output_shape:
            out *= dim
        return out


def _conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def _spatial_sizes(input_size: int) -> dict[str, int]:
    """Output height/width after each spatial layer, for an input of ``input_size``."""
    sizes, size = {}, input_size
    for name, _, kernel, stride, padding, _ in _CONVS:
        size = _conv_out(size, kernel, stride, padding)
        sizes[name] = size
        if name in _POOL_AFTER:
            size = _conv_out(size, _POOL_SIZE, _POOL_STRIDE, "valid")
            sizes[_POOL_AFTER[name]] = size
    return sizes


def min_input_size() -> int:
    """The smallest square input AlexNet's strides accept (every pooling sees >= 3x3)."""
    size = 11
    while True:
        sizes = _spatial_sizes(size)
        if all(value >= 1 for value in sizes.values()) and all(
                sizes[conv] >= _POOL_SIZE for conv in _POOL_AFTER):
            return size
        size += 1


def _scaled(base: int, width: float, multiple: int) -> int:
    return max(multiple, multiple * round(base * width / multiple))


def check_alexnet_arguments(input_size: int, num_classes: int, width: float) -> None:
    """Raise :class:`ModelError` for a size AlexNet cannot be built with.

    The message names the argument, the value and what is allowed (for example the smallest
    input size, which AlexNet's strides decide).
    """
    smallest = min_input_size()
    whole_number(input_size, "input_size", minimum=smallest, error=ModelError,
                 hint=f"AlexNet's strides (4 in conv1, 2 in each of three max poolings) need "
                      f"images of at least {smallest}x{smallest} pixels (the original is "
                      "227x227); resize the images up or choose a larger size")
    whole_number(num_classes, "num_classes", minimum=2, error=ModelError)
    number(width, "width", above=0, maximum=4, error=ModelError,
           hint="1.0 is the 2012 network")


def alexnet_layers(input_size: int = 227, num_classes: int = 1000, width: float = 1.0, *,
                   grouped: bool = False, lrn: bool = False) -> list[LayerSpec]:
    """AlexNet layer by layer: output shape, parameters and forward multiply-adds per image.

    Args:
        input_size: side of the square RGB input in pixels (227 in the paper; at least
            :func:`min_input_size`).
        num_classes: outputs of the last layer (1000 for ImageNet).
        width: multiplier on every layer's filters and units (1.0 is the original).
        grouped: the 2012 two-GPU layout, where conv2, conv4 and conv5 see only the half of the
            previous layer's channels that lives on their GPU.
        lrn: include the local response normalisation layers (no parameters, no MACs counted).

    Raises:
        ModelError: an input too small for the strides, fewer than 2 classes, a bad width.
    """
    check_alexnet_arguments(input_size, num_classes, width)
    sizes = _spatial_sizes(input_size)
    multiple = 2 if grouped else 1
    layers = [LayerSpec("input", "input", (input_size, input_size, 3))]
    channels = 3
    for name, base, kernel, stride, _, splits in _CONVS:
        filters = _scaled(base, width, multiple)
        groups = 2 if grouped and splits else 1
        size = sizes[name]
        k = kernel * kernel * channels // groups
        n = filters // groups
        layers.append(LayerSpec(name, "conv", (size, size, filters),
                                params=k * filters + filters, macs=size * size * k * filters,
                                kernel=kernel, stride=stride, groups=groups,
                                matmul=(size * size, k, n)))
        channels = filters
        if lrn and name in _LRN_AFTER:
            layers.append(LayerSpec(f"lrn{name[-1]}", "lrn", (size, size, filters)))
        if name in _POOL_AFTER:
            pooled = sizes[_POOL_AFTER[name]]
            layers.append(LayerSpec(_POOL_AFTER[name], "pool", (pooled, pooled, filters),
                                    kernel=_POOL_SIZE, stride=_POOL_STRIDE))
    features = sizes["pool5"] ** 2 * channels
    layers.append(LayerSpec("flatten", "flatten", (features,)))
    for name, base in (*_DENSE, ("fc8", None)):
        units = num_classes if base is None else _scaled(base, width, multiple)
        layers.append(LayerSpec(name, "dense", (units,), params=features * units + units,
                                macs=features * units, matmul=(1, features, units)))
        features = units
    return layers


def count_params(layers: Sequence[LayerSpec]) -> int:
    """Total trainable parameters (weights and biases)."""
    return sum(layer.params for layer in layers)


def forward_macs(layers: Sequence[LayerSpec]) -> int:
    """Forward multiply-adds per image (convolutions and dense layers)."""
    return sum(layer.macs for layer in layers)


def training_flops_per_image(layers: Sequence[LayerSpec]) -> int:
    """FLOPs of one training step per image, by the usual rule: 3 x forward FLOPs (forward,
    gradient with respect to the inputs, gradient with respect to the weights)."""
    return 3 * 2 * forward_macs(layers)


def alexnet_table(layers: Sequence[LayerSpec]) -> Any:
    """The layers as a pandas DataFrame: shape, parameters, MACs, FLOPs, im2col matmul shape."""
    import pandas as pd

    rows = []
    for layer in layers:
        rows.append({
            "layer": layer.name,
            "kind": layer.kind,
            "output": "x".join(str(d) for d in layer.output_shape),
            "parameters": layer.params,
            "forward MACs": layer.macs,
            "forward FLOPs": layer.flops,
            "as matmul (M x K x N)": ("" if layer.matmul is None else
                                      ("%d x %d x %d" % layer.matmul)
                                      + (f" (x{layer.groups} groups)" if layer.groups > 1
                                         else "")),
        })
    return pd.DataFrame(rows).set_index("layer")


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes that training needs, by kind. A lower bound: frameworks add workspace, keep some
    intermediate values twice and round allocations up."""

    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    batch_size: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations

    def fraction_of(self, device_bytes: float) -> float:
        """The estimate as a fraction of a device's memory."""
        return self.total / device_bytes

    def rows(self) -> list[tuple[str, int]]:
        """(what, bytes) pairs, total last."""
        return [("weights", self.weights), ("gradients", self.gradients),
                ("optimizer state", self.optimizer_state),
                (f"activations (batch of {self.batch_size})", self.activations),
                ("total", self.total)]

    def __str__(self) -> str:
        from utils.units import bytes_

        return "\n".join(f"{what:<28} {bytes_(value):>10}" for what, value in self.rows())


def memory_estimate(layers: Sequence[LayerSpec], batch_size: int, *,
                    optimizer: str = "momentum", param_bytes: int = 4,
                    activation_bytes: int = 4) -> MemoryEstimate:
    """Estimate the memory a training step needs.

    Weights and gradients take ``param_bytes`` per parameter each (4 for float32; mixed
    precision keeps float32 weights too); the optimizer keeps :data:`OPTIMIZER_SLOTS` values
    per parameter; every layer's output (and the input) is kept for the backward pass, at
    ``activation_bytes`` per value (2 under mixed precision), for each image of the batch.
    """
    if optimizer not in OPTIMIZER_SLOTS:
        raise ModelError("optimizer", optimizer, "is an unknown optimizer",
                         f"choose one of {', '.join(OPTIMIZER_SLOTS)}")
    whole_number(batch_size, "batch_size", error=ModelError)
    params = count_params(layers)
    per_image = sum(layer.activations for layer in layers if layer.kind != "flatten")
    return MemoryEstimate(
        weights=params * param_bytes,
        gradients=params * param_bytes,
        optimizer_state=params * param_bytes * OPTIMIZER_SLOTS[optimizer],
        activations=per_image * batch_size * activation_bytes,
        batch_size=batch_size,
    )


# --------------------------------------------------------------------------------------------
# Precision
# --------------------------------------------------------------------------------------------

def _cc(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def precision_support(report: Any, kind: str | None = None) -> dict[str, str | None]:
    """Which of :data:`PRECISIONS` a device can compute in.

    ``report`` is a :class:`utils.hardware.HardwareReport`; ``kind`` (``"cpu"``, ``"gpu"`` or
    ``"tpu"``) picks the device, by default the report's fastest (``report.accelerator``).
    Returns ``{precision: None}`` for a supported one, a note when it runs but slowly, and
    ``"not supported: why"`` for one the device cannot run. The bare number formats
    (``"bfloat16"``, ``"float16"``) are keys too, with their policies' answers.
    """
    kind = kind or report.accelerator
    out: dict[str, str | None] = {"float32": None}
    tensor_cores = "TF32 is a mode of NVIDIA's tensor cores (compute capability >= 8.0)"
    if kind == "tpu":
        out["tf32"] = f"not supported: {tensor_cores}; a TPU's matrix units multiply bfloat16"
        out["mixed_bfloat16"] = None
        out["mixed_float16"] = "not supported: TPUs compute in bfloat16, not float16"
    elif kind == "gpu":
        gpu = report.gpus[0] if report.gpus else None
        cc = _cc(gpu.compute_capability) if gpu else None
        name = gpu.name if gpu else "this GPU"
        has_tf32 = getattr(gpu, "tf32", None)
        if has_tf32 is None:
            has_tf32 = cc is None or cc >= 8.0
        out["tf32"] = None if has_tf32 else (
            f"not supported: {name} (compute capability {cc:g}) has no TF32; it needs compute "
            "capability >= 8.0" if cc is not None else f"not supported: {name} has no TF32")
        if cc is not None and cc < 8.0:
            out["mixed_bfloat16"] = (f"not supported: {name} (compute capability {cc:g}) has no "
                                     "bfloat16 arithmetic; it needs compute capability >= 8.0")
        else:
            out["mixed_bfloat16"] = None
        if cc is not None and cc < 5.3:
            out["mixed_float16"] = (f"not supported: {name} (compute capability {cc:g}) has no "
                                    "float16 arithmetic; it needs compute capability >= 5.3")
        else:
            out["mixed_float16"] = None
    else:
        simd = set(getattr(report.cpu, "simd", []) or [])
        out["tf32"] = f"not supported: {tensor_cores}, not a CPU format"
        out["mixed_bfloat16"] = (None if simd & {"avx512_bf16", "amx_bf16"} else
                                 "runs, but this CPU has no bfloat16 instructions (emulated, slow)")
        out["mixed_float16"] = (None if simd & {"avx512_fp16", "amx_fp16"} else
                                "runs, but this CPU has no float16 arithmetic (converted, slow)")
    for bare, policy in _BARE.items():
        out[bare] = out[policy]
    return out


def skipped_precisions(precisions: Sequence[str], report: Any, kind: str | None = None, *,
                       slow: bool = False) -> dict[str, str]:
    """``{precision: why}`` for each of ``precisions`` the device (``kind``, default the
    report's fastest) cannot compute in; a lesson skips those with one line each. With
    ``slow``, also those it has no arithmetic for and only emulates (float16 on most CPUs),
    which a lesson measuring every format the device *has* leaves out too."""
    support = precision_support(report, kind)
    out = {}
    for precision in precisions:
        note = support.get(precision) or ""
        if note.startswith("not supported"):
            out[precision] = note
        elif slow and note.startswith("runs, but "):
            out[precision] = (f"{note.removeprefix('runs, but ')}; name it in a shorter list to "
                              "measure it anyway")
    return out


def check_precisions(precisions: Sequence[str], report: Any, *,
                     known: Sequence[str] = PRECISIONS) -> None:
    """Refuse an explicit request for a format this device cannot compute in.

    ``precisions`` listing every one of ``known`` means "each format this device has" (the
    notebooks' default): nothing is refused and the lesson skips what the device lacks, saying
    why. A shorter list is a request: a name not in ``known``, or one that
    :func:`precision_support` says the report's fastest device cannot run, raises
    :class:`PrecisionError` (argument ``precisions``).
    """
    unknown = [p for p in precisions if p not in known]
    if unknown:
        raise PrecisionError("precisions", list(precisions),
                             f"names {unknown[0]!r}, a format the course does not know",
                             f"choose from {', '.join(repr(p) for p in known)}")
    if set(precisions) >= set(known):
        return
    for precision, why in skipped_precisions(precisions, report).items():
        device = report.accelerator.upper()
        raise PrecisionError("precisions", list(precisions),
                             f"asks for {precision!r}, which this {device} cannot run: "
                             f"{why.removeprefix('not supported: ')}",
                             "leave it out, or list every format to run each one this device has")


# --------------------------------------------------------------------------------------------
# Keras
# --------------------------------------------------------------------------------------------

@functools.cache
def _lrn_layer_class() -> Any:
    """A Keras layer for local response normalisation, in ``keras.ops`` (any backend)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="course")
    class LocalResponseNormalization(keras.layers.Layer):
        """b = a / (k + alpha * sum of a^2 over 2r+1 neighbouring channels)^beta.

        Krizhevsky et al. 2012: k = 2, n = 5 (r = 2), alpha = 1e-4, beta = 0.75; the same
        definition as ``tf.nn.local_response_normalization``.
        """

        def __init__(self, depth_radius: int = 2, bias: float = 2.0, alpha: float = 1e-4,
                     beta: float = 0.75, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

        def call(self, inputs: Any) -> Any:
            r = self.depth_radius
            squared = ops.square(inputs)
            padded = ops.pad(squared, [[0, 0], [0, 0], [0, 0], [r, r]])
            channels = ops.shape(inputs)[-1]
            window = sum(padded[..., i:i + channels] for i in range(2 * r + 1))
            return inputs / ops.power(self.bias + self.alpha * window, self.beta)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "depth_radius": self.depth_radius,
                    "bias": self.bias, "alpha": self.alpha, "beta": self.beta}

    return LocalResponseNormalization


def build_alexnet(input_size: int = 227, num_classes: int = 1000, width: float = 1.0, *,
                  grouped: bool = False, lrn: bool = False, dropout: float = 0.5,
                  seed: int | None = 0, name: str | None = None) -> Any:
    """The Keras AlexNet, layer for layer as :func:`alexnet_layers` describes it.

    Input: ``(input_size, input_size, 3)`` pixels in [0, 255] (uint8 or float), divided by 255
    by the first operation (``keras.ops``, not a ``Rescaling`` layer: Keras's preprocessing
    layers consult TensorFlow whenever ``"tensorflow"`` is in ``sys.modules``, which a kernel
    that blocks TensorFlow that way would break). Output: float32 logits (the last layer stays float32 under a mixed
    precision policy, so compile with ``from_logits=True``). Layers are named as in the paper
    (conv1..conv5, pool1, pool2, pool5, fc6..fc8). Weights start from He-normal initialisation
    (seeded by ``seed``; ``None`` for a random start). Build it inside ``strategy.scope()`` to
    place its variables with a ``tf.distribute`` strategy; the global dtype policy
    (``keras.mixed_precision.set_global_policy``) applies when it is built.

    Raises:
        ModelError: an input too small for the strides, fewer than 2 classes, a bad width or
            dropout.
    """
    import keras

    check_alexnet_arguments(input_size, num_classes, width)
    if number(dropout, "dropout", minimum=0, error=ModelError) >= 1:
        raise ModelError("dropout", dropout, "must be a number >= 0 and < 1")
    specs = {s.name: s for s in alexnet_layers(input_size, num_classes, width, grouped=grouped,
                                               lrn=lrn)}
    layers = keras.layers

    def init(i: int) -> Any:  # He et al. 2015: trains from scratch more reliably than 2012's N(0, 0.01)
        return keras.initializers.HeNormal(seed=None if seed is None else seed + i)

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = keras.ops.cast(inputs, "float32") / 255.0
    for i, (conv, _, kernel, stride, padding, _) in enumerate(_CONVS):
        spec = specs[conv]
        x = layers.Conv2D(spec.output_shape[-1], kernel, strides=stride, padding=padding,
                          groups=spec.groups, activation="relu", kernel_initializer=init(i),
                          name=conv)(x)
        if lrn and conv in _LRN_AFTER:
            x = _lrn_layer_class()(name=f"lrn{conv[-1]}")(x)
        if conv in _POOL_AFTER:
            x = layers.MaxPooling2D(_POOL_SIZE, strides=_POOL_STRIDE,
                                    name=_POOL_AFTER[conv])(x)
    x = layers.Flatten(name="flatten")(x)
    for i, (dense, _) in enumerate(_DENSE):
        x = layers.Dense(specs[dense].output_shape[0], activation="relu",
                         kernel_initializer=init(10 + i), name=dense)(x)
        x = layers.Dropout(dropout, seed=seed, name=f"drop{dense[-1]}")(x)
    outputs = layers.Dense(num_classes, dtype="float32", kernel_initializer=init(20),
                           name="fc8")(x)
    label = name or (f"alexnet_{input_size}px_w{width:g}_{num_classes}classes"
                     .replace(".", "p"))
    return keras.Model(inputs, outputs, name=label)

