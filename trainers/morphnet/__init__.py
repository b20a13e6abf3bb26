"""MorphNet for Keras 3: learn network structure under a FLOPs, model-size or latency budget.

The pure-Python core (``graph``, ``grouping``, ``costs``, ``structure``) imports no Keras;
the Keras classes below are imported lazily from ``trainers.morphnet.keras3`` on first use.

    from trainers.morphnet import GammaFlopsRegularizer
    reg = GammaFlopsRegularizer(model, gamma_threshold=1e-2)
    loss = task_loss + strength * reg.get_regularization_term()
"""

from __future__ import annotations

from typing import Any

from .costs import HARDWARE, get_hardware, register_hardware
from .errors import (
    ConfigurationError,
    GroupingError,
    InvalidTypeError,
    ModelNotBuiltError,
    MorphNetError,
    NoSourceError,
    StructureError,
    UnsupportedLayerError,
)
from .structure import LayerStructure, Structure
from .widths import channel_map, expand_to_budget, scale_structure, seed_structure, structure_cost

_LAZY = {
    "add_gating",
    "make_regularizer",
    "StructureLearner",
    "apply_structure",
    "model_cost",
    "rebuild",
    "remove_gating",
    "GammaFlopsRegularizer",
    "GammaModelSizeRegularizer",
    "GammaLatencyRegularizer",
    "GammaActivationRegularizer",
    "GroupLassoFlopsRegularizer",
    "GroupLassoModelSizeRegularizer",
    "GroupLassoLatencyRegularizer",
    "GroupLassoActivationRegularizer",
    "LogisticSigmoidFlopsRegularizer",
    "LogisticSigmoidModelSizeRegularizer",
    "LogisticSigmoidLatencyRegularizer",
    "NetworkRegularizer",
    "REGULARIZERS",
    "LogisticSigmoidGating",
    "GatedBatchNormalization",
    "ChannelGate",
    "gate_layers",
    "logistic_sigmoid_sample",
    "PassThrough",
    "Leaf",
    "NonPassThrough",
    "LayerSpec",
    "Channels",
    "WeightAxes",
    "layer_specs",
    "register_layer",
    "register_activation",
    "read_model",
    "OpRegularizer",
    "GammaL1Regularizer",
    "GroupLassoRegularizer",
    "ProbGatingRegularizer",
    "MaxGroupingRegularizer",
    "L2GroupingRegularizer",
    "ProbabilisticGroupingRegularizer",
    "ConcatRegularizer",
    "ConstantOpRegularizer",
    "SlicingReferenceRegularizer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import keras3

        return getattr(keras3, name)
    raise AttributeError(f"module 'trainers.morphnet' has no attribute {name!r}")


__all__ = [
    "add_gating",
    "gate_layers",
    "ChannelGate",
    "GatedBatchNormalization",
    "make_regularizer",
    "StructureLearner",
    "apply_structure",
    "model_cost",
    "rebuild",
    "remove_gating",
    "channel_map",
    "expand_to_budget",
    "scale_structure",
    "seed_structure",
    "structure_cost",
    "Channels",
    "ConcatRegularizer",
    "ConfigurationError",
    "ConstantOpRegularizer",
    "GammaActivationRegularizer",
    "GammaFlopsRegularizer",
    "GammaL1Regularizer",
    "GammaLatencyRegularizer",
    "GammaModelSizeRegularizer",
    "GroupLassoActivationRegularizer",
    "GroupLassoFlopsRegularizer",
    "GroupLassoLatencyRegularizer",
    "GroupLassoModelSizeRegularizer",
    "GroupLassoRegularizer",
    "GroupingError",
    "HARDWARE",
    "InvalidTypeError",
    "L2GroupingRegularizer",
    "LayerSpec",
    "LayerStructure",
    "Leaf",
    "LogisticSigmoidFlopsRegularizer",
    "LogisticSigmoidGating",
    "LogisticSigmoidLatencyRegularizer",
    "LogisticSigmoidModelSizeRegularizer",
    "MaxGroupingRegularizer",
    "ModelNotBuiltError",
    "MorphNetError",
    "NetworkRegularizer",
    "NoSourceError",
    "NonPassThrough",
    "OpRegularizer",
    "PassThrough",
    "ProbGatingRegularizer",
    "ProbabilisticGroupingRegularizer",
    "REGULARIZERS",
    "SlicingReferenceRegularizer",
    "Structure",
    "StructureError",
    "UnsupportedLayerError",
    "WeightAxes",
    "get_hardware",
    "layer_specs",
    "logistic_sigmoid_sample",
    "read_model",
    "register_activation",
    "register_hardware",
    "register_layer",
]
