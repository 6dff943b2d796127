"""What a conv program builder hands back to the host (shared by every program)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttsim.device.device import L1Buffer
from ttsim.device.dram import InterleavedBuffer
from ttsim.host import Program
from ttsim.programs.parallel import ParallelConfig


@dataclass(frozen=True)
class DeviceWeights:
    """The weights phase of a builder: weights (and bias) in DRAM in the program's layout and
    format, and the values the device holds after rounding (for the float64 reference)."""

    weights: InterleavedBuffer
    bias: InterleavedBuffer | None
    weights_seen: np.ndarray
    """[C, 1, kh, kw] as the device holds them (after dtype rounding)."""
    bias_seen: np.ndarray | None


@dataclass
class BuiltConv:
    """A conv program ready to run, and what the host needs to read its output back."""

    program: Program
    output: L1Buffer
    output_pc: ParallelConfig
    """How the output tensor is sharded (it may differ from the input's, e.g. classic BS)."""
    weights_seen: np.ndarray
    """[C, 1, kh, kw] as the device holds them (after dtype rounding)."""
    bias_seen: np.ndarray | None
