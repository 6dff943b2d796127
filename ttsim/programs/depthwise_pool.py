"""Host side of the pool-based depthwise conv2d (``Conv2dDepthwiseProgramFactory``: tt-metal
``ttnn/cpp/ttnn/operations/conv/conv2d/device/conv2d_op_depthwise_program_factory.cpp`` on the depthwise branch, ``002a3f41``).

Builds, from an op config: the core grid and shards (``determine_parallel_config`` with 32-channel
alignment), the per-channel weights in DRAM in the layout the reader's window uses, the bias
tiles, every CB of the branch factory with its size, the multicast semaphores and the runtime
arguments of the reader, compute and writer kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ttsim.config import ConvSpec
from ttsim.device.core import Risc
from ttsim.device.device import Device, L1Buffer
from ttsim.formats import TILE_ELEMENTS, TILE_W as TILE, DataFormat, round_to_format, tile_size_bytes, tilize, untilize
from ttsim.host import Program
from ttsim.kernel_api import TensorAccessor
from ttsim.kernels.compute_pool import compute_pool_depthwise
from ttsim.kernels.reader import reader_pool_depthwise
from ttsim.kernels.writer import writer_sharded_output
from ttsim.programs.built import BuiltConv, DeviceWeights
from ttsim.programs.cb_table import CBTableBuilder
from ttsim.programs.multicast import weights_multicast_role
from ttsim.programs.options import PoolOptions
from ttsim.programs.parallel import ParallelConfig
from ttsim.programs.registry import ConvSetup, ProgramDefinition, ProgramReport, register
from ttsim.programs.sliding_window import ConvGeometry, HaloCoreConfig
from ttsim.programs.tensors import write_dram_tiles
from ttsim.results import TensorDesc

POOL_OP_CODE = "Conv2dDepthwisePool"
BF16_TILE = tile_size_bytes(DataFormat.BFLOAT16)


@dataclass(frozen=True)
class PoolPlan:
    """The factory's derived sizes for one conv (what tt-metal logs at program creation)."""

    in_ntiles_c: int
    pages_per_stick: int
    """E: 1024-element pages holding one flattened window [kh*kw, C_core]."""
    weight_tiles: int
    window_rows: int
    max_tiles_per_reduction: int
    fused: bool = False
    """Weights tilized (taps on rows) for the fused multiply + reduce, not in the window layout."""

    @classmethod
    def create(cls, geom: ConvGeometry, pc: ParallelConfig, fused: bool = False) -> PoolPlan:
        in_ntiles_c = pc.channels_per_core // TILE
        window = geom.kh * geom.kw
        pages = -(-window * pc.channels_per_core // TILE_ELEMENTS)
        if fused:
            return cls(in_ntiles_c, pages, -(-window // TILE) * in_ntiles_c, window, 8, True)
        face_rows = window * -(-TILE * in_ntiles_c // 16)
        weight_tiles = -(-face_rows // TILE) * in_ntiles_c
        return cls(in_ntiles_c, pages, max(weight_tiles, pages), window, 8)


def depthwise_weight_tiles(weight: np.ndarray, pc: ParallelConfig, plan: PoolPlan) -> np.ndarray:
    """Per channel shard, the flat [kh*kw, C_core] weight sequence cut into 1024-element tiles
    (the branch's ``convert_conv_weight_tensor_to_2d_depthwise_layout``), zero-padded to
    ``weight_tiles`` tiles per shard. Returns float32 [shards * weight_tiles, 1024]."""
    channels, _, kh, kw = weight.shape
    cpc = pc.channels_per_core
    per_tap = np.zeros((kh * kw, pc.channels_padded), dtype=np.float32)
    per_tap[:, :channels] = weight.reshape(channels, kh * kw).T
    tiles = np.zeros((pc.num_cores_c * plan.weight_tiles, TILE_ELEMENTS), dtype=np.float32)
    for j in range(pc.num_cores_c):
        flat = per_tap[:, j * cpc : (j + 1) * cpc].reshape(-1)
        shard = tiles[j * plan.weight_tiles : (j + 1) * plan.weight_tiles].reshape(-1)
        shard[: flat.size] = flat
    return tiles


def depthwise_weights_from_tiles(tiles: np.ndarray, shape: tuple[int, ...], pc: ParallelConfig,
                                 plan: PoolPlan) -> np.ndarray:
    """Inverse of :func:`depthwise_weight_tiles` (to report the weights as the device holds them)."""
    channels, _, kh, kw = shape
    cpc = pc.channels_per_core
    per_tap = np.zeros((kh * kw, pc.channels_padded), dtype=np.float32)
    for j in range(pc.num_cores_c):
        flat = tiles[j * plan.weight_tiles : (j + 1) * plan.weight_tiles].reshape(-1)
        per_tap[:, j * cpc : (j + 1) * cpc] = flat[: kh * kw * cpc].reshape(kh * kw, cpc)
    return per_tap[:, :channels].T.reshape(channels, 1, kh, kw)


def tiled_weight_tiles(weight: np.ndarray, pc: ParallelConfig, plan: PoolPlan) -> np.ndarray:
    """Per channel shard, the [kh*kw, C_core] weights tilized (taps on rows, 32 per row block):
    tiles [row block][channel tile] in storage order, for the fused multiply + reduce."""
    channels = weight.shape[0]
    taps = plan.window_rows
    rows = -(-taps // TILE) * TILE
    per_tap = np.zeros((rows, pc.channels_padded), dtype=np.float32)
    per_tap[:taps, :channels] = weight.reshape(channels, taps).T
    cpc = pc.channels_per_core
    return np.concatenate([tilize(per_tap[r : r + TILE, j * cpc : (j + 1) * cpc])
                           for j in range(pc.num_cores_c) for r in range(0, rows, TILE)])


def tiled_weights_seen(tiles: np.ndarray, shape: tuple[int, ...], pc: ParallelConfig, plan: PoolPlan) -> np.ndarray:
    """Inverse of :func:`tiled_weight_tiles`."""
    blocks = tiles.reshape(pc.num_cores_c, -1, plan.in_ntiles_c, TILE_ELEMENTS)
    per_tap = np.concatenate([np.concatenate([untilize(block) for block in shard], axis=0) for shard in blocks],
                             axis=1)
    return per_tap[: plan.window_rows, : shape[0]].T.reshape(shape)


def bias_row_tiles(bias: np.ndarray, channels_padded: int) -> np.ndarray:
    """One tile per 32 channels with the bias in row 0 and zeros elsewhere (storage order)."""
    padded = np.zeros(channels_padded, dtype=np.float32)
    padded[: bias.size] = bias
    block = np.zeros((TILE, channels_padded), dtype=np.float32)
    block[0] = padded
    return tilize(block)


@dataclass
class PoolProgram(BuiltConv):
    plan: PoolPlan


def build_pool_program(device: Device, spec: ConvSpec, geom: ConvGeometry, pc: ParallelConfig,
                       halo: list[HaloCoreConfig], halo_buffer: L1Buffer, weight: np.ndarray,
                       bias: np.ndarray | None, cb_pages: dict[str, int] | None = None,
                       options: PoolOptions | None = None) -> PoolProgram:
    """Wire the reader, compute and writer kernels of the pool-based depthwise conv, in the
    factory's phases: plan, weights, output buffers, CBs, compile-time args, runtime args."""
    options = options or PoolOptions()
    plan = PoolPlan.create(geom, pc, options.fused_mul_reduce)
    cores = pc.cores()
    weights = write_weights(device, weight, bias, pc, plan, DataFormat(spec.weights_dtype))
    output = device.allocate_l1_buffer("conv_output", cores, _output_bytes(spec, pc))
    indices = device.allocate_l1_small_buffer("reader_indices", cores, max(4, pc.out_shard * 4))

    program = Program(POOL_OP_CODE)
    table = CBTableBuilder(program, cores, cb_pages or {}, "pool")
    circular_buffers(table, spec, pc, plan, bias is not None, output, indices, halo_buffer, options.dst_batch)
    compile_args = compile_time_args(table, spec, geom, pc, plan, bias is not None)
    compile_args["compute"]["options"] = options.kernel_options()
    create_kernels(program, device, spec, pc, halo, indices, weights, plan, compile_args)
    return PoolProgram(program=program, output=output, output_pc=pc, weights_seen=weights.weights_seen,
                       bias_seen=weights.bias_seen, plan=plan)


def write_weights(device: Device, weight: np.ndarray, bias: np.ndarray | None, pc: ParallelConfig,
                  plan: PoolPlan, wfmt: DataFormat) -> DeviceWeights:
    """Weights phase: per-channel weights in the window layout and bias row tiles, rounded to the
    weights format and written to interleaved DRAM."""
    if plan.fused:
        weight_tiles = round_to_format(tiled_weight_tiles(weight, pc, plan), wfmt)
        weights_seen = tiled_weights_seen(weight_tiles, weight.shape, pc, plan)
    else:
        weight_tiles = round_to_format(depthwise_weight_tiles(weight, pc, plan), wfmt)
        weights_seen = depthwise_weights_from_tiles(weight_tiles, weight.shape, pc, plan)
    weight_buffer = write_dram_tiles(device, "depthwise_weights", weight_tiles, wfmt)
    bias_seen, bias_buffer = None, None
    if bias is not None:
        bias_tiles = round_to_format(bias_row_tiles(bias, pc.channels_padded), wfmt)
        bias_seen = np.concatenate([_row0(tile) for tile in bias_tiles])[: bias.size]
        bias_buffer = write_dram_tiles(device, "depthwise_bias", bias_tiles, wfmt)
    return DeviceWeights(weight_buffer, bias_buffer, weights_seen, bias_seen)


def _output_bytes(spec: ConvSpec, pc: ParallelConfig) -> int:
    """Bytes of one core's output shard: tiles, or bfloat16 row-major sticks."""
    if spec.output_layout == "tile":
        return pc.out_shard * pc.channels_per_core // TILE_ELEMENTS * tile_size_bytes(DataFormat(spec.dtype))
    return pc.out_shard * pc.channels_per_core * 2


def circular_buffers(table: CBTableBuilder, spec: ConvSpec, pc: ParallelConfig, plan: PoolPlan, has_bias: bool,
                     output: L1Buffer, indices: L1Buffer, halo_buffer: L1Buffer, dst_batch: int = 1) -> None:
    """CB phase: every CB of the branch factory with its size, and the requests the kernels make."""
    cpc = pc.channels_per_core
    wfmt, ofmt = DataFormat(spec.weights_dtype), DataFormat(spec.dtype)
    tile_output = spec.output_layout == "tile"
    make = table.add
    make("in_cb", BF16_TILE, 2 * plan.pages_per_stick, DataFormat.BFLOAT16)
    make("mul_cb", BF16_TILE, 0 if plan.fused else 2 * plan.pages_per_stick * dst_batch, DataFormat.BFLOAT16)
    make("weight_cb", tile_size_bytes(wfmt), plan.weight_tiles, wfmt)
    if tile_output:
        make("out_cb", tile_size_bytes(ofmt), _output_bytes(spec, pc) // tile_size_bytes(ofmt), ofmt, output)
    else:
        make("out_cb", cpc * 2, pc.out_shard, DataFormat.BFLOAT16, output)
    make("in_scalar_cb", BF16_TILE, 2, DataFormat.BFLOAT16)
    make("clear_value_cb", BF16_TILE, 1, DataFormat.BFLOAT16)
    if has_bias:
        make("bias_cb", tile_size_bytes(wfmt), plan.in_ntiles_c, wfmt)
    make("in_reader_indices_cb", indices.size_per_core, 1, DataFormat.UINT32, indices)
    if tile_output:
        make("pre_tilize_cb", cpc * 2, TILE, DataFormat.BFLOAT16)
    make("raw_in_cb", cpc * 2, halo_buffer.size_per_core // (cpc * 2), DataFormat.BFLOAT16, halo_buffer)
    table.finish()
    for kernel, name, pages, call in (
            ("reader_pool_2d", "in_cb", plan.pages_per_stick, "cb_reserve_back"),
            ("reader_pool_2d", "weight_cb", plan.weight_tiles, "cb_reserve_back"),
            ("reader_pool_2d", "bias_cb", plan.in_ntiles_c, "cb_reserve_back"),
            ("compute_pool_2d", "mul_cb", plan.pages_per_stick * dst_batch, "cb_reserve_back"),
            ("compute_pool_2d", "pre_tilize_cb", TILE, "cb_wait_front"),
            ("compute_pool_2d", "out_cb", plan.in_ntiles_c if tile_output else 1, "cb_reserve_back")):
        table.request(kernel, name, pages, call)


def compile_time_args(table: CBTableBuilder, spec: ConvSpec, geom: ConvGeometry, pc: ParallelConfig,
                      plan: PoolPlan, has_bias: bool) -> dict[str, dict[str, Any]]:
    """Compile-time argument phase, one set per kernel ("reader", "compute", "writer"), named as
    tt-metal's reader_pool_2d.cpp / compute_pool_2d.cpp name them (docs/compile-time-args.md
    maps each to its C++ index): CB indices, window geometry and tile counts."""
    cb = table.index
    tile_output = spec.output_layout == "tile"
    reader = {
        "in_cb_id": cb.get("in_cb", -1), "in_shard_cb_id": cb.get("raw_in_cb", -1),
        "in_reader_indices_cb_id": cb.get("in_reader_indices_cb", -1), "in_scalar_cb_id_0": cb.get("in_scalar_cb", -1),
        "clear_value_cb_id": cb.get("clear_value_cb", -1), "weight_cb_id": cb.get("weight_cb", -1),
        "bias_cb_id": cb.get("bias_cb", -1),
        "window_h": geom.kh, "window_w": geom.kw, "dilation_h": geom.dh, "dilation_w": geom.dw,
        "in_w_padded": geom.padded_w, "shard_width_bytes": pc.channels_per_core * 2,
        "bias_ntiles": plan.in_ntiles_c if has_bias else 0,
        "in_cb_pages_per_stick": plan.pages_per_stick, "in_cb_num_pages": table.pages("in_cb"),
        "tile_bytes": BF16_TILE, "weight_tiles": plan.weight_tiles,
        "weight_tile_bytes": tile_size_bytes(DataFormat(spec.weights_dtype)),
    }
    compute = {
        "in_ntiles_c": plan.in_ntiles_c, "window_size_hw": plan.window_rows,
        "in_cb_id_0": cb.get("in_cb", -1), "in_scalar_cb_id_0": cb.get("in_scalar_cb", -1), "out_cb_id": cb.get("out_cb", -1),
        "pre_tilize_cb_id": cb.get("pre_tilize_cb", -1), "is_output_tiled": tile_output,
        "weight_cb_id": cb.get("weight_cb", -1), "mul_cb_id": cb.get("mul_cb", -1), "has_bias": has_bias,
        "bias_cb_id": cb.get("bias_cb", -1), "clear_value_cb_id": cb.get("clear_value_cb", -1),
        "in_cb_pages_per_stick": plan.pages_per_stick, "activation": spec.activation,
        "max_tiles_per_reduction": plan.max_tiles_per_reduction, "weight_tiles": plan.weight_tiles,
    }
    writer = {"out_cb_id": cb["out_cb"], "pages_per_group": plan.in_ntiles_c if tile_output else 1}
    return {"reader": reader, "compute": compute, "writer": writer}


def create_kernels(program: Program, device: Device, spec: ConvSpec, pc: ParallelConfig,
                   halo: list[HaloCoreConfig], indices: L1Buffer, weights: DeviceWeights, plan: PoolPlan,
                   compile_args: dict[str, Any]) -> None:
    """Runtime argument phase: semaphores, reader indices in L1, per-core arguments, and the
    reader (BRISC), compute and writer (NCRISC) kernels."""
    cores = pc.cores()
    tile_output = spec.output_layout == "tile"
    sender_sem = program.create_semaphore(cores)
    receiver_sem = program.create_semaphore(cores)
    banks = tuple(b.noc_xy for b in device.dram.banks)
    weight_accessor = TensorAccessor(weights.weights, banks)
    bias_accessor = TensorAccessor(weights.bias, banks) if weights.bias is not None else None
    reader_args, compute_args, writer_args = {}, {}, {}
    for i in range(pc.num_cores_nhw):
        for j in range(pc.num_cores_c):
            xy = pc.core_xy(i, j)
            device.core(xy).l1.write(indices.address(xy), halo[i].reader_indices.astype(np.uint32).view(np.uint8))
            n_out = halo[i].num_outputs
            args = {
                "weight_accessor": weight_accessor, "weight_start_tile": j * plan.weight_tiles,
                "bias_accessor": bias_accessor, "bias_start_tile": j * plan.in_ntiles_c,
                "sender_semaphore": sender_sem, "receiver_semaphore": receiver_sem,
                "num_outputs": n_out,
            }
            args.update(weights_multicast_role(device, pc, i, j))
            reader_args[xy] = args
            compute_args[xy] = {"num_outputs": n_out}
            groups = -(-n_out // TILE) if tile_output else n_out
            writer_args[xy] = {"num_groups": groups}
    program.create_kernel("reader_pool_2d", reader_pool_depthwise, cores, Risc.BRISC, compile_args["reader"],
                          reader_args, noc=0)
    program.create_kernel("compute_pool_2d", compute_pool_depthwise, cores, "compute", compile_args["compute"],
                          compute_args, math_fidelity=spec.math_fidelity)
    program.create_kernel("writer_sharded_output", writer_sharded_output, cores, Risc.NCRISC,
                          compile_args["writer"], writer_args, noc=1)


def report_tensors(setup: ConvSetup, built: PoolProgram) -> ProgramReport:
    """Report phase: the window-layout weights and the bias row tiles as the ops perf report lists
    them, and the plan for ``details``."""
    geom, pc, plan = setup.geom, setup.pc, built.plan
    wfmt = DataFormat(setup.conv.weights_dtype)
    wtile = tile_size_bytes(wfmt)
    rows = plan.weight_tiles // plan.in_ntiles_c * TILE  # per channel shard: [rows, C_core] tiled
    tensors = [TensorDesc((1, 1, rows, pc.channels_padded), (1, 1, geom.kh * geom.kw, geom.channels), "TILE",
                          wfmt.value.upper(), "DEV_0_DRAM_INTERLEAVED", pc.num_cores_c * plan.weight_tiles * wtile)]
    if setup.bias is not None:
        tensors.append(TensorDesc((1, 1, TILE, pc.channels_padded), (1, 1, 1, geom.channels), "TILE",
                                  wfmt.value.upper(), "DEV_0_DRAM_INTERLEAVED", pc.channels_padded // TILE * wtile))
    return ProgramReport(tensors, {"plan": plan})


def _build(setup: ConvSetup, options: PoolOptions) -> PoolProgram:
    return build_pool_program(setup.device, setup.conv, setup.geom, setup.pc, setup.halo, setup.halo_buffer,
                              setup.weight, setup.bias, options.cb_pages(), options)


def _row0(tile: np.ndarray) -> np.ndarray:
    """Row 0 of a tile in storage order (face 0 row 0, face 1 row 0)."""
    return np.concatenate([tile[:16], tile[256:272]])


register(ProgramDefinition(
    name="pool", op_code=POOL_OP_CODE, options_model=PoolOptions, channel_align=TILE,
    build=_build, report=report_tensors,
    description="Conv2dDepthwisePool: the feature branch's pool-based depthwise kernel"))
