"""Op regularizers: per-channel regularization and alive vectors, and the rules that combine them.

Each object exposes ``regularization_vector`` (non-negative floats, differentiable) and
``alive_vector`` (booleans, no gradient), one entry per channel (spec §2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigurationError
from .backend import channel_norm, f32, ops


class OpRegularizer:
    """Base class: a pair of rank-1 vectors of equal length."""

    is_probabilistic = False
    _regularization_vector: Any
    _alive_vector: Any

    @property
    def regularization_vector(self) -> Any:
        return self._regularization_vector

    @property
    def alive_vector(self) -> Any:
        return self._alive_vector


class GammaL1Regularizer(OpRegularizer):
    """|gamma| of a BatchNorm; alive when |gamma| > threshold."""

    def __init__(self, gamma: Any, gamma_threshold: float) -> None:
        self._regularization_vector = ops.abs(f32(gamma))
        self._alive_vector = self._regularization_vector > gamma_threshold


class GroupLassoRegularizer(OpRegularizer):
    """Per output channel: ``l1_fraction * mean|w| + (1 - l1_fraction) * sqrt(mean w^2)``.

    ``sqrt(mean w^2)`` is ``||w|| / sqrt(n)`` (``backend.channel_norm``: one fused pass over the
    kernel on either backend, no temporary of its size); the term reads every weight once per
    step, so it stays proportional to the parameter count.
    """

    def __init__(
        self,
        weight_tensor: Any,
        reduce_dims: Sequence[int],
        threshold: float,
        l1_fraction: float = 0.0,
    ) -> None:
        w = f32(weight_tensor)
        if len(w.shape) != len(reduce_dims) + 1:
            raise ConfigurationError(
                f"kernel of rank {len(w.shape)} cannot be reduced over {tuple(reduce_dims)}; "
                f"reduce_dims must name every axis but the output-channel axis"
            )
        axes = tuple(reduce_dims)
        norm = channel_norm(w, axes)
        if l1_fraction:
            count = math.prod(int(w.shape[a]) for a in axes)
            l1 = ops.sum(ops.abs(w), axis=axes) / ops.cast(max(count, 1), "float32")
            norm = l1_fraction * l1 + (1.0 - l1_fraction) * norm
        self._regularization_vector = norm
        self._alive_vector = norm > threshold


class ProbGatingRegularizer(OpRegularizer):
    """Gate probabilities or the sampled mask; alive when the chosen vector >= alive_threshold."""

    is_probabilistic = True

    def __init__(
        self,
        logits: Any,
        mask: Any,
        regularize_on_mask: bool = True,
        alive_threshold: float = 0.1,
        mask_as_alive_vector: bool = True,
    ) -> None:
        logits, mask = f32(logits), f32(mask)
        if len(logits.shape) != 1 or len(mask.shape) != 1:
            raise ConfigurationError(
                f"logits and mask must be rank 1, but got shapes {logits.shape} and {mask.shape}"
            )
        probs = ops.sigmoid(logits)
        self._regularization_vector = mask if regularize_on_mask else probs
        self._alive_vector = (mask if mask_as_alive_vector else probs) >= alive_threshold


class ConstantOpRegularizer(OpRegularizer):
    """Zero regularization, every channel alive: fills channels of an op that have no source."""

    def __init__(self, size: int) -> None:
        self._regularization_vector = ops.zeros((size,), "float32")
        self._alive_vector = ops.ones((size,), "bool")


def _need(regularizers: Sequence[OpRegularizer], n: int, what: str) -> None:
    if len(regularizers) < n:
        raise ConfigurationError(f"{what} needs at least {n} regularizers, got {len(regularizers)}")


class MaxGroupingRegularizer(OpRegularizer):
    """Elementwise max of the regularization vectors; alive is the OR."""

    def __init__(self, regularizers: Sequence[OpRegularizer]) -> None:
        _need(regularizers, 2, "MaxGroupingRegularizer")
        self._regularization_vector = ops.max(
            ops.stack([r.regularization_vector for r in regularizers]), axis=0
        )
        self._alive_vector = ops.any(ops.stack([r.alive_vector for r in regularizers]), axis=0)


class L2GroupingRegularizer(OpRegularizer):
    """sqrt of the sum of squares of the vectors; alive when above ``threshold``."""

    def __init__(self, regularizers: Sequence[OpRegularizer], threshold: float = 0.01) -> None:
        _need(regularizers, 2, "L2GroupingRegularizer")
        squares = ops.stack([ops.square(r.regularization_vector) for r in regularizers])
        self._regularization_vector = ops.sqrt(ops.sum(squares, axis=0))
        self._alive_vector = self._regularization_vector > threshold


class ProbabilisticGroupingRegularizer(OpRegularizer):
    """P(at least one member open) = 1 - prod(1 - r); alive is the OR."""

    is_probabilistic = True

    def __init__(self, regularizers: Sequence[OpRegularizer]) -> None:
        _need(regularizers, 2, "ProbabilisticGroupingRegularizer")
        if not all(getattr(r, "is_probabilistic", False) for r in regularizers):
            raise ConfigurationError(
                "ProbabilisticGroupingRegularizer needs probabilistic members (gating "
                "regularizers); a regularizer_decorator must keep is_probabilistic = True"
            )
        closed = ops.stack([1.0 - r.regularization_vector for r in regularizers])
        self._regularization_vector = 1.0 - ops.prod(closed, axis=0)
        self._alive_vector = ops.any(ops.stack([r.alive_vector for r in regularizers]), axis=0)


class ConcatRegularizer(OpRegularizer):
    """The members' vectors laid end to end (the regularizer of a channel concat)."""

    def __init__(self, regularizers: Sequence[OpRegularizer]) -> None:
        for r in regularizers:
            if r.regularization_vector.shape[0] != r.alive_vector.shape[0]:
                raise ConfigurationError("a concatenated regularizer has vectors of unequal length")
        self._regularization_vector = ops.concatenate(
            [r.regularization_vector for r in regularizers], 0
        )
        self._alive_vector = ops.concatenate([r.alive_vector for r in regularizers], 0)


class SlicingReferenceRegularizer(OpRegularizer):
    """Channels [begin, begin + size) of a regularizer obtained lazily from a callable."""

    def __init__(self, get_regularizer: Callable[[], OpRegularizer], begin: int, size: int) -> None:
        self._get = get_regularizer
        self._begin, self._size = begin, size

    @property
    def regularization_vector(self) -> Any:
        return self._get().regularization_vector[self._begin : self._begin + self._size]

    @property
    def alive_vector(self) -> Any:
        return self._get().alive_vector[self._begin : self._begin + self._size]
