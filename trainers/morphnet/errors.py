"""Exceptions raised by the MorphNet library: one root, a few subclasses that are also builtins."""

from __future__ import annotations


class MorphNetError(Exception):
    """Root of every error the library raises on purpose."""


class ConfigurationError(MorphNetError, ValueError):
    """A parameter is out of range or of the wrong kind (threshold, hardware, boundary, regex)."""


class InvalidTypeError(MorphNetError, TypeError):
    """A parameter has the wrong type (a bare string where a list of regexes is needed)."""


class UnsupportedLayerError(MorphNetError, ValueError):
    """A layer class, activation or topology the library does not know how to analyse."""


class ModelNotBuiltError(MorphNetError, ValueError):
    """The Keras model is not built, or not a functional/Sequential graph."""


class NoSourceError(MorphNetError, ValueError):
    """The network has nothing the chosen algorithm can regularize."""


class GroupingError(MorphNetError, RuntimeError):
    """Channels cannot be grouped consistently (the original's iteration-limit failure)."""


class StructureError(MorphNetError, ValueError):
    """A structure JSON is malformed or does not belong to the model it is applied to."""
