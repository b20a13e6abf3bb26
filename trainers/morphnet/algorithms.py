"""The three MorphNet algorithms, their default alive thresholds, and the Keras backends the
library runs on (names only: importing this module imports no Keras)."""

from __future__ import annotations

ALGORITHMS = ("gamma", "group_lasso", "logistic_sigmoid")
# the original's defaults: |gamma| > 0.01, a GroupLasso channel norm > 0.01, a gate open with
# probability >= 0.1
DEFAULT_THRESHOLDS = {"gamma": 1e-2, "group_lasso": 1e-2, "logistic_sigmoid": 0.1}

# Keras 3 backends the library runs on: TensorFlow (the default install) and JAX
BACKENDS = ("tensorflow", "jax")
