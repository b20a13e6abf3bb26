"""Hardware profiles for the latency target: peak compute (GFLOP/s) and memory bandwidth (GB/s)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigurationError


@dataclass(frozen=True)
class Hardware:
    """A device as the latency model sees it (spec §5.4)."""

    name: str
    peak_compute: float  # GFLOP/s
    memory_bandwidth: float  # GB/s


# The original library's table, names and numbers unchanged (V100 is its tensor-core FP16 peak).
_BUILTIN = (
    Hardware("K80", 8740, 480),
    Hardware("P4", 5500, 192),
    Hardware("T4", 8100, 300),
    Hardware("P100", 9300, 732),
    Hardware("V100", 125000, 900),
    Hardware("TPUv2", 22500, 300),
    Hardware("FLOP_LATENCY", 1, 1e20),
    Hardware("MEMORY_LATENCY", 1e20, 1),
)
HARDWARE: dict[str, Hardware] = {h.name: h for h in _BUILTIN}


def register_hardware(name: str, peak_compute: float, memory_bandwidth: float) -> Hardware:
    """Add (or replace) a device profile usable as ``hardware=name`` by the latency regularizers.

    Args:
        name: the name to use in ``hardware=``; also the prefix of the cost name.
        peak_compute: peak GFLOP/s, > 0.
        memory_bandwidth: memory bandwidth in GB/s, > 0.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"hardware name must be a non-empty string, but got {name!r}")
    for what, value in (("peak_compute", peak_compute), ("memory_bandwidth", memory_bandwidth)):
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ConfigurationError(
                f"{what} must be a positive number (GFLOP/s or GB/s), but got {what}={value!r}"
            )
    hw = Hardware(name, float(peak_compute), float(memory_bandwidth))
    HARDWARE[name] = hw
    return hw


def get_hardware(name: object) -> Hardware:
    """The profile registered under ``name``; an unknown name raises with the known ones."""
    if isinstance(name, Hardware):
        return name
    if not isinstance(name, str) or name not in HARDWARE:
        raise ConfigurationError(
            f"hardware must be one of {sorted(HARDWARE)}, but got hardware={name!r}; "
            f"add your own device with register_hardware(name, peak_gflops, bandwidth_gbs)"
        )
    return HARDWARE[name]
