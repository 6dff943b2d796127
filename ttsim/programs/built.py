"""What a conv program builder hands back to the host (shared by both programs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttsim.device.device import L1Buffer
from ttsim.host import Program
from ttsim.programs.parallel import ParallelConfig
from ttsim.programs.tensors import TensorDesc


@dataclass
class BuiltConv:
    """A conv program ready to run, and what the host needs to read its output back and report it."""

    program: Program
    output: L1Buffer
    output_pc: ParallelConfig
    """How the output tensor is sharded (it may differ from the input's, e.g. classic BS)."""
    weights_seen: np.ndarray
    """[C, 1, kh, kw] as the device holds them (after dtype rounding)."""
    bias_seen: np.ndarray | None
    weights_tensor: TensorDesc
    bias_tensor: TensorDesc | None
    kernel_sources: dict[str, str]
