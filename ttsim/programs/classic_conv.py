"""Host side of the classic sharded conv2d (``OptimizedConvNew``; tt-metal
``ttnn/cpp/ttnn/operations/conv/conv2d/device/conv2d_op_sharded_program_factory.cpp``).

A depthwise conv reaches this program as a grouped conv: the [C, 1, kh, kw] weights are expanded
to the dense block-diagonal [kh*kw*Cin, Cout] matrix (zeros included) and multiplied out by the
sharded im2col matmul. This module builds that matrix in DRAM (in the weights dtype), the block
configuration, every CB of ``get_cb_info`` with its size, the semaphores and the runtime args of
the activation reader, the weights reader (multicast) and the compute kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ttsim.config import ConvSpec
from ttsim.device.core import Risc
from ttsim.device.device import Device, L1Buffer
from ttsim.errors import L1OverflowError, UnsupportedFunctionality
from ttsim.formats import TILE_ELEMENTS, TILE_W as TILE, DataFormat, pack_tile, round_to_format, tile_positions, \
    tile_size_bytes, tilize, unpack_tile, untilize
from ttsim.host import Program
from ttsim.kernel_api import TensorAccessor
from ttsim.kernels.classic.compute_conv import compute_conv
from ttsim.kernels.classic.conv_act_reader import reader_conv_activations_bs, reader_conv_activations_hs
from ttsim.kernels.classic.conv_weights import conv_weights_mcast
from ttsim.programs.built import BuiltConv, DeviceWeights
from ttsim.programs.conv_blocking import (CLASSIC_CHANNEL_ALIGN, ClassicBlockConfig, ClassicOverrides,
                                          determine_classic_block_config)
from ttsim.programs.cb_table import CBTableBuilder
from ttsim.programs.multicast import weights_multicast_role
from ttsim.programs.options import ClassicOptions
from ttsim.programs.parallel import ParallelConfig
from ttsim.programs.registry import ConvSetup, ProgramDefinition, ProgramReport, register
from ttsim.programs.sliding_window import ConvGeometry, HaloCoreConfig
from ttsim.programs.tensors import write_dram_pages, write_dram_tiles
from ttsim.results import TensorDesc

CLASSIC_OP_CODE = "OptimizedConvNew"
BF16_TILE = tile_size_bytes(DataFormat.BFLOAT16)
L1_ARRAY_BYTES = 64


def weight_rows(c_block: np.ndarray, local: np.ndarray, r: int, s: int, cpc: int, kw: int,
                block: ClassicBlockConfig) -> np.ndarray:
    """K row of input channel (c_block, local) at kernel position (r, s): the im2col column order.

    Inner blocks are (channel block, kernel-row block); inside one, (kernel row, kernel column,
    local input channel), each block padded to ``act_block_w`` tiles.
    """
    rows_per_block = block.kernel_rows_per_block
    inner = (c_block * block.kh_blocks + r // rows_per_block) * block.act_block_w_ntiles * TILE
    return inner + ((r % rows_per_block) * kw + s) * cpc + local


def grouped_weight_positions(channels: int, geom: ConvGeometry, pc: ParallelConfig,
                             block: ClassicBlockConfig) -> tuple[np.ndarray, np.ndarray]:
    """Where the dense [K, N] weight matrix of a depthwise conv (block-diagonal, zero padded)
    holds weight ``[c, 0, r, s]``: K rows (:func:`weight_rows`) and N columns, each [kh, kw, C].

    N columns are output channels padded to whole tiles per output core; every other entry of
    the matrix is zero.
    """
    cpc = pc.channels_per_core
    c = np.arange(channels)
    c_block, local = np.divmod(c, cpc) if pc.layout == "block_sharded" else (np.zeros_like(c), c)
    rows = np.empty((geom.kh, geom.kw, channels), dtype=np.int64)
    for r in range(geom.kh):
        for s in range(geom.kw):
            rows[r, s] = weight_rows(c_block, local, r, s, cpc, geom.kw, block)
    return rows, np.broadcast_to(c, rows.shape)


def grouped_weight_tiles(weight: np.ndarray, geom: ConvGeometry, pc: ParallelConfig,
                         block: ClassicBlockConfig) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The tiles of the dense weight matrix of :func:`grouped_weight_positions` that hold a
    weight (every other tile is all zeros): their ids in row-major tile order (tile id =
    row_tile * width_tiles + col_tile), ascending; their storage-order values, float32
    [tiles, 1024]; and where each weight is among them (row of the tiles and storage index,
    [kh, kw, C] each). Built without the [K, N] matrix, which is mostly zero tiles."""
    rows, cols = grouped_weight_positions(weight.shape[0], geom, pc, block)
    tile_ids, offsets = tile_positions(rows, cols, block.num_cores_c_out * block.weight_block_w_ntiles)
    held, which = np.unique(tile_ids, return_inverse=True)
    which = which.reshape(tile_ids.shape)
    tiles = np.zeros((held.size, TILE_ELEMENTS), dtype=np.float32)
    tiles[which, offsets] = weight[:, 0].transpose(1, 2, 0)
    return held, tiles, (which, offsets)


