"""The TensorFlow/Keras side of the MorphNet library: reading models, regularizers, gating."""

from __future__ import annotations

from .gating import LogisticSigmoidGating, logistic_sigmoid_sample
from .network_regularizers import (
    REGULARIZERS,
    GammaActivationRegularizer,
    GammaFlopsRegularizer,
    GammaLatencyRegularizer,
    GammaModelSizeRegularizer,
    GroupLassoActivationRegularizer,
    GroupLassoFlopsRegularizer,
    GroupLassoLatencyRegularizer,
    GroupLassoModelSizeRegularizer,
    LogisticSigmoidFlopsRegularizer,
    LogisticSigmoidLatencyRegularizer,
    LogisticSigmoidModelSizeRegularizer,
    NetworkRegularizer,
)
from .op_regularizers import (
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
from .reader import (
    Leaf,
    NonPassThrough,
    PassThrough,
    read_model,
    register_activation,
    register_layer,
)

__all__ = [
    "GammaL1Regularizer",
    "L2GroupingRegularizer",
    "ConcatRegularizer",
    "ConstantOpRegularizer",
    "GammaActivationRegularizer",
    "GammaFlopsRegularizer",
    "GammaLatencyRegularizer",
    "GammaModelSizeRegularizer",
    "GroupLassoActivationRegularizer",
    "GroupLassoFlopsRegularizer",
    "GroupLassoLatencyRegularizer",
    "GroupLassoModelSizeRegularizer",
    "GroupLassoRegularizer",
    "Leaf",
    "LogisticSigmoidFlopsRegularizer",
    "LogisticSigmoidGating",
    "LogisticSigmoidLatencyRegularizer",
    "LogisticSigmoidModelSizeRegularizer",
    "MaxGroupingRegularizer",
    "NetworkRegularizer",
    "NonPassThrough",
    "OpRegularizer",
    "PassThrough",
    "ProbGatingRegularizer",
    "ProbabilisticGroupingRegularizer",
    "REGULARIZERS",
    "SlicingReferenceRegularizer",
    "logistic_sigmoid_sample",
    "read_model",
    "register_activation",
    "register_layer",
]
