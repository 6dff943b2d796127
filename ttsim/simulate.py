"""Run an op config end to end: inputs, halo op, conv op, output check; one result per device op.

This is the Python API (``ttsim.run``) and what the CLI calls. Which conv programs exist, and
how each is built and reported, is the program registry's business (ttsim/programs/registry.py).
"""

from __future__ import annotations

import os
from typing import Collection

import numpy as np

from ttsim.config import OpConfig, ProgramOptions, load_config
from ttsim.device.device import Device
from ttsim.device.spec import DeviceSpec, load_device
from ttsim.errors import ConfigurationError, TtsimError
from ttsim.formats import DataFormat, round_to_format
from ttsim.host import run_program
from ttsim.limits import check_conv_fits, check_run_arguments
from ttsim.numerics import depthwise_conv2d_reference, generate_conv_inputs, pcc, zero_conv_inputs
from ttsim.programs import registry
from ttsim.programs.halo import build_halo_program
from ttsim.programs.parallel import determine_parallel_config
from ttsim.programs.registry import ConvSetup, ProgramDefinition
from ttsim.programs.report_info import conv_info, halo_info
from ttsim.programs.roofline import conv_roofline, halo_roofline
from ttsim.programs.sliding_window import ConvGeometry, build_halo_configs
from ttsim.programs.tensors import read_sharded_output, write_sharded_sticks
from ttsim.results import OpResult

__all__ = ["OpResult", "run"]


MAX_JOBS = 64
"""Most worker processes ``run(..., jobs=N)`` starts."""


def run(config_or_path: OpConfig | str | os.PathLike | dict, program: str = "all",
        device: str | None = None, trace: bool = False,
        trace_cores: Collection[tuple[int, int]] | None = None, timing_only: bool = False,
        jobs: int = 1) -> list[OpResult]:
    """Simulate one conv config; returns [halo op, conv op] per program run.

    With ``timing_only`` the kernels run and every cycle is the same (no cost depends on a
    value), but the compute kernels calculate no tile values, the inputs are zeros (nothing is
    drawn or encoded) and the output, float64 reference and PCC are skipped: each result has
    ``timing_only`` set and ``pcc`` / ``output`` / ``inputs`` None.
    For sweeps and suites, where only durations matter.

    ``program`` is a registered program's name (``ttsim.programs.registry.names()``: "classic",
    OptimizedConvNew's dense matmul; "pool", the pool-based depthwise kernel; ...) or "all" (the
    default, as on the command line): every registered program, in registry order.

    With ``jobs`` > 1 and several programs, the programs run in up to ``jobs`` worker processes
    at once. Each program simulates its own device from the same inputs, so nothing couples them:
    every cycle and output byte is what the serial run gives, the results come back in registry
    order, and an error is the one the serial run would raise first. With ``jobs`` > 1 and one
    program, its conv op finishes in two processes once its two halves of cores stop meeting,
    when that provably gives the serial run and the program allows it (``split_runs`` of its
    definition; ttsim/split_run.py): the same results, sooner on long pool-program runs.
    """
    check_run_arguments(program, device, trace, trace_cores)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= MAX_JOBS:
        raise ConfigurationError(f"jobs: expected a number of processes from 1 to {MAX_JOBS}, got {jobs!r}"[:200])
    config = config_or_path if isinstance(config_or_path, OpConfig) else load_config(config_or_path)
    programs = registry.names() if program == "all" else (registry.get(program).name,)
    spec = load_device(device or config.device)
    check_conv_fits(config.conv, spec)
    inputs = ConvInputs(config, timing_only)
    if jobs > 1 and len(programs) > 1:
        return _run_programs_in_parallel(config, spec, programs, trace, trace_cores, inputs, jobs)
    return _run_programs(config, spec, programs, trace, trace_cores, inputs, split=jobs > 1)


class ConvInputs:
    """The inputs of one conv config, drawn once for every program of a run, and the float64
    reference of each distinct (weights, bias) the programs' kernels see.

    Every program gets the same drawn values (``generate_conv_inputs`` from the config's seed,
    the activations rounded to bfloat16), so drawing them once per run gives each program the
    arrays it would draw itself; they are read-only, as the programs' results share them. The
    pool and depthwise programs see the same rounded weights, so the reference (a float64 conv
    of the whole output) is computed once for both.
    """

    def __init__(self, config: OpConfig, timing_only: bool) -> None:
        self.conv = config.conv
        self.timing_only = timing_only
        """True: zero inputs (nothing is drawn, no reference is computed; see :func:`run`)."""
        if timing_only:  # zeros, which bfloat16 holds exactly
            self.x, weight, bias = zero_conv_inputs(config.conv)
        else:
            x, weight, bias = generate_conv_inputs(config.conv, config.seed)
            self.x = round_to_format(x, DataFormat.BFLOAT16)
        self.weight = weight
        self.bias = bias
        for array in (self.x, self.weight, self.bias):
            if array is not None:
                array.flags.writeable = False
        self._references: dict[tuple[bytes, bytes | None], np.ndarray] = {}

    def reference(self, weights_seen: np.ndarray, bias_seen: np.ndarray | None) -> np.ndarray:
        """The float64 reference output [N, out_h, out_w, C] of the inputs with the weights and
        bias a program's kernels see (what its weights and bias decode to on the device)."""
        key = (weights_seen.tobytes(), None if bias_seen is None else bias_seen.tobytes())
        reference = self._references.get(key)
        if reference is None:
            conv = self.conv
            reference = depthwise_conv2d_reference(
                self.x.astype(np.float64), weights_seen.astype(np.float64),
                None if bias_seen is None else bias_seen.astype(np.float64),
                conv.stride, conv.padding, conv.dilation, conv.activation)
            self._references[key] = reference
        return reference


