"""Where the strength meets the loss: ``make_regularizer`` and the ``StructureLearner`` model.

``StructureLearner`` wraps a network and adds ``strength x`` the MorphNet term to the task loss
in ``compute_loss``, the hook Keras calls inside its compiled step on every backend (inside
JAX's stateless scope, where variables read as the step's traced values). Keras' own
``train_step`` does the rest (gradients, loss scaling under mixed precision, the optimizer), so
one class serves TensorFlow and JAX alike.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..algorithms import ALGORITHMS, DEFAULT_THRESHOLDS
from ..costs import TARGETS, Target, latency_target
from ..errors import ConfigurationError
from .backend import f32, keras, to_numpy
from .network_regularizers import FAMILIES, REGULARIZERS, NetworkRegularizer


def make_regularizer(
    model: Any,
    algorithm: str,
    target: str | Target = "flops",
    threshold: float | None = None,
    *,
    hardware: str = "P100",
    latency_batch_size: int = 1,
    **options: Any,
) -> NetworkRegularizer:
    """The MorphNet regularizer of ``algorithm`` ("gamma", "group_lasso", "logistic_sigmoid")
    for ``target`` ("flops", "model_size", "latency", "activations", or a ``Target``) on a built
    Keras model.

    ``threshold`` is the algorithm's alive threshold: gamma_threshold, GroupLasso's threshold,
    or the FiGS gates' alive probability; None takes the algorithm's default. ``options`` go to
    the regularizer (``l1_fraction``, ``regularize_on_mask``, ``input_boundary``, ...).
    """
    if algorithm not in ALGORITHMS:
        raise ConfigurationError(
            f"algorithm must be one of {list(ALGORITHMS)}, but got algorithm={algorithm!r}"
        )
    if isinstance(target, Target):
        resolved, key = target, target.key
    elif target == "latency":
        resolved, key = latency_target(hardware, latency_batch_size), target
    elif target in TARGETS:
        resolved, key = TARGETS[target], target
    else:
        raise ConfigurationError(
            f"target must be one of {sorted(TARGETS)} or a Target, but got target={target!r}"
        )
    named = REGULARIZERS.get((algorithm, key))
    if named is None:
        raise ConfigurationError(f"{algorithm} has no regularizer for target {key!r}")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[algorithm]
    family: Any = FAMILIES[algorithm]  # each family's constructor takes its own parameters
    known = set(inspect.signature(family.__init__).parameters) - {"self", "model", "target"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigurationError(
            f"{algorithm} takes no option {unknown}; its options are {sorted(known)}"
        )
    if algorithm == "logistic_sigmoid":
        reg = family(model, alive_threshold=threshold, target=resolved, **options)
    else:
        reg = family(model, threshold, target=resolved, **options)
    reg.name = named.name
    return reg


class StructureLearner(keras.Model):
    """Trains ``network`` on task loss + ``strength x regularizer.get_regularization_term()``.

    Compile and fit it as any Keras model; ``task_loss`` and ``regularization_loss`` (the term
    times the strength) are logged beside ``loss``. Both are float32 even under mixed
    precision: the loss casts the logits, and the term is computed from the float32 variables.
    """

    def __init__(
        self, network: Any, regularizer: NetworkRegularizer, strength: float, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.network = network
        self.regularizer = regularizer
        # a variable, so a new strength needs no new trace of the compiled step
        self._strength = self.add_weight(
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(float(strength)),
            trainable=False,
            name="strength",
        )
        self.task_tracker = keras.metrics.Mean(name="task_loss")
        self.reg_tracker = keras.metrics.Mean(name="regularization_loss")

    @property
    def strength(self) -> float:
        """The regularization strength (settable between steps, e.g. for a schedule)."""
        return float(to_numpy(self._strength))

    @strength.setter
    def strength(self, value: float) -> None:
        self._strength.assign(float(value))

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.network(inputs, training=training)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        task = f32(super().compute_loss(x, y, y_pred, sample_weight, training=training))
        if not training:  # evaluation: the task loss alone, as a plain model reports it
            return task
        reg = f32(self._strength) * f32(self.regularizer.get_regularization_term())
        self.task_tracker.update_state(task)
        self.reg_tracker.update_state(reg)
        return task + reg

    @property
    def metrics(self) -> list[Any]:
        return [*super().metrics, self.task_tracker, self.reg_tracker]