def tiles_to_matrix(tiles: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Row-major tile order (tile id = row_tile * width_tiles + col_tile), storage-order values
    -> the [rows, cols] matrix."""
    width = cols // TILE
    return np.concatenate([untilize(tiles[r * width : (r + 1) * width]) for r in range(rows // TILE)])


@dataclass
class ClassicProgram(BuiltConv):
    block: ClassicBlockConfig


READER_CB_NAMES = {"act_cb": "ACT", "act_second_reader_cb": "ACT_SECOND_READER", "act_tilized_cb": "ACT_TILIZED",
                   "act_row_major_cb": "ACT_ROW_MAJOR_BFLOAT16", "weights_cb": "WEIGHTS", "bias_cb": "BIAS",
                   "reader_indices_cb": "READER_INDICES", "l1_array_cb": "L1_ARRAY",
                   "act_sharded_cb": "ACT_SHARDED"}
"""The readers' compile-time argument name -> CB name (tt-metal's ``get_cb_info`` names)."""


def _check_weight_block_fits(device: Device, block: ClassicBlockConfig, tile_bytes: int) -> None:
    """Refuse, before the dense weight matrix's DRAM pages are built (they grow with channels
    squared), a conv whose WEIGHTS CB cannot hold even one weight block on a core."""
    need = block.weight_block_num_tiles * tile_bytes
    usable = device.spec.l1.usable_bytes
    if need > usable:
        raise L1OverflowError(
            f"classic: one weight block ({block.weight_block_num_tiles:,} tiles, {need:,} B; the dense "
            f"grouped matmul grows with conv.channels squared) exceeds the {usable:,} B usable L1 per core")


def build_classic_program(device: Device, spec: ConvSpec, geom: ConvGeometry, pc: ParallelConfig,
                          halo: list[HaloCoreConfig], halo_buffer: L1Buffer, weight: np.ndarray,
                          bias: np.ndarray | None, overrides: ClassicOverrides,
                          cb_pages: dict[str, int] | None = None) -> ClassicProgram:
    """Wire the classic conv's kernels for a depthwise conv given as a grouped conv, in the
    factory's phases: block config, weights, output buffers, CBs, compile-time args, runtime args."""
    if spec.output_layout != "tile":
        raise UnsupportedFunctionality("conv.output_layout: the classic program is modelled with tiled output only")
    if pc.layout == "width_sharded":
        raise UnsupportedFunctionality("conv.memory_layout: the classic program supports height_sharded and block_sharded")
    block = determine_classic_block_config(geom, pc, device.spec.arch, overrides)
    _check_weight_block_fits(device, block, tile_size_bytes(DataFormat(spec.weights_dtype)))
    weights = write_weights(device, weight, bias, geom, pc, block, DataFormat(spec.weights_dtype))

    cores = pc.cores()
    wbw = block.weight_block_w_ntiles
    out_pc = replace(pc, num_cores_c=block.num_cores_c_out, channels_per_core=wbw * TILE,
                     channels_padded=block.num_cores_c_out * wbw * TILE)
    output = device.allocate_l1_buffer("conv_output", cores, block.per_core_out_h_ntiles * wbw
                                       * tile_size_bytes(DataFormat(spec.dtype)))
    indices = device.allocate_l1_small_buffer("reader_indices", cores, max(4, pc.out_shard * 4))

    program = Program(CLASSIC_OP_CODE)
    table = CBTableBuilder(program, cores, cb_pages or {}, "classic")
    circular_buffers(table, spec, pc, block, bias is not None, output, indices, halo_buffer)
    compile_args = compile_time_args(table, spec, geom, pc, block, bias is not None)
    create_kernels(program, device, spec, pc, halo, indices, weights, block, compile_args)
    return ClassicProgram(program=program, output=output, output_pc=out_pc, weights_seen=weights.weights_seen,
                          bias_seen=weights.bias_seen, block=block)


