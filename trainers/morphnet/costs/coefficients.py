"""Per-op coefficients of the cost formulas, read off an op's static shapes (spec §5)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from ..graph import CONV_OPS, FLOP_OPS, Op, payload

_BN_TYPES = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")


@dataclass(frozen=True)
class OpCoefficients:
    """Everything the resource functions need about one op (or, with arrays, many ops).

    Attributes:
        flop: FLOPs per (input channel x output channel), or per output channel for depthwise.
        weights: kernel weights per channel pair (kernel spatial size; 1 for MatMul).
        is_flop_op: 1 for conv and matmul ops, else 0 (the activation count counts only these).
        depthwise: 1 when costs are linear in output channels (depthwise convs).
        p_in: sum of the input payloads, bytes per (example, channel).
        p_out: output payload, bytes per (example, channel).
        q: kernel payload, bytes per channel pair.
    """

    flop: float | np.ndarray = 0.0
    weights: float | np.ndarray = 0.0
    is_flop_op: float | np.ndarray = 0.0
    depthwise: float | np.ndarray = 0.0
    p_in: float | np.ndarray = 0.0
    p_out: float | np.ndarray = 0.0
    q: float | np.ndarray = 0.0


def _kernel_spatial(op: Op) -> int:
    assert op.kernel_shape is not None
    return math.prod(op.kernel_shape[:-2])


def flop_coeff(op: Op) -> float:
    """FLOPs per channel pair: 2 x output spatial x kernel spatial (input spatial for transpose)."""
    if op.type not in FLOP_OPS:
        return 0.0
    if op.type == "MatMul":
        # A Dense on a rank > 2 tensor runs once per position (a fix over the original).
        return 2.0 * math.prod(op.spatial)
    spatial = op.inputs[0].shape[1:-1] if op.type == "Conv2DBackpropInput" else op.shape[1:-1]
    return 2.0 * math.prod(int(d or 0) for d in spatial) * _kernel_spatial(op)


def num_weights_coeff(op: Op) -> float:
    if op.type in CONV_OPS:
        return float(_kernel_spatial(op))
    return 1.0 if op.type == "MatMul" else 0.0


def memory_payloads(op: Op) -> tuple[float, float, float]:
    """(sum of input payloads, output payload, kernel payload) in bytes, spec §5.4."""
    if op.type == "ConcatV2":
        inputs: Sequence = (op.shape,)  # a concat moves its output twice
    elif op.type in _BN_TYPES:
        inputs = (op.inputs[0].shape,)
    else:
        inputs = tuple(r.shape for r in op.inputs)
    p_in = sum(payload(s, op.dtype_bytes) for s in inputs)
    q = (
        float(_kernel_spatial(op) * op.dtype_bytes)
        if op.type in FLOP_OPS and op.kernel_shape
        else 0.0
    )
    return p_in, payload(op.shape, op.dtype_bytes), q


def coefficients(op: Op) -> OpCoefficients:
    p_in, p_out, q = memory_payloads(op)
    return OpCoefficients(
        flop=flop_coeff(op),
        weights=num_weights_coeff(op),
        is_flop_op=1.0 if op.type in FLOP_OPS else 0.0,
        depthwise=1.0 if op.type == "DepthwiseConv2dNative" else 0.0,
        p_in=p_in,
        p_out=p_out,
        q=q,
    )


def coefficients_table(ops: Sequence[Op]) -> OpCoefficients:
    """The coefficients of many ops as float64 arrays, for vectorized cost evaluation."""
    each = [coefficients(op) for op in ops]
    return OpCoefficients(
        **{
            f.name: np.array([getattr(c, f.name) for c in each], dtype=np.float64)
            for f in fields(OpCoefficients)
        }
    )
