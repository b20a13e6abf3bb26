"""Per-channel regularizers and the combining rules, against spec §7 cases 6, 7 and 11."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.morphnet import (
    ConcatRegularizer,
    ConstantOpRegularizer,
    GammaL1Regularizer,
    GroupLassoRegularizer,
    L2GroupingRegularizer,
    MaxGroupingRegularizer,
    OpRegularizer,
    ProbabilisticGroupingRegularizer,
    ProbGatingRegularizer,
    SlicingReferenceRegularizer,
)
from trainers.morphnet.errors import ConfigurationError

T, F = True, False


class Stub(OpRegularizer):
    def __init__(self, reg, alive, probabilistic=False):
        self._regularization_vector = np.asarray(reg, np.float32)
        self._alive_vector = np.asarray(alive, bool)
        self.is_probabilistic = probabilistic


R1 = ([0.1, 0.3, 0.6, 0.2], [F, T, T, F])
R2 = ([0.2, 0.4, 0.5, 0.1], [F, T, F, T])
R3 = ([0.3, 0.2, 0.0, 0.25], [F, T, F, T])


def vectors(reg):
    return np.asarray(reg.regularization_vector), np.asarray(reg.alive_vector)


def test_max_grouping():
    reg, alive = vectors(MaxGroupingRegularizer([Stub(*R1), Stub(*R2)]))
    # elementwise max; alive is the OR
    np.testing.assert_allclose(reg, [0.2, 0.4, 0.6, 0.2])
    np.testing.assert_array_equal(alive, [F, T, T, T])
    reg3, alive3 = vectors(MaxGroupingRegularizer([Stub(*R1), Stub(*R2), Stub(*R3)]))
    np.testing.assert_allclose(reg3, [0.3, 0.4, 0.6, 0.25])
    np.testing.assert_array_equal(alive3, [F, T, T, T])
    nested = MaxGroupingRegularizer([MaxGroupingRegularizer([Stub(*R3), Stub(*R1)]), Stub(*R2)])
    # the result does not depend on the order of nesting
    np.testing.assert_allclose(vectors(nested)[0], reg3)


def test_l2_grouping():
    reg, alive = vectors(L2GroupingRegularizer([Stub(*R1), Stub(*R2)], threshold=0.25))
    np.testing.assert_allclose(reg, [0.223607, 0.5, 0.781025, 0.223607], rtol=1e-5)
    np.testing.assert_array_equal(alive, [F, T, T, F])
    three = [Stub(*R1), Stub(*R2), Stub(*R3)]
    reg3, alive3 = vectors(L2GroupingRegularizer(three, threshold=0.25))
    np.testing.assert_allclose(reg3, [0.374165, 0.538516, 0.781024, 0.335410], rtol=1e-5)
    np.testing.assert_array_equal(alive3, [T, T, T, T])
    np.testing.assert_array_equal(vectors(L2GroupingRegularizer(three, 0.5))[1], [F, T, T, F])


def test_probabilistic_grouping():
    members = [Stub(*r, probabilistic=True) for r in (R1, R2, R3)]
    reg, alive = vectors(ProbabilisticGroupingRegularizer(members))
    # P(at least one open) = 1 - prod(1 - r)
    np.testing.assert_allclose(reg, [0.496, 0.664, 0.8, 0.46], rtol=1e-6)
    np.testing.assert_array_equal(alive, [F, T, T, T])
    with pytest.raises(ConfigurationError, match="probabilistic"):
        ProbabilisticGroupingRegularizer([Stub(*R1), Stub(*R2)])


def test_grouping_needs_two_members():
    with pytest.raises(ConfigurationError, match="at least 2"):
        MaxGroupingRegularizer([Stub(*R1)])


def test_concat_slice_and_constant():
    reg, alive = vectors(ConcatRegularizer([Stub(*R1), Stub([0.2, 0.4, 0.5], [F, T, F])]))
    np.testing.assert_allclose(reg, [0.1, 0.3, 0.6, 0.2, 0.2, 0.4, 0.5])
    np.testing.assert_array_equal(alive, [F, T, T, F, F, T, F])
    reg, alive = vectors(SlicingReferenceRegularizer(lambda: Stub(*R1), 1, 2))
    np.testing.assert_allclose(reg, [0.3, 0.6])
    np.testing.assert_array_equal(alive, [T, T])
    reg, alive = vectors(ConstantOpRegularizer(3))
    assert reg.tolist() == [0, 0, 0] and alive.tolist() == [T, T, T]


def test_gamma_l1_is_strict():
    reg, alive = vectors(GammaL1Regularizer(np.array([-0.5, 0.45, 0.1], np.float32), 0.45))
    np.testing.assert_allclose(reg, [0.5, 0.45, 0.1])
    # alive is |gamma| > threshold, strictly
    np.testing.assert_array_equal(alive, [T, F, F])


def test_group_lasso_matmul_kernel_and_transpose():
    kernel = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    expected = [2.9154758, 3.8078866, 4.7434163]  # sqrt(mean of each column squared)
    np.testing.assert_allclose(vectors(GroupLassoRegularizer(kernel, (0,), 0.1))[0], expected)
    np.testing.assert_allclose(vectors(GroupLassoRegularizer(kernel.T, (1,), 0.1))[0], expected)
    mixed = GroupLassoRegularizer(kernel, (0,), 0.1, l1_fraction=0.5)
    np.testing.assert_allclose(vectors(mixed)[0], [2.707738, 3.653943, 4.621708], rtol=1e-6)


def test_group_lasso_formula_on_random_conv_kernel():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    f = 0.3
    reg, alive = vectors(GroupLassoRegularizer(w, (0, 1, 2), 0.9, l1_fraction=f))
    expected = f * np.abs(w).mean((0, 1, 2)) + (1 - f) * np.sqrt((w**2).mean((0, 1, 2)))
    np.testing.assert_allclose(reg, expected, rtol=1e-5)
    np.testing.assert_array_equal(alive, expected > 0.9)
    with pytest.raises(ConfigurationError, match="reduce_dims"):
        GroupLassoRegularizer(w, (0, 1), 0.1)


def test_decorated_conv_source():
    class Half(OpRegularizer):
        def __init__(self, regularizer, scale):
            self._regularization_vector = regularizer.regularization_vector * scale
            self._alive_vector = regularizer.alive_vector

    base = GroupLassoRegularizer(np.ones((5, 5, 3, 3), np.float32), (0, 1, 2), 1e-3)
    reg, alive = vectors(Half(base, scale=0.5))
    np.testing.assert_allclose(reg, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(alive, [T, T, T])


def test_prob_gating_vectors():
    logits = np.array([2.0, -2.0, 0.0], np.float32)
    mask = np.array([1.0, 0.0, 0.05], np.float32)
    reg, alive = vectors(ProbGatingRegularizer(logits, mask))
    np.testing.assert_allclose(reg, mask)
    # alive uses >= on the mask by default
    np.testing.assert_array_equal(alive, [T, F, F])
    reg, alive = vectors(ProbGatingRegularizer(logits, mask, False, 0.5, False))
    np.testing.assert_allclose(reg, 1 / (1 + np.exp(-logits)), rtol=1e-6)
    np.testing.assert_array_equal(alive, [T, F, T])
    with pytest.raises(ConfigurationError, match="rank 1"):
        ProbGatingRegularizer(logits[None], mask)