def write_weights(device: Device, weight: np.ndarray, bias: np.ndarray | None, geom: ConvGeometry,
                  pc: ParallelConfig, block: ClassicBlockConfig, wfmt: DataFormat) -> DeviceWeights:
    """Weights phase: the dense grouped weight matrix and the bias row, tiled, encoded in the
    weights format and written to interleaved DRAM.

    Only the tiles that hold a weight are encoded (the matrix is mostly zero tiles, whose bytes
    are zeros in every format), and the weights as the device holds them are decoded from those
    bytes (unpacking a tile gives :func:`round_to_format` of its values).
    """
    n_tiles = block.num_cores_c_out * block.weight_block_w_ntiles
    tile_ids, tiles, slots = grouped_weight_tiles(weight, geom, pc, block)
    packed = pack_tile(tiles, wfmt)
    pages = np.zeros((block.k_ntiles * n_tiles, packed.shape[1]), dtype=np.uint8)  # a zero tile's bytes
    pages[tile_ids] = packed
    weights_seen = np.ascontiguousarray(unpack_tile(packed, wfmt)[slots].transpose(2, 0, 1))[:, None]
    weight_buffer = write_dram_pages(device, "grouped_conv_weights", pages)
    bias_seen, bias_buffer = None, None
    if bias is not None:
        row = np.zeros((TILE, n_tiles * TILE), dtype=np.float32)
        row[0, : bias.size] = bias
        bias_tiles = round_to_format(tilize(row), wfmt)
        bias_seen = tiles_to_matrix(bias_tiles, TILE, n_tiles * TILE)[0, : bias.size]
        bias_buffer = write_dram_tiles(device, "conv_bias", bias_tiles, wfmt)
    return DeviceWeights(weight_buffer, bias_buffer, weights_seen, bias_seen)


def circular_buffers(table: CBTableBuilder, spec: ConvSpec, pc: ParallelConfig, block: ClassicBlockConfig,
                     has_bias: bool, output: L1Buffer, indices: L1Buffer, halo_buffer: L1Buffer) -> None:
    """CB phase: every CB of ``get_cb_info`` with its size, and the requests the kernels make."""
    block_sharded = pc.layout == "block_sharded"
    wfmt, ofmt = DataFormat(spec.weights_dtype), DataFormat(spec.dtype)
    wtile, otile = tile_size_bytes(wfmt), tile_size_bytes(ofmt)
    wbw = block.weight_block_w_ntiles
    out_tiles = block.per_core_out_h_ntiles * wbw
    reader0_rows = _reader0_rows(block)
    act_buffers = 2 if block.enable_act_double_buffer else 1
    if not block_sharded and block.num_blocks_act_h > 1:
        weight_blocks = block.kh_blocks  # fully buffered: read once, re-pushed for later act blocks
    else:
        weight_blocks = 2 if block.enable_weights_double_buffer else 1
    act_w = block.act_block_w_ntiles
    make = table.add
    make("WEIGHTS", wtile, block.weight_block_num_tiles * weight_blocks, wfmt)
    make("MATMUL_PARTIALS", otile, out_tiles, ofmt, output)
    if block_sharded:
        make("ACT", otile, block.act_block_num_tiles * act_buffers, ofmt)
    else:
        make("ACT", BF16_TILE, reader0_rows * act_w * act_buffers, DataFormat.BFLOAT16)
        second = (block.act_block_h_ntiles - reader0_rows) if block.split_reader else 0
        make("ACT_SECOND_READER", BF16_TILE, second * act_w * act_buffers, DataFormat.BFLOAT16)
    make("ACT_TILIZED", otile, block.act_block_num_tiles, ofmt)
    if has_bias:
        make("BIAS", wtile, wbw, wfmt)
    if block_sharded:
        make("ACT_ROW_MAJOR_BFLOAT16", BF16_TILE, block.act_block_num_tiles, DataFormat.BFLOAT16)
    make("OUT", otile, out_tiles, ofmt, output)
    make("READER_INDICES", indices.size_per_core, 1, DataFormat.UINT32, indices)
    make("L1_ARRAY", L1_ARRAY_BYTES, 1, DataFormat.UINT32)
    make("ACT_SHARDED", pc.channels_per_core * 2, halo_buffer.size_per_core // (pc.channels_per_core * 2),
         DataFormat.BFLOAT16, halo_buffer)
    table.finish()
    sub_tiles = block.out_subblock_h_ntiles * block.out_subblock_w_ntiles
    act_second_rows = block.act_block_h_ntiles - reader0_rows
    for kernel, name, pages, call in (
            ("reader_conv_activations", "ACT", (block.act_block_num_tiles if block_sharded else reader0_rows * act_w),
             "cb_reserve_back"),
            ("conv_weights_mcast", "ACT_SECOND_READER", act_second_rows * act_w, "cb_reserve_back"),
            ("conv_weights_mcast", "WEIGHTS", block.weight_block_num_tiles, "cb_reserve_back"),
            ("conv_weights_mcast", "BIAS", wbw, "cb_reserve_back"),
            ("reader_conv_activations", "ACT_ROW_MAJOR_BFLOAT16", block.act_block_num_tiles, "cb_reserve_back"),
            ("conv_bmm_tilize", "ACT_TILIZED", block.act_block_num_tiles, "cb_wait_front"),
            ("conv_bmm_tilize", "MATMUL_PARTIALS", sub_tiles, "cb_reserve_back")):
        table.request(kernel, name, pages, call)


