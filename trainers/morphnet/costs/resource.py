"""Resource functions: cost and regularization term of one op from alive counts (spec §4–§5).

Every function takes ``(coeffs, is_regularization, a_in, a_out, r_in, r_out, batch_size)`` like
the original, where the ``a`` are alive counts and the ``r`` sums of regularization vectors. They
work on Python floats, numpy arrays or tensors of either Keras backend: pass ``xp`` (a module with ``where``
and ``maximum``) for arrays or tensors.

Bilinear rule: ``cost = c * A_in * A_out`` and ``reg = c * (A_in * R_out + A_out * R_in)``, the
product-rule linearisation; depthwise ops are linear: ``cost = c * A_out``,
``reg = c * (R_in + R_out)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .coefficients import OpCoefficients
from .hardware import Hardware, get_hardware

Number = Any  # float, numpy array or tensor


def _bilinear(c: Number, dw: Number, is_reg: bool, a_in, a_out, r_in, r_out, xp) -> Number:
    if is_reg:
        return c * xp.where(dw > 0, r_in + r_out, a_in * r_out + a_out * r_in)
    return c * xp.where(dw > 0, a_out, a_in * a_out)


def flop_function(
    co: OpCoefficients, is_regularization: bool, a_in, a_out, r_in, r_out, batch_size=1, xp=np
) -> Number:
    """FLOPs of the op (per example unless ``batch_size`` is given)."""
    return batch_size * _bilinear(
        co.flop, co.depthwise, is_regularization, a_in, a_out, r_in, r_out, xp
    )


def model_size_function(
    co: OpCoefficients, is_regularization: bool, a_in, a_out, r_in, r_out, batch_size=1, xp=np
) -> Number:
    """Kernel weights of the op (the batch is ignored; biases and BN are not counted)."""
    return _bilinear(co.weights, co.depthwise, is_regularization, a_in, a_out, r_in, r_out, xp)


def activation_count_function(
    co: OpCoefficients, is_regularization: bool, a_in, a_out, r_in, r_out, batch_size=1, xp=np
) -> Number:
    """Output channels of conv and matmul ops (A_out, or R_out for the term)."""
    return co.is_flop_op * (r_out if is_regularization else a_out)


def memory_function(
    co: OpCoefficients, is_regularization: bool, a_in, a_out, r_in, r_out, batch_size=1, xp=np
) -> Number:
    """Bytes moved: inputs and output per example and channel, plus the kernel."""
    kernel = _bilinear(co.q, co.depthwise, is_regularization, a_in, a_out, r_in, r_out, xp)
    if is_regularization:
        return batch_size * (co.p_in * r_in + co.p_out * r_out) + kernel
    return batch_size * (co.p_in * a_in + co.p_out * a_out) + kernel


def latency_function(
    co: OpCoefficients,
    is_regularization: bool,
    a_in,
    a_out,
    r_in,
    r_out,
    peak_compute: float,
    memory_bandwidth: float,
    batch_size=1,
    xp=np,
) -> Number:
    """max(compute, memory) time in ns; the term follows whichever *cost* is larger (strict)."""
    args = (a_in, a_out, r_in, r_out, batch_size)
    compute = flop_function(co, False, *args, xp=xp) / peak_compute
    memory = memory_function(co, False, *args, xp=xp) / memory_bandwidth
    if not is_regularization:
        return xp.maximum(compute, memory)
    return xp.where(
        memory > compute,
        memory_function(co, True, *args, xp=xp) / memory_bandwidth,
        flop_function(co, True, *args, xp=xp) / peak_compute,
    )


ResourceFunction = Callable[..., Number]


@dataclass(frozen=True)
class Target:
    """A cost model: the resource function and the names the original gives it."""

    key: str  # "flops", "model_size", "activations", "latency"
    cost_name: str  # "FLOPs", "ModelSize", "Activations", "<hardware> Latency"
    function: ResourceFunction
    batch_size: int = 1


def latency_target(hardware: str | Hardware, batch_size: int = 1) -> Target:
    """The latency cost of one device (see ``register_hardware`` for your own)."""
    from ..errors import ConfigurationError

    hw = get_hardware(hardware)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigurationError(
            f"batch_size must be a positive int, but got batch_size={batch_size!r}"
        )

    def function(co, is_reg, a_in, a_out, r_in, r_out, batch_size=batch_size, xp=np):
        return latency_function(
            co,
            is_reg,
            a_in,
            a_out,
            r_in,
            r_out,
            hw.peak_compute,
            hw.memory_bandwidth,
            batch_size=batch_size,
            xp=xp,
        )

    return Target("latency", f"{hw.name} Latency", function, batch_size)


TARGETS: dict[str, Target] = {
    "flops": Target("flops", "FLOPs", flop_function),
    "model_size": Target("model_size", "ModelSize", model_size_function),
    "activations": Target("activations", "Activations", activation_count_function),
}
