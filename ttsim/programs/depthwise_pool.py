"""Host side of the pool-based depthwise conv2d (``Conv2dDepthwiseProgramFactory``, tt-programs.md §6).

Builds, from an op config: the core grid and shards (``determine_parallel_config`` with 32-channel
alignment), the per-channel weights in DRAM in the layout the reader's window uses, the bias
tiles, every CB of the branch factory with its size, the multicast semaphores and the runtime
arguments of the reader, compute and writer kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttsim.config import ConvSpec, PoolOptions
from ttsim.device.core import Risc
from ttsim.device.device import Device, L1Buffer
from ttsim.formats import DataFormat, round_to_format, tile_size_bytes, tilize, untilize
from ttsim.host import Program
from ttsim.kernel_api import TensorAccessor
from ttsim.kernels.compute_pool import compute_pool_depthwise
from ttsim.kernels.reader import reader_pool_depthwise
from ttsim.kernels.writer import writer_sharded_output
from ttsim.programs.built import BuiltConv
from ttsim.programs.cb_table import CBTableBuilder
from ttsim.programs.multicast import weights_multicast_role
from ttsim.programs.parallel import ParallelConfig
from ttsim.programs.sliding_window import ConvGeometry, HaloCoreConfig
from ttsim.programs.tensors import TensorDesc, write_dram_tiles

POOL_OP_CODE = "Conv2dDepthwisePool"
TILE = 32
TILE_ELEMENTS = 1024
BF16_TILE = 2048


@dataclass(frozen=True)
class PoolPlan:
    """The factory's derived sizes for one conv (what tt-metal logs at program creation)."""

    in_ntiles_c: int
    pages_per_stick: int
    """E: 1024-element pages holding one flattened window [kh*kw, C_core]."""
    weight_tiles: int
    window_rows: int
    max_tiles_per_reduction: int

    @classmethod
    def create(cls, geom: ConvGeometry, pc: ParallelConfig) -> PoolPlan:
        in_ntiles_c = pc.channels_per_core // TILE
        window = geom.kh * geom.kw
        pages = -(-window * pc.channels_per_core // TILE_ELEMENTS)
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


def tiled_weight_tiles(weight: np.ndarray, pc: ParallelConfig, geom: ConvGeometry) -> np.ndarray:
    """Per channel shard, the [kh*kw, C_core] weights tilized (taps on rows, 32 per row block):
    tiles [row block][channel tile] in storage order, for the fused multiply + reduce."""
    channels = weight.shape[0]
    taps = geom.kh * geom.kw
    rows = -(-taps // TILE) * TILE
    per_tap = np.zeros((rows, pc.channels_padded), dtype=np.float32)
    per_tap[:taps, :channels] = weight.reshape(channels, taps).T
    cpc = pc.channels_per_core
    shards = [tilize(per_tap[r : r + TILE, j * cpc : (j + 1) * cpc])
              for j in range(pc.num_cores_c) for r in range(0, rows, TILE)]
    return np.concatenate(shards)


def tiled_weights_seen(tiles: np.ndarray, shape: tuple[int, ...], pc: ParallelConfig,
                       geom: ConvGeometry) -> np.ndarray:
    """Inverse of :func:`tiled_weight_tiles`."""
    channels = shape[0]
    taps = geom.kh * geom.kw
    ct = pc.channels_per_core // TILE
    blocks = tiles.reshape(pc.num_cores_c, -1, ct, TILE_ELEMENTS)
    per_tap = np.concatenate([np.concatenate([untilize(block) for block in shard], axis=0) for shard in blocks],
                             axis=1)
    return per_tap[:taps, :channels].T.reshape(shape)


def build_pool_program(device: Device, spec: ConvSpec, geom: ConvGeometry, pc: ParallelConfig,
                       halo: list[HaloCoreConfig], halo_buffer: L1Buffer, weight: np.ndarray,
                       bias: np.ndarray | None, cb_pages: dict[str, int] | None = None,
                       options: PoolOptions | None = None) -> PoolProgram:
    """Wire the reader, compute and writer kernels of the pool-based depthwise conv."""
    options = options or PoolOptions()
    plan = PoolPlan.create(geom, pc)
    cores = pc.cores()
    cpc = pc.channels_per_core
    wfmt = DataFormat(spec.weights_dtype)
    ofmt = DataFormat(spec.dtype)
    tile_output = spec.output_layout == "tile"
    wtile = tile_size_bytes(wfmt)

    if options.fused_mul_reduce:
        weight_tiles = round_to_format(tiled_weight_tiles(weight, pc, geom), wfmt)
        weights_seen = tiled_weights_seen(weight_tiles, weight.shape, pc, geom)
    else:
        weight_tiles = round_to_format(depthwise_weight_tiles(weight, pc, plan), wfmt)
        weights_seen = depthwise_weights_from_tiles(weight_tiles, weight.shape, pc, plan)
    tiles_per_shard = weight_tiles.shape[0] // pc.num_cores_c
    weight_buffer = write_dram_tiles(device, "depthwise_weights", weight_tiles, wfmt)
    bias_seen = None
    bias_buffer = None
    if bias is not None:
        bias_tiles = round_to_format(bias_row_tiles(bias, pc.channels_padded), wfmt)
        bias_seen = np.concatenate([_row0(tile) for tile in bias_tiles])[: bias.size]
        bias_buffer = write_dram_tiles(device, "depthwise_bias", bias_tiles, wfmt)
    banks = tuple(b.noc_xy for b in device.dram.banks)

    if tile_output:
        out_bytes = pc.out_shard * cpc // TILE_ELEMENTS * tile_size_bytes(ofmt)
    else:
        out_bytes = pc.out_shard * cpc * 2
    output = device.allocate_l1_buffer("conv_output", cores, out_bytes)
    indices = device.allocate_l1_small_buffer("reader_indices", cores, max(4, pc.out_shard * 4))

    program = Program(POOL_OP_CODE)
    table = CBTableBuilder(program, cores, cb_pages or {}, "pool")
    make = table.add
    make("in_cb", BF16_TILE, 2 * plan.pages_per_stick, DataFormat.BFLOAT16)
    make("mul_cb", BF16_TILE, 0 if options.fused_mul_reduce else 2 * plan.pages_per_stick * options.dst_batch,
         DataFormat.BFLOAT16)
    make("weight_cb", wtile, tiles_per_shard, wfmt)
    if tile_output:
        make("out_cb", tile_size_bytes(ofmt), out_bytes // tile_size_bytes(ofmt), ofmt, output)
    else:
        make("out_cb", cpc * 2, pc.out_shard, DataFormat.BFLOAT16, output)
    make("in_scalar_cb", BF16_TILE, 2, DataFormat.BFLOAT16)
    make("clear_value_cb", BF16_TILE, 1, DataFormat.BFLOAT16)
    if bias is not None:
        make("bias_cb", wtile, plan.in_ntiles_c, wfmt)
    make("in_reader_indices_cb", indices.size_per_core, 1, DataFormat.UINT32, indices)
    if tile_output:
        make("pre_tilize_cb", cpc * 2, TILE, DataFormat.BFLOAT16)
    make("raw_in_cb", cpc * 2, halo_buffer.size_per_core // (cpc * 2), DataFormat.BFLOAT16, halo_buffer)
    cb = table.finish()
    for kernel, name, pages, call in (
            ("reader_pool_2d", "in_cb", plan.pages_per_stick, "cb_reserve_back"),
            ("reader_pool_2d", "weight_cb", tiles_per_shard, "cb_reserve_back"),
            ("reader_pool_2d", "bias_cb", plan.in_ntiles_c, "cb_reserve_back"),
            ("compute_pool_2d", "mul_cb", plan.pages_per_stick * options.dst_batch, "cb_reserve_back"),
            ("compute_pool_2d", "pre_tilize_cb", TILE, "cb_wait_front"),
            ("compute_pool_2d", "out_cb", plan.in_ntiles_c if tile_output else 1, "cb_reserve_back")):
        table.request(kernel, name, pages, call)

    sender_sem = program.create_semaphore(cores)
    receiver_sem = program.create_semaphore(cores)

    compile_args = {
        **{f"{name}": cb.get(name, -1) for name in (
            "in_cb", "mul_cb", "weight_cb", "bias_cb", "out_cb", "in_scalar_cb", "clear_value_cb",
            "in_reader_indices_cb", "pre_tilize_cb", "raw_in_cb")},
        "in_cb_pages_per_stick": plan.pages_per_stick,
        "in_cb_num_pages": table.pages("in_cb"),
        "tile_bytes": BF16_TILE,
        "kernel": (geom.kh, geom.kw),
        "dilation": (geom.dh, geom.dw),
        "padded_width": geom.padded_w,
        "stick_bytes": cpc * 2,
        "weight_tiles": tiles_per_shard,
        "weight_tile_bytes": wtile,
        "bias_tiles": plan.in_ntiles_c if bias is not None else 0,
        "in_ntiles_c": plan.in_ntiles_c,
        "window_rows": plan.window_rows,
        "has_bias": bias is not None,
        "activation": spec.activation,
        "tile_output": tile_output,
        "max_tiles_per_reduction": plan.max_tiles_per_reduction,
        "options": {"sfpu_valid_row": options.sfpu_valid_row, "packer_relu": options.packer_relu,
                    "dst_batch": options.dst_batch, "fused_mul_reduce": options.fused_mul_reduce,
                    "minimal_reconfig": options.minimal_reconfig},
    }
    reader_args, compute_args, writer_args = {}, {}, {}
    weights = TensorAccessor(weight_buffer, banks)
    biases = TensorAccessor(bias_buffer, banks) if bias_buffer is not None else None
    for i in range(pc.num_cores_nhw):
        for j in range(pc.num_cores_c):
            xy = pc.core_xy(i, j)
            device.core(xy).l1.write(indices.address(xy), halo[i].reader_indices.astype(np.uint32).view(np.uint8))
            n_out = halo[i].num_outputs
            args = {
                "weight_accessor": weights, "weight_start_tile": j * tiles_per_shard,
                "bias_accessor": biases, "bias_start_tile": j * plan.in_ntiles_c,
                "sender_semaphore": sender_sem, "receiver_semaphore": receiver_sem,
                "num_outputs": n_out,
            }
            args.update(weights_multicast_role(device, pc, i, j))
            reader_args[xy] = args
            compute_args[xy] = {"num_outputs": n_out}
            groups = -(-n_out // TILE) if tile_output else n_out
            writer_args[xy] = {"num_groups": groups}
    program.create_kernel("reader_pool_2d", reader_pool_depthwise, cores, Risc.BRISC, compile_args,
                          reader_args, noc=0)
    program.create_kernel("compute_pool_2d", compute_pool_depthwise, cores, "compute", compile_args,
                          compute_args, math_fidelity=spec.math_fidelity)
    program.create_kernel("writer_sharded_output", writer_sharded_output, cores, Risc.NCRISC,
                          {"out_cb": cb["out_cb"],
                           "pages_per_group": plan.in_ntiles_c if tile_output else 1},
                          writer_args, noc=1)
    rows = plan.weight_tiles // plan.in_ntiles_c * TILE  # per channel shard: [rows, C_core] tiled
    weights_tensor = TensorDesc((1, 1, rows, pc.channels_padded), (1, 1, geom.kh * geom.kw, geom.channels),
                                "TILE", wfmt.value.upper(), "DEV_0_DRAM_INTERLEAVED", weight_tiles.shape[0] * wtile)
    bias_tensor = (TensorDesc((1, 1, TILE, pc.channels_padded), (1, 1, 1, geom.channels), "TILE",
                              wfmt.value.upper(), "DEV_0_DRAM_INTERLEAVED", pc.channels_padded // TILE * wtile)
                   if bias is not None else None)
    sources = {"compute": "ttsim/kernels/compute_pool.py",
               "data_movement": "ttsim/kernels/reader.py; ttsim/kernels/writer.py"}
    return PoolProgram(program=program, output=output, output_pc=pc, weights_seen=weights_seen,
                       bias_seen=bias_seen, weights_tensor=weights_tensor, bias_tensor=bias_tensor,
                       kernel_sources=sources, plan=plan)


def _row0(tile: np.ndarray) -> np.ndarray:
    """Row 0 of a tile in storage order (face 0 row 0, face 1 row 0)."""
    return np.concatenate([tile[:16], tile[256:272]])
