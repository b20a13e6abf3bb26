"""FiGS probabilistic channel gating: the ``LogisticSigmoidGating`` Keras layer (spec §2.6)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..graph import TensorRef
from .backend import f32, in_current_step, keeps_step_tensors, keras, ops, step_value
from .backend import straight_through as _straight_through


def logistic_noise(shape: Any, seed: Any = None) -> Any:
    """``L ~ Logistic(0, 1)`` per channel, from ``keras.random`` (each backend draws its own
    numbers; tests that compare backends replace this function with a fixed noise)."""
    u = keras.random.uniform(shape, minval=1e-7, maxval=1.0 - 1e-7, seed=seed)
    return ops.log(u) - ops.log1p(-u)


def logistic_sigmoid_sample(
    logits: Any, temperature: Any, straight_through: bool = False, seed: Any = None
) -> Any:
    """One gate sample per channel: ``sigmoid((logits + L) / tau)`` with ``L ~ Logistic(0, 1)``.

    With ``straight_through`` the forward value is the hard ``1[logits + L > 0]`` and the
    gradient is that of the soft sample. P(gate open) = sigmoid(logits).
    """
    logits = ops.convert_to_tensor(logits)
    dtype = logits.dtype
    noise = ops.cast(logistic_noise(ops.shape(logits), seed), dtype)
    tau = ops.cast(temperature, dtype)
    soft = ops.sigmoid((logits + noise) / tau)
    if straight_through:
        return _straight_through(ops.cast(logits + noise > 0, dtype), soft)
    return soft


class ChannelGate:
    """The FiGS gate of a layer's channels (last axis): its options, variables and mask.

    Mixed into ``LogisticSigmoidGating`` (a gate layer of its own, multiplying its input) and
    ``GatedBatchNormalization`` (the gate folded into a batch norm's scale and offset). The
    regularizers read any ``ChannelGate`` the same way: ``mask_logits``, ``sampled_mask()``,
    ``keep_first_channel_alive``.

    Args:
        temperature: tau > 0 of the logistic-sigmoid relaxation; exactly 0.0 samples hard gates
            and gives the regularizer nothing to learn from (no source).
        straight_through: forward with hard 0/1 gates, backward through the soft sample.
        log_odds_init: initial logit (2.5 gives P(open) ~ 0.92), or a Keras initializer.
        soft_mask_for_inference: at inference multiply open gates by sigmoid(logit).
        keep_first_channel_alive: channel 0 is always open, so no layer vanishes.
        annealing_rate: decay tau by 10x every ``annealing_rate`` steps (needs ``global_step``).
        global_step: a variable (e.g. ``optimizer.iterations``) or a callable returning the step.
    """

    _last_mask: Any
    mask_logits: Any
    mask_sample: Any

    def _init_gate(
        self,
        *,
        temperature: float = 0.001,
        straight_through: bool = False,
        log_odds_init: Any = 2.5,
        soft_mask_for_inference: bool = True,
        keep_first_channel_alive: bool = True,
        annealing_rate: float | None = None,
        global_step: Any = None,
        seed: int | None = None,
    ) -> None:
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not (math.isfinite(temperature) and temperature >= 0)
        ):
            raise ConfigurationError(
                f"temperature must be a number >= 0, but got temperature={temperature!r}"
            )
        if annealing_rate is not None and (annealing_rate <= 0 or global_step is None):
            raise ConfigurationError(
                f"annealing_rate={annealing_rate!r} needs annealing_rate > 0 and a global_step "
                f"(e.g. global_step=optimizer.iterations)"
            )
        if not isinstance(log_odds_init, int | float) and not callable(log_odds_init):
            raise ConfigurationError(
                f"log_odds_init must be a number or a Keras initializer, but got {log_odds_init!r}"
            )
        self.temperature = float(temperature)
        self.straight_through = straight_through
        self.log_odds_init = log_odds_init
        self.soft_mask_for_inference = soft_mask_for_inference
        self.keep_first_channel_alive = keep_first_channel_alive
        self.annealing_rate = annealing_rate
        self.global_step = global_step
        self.seed_generator = keras.random.SeedGenerator(seed)
        object.__setattr__(self, "_last_mask", None)

    @property
    def is_source(self) -> bool:
        """Whether a regularizer can learn from this gate (temperature exactly 0 cannot)."""
        return self.temperature != 0.0

    def _build_gate(self, channels: int) -> None:
        init = self.log_odds_init
        initializer = (
            keras.initializers.Constant(float(init)) if isinstance(init, int | float) else init
        )
        # autocast=False: under mixed precision the gate is sampled in float32 (so are the mask
        # the regularizer reads and its gradient) and cast to the activations' dtype only when
        # multiplied in
        self.mask_logits = self.add_weight(  # type: ignore[attr-defined]
            name="mask_logits",
            shape=(channels,),
            initializer=initializer,
            trainable=True,
            autocast=False,
        )
        self.mask_sample = self.add_weight(  # type: ignore[attr-defined]
            name="mask_sample",
            shape=(channels,),
            initializer="ones",
            trainable=False,
            autocast=False,
        )

    def current_temperature(self) -> Any:
        if self.annealing_rate is None:
            return self.temperature
        step = self.global_step() if callable(self.global_step) else self.global_step
        step = ops.cast(ops.convert_to_tensor(step), "float32")
        return self.temperature * ops.power(0.1, step / float(self.annealing_rate))

    def gate_mask(self, training: bool | None) -> Any:
        """The float32 mask of this call: a sample in training (stored for the regularizer),
        the inference mask otherwise; channel 0 forced open with ``keep_first_channel_alive``."""
        logits = f32(self.mask_logits)
        if training:
            if self.temperature == 0.0 and self.annealing_rate is None:
                noise = logistic_noise(ops.shape(logits), self.seed_generator)
                mask = ops.cast(logits + noise > 0, "float32")
            else:
                mask = logistic_sigmoid_sample(
                    logits, self.current_temperature(), self.straight_through, self.seed_generator
                )
            if keeps_step_tensors():
                object.__setattr__(self, "_last_mask", mask)
            # the sample, for the regularizer: on JAX the step's stateless scope keeps the
            # assigned value, gradient path included, until the step's compute_loss reads it
            self.mask_sample.assign(mask)
        else:
            mask = ops.cast(logits > 0, "float32")
            if self.soft_mask_for_inference:
                mask = mask * ops.sigmoid(logits)
        if self.keep_first_channel_alive:
            first = ops.convert_to_tensor(np.arange(int(logits.shape[0])) == 0)
            mask = ops.maximum(mask, ops.cast(first, "float32"))
        return mask

    def sampled_mask(self) -> Any:
        """The raw gate sample of this training step (before keep-first-channel), for the regularizer.

        Inside the traced step that called the layer this is the very tensor multiplied into the
        activations, so the term's gradient reaches the logits (TensorFlow: the tensor the call
        kept, when it belongs to the graph being traced; JAX: the value the call assigned in the
        step's stateless scope); elsewhere it is the last sample stored, without gradient.
        """
        if in_current_step(self._last_mask):
            return self._last_mask
        return f32(step_value(self.mask_sample))

    def gate_config(self) -> dict[str, Any]:
        init = self.log_odds_init
        return dict(
            temperature=self.temperature,
            straight_through=self.straight_through,
            log_odds_init=init
            if isinstance(init, int | float)
            else keras.initializers.serialize(init),
            soft_mask_for_inference=self.soft_mask_for_inference,
            keep_first_channel_alive=self.keep_first_channel_alive,
            annealing_rate=self.annealing_rate,
        )


GATE_OPTIONS = (
    "temperature",
    "straight_through",
    "log_odds_init",
    "soft_mask_for_inference",
    "keep_first_channel_alive",
    "annealing_rate",
    "global_step",
    "seed",
)


class LogisticSigmoidGating(ChannelGate, keras.layers.Layer):
    """Multiplies the channels (last axis) of its input by a learned stochastic 0/1 gate.

    Args:
        axis: the channel axis; only the last axis (-1) is supported, as in the original.
        temperature, straight_through, log_odds_init, soft_mask_for_inference,
        keep_first_channel_alive, annealing_rate, global_step, seed: see ``ChannelGate``.
    """

    def __init__(
        self,
        axis: int = -1,
        temperature: float = 0.001,
        straight_through: bool = False,
        log_odds_init: Any = 2.5,
        soft_mask_for_inference: bool = True,
        keep_first_channel_alive: bool = True,
        annealing_rate: float | None = None,
        global_step: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if axis != -1:
            raise ConfigurationError(
                f"LogisticSigmoidGating gates the last (channel) axis only, but got axis={axis}; "
                f"use axis=-1 with channels-last tensors"
            )
        self.axis = axis
        self._init_gate(
            temperature=temperature,
            straight_through=straight_through,
            log_odds_init=log_odds_init,
            soft_mask_for_inference=soft_mask_for_inference,
            keep_first_channel_alive=keep_first_channel_alive,
            annealing_rate=annealing_rate,
            global_step=global_step,
            seed=seed,
        )

    def build(self, input_shape: Any) -> None:
        self._build_gate(int(input_shape[-1]))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return inputs * ops.cast(self.gate_mask(training), inputs.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(axis=self.axis, **self.gate_config())
        return config


class GatedBatchNormalization(ChannelGate, keras.layers.BatchNormalization):
    """A channels-last ``BatchNormalization`` whose output channels are gated: the original's
    ``gated_batch_norm`` in one layer.

    ``mask * BN(x)`` is computed as a batch norm with scale ``gamma * mask`` and offset
    ``beta * mask``: the same function and gradients as a ``LogisticSigmoidGating`` after the
    batch norm, at the cost of a C-vector product instead of a pass over the activations.
    ``add_gating`` puts one in place of a prunable layer's batch norm when the gate can go there
    exactly (see ``add_gating``). Takes the batch norm's arguments (``axis`` must be -1) and the
    gate's (see ``ChannelGate``).
    """

    def __init__(self, **kwargs: Any) -> None:
        gate = {k: kwargs.pop(k) for k in GATE_OPTIONS if k in kwargs}
        super().__init__(**kwargs)
        if self.renorm or self.synchronized:
            raise ConfigurationError(
                f"GatedBatchNormalization gates a batch norm without renorm or synchronization, "
                f"but got renorm={self.renorm}, synchronized={self.synchronized}; use a "
                f"BatchNormalization and a LogisticSigmoidGating after it"
            )
        self._init_gate(**gate)

    def build(self, input_shape: Any) -> None:
        rank = len(input_shape)
        if self.axis % rank != rank - 1:
            raise ConfigurationError(
                f"GatedBatchNormalization {self.name!r} normalizes axis {self.axis} of a rank-"
                f"{rank} input; it gates channels-last tensors only (axis=-1)"
            )
        super().build(input_shape)
        self._build_gate(int(input_shape[-1]))

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        gate = self.gate_mask(training)
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        # as BatchNormalization.call: upcast, so float16 / bfloat16 inputs cannot overflow
        inputs = ops.cast(inputs, compute_dtype)
        gate = ops.cast(gate, compute_dtype)
        moving_mean = ops.cast(self.moving_mean, compute_dtype)
        moving_variance = ops.cast(self.moving_variance, compute_dtype)
        gamma = ops.cast(self.gamma, compute_dtype) * gate if self.scale else gate
        beta = ops.cast(self.beta, compute_dtype) * gate if self.center else None
        if training and self.trainable:
            mean, variance = self._moments(inputs, mask)
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            mean, variance = moving_mean, moving_variance
        outputs = ops.batch_normalization(
            inputs, mean, variance, axis=-1, offset=beta, scale=gamma, epsilon=self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(self.gate_config())
        return config


def lower_gated_batch_norm(
    builder: Any, layer: Any, node: Any, inputs: list[TensorRef]
) -> list[TensorRef]:
    """A gated batch norm reads as the original's gated_batch_norm: the BN, then its gate."""
    from .layers import lower_batch_norm

    (x,) = lower_batch_norm(builder, layer, node, inputs)
    return [_lower_gate(builder, layer, x, x.shape)]


def _lower_gate(builder: Any, layer: Any, x: TensorRef, shape: Any) -> TensorRef:
    """The gate's ops on ``x``: a source op of C channels multiplied into it (Mul)."""
    op_type = "LogisticSigmoidGating" if layer.is_source else "LogisticSigmoidHardGating"
    gate = builder.add(layer, op_type, (x.shape[-1],), (), weight="mask_logits")
    return builder.add(layer, "Mul", shape, (gate, x))


def lower_gating(builder: Any, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    """A gate is a source op of C channels multiplied into the activation (Mul), as in the original."""
    return [_lower_gate(builder, layer, inputs[0], tuple(node.output_tensors[0].shape))]


# what keras.models.load_model needs to load a gated model
CUSTOM_OBJECTS = {
    "LogisticSigmoidGating": LogisticSigmoidGating,
    "GatedBatchNormalization": GatedBatchNormalization,
}
