"""The result types every report reads: one simulated device op (:class:`OpResult`) and the tensor
descriptions its report metadata carries (:class:`TensorDesc`).

Reports (``ttsim.report.*``) import these from here, never from ``ttsim.simulate``, so that they
work on the results of any program: a registered conv program run by :func:`ttsim.run`, or a
user-written program whose :class:`~ttsim.device.profiler.OpProfile` was wrapped with
:meth:`OpResult.from_profile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttsim.device.core import Risc
from ttsim.device.profiler import OpProfile


@dataclass(frozen=True)
class TensorDesc:
    """A tensor as tt-metal's ops perf report describes it (INPUT_i_* / OUTPUT_i_* columns)."""

    padded_shape: tuple[int, int, int, int]
    logical_shape: tuple[int, int, int, int]
    layout: str
    dtype: str
    memory: str
    nbytes: int


@dataclass(repr=False)
class OpResult:
    """One device op of a run, as the profiler reports it, plus numerics for a conv op.

    Durations are properties, all named as tt-metal's profiler names them:
    ``device_kernel_duration_cycles`` / ``_ns`` (int cycles / ns) and ``risc_duration_cycles`` /
    ``_ns`` (per RISC, ``{Risc: value}``; 0 for a RISC that ran nothing).
    """

    config: str
    program: str
    device: str
    """Name of the device preset the op ran on."""
    profile: OpProfile
    pcc: float | None = None
    output: np.ndarray | None = None
    inputs: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Program internals for tests and what-ifs (parallel config, CB table, plan or block config)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Report metadata: attributes, math fidelity, tensors, kernel sources, PM ideal cycles."""

    @classmethod
    def from_profile(cls, profile: OpProfile, device: str, program: str | None = None,
                     config: str = "user") -> OpResult:
        """Wrap the profile of a user-written program (``run_program``) so that every report
        writer (breakdown, trace, ops perf CSV, JSON) accepts it. ``program`` defaults to the op code."""
        return cls(config, program or profile.op_code, device, profile)

    @property
    def op_code(self) -> str:
        return self.profile.op_code

    @property
    def device_kernel_duration_cycles(self) -> int:
        return self.profile.device_kernel_duration_cycles

    @property
    def device_kernel_duration_ns(self) -> float:
        return self.profile.device_kernel_duration_ns

    @property
    def risc_duration_cycles(self) -> dict[Risc, int]:
        return self.profile.risc_duration_cycles

    @property
    def risc_duration_ns(self) -> dict[Risc, float]:
        return self.profile.risc_duration_ns

    def __repr__(self) -> str:
        """One short line: which op, where, how long, how accurate (not the tensors or timelines)."""
        pcc = "" if self.pcc is None else f", pcc={self.pcc:.6f}"
        return (f"OpResult(config={self.config!r}, program={self.program!r}, op_code={self.op_code!r}, "
                f"device={self.device!r}, device_kernel_duration_ns={self.device_kernel_duration_ns:.0f}, "
                f"cores={self.profile.core_count}{pcc})")
