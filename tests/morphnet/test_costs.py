"""Resource functions on the ops of a real Keras model, against spec §7 case 8."""

from __future__ import annotations

import pytest

from tests.morphnet.models import L
from trainers.morphnet import ConfigurationError, get_hardware, register_hardware
from trainers.morphnet.costs import (
    activation_count_function,
    coefficients,
    flop_function,
    latency_function,
    latency_target,
    memory_function,
    model_size_function,
)
from trainers.morphnet.costs.coefficients import flop_coeff, num_weights_coeff
from trainers.morphnet.keras3 import read_model
from trainers.morphnet.keras3.backend import keras


@pytest.fixture(scope="module")
def ops():
    image = keras.Input((11, 13, 17), name="image")
    conv = L.Conv2D(19, (7, 5), strides=2, padding="same", use_bias=False, name="conv")(image)
    convt = L.Conv2DTranspose(29, (7, 5), strides=2, padding="same", name="convt")(image)
    pooled = L.GlobalAveragePooling2D(name="mean")(conv)
    fc = L.Dense(23, name="fc")(pooled)
    conv2 = L.Conv2D(10, 3, strides=2, padding="same", name="conv2")(image)
    dw = L.DepthwiseConv2D((3, 2), padding="same", name="dw")(conv2)
    conv3 = L.Conv2D(19, (7, 5), strides=2, padding="same", name="conv3")(image)
    conv4 = L.Conv2D(11, (3, 7), strides=2, padding="same", name="conv4")(image)
    cat = L.Concatenate(name="concat")([conv3, conv4])
    graph, _ = read_model(keras.Model(image, [convt, fc, dw, cat]))
    return {op.name: op for op in graph.ops}


CONV_CASES = {
    # (B, A_in, A_out, R_in, R_out) as the original tests pass them
    "conv/Conv2D": {
        "flop": [((1, 17, 19), 949620), ((32, 4, 9), 3386880)],
        "flop_reg": [((1, 17, 19, 17, 19), 1899240), ((32, 4, 9, 3, 7), 5174400)],
        "mem": [((1, 17, 19), 58136), ((32, 4, 9), 126640)],
        "mem_reg": [((1, 17, 19, 17, 19), 103356), ((32, 4, 9, 3, 7), 100244)],
        "size": [((1, 17, 19), 11305), ((32, 4, 9), 1260)],
        "size_reg": [((1, 17, 19, 17, 19), 22610), ((32, 4, 9, 3, 7), 1925)],
        "act": [((1, 17, 19), 19), ((32, 4, 9), 9)],
        "act_reg": [((1, 17, 19, 17, 19), 19), ((32, 4, 9, 3, 7), 7)],
    },
    "convt/conv2d_transpose": {
        "flop": [((1, 17, 29), 4934930), ((32, 4, 9), 11531520)],
        "flop_reg": [((1, 17, 19, 17, 29), 8168160), ((32, 4, 9, 3, 7), 17617600)],
        "mem": [((1, 17, 29), 145096), ((32, 4, 9), 737200)],
        "mem_reg": [((1, 17, 29, 17, 29), 214116), ((32, 4, 9, 3, 7), 575124)],
        "size": [((1, 17, 29), 17255), ((32, 4, 9), 1260)],
        "size_reg": [((1, 17, 19, 17, 29), 28560), ((32, 4, 9, 3, 7), 1925)],
        "act": [((1, 17, 29), 29), ((32, 4, 9), 9)],
        "act_reg": [((1, 17, 29, 17, 29), 29), ((32, 4, 9, 3, 7), 7)],
    },
    "fc/MatMul": {
        "flop": [((1, 17, 19), 646), ((32, 4, 9), 2304)],
        "flop_reg": [((1, 17, 19, 17, 19), 1292), ((32, 4, 9, 3, 7), 3520)],
        "mem": [((1, 17, 19), 1436), ((32, 4, 9), 1808)],
        "mem_reg": [((1, 17, 19, 17, 19), 2728), ((32, 4, 9, 3, 7), 1500)],
        "size": [((1, 17, 19), 323), ((32, 4, 9), 36)],
        "size_reg": [((1, 17, 19, 17, 19), 646), ((32, 4, 9, 3, 7), 55)],
        "act": [((1, 17, 19), 19), ((32, 4, 9), 9)],
        "act_reg": [((1, 17, 19, 17, 19), 19), ((32, 4, 9, 3, 7), 7)],
    },
    "dw/depthwise": {
        "flop": [((1, 10, 10), 5040), ((32, 4, 9), 145152)],
        "flop_reg": [((1, 10, 10, 10, 10), 10080), ((32, 4, 9, 3, 7), 161280)],
        "size": [((1, 10, 10), 60), ((32, 4, 9), 54)],
        "size_reg": [((1, 10, 10, 10, 10), 120), ((32, 4, 9, 3, 7), 60)],
        "act": [((1, 10, 10), 10), ((32, 4, 9), 9)],
        "act_reg": [((1, 10, 10, 10, 10), 10), ((32, 4, 9, 3, 7), 7)],
    },
}
FUNCTIONS = {
    "flop": flop_function,
    "mem": memory_function,
    "size": model_size_function,
    "act": activation_count_function,
}


def call(function, co, is_reg, args):
    if is_reg:
        b, a_in, a_out, r_in, r_out = args
    else:
        (b, a_in, a_out), r_in, r_out = args, 0.0, 0.0
    return function(co, is_reg, a_in, a_out, r_in, r_out, batch_size=b)


