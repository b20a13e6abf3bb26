"""Resource costs of a network: FLOPs, model size, activation count, memory and latency.

Pure arithmetic on numbers (or arrays, or tensors): the same formula gives the exact cost from
integer alive counts and the differentiable regularization term from tensors.
"""

from __future__ import annotations

from .coefficients import OpCoefficients, coefficients, coefficients_table
from .hardware import HARDWARE, Hardware, get_hardware, register_hardware
from .resource import (
    TARGETS,
    Target,
    activation_count_function,
    flop_function,
    latency_function,
    latency_target,
    memory_function,
    model_size_function,
)

__all__ = [
    "HARDWARE",
    "TARGETS",
    "Hardware",
    "OpCoefficients",
    "Target",
    "activation_count_function",
    "coefficients",
    "coefficients_table",
    "flop_function",
    "get_hardware",
    "latency_function",
    "latency_target",
    "memory_function",
    "model_size_function",
    "register_hardware",
]