def compile_time_args(table: CBTableBuilder, spec: ConvSpec, geom: ConvGeometry, pc: ParallelConfig,
                      block: ClassicBlockConfig, has_bias: bool) -> dict[str, dict[str, Any]]:
    """Compile-time argument phase, per kernel: "readers" (the activation and weights readers share
    one set, in ttsim's names; docs/compile-time-args.md) and "compute" (named as tt-metal's
    conv_bmm_tilize.cpp names them; docs/compile-time-args.md maps each to its C++ index)."""
    block_sharded = pc.layout == "block_sharded"
    wbw = block.weight_block_w_ntiles
    cb = table.index
    readers = {
        **{key: cb.get(name, -1) for key, name in READER_CB_NAMES.items()},
        "kernel": (geom.kh, geom.kw), "dilation": (geom.dh, geom.dw), "padded_width": geom.padded_w,
        "kernel_rows_per_block": block.kernel_rows_per_block,
        "stick_bytes": pc.channels_per_core * 2,
        "act_block_w_extra_align_bytes": block.act_block_w_extra_align_bytes,
        "act_block_h_ntiles": block.act_block_h_ntiles, "act_block_w_ntiles": block.act_block_w_ntiles,
        "weight_block_h_ntiles": block.weight_block_h_ntiles, "weight_block_w_ntiles": wbw,
        "weight_matrix_width_ntiles": block.num_cores_c_out * wbw,
        "weight_tile_bytes": tile_size_bytes(DataFormat(spec.weights_dtype)),
        "num_blocks_act_h": block.num_blocks_act_h, "conv_act_c_blocks": block.conv_act_c_blocks,
        "reader0_rows_ntiles": _reader0_rows(block), "split_reader": block.split_reader,
        "weights_fully_buffered": (not block_sharded and block.num_blocks_act_h > 1
                                   and table.pages("WEIGHTS") == block.kh_blocks * block.weight_block_num_tiles),
        "has_bias": has_bias, "act_tilized_tile_bytes": tile_size_bytes(DataFormat(spec.dtype)),
    }
    compute = {
        "in0_block_w": block.act_block_w_ntiles,
        "in0_num_subblocks": block.act_block_h_ntiles // block.out_subblock_h_ntiles,
        "reader_num_h_subblocks": block.act_block_h_ntiles, "in1_block_w": wbw,
        "in0_num_blocks_h": block.num_blocks_act_h,
        "in0_num_blocks_w": geom.kh // block.kernel_rows_per_block * block.conv_act_c_blocks,
        "out_subblock_h": block.out_subblock_h_ntiles, "out_subblock_w": block.out_subblock_w_ntiles,
        "height_sharded": not block_sharded, "bias_cb_id": cb.get("BIAS", -1),
        "in0_cb_id": cb.get("ACT", -1), "in1_cb_id": cb.get("WEIGHTS", -1),
        "in0_pretilize_cb_id": cb.get("ACT_ROW_MAJOR_BFLOAT16", -1),
        "in0_cb_second_reader_id": cb.get("ACT_SECOND_READER", -1),
        "matmul_partials_cb": cb.get("MATMUL_PARTIALS", -1), "tilized_in0_cb_id": cb.get("ACT_TILIZED", -1),
        "out_cb_id": cb.get("OUT", -1), "in0_nblocks_w_tilize": block.conv_act_c_blocks,
        "pack_relu": spec.activation == "relu", "fuse_bias": has_bias,
        "split_reader": block.split_reader, "activation": spec.activation,
    }
    return {"readers": readers, "compute": compute}