def _run_programs(config: OpConfig, spec: DeviceSpec, programs: tuple[str, ...], trace: bool,
                  trace_cores: Collection[tuple[int, int]] | None, inputs: ConvInputs,
                  split: bool = False) -> list[OpResult]:
    """Every program of ``programs``, one after the other: [halo op, conv op] each (``split``:
    each conv op may finish in two processes where its definition allows, ttsim/split_run.py)."""
    return [result for name in programs
            for result in _run_conv(config, spec, registry.get(name), trace, trace_cores, inputs, split)]


_PARALLEL_JOB: tuple | None = None
"""(config, spec, programs, trace, trace_cores, inputs) of the parallel run in progress: forked
workers inherit it, so the config, device and input objects need not be pickled."""


def _run_programs_in_parallel(config: OpConfig, spec: DeviceSpec, programs: tuple[str, ...], trace: bool,
                              trace_cores: Collection[tuple[int, int]] | None, inputs: ConvInputs,
                              jobs: int) -> list[OpResult]:
    """Every program of ``programs`` in a forked worker process (``jobs`` at most at once), the
    results in ``programs`` order. Serial where processes cannot be forked."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform: the same results, one after the other
        return _run_programs(config, spec, programs, trace, trace_cores, inputs)
    global _PARALLEL_JOB
    _PARALLEL_JOB = (config, spec, programs, trace, trace_cores, inputs)
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(programs)), mp_context=context) as pool:
            outcomes = list(pool.map(_run_one_program, range(len(programs))))
    finally:
        _PARALLEL_JOB = None
    results: list[OpResult] = []
    for outcome in outcomes:
        if isinstance(outcome, TtsimError):
            raise outcome
        results.extend(outcome)
    return results


def _run_one_program(index: int) -> list[OpResult] | TtsimError:
    """Worker: program ``index`` of the parallel run; a ttsim error is returned (the parent raises
    the first in program order, the one a serial run stops at), any other exception propagates."""
    assert _PARALLEL_JOB is not None
    config, spec, programs, trace, trace_cores, inputs = _PARALLEL_JOB
    try:
        return _run_conv(config, spec, registry.get(programs[index]), trace, trace_cores, inputs)
    except TtsimError as error:
        return error


def _run_conv(config: OpConfig, spec: DeviceSpec, definition: ProgramDefinition, trace: bool,
              trace_cores: Collection[tuple[int, int]] | None, inputs: ConvInputs,
              split: bool = False) -> list[OpResult]:
    conv = config.conv
    timing_only = inputs.timing_only
    device = Device(spec)
    geom = ConvGeometry.from_spec(conv)
    options = config.options(definition.name)
    pc = determine_parallel_config(geom, conv.memory_layout, *_core_grid(device, options, definition.name),
                                   channel_align=definition.channel_align)

    stick_bytes = pc.channels_per_core * 2
    input_buffer = device.allocate_l1_buffer("conv_input", pc.cores(), pc.in_shard * stick_bytes)
    if not timing_only:  # a timing-only run's input is zeros, the bytes a new device's L1 holds
        sticks = np.zeros((geom.in_nhw, pc.channels_padded), dtype=np.float32)
        sticks[:, : geom.channels] = inputs.x.reshape(geom.in_nhw, geom.channels)
        write_sharded_sticks(device, pc, input_buffer, sticks, pc.in_shard)
    halo = build_halo_configs(geom, pc.out_shard, pc.in_shard, pc.num_cores_nhw)
    halo_program, halo_buffer = build_halo_program(device, pc, halo, input_buffer, stick_bytes)
    gap = device.spec.chip.firmware_overhead_cycles.value  # firmware launch before the kernels
    halo_profile = run_program(device, halo_program, launch_gap_cycles=gap, trace=trace,
                               trace_cores=trace_cores)
    device.free_l1_buffer(input_buffer)  # conv2d's internal sharded copy of its input

    setup = ConvSetup(device, conv, geom, pc, halo, halo_buffer, inputs.weight, inputs.bias)
    built = definition.build(setup, options)
    if built.program.op_code != definition.op_code:
        raise ConfigurationError(f"program {definition.name!r} built op {built.program.op_code!r}; its "
                                 f"definition says {definition.op_code!r}")
    out_pc = built.output_pc
    conv_profile = run_program(device, built.program, launch_gap_cycles=gap, trace=trace,
                               trace_cores=trace_cores, numerics=not timing_only,
                               split=split and definition.split_runs)

    accuracy, output = None, None
    if not timing_only:
        flat = read_sharded_output(device, out_pc, built.output, geom.out_nhw, DataFormat(conv.dtype),
                                   conv.output_layout == "tile")
        output = flat[:, : geom.channels].reshape(geom.batch, geom.out_h, geom.out_w, geom.channels)
        accuracy = pcc(output, inputs.reference(built.weights_seen, built.bias_seen))
    seen = None if timing_only else {"input": inputs.x, "weight": built.weights_seen, "bias": built.bias_seen}
    report = definition.report(setup, built)
    details = {**report.details, "parallel_config": pc, "cb_table": built.program.cb_table()}
    halo_op = halo_info(config, geom, pc, halo_buffer, halo_program)
    conv_op = conv_info(config, definition.name, geom, pc, out_pc, halo_buffer, built.program, report.inputs,
                        report.details.get("block_config"))
    halo_op["roofline"] = halo_roofline(pc, halo, spec)
    conv_op["roofline"] = conv_roofline(conv, geom, pc, halo, spec)
    return [
        OpResult(config.name, definition.name, spec.name, halo_profile, info=halo_op, timing_only=timing_only),
        OpResult(config.name, definition.name, spec.name, conv_profile, accuracy, output,
                 seen, details, conv_op, timing_only=timing_only),
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
