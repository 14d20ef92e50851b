"""utils.models: AlexNet's arithmetic against the paper's layout and the Keras model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from utils import data
from utils.errors import ArgumentError, CourseError
from utils.models import (
    FORMATS,
    PRECISIONS,
    PRESETS,
    ModelError,
    PrecisionError,
    alexnet_layers,
    alexnet_table,
    check_alexnet_arguments,
    check_precisions,
    count_params,
    forward_macs,
    memory_estimate,
    min_input_size,
    precision_support,
    skipped_precisions,
    training_flops_per_image,
)
from utils.parameters import ParameterError, as_parameters

# The 2012 network, ungrouped, at 227x227 with 1000 classes, worked out by hand:
# conv: k*k*c_in*c_out + c_out parameters, out*out*k*k*c_in*c_out multiply-adds.
HAND = {
    "conv1": (11 * 11 * 3 * 96 + 96, 55 * 55 * 11 * 11 * 3 * 96, (55, 55, 96)),
    "conv2": (5 * 5 * 96 * 256 + 256, 27 * 27 * 5 * 5 * 96 * 256, (27, 27, 256)),
    "conv3": (3 * 3 * 256 * 384 + 384, 13 * 13 * 3 * 3 * 256 * 384, (13, 13, 384)),
    "conv4": (3 * 3 * 384 * 384 + 384, 13 * 13 * 3 * 3 * 384 * 384, (13, 13, 384)),
    "conv5": (3 * 3 * 384 * 256 + 256, 13 * 13 * 3 * 3 * 384 * 256, (13, 13, 256)),
    "fc6": (6 * 6 * 256 * 4096 + 4096, 6 * 6 * 256 * 4096, (4096,)),
    "fc7": (4096 * 4096 + 4096, 4096 * 4096, (4096,)),
    "fc8": (4096 * 1000 + 1000, 4096 * 1000, (1000,)),
}


def facts():
    table = data.load("alexnet").set_index("quantity")["value"]
    return {key: int(value) for key, value in table.items()}


def test_the_2012_network_layer_by_layer():
    layers = {layer.name: layer for layer in alexnet_layers()}
    for name, (params, macs, shape) in HAND.items():
        assert layers[name].params == params, name
        assert layers[name].macs == macs, name
        assert layers[name].output_shape == shape, name
        assert layers[name].flops == 2 * macs
    assert layers["pool1"].output_shape == (27, 27, 96)
    assert layers["pool2"].output_shape == (13, 13, 256)
    assert layers["pool5"].output_shape == (6, 6, 256)
    assert layers["conv1"].matmul == (55 * 55, 11 * 11 * 3, 96)  # im2col shape


def test_totals_match_the_known_figures():
    known = facts()
    layers = alexnet_layers(227, 1000, 1.0)
    assert count_params(layers) == 62_378_344 == known["parameters_ungrouped_227"]
    assert forward_macs(layers) == known["forward_macs_ungrouped_227"]
    assert training_flops_per_image(layers) == 6 * forward_macs(layers)
    grouped = alexnet_layers(grouped=True)
    assert count_params(grouped) == known["parameters_grouped_caffe"] == 60_965_224
    assert forward_macs(grouped) == known["forward_macs_grouped_227"]
    assert 2 * forward_macs(grouped) == known["forward_flops_grouped_227"]


@pytest.mark.parametrize("input_size,classes,width", [(99, 10, 0.25), (131, 7, 0.5),
                                                      (227, 10, 1.0), (67, 2, 0.125)])
def test_analytic_formula_for_other_sizes(input_size, classes, width):
    def out(size, k, s, pad):
        return -(-size // s) if pad == "same" else (size - k) // s + 1

    size = out(input_size, 11, 4, "valid")
    c1 = max(1, round(96 * width))
    expected_params = 11 * 11 * 3 * c1 + c1
    expected_macs = size * size * 11 * 11 * 3 * c1
    size = out(size, 3, 2, "valid")
    channels = c1
    for filters, k, pool in ((256, 5, True), (384, 3, False), (384, 3, False), (256, 3, True)):
        f = max(1, round(filters * width))
        expected_params += k * k * channels * f + f
        expected_macs += size * size * k * k * channels * f
        channels = f
        if pool:
            size = out(size, 3, 2, "valid")
    features = size * size * channels
    for units in (round(4096 * width), round(4096 * width), classes):
        expected_params += features * units + units
        expected_macs += features * units
        features = units
    layers = alexnet_layers(input_size, classes, width)
    assert count_params(layers) == expected_params
    assert forward_macs(layers) == expected_macs


def test_too_small_inputs_and_bad_sizes_are_refused():
    assert min_input_size() == 67
    alexnet_layers(67, 10, 0.125)
    with pytest.raises(ModelError, match="input_size = 66 must be a whole number >= 67.*67x67"):
        alexnet_layers(66, 10)
    with pytest.raises(ModelError, match="at least 67x67"):
        check_alexnet_arguments(32, 10, 1.0)
    with pytest.raises(ModelError, match="num_classes = 1 must be a whole number >= 2"):
        alexnet_layers(227, 1)
    with pytest.raises(ModelError, match="width = 0 must be a number > 0"):
        alexnet_layers(227, 10, 0)
    with pytest.raises(ModelError, match="input_size = 99.5 must be a whole number"):
        alexnet_layers(99.5, 10)
    assert issubclass(ModelError, ArgumentError) and issubclass(ModelError, CourseError)
    assert not issubclass(ModelError, ParameterError), "library code raises its own domain"


def test_a_notebook_words_the_error_under_its_parameter():
    with pytest.raises(ParameterError, match=r"^INPUT_SIZE = 32 must be a whole number >= 67"):
        with as_parameters(input_size="INPUT_SIZE"):
            check_alexnet_arguments(32, 10, 1.0)


def test_presets_are_one_argument_apart_and_valid():
    assert PRESETS["full"] == {"input_size": 227, "width": 1.0}
    for preset in PRESETS.values():
        alexnet_layers(num_classes=10, **preset)


def test_table_lists_every_layer():
    table = alexnet_table(alexnet_layers(lrn=True))
    assert list(table.index) == ["input", "conv1", "lrn1", "pool1", "conv2", "lrn2", "pool2",
                                 "conv3", "conv4", "conv5", "pool5", "flatten", "fc6", "fc7",
                                 "fc8"]
    assert table["parameters"].sum() == 62_378_344
    assert table.loc["conv1", "as matmul (M x K x N)"] == "3025 x 363 x 96"


def test_memory_estimate_adds_up():
    layers = alexnet_layers()
    params = count_params(layers)
    per_image = sum(layer.activations for layer in layers if layer.kind != "flatten")
    sgd = memory_estimate(layers, 128, optimizer="sgd")
    adam = memory_estimate(layers, 128, optimizer="adam", activation_bytes=2)
    assert sgd.weights == sgd.gradients == 4 * params and sgd.optimizer_state == 0
    assert adam.optimizer_state == 8 * params
    assert sgd.activations == per_image * 128 * 4 and adam.activations == per_image * 128 * 2
    assert sgd.total == sum(value for _, value in sgd.rows()[:-1])
    assert sgd.fraction_of(2 * sgd.total) == 0.5
    assert "total" in str(sgd)
    with pytest.raises(ModelError, match="optimizer = 'lamb' is an unknown optimizer"):
        memory_estimate(layers, 1, optimizer="lamb")
    with pytest.raises(ModelError, match="batch_size = 0 must be a whole number >= 1"):
        memory_estimate(layers, 0)


def fake_report(accelerator, simd=(), cc=None, name="GPU"):
    gpus = [SimpleNamespace(name=name, compute_capability=cc)] if accelerator == "gpu" else []
    return SimpleNamespace(accelerator=accelerator, gpus=gpus, cpu=SimpleNamespace(simd=list(simd)))


def test_precision_support_by_device():
    zen4 = fake_report("cpu", simd=["avx2", "avx512_bf16"])
    assert precision_support(zen4)["mixed_bfloat16"] is None
    assert precision_support(zen4)["bfloat16"] is None  # the bare format, same answer
    assert "slow" in precision_support(zen4)["mixed_float16"]
    assert "emulated" in precision_support(fake_report("cpu", simd=["avx2"]))["mixed_bfloat16"]
    assert precision_support(zen4)["tf32"].startswith("not supported: TF32 is a mode of NVIDIA")
    t4 = fake_report("gpu", cc="7.5", name="Tesla T4")
    a100 = fake_report("gpu", cc="8.0", name="A100")
    assert "Tesla T4 (compute capability 7.5) has no TF32" in precision_support(t4)["tf32"]
    assert precision_support(a100)["tf32"] is None and precision_support(a100)["bfloat16"] is None
    assert precision_support(fake_report("tpu"))["tf32"].startswith("not supported")


def test_default_lists_skip_what_the_device_lacks_explicit_requests_are_refused():
    zen4 = fake_report("cpu", simd=["avx2", "avx512_bf16"])
    t4 = fake_report("gpu", cc="7.5", name="Tesla T4")
    for report in (zen4, t4, fake_report("tpu")):  # every format listed: nothing refused
        check_precisions(list(PRECISIONS), report)
        check_precisions(list(FORMATS), report, known=FORMATS)
    assert skipped_precisions(PRECISIONS, t4) == {
        "tf32": precision_support(t4)["tf32"], "mixed_bfloat16": precision_support(t4)[
            "mixed_bfloat16"]}
    assert list(skipped_precisions(FORMATS, fake_report("tpu"))) == ["tf32", "float16"]
    assert skipped_precisions(PRECISIONS, zen4) == {"tf32": precision_support(zen4)["tf32"]}
    assert list(skipped_precisions(PRECISIONS, zen4, slow=True)) == ["tf32", "mixed_float16"]
    assert skipped_precisions(["mixed_bfloat16"], fake_report("cpu", simd=["avx2"]), slow=True)[
        "mixed_bfloat16"] == ("this CPU has no bfloat16 instructions (emulated, slow); name it in a "
                              "shorter list to measure it anyway")
    check_precisions(["float32", "mixed_float16"], zen4)  # runs on a CPU, slowly: measured
    with pytest.raises(PrecisionError, match="asks for 'mixed_bfloat16', which this GPU cannot "
                                             "run.*compute capability 7.5"):
        check_precisions(["float32", "mixed_bfloat16"], t4)
    with pytest.raises(PrecisionError, match="TPUs compute in bfloat16"):
        check_precisions(["mixed_float16"], fake_report("tpu"))
    with pytest.raises(PrecisionError, match="names 'float8', a format the course does not"):
        check_precisions(list(PRECISIONS) + ["float8"], zen4)
    with pytest.raises(ParameterError, match=r"^PRECISIONS = \['tf32'\] asks for 'tf32'"):
        with as_parameters(precisions="PRECISIONS"):
            check_precisions(["tf32"], zen4)


def test_gpu_info_tf32_flag_wins_over_the_compute_capability():
    report = fake_report("gpu", cc=None, name="Some GPU")
    report.gpus[0].tf32 = False
    assert precision_support(report)["tf32"] == "not supported: Some GPU has no TF32"


# ---- the Keras model ------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(input_size=99, num_classes=10, width=0.25),
                                    dict(input_size=131, num_classes=7, width=0.5, lrn=True),
                                    dict(input_size=99, num_classes=10, width=0.25,
                                         grouped=True)])
def test_keras_model_matches_the_arithmetic(kwargs):
    from utils.models import build_alexnet

    model = build_alexnet(**kwargs)
    layers = alexnet_layers(kwargs["input_size"], kwargs["num_classes"], kwargs["width"],
                            grouped=kwargs.get("grouped", False), lrn=kwargs.get("lrn", False))
    assert model.count_params() == count_params(layers)
    built = {layer.name: int(layer.count_params()) for layer in model.layers
             if layer.count_params()}
    assert built == {s.name: s.params for s in layers if s.params}
    for spec in layers:
        if spec.kind in ("conv", "pool", "lrn", "dense"):
            assert tuple(model.get_layer(spec.name).output.shape[1:]) == spec.output_shape


def test_full_keras_model_has_62378344_parameters():
    from utils.models import build_alexnet

    model = build_alexnet(227, 1000, 1.0)
    assert model.count_params() == 62_378_344
    del model


def test_logits_stay_float32_under_mixed_precision():
    import keras
    import numpy as np

    from utils.models import build_alexnet

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_alexnet(67, 10, 0.125)
        logits = model(np.zeros((2, 67, 67, 3), np.uint8))
        assert model.get_layer("conv1").compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert tuple(logits.shape) == (2, 10)


def test_lrn_layer_matches_tensorflow():
    import numpy as np
    import tensorflow as tf

    from utils.models import _lrn_layer_class

    x = np.random.default_rng(0).normal(size=(2, 5, 5, 12)).astype("float32") * 30
    ours = np.asarray(_lrn_layer_class()()(x))
    theirs = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4,
                                                beta=0.75).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_importing_models_and_datasets_is_cheap():
    from conftest import run_python

    result = run_python("import sys, utils.models, utils.datasets\n"
                        "print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_precision_support_for_the_cpu_of_a_gpu_machine():
    t4 = fake_report("gpu", simd=["avx2"], cc="7.5", name="Tesla T4")
    assert precision_support(t4)["mixed_bfloat16"].startswith("not supported")
    assert precision_support(t4, "cpu")["mixed_bfloat16"].startswith("runs, but")


def test_build_alexnet_refuses_a_bad_dropout():
    from utils.models import build_alexnet

    with pytest.raises(ModelError, match="dropout = 1.0 must be a number >= 0 and < 1"):
        build_alexnet(67, 10, 0.125, dropout=1.0)


def test_alexnet_trains_on_jax_where_tensorflow_is_blocked_in_sys_modules():
    """tests/simulate.py blocks TensorFlow with sys.modules['tensorflow'] = None. Keras's
    preprocessing layers (Rescaling) then try to import TensorFlow and fail, so the model
    must not use one."""
    from conftest import run_python

    result = run_python("""
        import sys
        sys.modules["tensorflow"] = None
        import keras, numpy as np
        from utils.models import build_alexnet
        model = build_alexnet(67, 10, 0.125)
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        loss = model.train_on_batch(np.zeros((4, 67, 67, 3), np.uint8), np.zeros(4, np.int32))
        print(keras.config.backend(), float(loss) > 0)
    """, env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["jax", "True"]
