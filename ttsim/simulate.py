"""Run an op config end to end: inputs, halo op, conv op, output check; one result per device op.

This is the Python API (``ttsim.run``) and what the CLI calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Collection

import numpy as np

from ttsim.config import OpConfig, ProgramOptions, load_config
from ttsim.device.device import Device
from ttsim.device.profiler import OpProfile
from ttsim.device.spec import DeviceSpec, load_device
from ttsim.errors import ConfigurationError
from ttsim.formats import DataFormat, round_to_format, tile_size_bytes
from ttsim.host import run_program
from ttsim.numerics import depthwise_conv2d_reference, generate_conv_inputs, pcc
from ttsim.device.device import L1Buffer
from ttsim.programs.built import BuiltConv
from ttsim.programs.classic_conv import build_classic_program
from ttsim.programs.conv_blocking import CLASSIC_CHANNEL_ALIGN, ClassicOverrides
from ttsim.programs.depthwise import build_depthwise_program
from ttsim.programs.depthwise_pool import build_pool_program
from ttsim.programs.halo import build_halo_program
from ttsim.programs.parallel import ParallelConfig, determine_parallel_config
from ttsim.programs.sliding_window import ConvGeometry, build_halo_configs
from ttsim.programs.tensors import TensorDesc, read_sharded_output, write_sharded_sticks
from ttsim.roofline import conv_roofline, halo_roofline

PROGRAMS = ("pool", "classic", "depthwise")
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
    info: dict[str, Any] = field(default_factory=dict)
    """Report metadata: attributes, math fidelity, tensors, kernel sources, PM ideal cycles."""

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
        device: str | None = None, trace: bool = False,
        trace_cores: Collection[tuple[int, int]] | None = None) -> list[OpResult]:
    """Simulate one conv config; returns [halo op, conv op] per program run.

    ``program`` is "pool" (pool-based depthwise), "classic" (OptimizedConvNew, the grouped conv
    as a dense matmul) or "all" (classic then pool).
    """
    config = config_or_path if isinstance(config_or_path, OpConfig) else load_config(config_or_path)
    if program not in PROGRAM_CHOICES:
        raise ConfigurationError(f"unknown program {program!r}; available: {', '.join(PROGRAM_CHOICES)}")
    spec = load_device(device or config.device)
    programs = ("classic", "pool", "depthwise") if program == "all" else (program,)
    return [result for name in programs
            for result in _run_conv(config, spec, name, trace, trace_cores)]


def _run_conv(config: OpConfig, spec: DeviceSpec, program: str, trace: bool,
              trace_cores: Collection[tuple[int, int]] | None) -> list[OpResult]:
    conv = config.conv
    device = Device(spec)
    geom = ConvGeometry.from_spec(conv)
    options = getattr(config, program)
    align = CLASSIC_CHANNEL_ALIGN if program == "classic" else 32
    pc = determine_parallel_config(geom, conv.memory_layout, *_core_grid(device, options, program),
                                   channel_align=align)
    cb_pages = {name: cb.pages for name, cb in options.cb.items()}
    x, weight, bias = generate_conv_inputs(conv, config.seed)
    x = round_to_format(x, DataFormat.BFLOAT16)

    stick_bytes = pc.channels_per_core * 2
    sticks = np.zeros((geom.in_nhw, pc.channels_padded), dtype=np.float32)
    sticks[:, : geom.channels] = x.reshape(geom.in_nhw, geom.channels)
    input_buffer = device.allocate_l1_buffer("conv_input", pc.cores(), pc.in_shard * stick_bytes)
    write_sharded_sticks(device, pc, input_buffer, sticks, pc.in_shard)
    halo = build_halo_configs(geom, pc.out_shard, pc.in_shard, pc.num_cores_nhw)
    halo_program, halo_buffer = build_halo_program(device, pc, halo, input_buffer, stick_bytes)
    gap = device.spec.chip.firmware_overhead_cycles.value  # firmware launch before the kernels
    halo_profile = run_program(device, halo_program, launch_gap_cycles=gap, trace=trace,
                               trace_cores=trace_cores)
    device.free_l1_buffer(input_buffer)  # conv2d's internal sharded copy of its input

    if program == "pool":
        built = build_pool_program(device, conv, geom, pc, halo, halo_buffer, weight, bias, cb_pages, config.pool)
        details = {"plan": built.plan}
    elif program == "depthwise":
        built = build_depthwise_program(device, conv, geom, pc, halo, halo_buffer, weight, bias, cb_pages,
                                        config.depthwise)
        details = {"plan": built.plan}
    else:
        built = build_classic_program(device, conv, geom, pc, halo, halo_buffer, weight, bias,
                                      ClassicOverrides.from_options(config.classic), cb_pages)
        details = {"block_config": built.block}
    out_pc = built.output_pc
    conv_profile = run_program(device, built.program, launch_gap_cycles=gap, trace=trace,
                               trace_cores=trace_cores)

    flat = read_sharded_output(device, out_pc, built.output, geom.out_nhw, DataFormat(conv.dtype),
                               conv.output_layout == "tile")
    output = flat[:, : geom.channels].reshape(geom.batch, geom.out_h, geom.out_w, geom.channels)
    reference = depthwise_conv2d_reference(
        x.astype(np.float64), built.weights_seen.astype(np.float64),
        None if built.bias_seen is None else built.bias_seen.astype(np.float64),
        conv.stride, conv.padding, conv.dilation, conv.activation)
    inputs = {"input": x, "weight": built.weights_seen, "bias": built.bias_seen}
    details.update({"parallel_config": pc, "cb_table": built.program.cb_table()})
    halo_info, conv_info = _report_info(config, geom, pc, out_pc, program, built, halo_buffer)
    halo_info["roofline"] = halo_roofline(pc, halo, spec)
    conv_info["roofline"] = conv_roofline(conv, geom, pc, halo, spec)
    return [
        OpResult(config.name, program, spec.name, halo_profile, info=halo_info),
        OpResult(config.name, program, spec.name, conv_profile, pcc(output, reference), output,
                 inputs, details, conv_info),
    ]


def _core_grid(device: Device, options: ProgramOptions, program: str) -> tuple[int, int]:
    """The grid a program may use: the device's, or the config's smaller ``core_grid``."""
    if options.core_grid is None:
        return device.grid
    x, y = options.core_grid
    if x > device.grid[0] or y > device.grid[1]:
        raise ConfigurationError(
            f"{program}.core_grid: [{x}, {y}] exceeds the {device.grid[0]}x{device.grid[1]} compute grid "
            f"of {device.spec.name}")
    return x, y


def _memory(layout: str) -> str:
    return f"DEV_0_L1_{layout.upper()}"


def _report_info(config: OpConfig, geom: ConvGeometry, pc: ParallelConfig, out_pc: ParallelConfig,
                 program: str, built: BuiltConv, halo_buffer: L1Buffer) -> tuple[dict, dict]:
    """What the ops perf report says about the halo and conv ops besides their timing."""
    conv = config.conv
    in_rows = pc.in_shard * pc.num_cores_nhw
    activation = TensorDesc((1, 1, in_rows, pc.channels_padded), (1, 1, geom.in_nhw, geom.channels),
                            "ROW_MAJOR", "BFLOAT16", _memory(conv.memory_layout),
                            in_rows * pc.channels_padded * 2)
    halo_sticks = halo_buffer.size_per_core // (pc.channels_per_core * 2)
    halo_out = TensorDesc((1, 1, halo_sticks * pc.num_cores_nhw, pc.channels_padded),
                          (1, 1, halo_sticks * pc.num_cores_nhw, geom.channels), "ROW_MAJOR", "BFLOAT16",
                          _memory(conv.memory_layout), halo_sticks * pc.num_cores_nhw * pc.channels_padded * 2)
    weights = built.weights_tensor
    out_rows = out_pc.out_shard * out_pc.num_cores_nhw
    out_fmt = DataFormat(conv.dtype)
    output = TensorDesc((1, 1, out_rows, out_pc.channels_padded), (1, 1, geom.out_nhw, geom.channels),
                        "TILE" if conv.output_layout == "tile" else "ROW_MAJOR", out_fmt.value.upper(),
                        _memory(conv.memory_layout),
                        out_rows * out_pc.channels_padded * tile_size_bytes(out_fmt) // 1024)
    inputs = [halo_out, weights] + ([built.bias_tensor] if built.bias_tensor is not None else [])
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel, conv.stride, conv.padding, conv.dilation
    attributes = (f"program={program}; kernel=({kh},{kw}); stride=({sh},{sw}); padding=({ph},{pw}); "
                  f"dilation=({dh},{dw}); groups={conv.channels}; activation={conv.activation}; "
                  f"bias={conv.bias}; memory_layout={conv.memory_layout}")
    # the conv op's performance model counts the dense grouped matmul (Cin = C), whatever the program
    flops = geom.channels * kh * kw * 2 * geom.out_h * geom.out_w * geom.channels * geom.batch
    conv_info = {
        "attributes": attributes, "math_fidelity": conv.math_fidelity, "inputs": inputs, "outputs": [output],
        "compute_kernel_source": built.kernel_sources["compute"],
        "data_movement_kernel_source": built.kernel_sources["data_movement"],
        "pm_flops": flops,
    }
    halo_info = {"attributes": f"memory_layout={conv.memory_layout}", "inputs": [activation],
                 "outputs": [halo_out], "data_movement_kernel_source": "ttsim/kernels/halo.py"}
    return halo_info, conv_info