def create_kernels(program: Program, device: Device, spec: ConvSpec, pc: ParallelConfig,
                   halo: list[HaloCoreConfig], indices: L1Buffer, weights: DeviceWeights,
                   block: ClassicBlockConfig, compile_args: dict[str, Any]) -> None:
    """Runtime argument phase: semaphores, reader indices in L1, per-core arguments, and the
    activation reader (NCRISC), weights multicast reader (BRISC) and compute kernels."""
    cores = pc.cores()
    block_sharded = pc.layout == "block_sharded"
    weights_sender = program.create_semaphore(cores)
    weights_receiver = program.create_semaphore(cores)
    act_sender = program.create_semaphore(cores)
    act_receiver = program.create_semaphore(cores)
    banks = tuple(b.noc_xy for b in device.dram.banks)
    weight_accessor = TensorAccessor(weights.weights, banks)
    bias_accessor = TensorAccessor(weights.bias, banks) if weights.bias is not None else None
    reader_args, weight_args, compute_args = {}, {}, {}
    weight_cores = []
    for i in range(pc.num_cores_nhw):
        for j in range(pc.num_cores_c):
            xy = pc.core_xy(i, j)
            device.core(xy).l1.write(indices.address(xy), halo[i].reader_indices.astype(np.uint32).view(np.uint8))
            n_out = halo[i].num_outputs
            reader_args[xy] = {"num_outputs": n_out, "c_index": j,
                               "row_noc_xy": [device.worker_core(pc.core_xy(i, c)) for c in range(pc.num_cores_c)],
                               "act_sender_semaphore": act_sender, "act_receiver_semaphore": act_receiver}
            computes = not block_sharded or j < block.num_cores_c_out
            compute_args[xy] = {"skip_compute": not computes}
            if computes:
                weight_cores.append(xy)
                weight_args[xy] = {"num_outputs": n_out, "weight_accessor": weight_accessor,
                                   "bias_accessor": bias_accessor,
                                   "weight_column": j if block_sharded else 0,
                                   "weights_sender_semaphore": weights_sender,
                                   "weights_receiver_semaphore": weights_receiver,
                                   **weights_multicast_role(device, pc, i, j)}
    reader = reader_conv_activations_bs if block_sharded else reader_conv_activations_hs
    program.create_kernel("reader_conv_activations", reader, cores, Risc.NCRISC, compile_args["readers"],
                          reader_args, noc=1)
    program.create_kernel("conv_weights_mcast", conv_weights_mcast, weight_cores, Risc.BRISC, compile_args["readers"],
                          weight_args, noc=0)
    program.create_kernel("conv_bmm_tilize", compute_conv, cores, "compute", compile_args["compute"], compute_args,
                          math_fidelity=spec.math_fidelity)


def report_tensors(setup: ConvSetup, built: ClassicProgram) -> ProgramReport:
    """Report phase: the weight matrix and bias row as the ops perf report lists them, and the
    block config for ``details``."""
    geom, block = setup.geom, built.block
    wfmt = DataFormat(setup.conv.weights_dtype)
    wtile = tile_size_bytes(wfmt)
    n_tiles = block.num_cores_c_out * block.weight_block_w_ntiles
    k_rows, n_cols = block.k_ntiles * TILE, n_tiles * TILE
    tensors = [TensorDesc((1, 1, k_rows, n_cols), (1, 1, geom.kh * geom.kw * geom.channels, geom.channels),
                          "TILE", wfmt.value.upper(), "DEV_0_DRAM_INTERLEAVED", k_rows * n_cols // 1024 * wtile)]
    if setup.bias is not None:
        tensors.append(TensorDesc((1, 1, TILE, n_tiles * TILE), (1, 1, 1, geom.channels), "TILE",
                                  wfmt.value.upper(), "DEV_0_DRAM_INTERLEAVED", n_tiles * wtile))
    return ProgramReport(tensors, {"block_config": block})


def _build(setup: ConvSetup, options: ClassicOptions) -> ClassicProgram:
    return build_classic_program(setup.device, setup.conv, setup.geom, setup.pc, setup.halo, setup.halo_buffer,
                                 setup.weight, setup.bias, ClassicOverrides.from_options(options),
                                 options.cb_pages())


def _reader0_rows(block: ClassicBlockConfig) -> int:
    """Act block rows (tiles) the first reader fills: half (rounded up) with the split reader."""
    return -(-block.act_block_h_ntiles // 2) if block.split_reader else block.act_block_h_ntiles


register(ProgramDefinition(
    name="classic", op_code=CLASSIC_OP_CODE, options_model=ClassicOptions, channel_align=CLASSIC_CHANNEL_ALIGN,
    build=_build, report=report_tensors,
    description="OptimizedConvNew: the depthwise conv as a grouped conv, a dense im2col matmul",
    split_runs=False))  # weights multicast per block: a split would come near the end (bench/README.md)