@pytest.mark.parametrize("op_name", sorted(CONV_CASES))
def test_resource_functions_case8(ops, op_name):
    co = coefficients(ops[op_name])
    for key, cases in CONV_CASES[op_name].items():
        function = FUNCTIONS[key.split("_")[0]]
        for args, expected in cases:
            # each value is the spec's number for the same (B, A_in, A_out, R_in, R_out)
            assert call(function, co, key.endswith("_reg"), args) == pytest.approx(expected), key


def test_flop_and_weight_coefficients(ops):
    # 2 * out spatial * kernel spatial; transpose uses the input spatial; matmul 2; dw 2*42*6
    assert [flop_coeff(ops[n]) for n in CONV_CASES] == [2940, 10010, 2, 504]
    assert num_weights_coeff(ops["conv/Conv2D"]) == 35
    assert num_weights_coeff(ops["fc/MatMul"]) == 1.0


@pytest.mark.parametrize(
    ("op_name", "args", "peak_bw", "expected"),
    [
        ("conv/Conv2D", (1, 17, 19), (1, 1), 949620),
        ("conv/Conv2D", (32, 4, 9), (1000, 2000), 3386.88),
        ("conv/Conv2D", (32, 4, 9), (1000, 20), 6332.0),
        ("convt/conv2d_transpose", (1, 17, 29), (1, 1), 4934930),
        ("convt/conv2d_transpose", (32, 4, 9), (1000, 2000), 11531.52),
        ("convt/conv2d_transpose", (32, 4, 9), (1000, 20), 36860.0),
        ("fc/MatMul", (1, 17, 19), (1, 1), 1436),
        ("fc/MatMul", (32, 4, 9), (1000, 2000), 2.304),
        ("fc/MatMul", (32, 4, 9), (1000, 20), 90.4),
    ],
)
def test_latency_cost_is_max_of_compute_and_memory(ops, op_name, args, peak_bw, expected):
    b, a_in, a_out = args
    co = coefficients(ops[op_name])
    value = latency_function(co, False, a_in, a_out, 0, 0, *peak_bw, batch_size=b)
    assert value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("op_name", "args", "peak_bw", "expected"),
    [
        ("conv/Conv2D", (1, 17, 19, 17, 19), (1, 1), 1899240),
        ("conv/Conv2D", (32, 4, 9, 3, 7), (1000, 2000), 5174.4),
        ("conv/Conv2D", (32, 4, 9, 3, 7), (1000, 20), 5012.2),
        ("convt/conv2d_transpose", (1, 17, 19, 17, 29), (1, 1), 8168160),
        ("convt/conv2d_transpose", (32, 4, 9, 3, 7), (1000, 2000), 17617.6),
        ("convt/conv2d_transpose", (32, 4, 9, 3, 7), (1000, 20), 28756.2),
        ("fc/MatMul", (1, 17, 19, 17, 19), (1, 1), 2728),
        ("fc/MatMul", (32, 4, 9, 3, 7), (1000, 2000), 3.52),
        ("fc/MatMul", (32, 4, 9, 3, 7), (1000, 20), 75.0),
    ],
)
def test_latency_term_follows_the_larger_cost(ops, op_name, args, peak_bw, expected):
    b, a_in, a_out, r_in, r_out = args
    co = coefficients(ops[op_name])
    value = latency_function(co, True, a_in, a_out, r_in, r_out, *peak_bw, batch_size=b)
    assert value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("b", "counts", "expected_cost", "expected_reg"),
    [(1, (19, 11, 19, 11), 10080, 10080), (32, (15, 7, 12, 6), 236544, 193536)],
)
def test_concat_moves_its_output_twice(ops, b, counts, expected_cost, expected_reg):
    co = coefficients(ops["concat/ConcatV2"])
    a3, a4, r3, r4 = counts
    a, r = a3 + a4, r3 + r4
    # concat costs no FLOPs, weights or activations; memory = 2 * 42 * 4 * B * A
    for function in (flop_function, model_size_function, activation_count_function):
        assert function(co, False, a, a, r, r, batch_size=b) == 0
    assert memory_function(co, False, a, a, r, r, batch_size=b) == expected_cost
    assert memory_function(co, True, a, a, r, r, batch_size=b) == expected_reg


def test_depthwise_memory_is_linear_in_channels(ops):
    co = coefficients(ops["dw/depthwise"])
    # morphsweep fix: kernel bytes q * A_out (not q * A_in * A_out); in and out are 6x7 maps
    assert memory_function(co, False, 10, 10, 0, 0) == (42 * 10 + 42 * 10) * 4 + 6 * 4 * 10


def test_unknown_hardware_is_rejected():
    for bad in ("apple", None):
        with pytest.raises(ConfigurationError, match="hardware must be one of"):
            latency_target(bad, 66)
    with pytest.raises(ConfigurationError, match="batch_size"):
        latency_target("P100", 0)


def test_user_hardware_profile_by_name():
    register_hardware("test-npu", peak_compute=100.0, memory_bandwidth=10.0)
    target = latency_target("test-npu")
    assert target.cost_name == "test-npu Latency"
    assert get_hardware("test-npu").memory_bandwidth == 10.0
    with pytest.raises(ConfigurationError, match="peak_compute"):
        register_hardware("bad", -1, 1)
