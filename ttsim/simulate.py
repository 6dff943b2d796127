"""Run an op config end to end: inputs, halo op, conv op, output check; one result per device op.

This is the Python API (``ttsim.run``) and what the CLI calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttsim.config import OpConfig, load_config
from ttsim.device.device import Device
from ttsim.device.profiler import OpProfile
from ttsim.device.spec import DeviceSpec, load_device
from ttsim.errors import ConfigurationError
from ttsim.formats import DataFormat, round_to_format
from ttsim.host import run_program
from ttsim.numerics import depthwise_conv2d_reference, generate_conv_inputs, pcc
from ttsim.programs.classic_conv import build_classic_program
from ttsim.programs.conv_blocking import CLASSIC_CHANNEL_ALIGN, ClassicOverrides
from ttsim.programs.depthwise_pool import build_pool_program
from ttsim.programs.halo import build_halo_program
from ttsim.programs.parallel import determine_parallel_config
from ttsim.programs.sliding_window import ConvGeometry, build_halo_configs
from ttsim.programs.tensors import read_sharded_output, write_sharded_sticks

PROGRAMS = ("pool", "classic")
PROGRAM_CHOICES = (*PROGRAMS, "all")


@dataclass
class OpResult:
    """One device op of a run, as the profiler reports it, plus numerics for the conv op."""

    config: str
    program: str
    device: str
    profile: OpProfile
    pcc: float | None = None
    output: np.ndarray | None = None
    inputs: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def op_code(self) -> str:
        return self.profile.op_code

    @property
    def device_kernel_duration_cycles(self) -> int:
        return self.profile.device_kernel_duration_cycles

    @property
    def device_kernel_duration_ns(self) -> float:
        return self.profile.device_kernel_duration_ns


def run(config_or_path: OpConfig | str | os.PathLike | dict, program: str = "pool",
        device: str | None = None) -> list[OpResult]:
    """Simulate one conv config; returns [halo op, conv op] per program run.

    ``program`` is "pool" (pool-based depthwise), "classic" (OptimizedConvNew, the grouped conv
    as a dense matmul) or "all" (classic then pool).
    """
    config = config_or_path if isinstance(config_or_path, OpConfig) else load_config(config_or_path)
    if program not in PROGRAM_CHOICES:
        raise ConfigurationError(f"unknown program {program!r}; available: {', '.join(PROGRAM_CHOICES)}")
    spec = load_device(device or config.device)
    programs = ("classic", "pool") if program == "all" else (program,)
    return [result for name in programs for result in _run_conv(config, spec, name)]


def _run_conv(config: OpConfig, spec: DeviceSpec, program: str) -> list[OpResult]:
    conv = config.conv
    device = Device(spec)
    geom = ConvGeometry.from_spec(conv)
    align = 32 if program == "pool" else CLASSIC_CHANNEL_ALIGN
    pc = determine_parallel_config(geom, conv.memory_layout, *device.grid, channel_align=align)
    x, weight, bias = generate_conv_inputs(conv, config.seed)
    x = round_to_format(x, DataFormat.BFLOAT16)

    stick_bytes = pc.channels_per_core * 2
    sticks = np.zeros((geom.in_nhw, pc.channels_padded), dtype=np.float32)
    sticks[:, : geom.channels] = x.reshape(geom.in_nhw, geom.channels)
    input_buffer = device.allocate_l1_buffer("conv_input", pc.cores(), pc.in_shard * stick_bytes)
    write_sharded_sticks(device, pc, input_buffer, sticks, pc.in_shard)
    halo = build_halo_configs(geom, pc.out_shard, pc.in_shard, pc.num_cores_nhw)
    halo_program, halo_buffer = build_halo_program(device, pc, halo, input_buffer, stick_bytes)
    halo_profile = run_program(device, halo_program)
    device.free_l1_buffer(input_buffer)  # conv2d's internal sharded copy of its input

    if program == "pool":
        built = build_pool_program(device, conv, geom, pc, halo, halo_buffer, weight, bias)
        out_pc, details = pc, {"plan": built.plan}
    else:
        built = build_classic_program(device, conv, geom, pc, halo, halo_buffer, weight, bias,
                                      ClassicOverrides(**config.classic.model_dump()))
        out_pc, details = built.output_pc, {"block_config": built.block}
    gap = device.spec.chip.firmware_overhead_cycles.value
    conv_profile = run_program(device, built.program, launch_gap_cycles=gap)

    flat = read_sharded_output(device, out_pc, built.output, geom.out_nhw, DataFormat(conv.dtype),
                               conv.output_layout == "tile")
    output = flat[:, : geom.channels].reshape(geom.batch, geom.out_h, geom.out_w, geom.channels)
    reference = depthwise_conv2d_reference(
        x.astype(np.float64), built.weights_seen.astype(np.float64),
        None if built.bias_seen is None else built.bias_seen.astype(np.float64),
        conv.stride, conv.padding, conv.dilation, conv.activation)
    inputs = {"input": x, "weight": built.weights_seen, "bias": built.bias_seen}
    details.update({"parallel_config": pc, "cb_table": built.program.cb_table()})
    return [
        OpResult(config.name, program, spec.name, halo_profile),
        OpResult(config.name, program, spec.name, conv_profile, pcc(output, reference), output,
                 inputs, details),
    ]
