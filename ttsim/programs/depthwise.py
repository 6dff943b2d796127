"""Host side of the depthwise program (docs/depthwise.md): groups == channels, 32 output sticks
per DST block, every tap accumulated in DST, bias and activation once per output block.

Builds, from an op config: the core grid and shards (``determine_parallel_config`` with the
32-channel alignment the pool program uses), the per-tap weight pages in DRAM with the bias
pages as one more tap, every CB, the per-group gather segments of the readers, the multicast
semaphores and the runtime arguments. Same call signature as ``build_pool_program``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttsim.config import ConvSpec
from ttsim.device.core import Risc
from ttsim.device.device import Device, L1Buffer
from ttsim.errors import ConfigurationError
from ttsim.formats import DataFormat, pack_tile, round_to_format, tile_size_bytes, tilize
from ttsim.host import Program
from ttsim.kernel_api import TensorAccessor
from ttsim.kernels.depthwise_compute import compute_depthwise
from ttsim.kernels.depthwise_reader import reader_depthwise
from ttsim.programs.built import BuiltConv
from ttsim.programs.cb_table import CBTableBuilder
from ttsim.programs.multicast import weights_multicast_role
from ttsim.programs.options import DepthwiseOptions
from ttsim.programs.parallel import ParallelConfig
from ttsim.programs.registry import ConvSetup, ProgramDefinition, ProgramReport, register
from ttsim.programs.sliding_window import ConvGeometry, HaloCoreConfig
from ttsim.results import TensorDesc

DEPTHWISE_OP_CODE = "Conv2dDepthwise"
GROUP = 32
"""Output sticks per DST block (one tile row of the output)."""
TILIZE_LAG = 2
"""Groups between packing a group's row-major sticks and tilizing them (so the tilize never
waits for the pack thread's SFPU work of the group just multiplied)."""
TILIZE_BATCH_GROUPS = 8
TILIZE_BATCH_BYTES = 80 * 1024
"""Groups tilized under one tilize_init / tilize_uninit: up to 8, at most 80 KiB of row-major
sticks (rm_cb holds two batches); the reconfigurations and, with the bias, the bias tiles'
unpack are shared by the batch."""
WINDOW_WAIT_TAPS = 3
"""A reader's taps the compute waits for with one cb_wait_front (fewer CB checks per group
while still starting on a group before its last tap is gathered)."""
PAGE_ELEMENTS = 1024
BF16_PAGE = 2048
SRCB_ROWS = 64
"""Rows of 16 datums in one SrcB bank (tt-isa-documentation WormholeB0 SrcASrcB.md)."""


@dataclass(frozen=True)
class DepthwisePlan:
    """Derived sizes of one conv (what the factory would log)."""

    pages: int
    """Pages of 1024 values per 32-stick block (C_core / 32)."""
    taps: int
    readers: int
    tap_tiles: int
    """Weight pages per tap in DRAM and L1: C_core / 32, or 1 with the custom LLK."""
    groups_per_core: int


def block_pattern(values: np.ndarray) -> np.ndarray:
    """Per-channel ``values`` [..., C_core] repeated over the 32 sticks of a block, cut into
    pages of 1024 values: [..., C_core / 32, 1024] (the row-major block the window pages hold)."""
    block = np.repeat(values[..., None, :], GROUP, axis=-2)
    return block.reshape(*values.shape[:-1], -1, PAGE_ELEMENTS)


def group_segments(reader_indices: np.ndarray, num_outputs: int) -> list[tuple[tuple[int, int, int], ...]]:
    """Per group of 32 output sticks: (row in the block, window top-left, sticks) runs of
    consecutive top-lefts, each one NoC read per tap.

    A run starts at every group's first stick and wherever a top-left is not its predecessor's
    plus one; the starts are found for the whole core at once (a few numpy calls, not a few per
    group)."""
    tops = reader_indices[:num_outputs].astype(np.int64)
    first = np.ones(tops.size, dtype=bool)
    first[1:] = np.diff(tops) != 1
    first[::GROUP] = True
    starts = np.flatnonzero(first)
    lengths = np.diff(starts, append=tops.size)
    groups: list[list[tuple[int, int, int]]] = []
    for start, top, length in zip(starts.tolist(), tops[starts].tolist(), lengths.tolist()):
        row = start % GROUP
        if row == 0:
            groups.append([])
        groups[-1].append((row, top, length))
    return [tuple(group) for group in groups]


def bias_in_tilize(spec: ConvSpec, options: DepthwiseOptions) -> bool:
    """Whether the compute adds the bias in the output tilize (tile output, no SFPU activation
    after the bias); the bias pages are then row-broadcast tiles."""
    sfpu = spec.activation not in ("none", "relu", "relu6") or (
        spec.activation != "none" and not options.packer_relu)
    return spec.bias and spec.output_layout == "tile" and not sfpu


@dataclass
class DepthwiseProgram(BuiltConv):
    plan: DepthwisePlan


def build_depthwise_program(device: Device, spec: ConvSpec, geom: ConvGeometry, pc: ParallelConfig,
                            halo: list[HaloCoreConfig], halo_buffer: L1Buffer, weight: np.ndarray,
                            bias: np.ndarray | None, cb_pages: dict[str, int] | None = None,
                            options: DepthwiseOptions | None = None) -> DepthwiseProgram:
    """Wire the reader(s) and the compute kernel of the depthwise program."""
    options = options or DepthwiseOptions()
    cores = pc.cores()
    cpc = pc.channels_per_core
    if options.srcb_reuse and cpc // 16 + 8 > SRCB_ROWS:
        raise ConfigurationError(
            f"depthwise.srcb_reuse: {cpc} channels per core repeat every {cpc // 16} face rows; one SrcB "
            f"bank holds {SRCB_ROWS} rows, so at most {(SRCB_ROWS - 8) * 16} channels per core")
    pages = cpc // GROUP
    taps = geom.kh * geom.kw
    readers = 2 if options.split_reader else 1
    dst_tiles = device.spec.compute.dst_tiles_per_half.value
    tap_tiles = 1 if options.srcb_reuse else pages
    plan = DepthwisePlan(pages, taps, readers, tap_tiles, pc.out_shard // GROUP)
    wfmt, ofmt = DataFormat(spec.weights_dtype), DataFormat(spec.dtype)
    tile_output = spec.output_layout == "tile"
    wtile = tile_size_bytes(wfmt)
    tilize_groups = max(TILIZE_LAG, min(TILIZE_BATCH_GROUPS, TILIZE_BATCH_BYTES // (pages * BF16_PAGE)))

    # weights: per channel shard, tap-major pages [taps (+ the bias), pages, 1024]
    channels, _, kh, kw = weight.shape
    rows = taps + (bias is not None)  # the bias rides in the weight stream as one more "tap"
    per_tap = np.zeros((rows, pc.channels_padded), dtype=np.float32)
    per_tap[:taps, :channels] = weight.reshape(channels, taps).T
    if bias is not None:
        per_tap[taps, :channels] = bias
    shards = per_tap.reshape(rows, pc.num_cores_c, cpc).transpose(1, 0, 2)
    blocks = block_pattern(shards)  # [shards, rows, pages, 1024]
    weight_pages = round_to_format(blocks.reshape(-1, PAGE_ELEMENTS), wfmt)
    seen = weight_pages.reshape(pc.num_cores_c, rows, pages * PAGE_ELEMENTS)[:, :, :cpc]
    seen = seen.transpose(1, 0, 2).reshape(rows, -1)[:, :channels]
    weights_seen = seen[:taps].T.reshape(channels, 1, kh, kw)
    bias_seen = seen[taps].copy() if bias is not None else None
    if bias is not None and bias_in_tilize(spec, options):
        # the bias as row-broadcast tiles (tile t: channels 32t..32t+31 on every row) for the
        # tilize; a face row holds 16 consecutive channels as the row-major pattern does, so a
        # bfloat8_b block shares its exponent with the same 16 values (the same bias_seen)
        for j in range(pc.num_cores_c):
            blocks[j, taps] = tilize(np.ascontiguousarray(np.broadcast_to(shards[j, taps], (GROUP, cpc))))
        weight_pages = round_to_format(blocks.reshape(-1, PAGE_ELEMENTS), wfmt)
    # one DRAM page per channel shard: every tap's pages then the bias pages, read with one NoC read
    # (one interleaved address, not one per tap). With the custom LLK a tap is its first page only:
    # the SrcB rows it holds serve every page of the block (mul_tiles_srcb_held)
    stream = weight_pages.reshape(pc.num_cores_c, rows, pages, PAGE_ELEMENTS)
    stream = np.concatenate([stream[:, :taps, :tap_tiles].reshape(pc.num_cores_c, -1, PAGE_ELEMENTS),
                             stream[:, taps:].reshape(pc.num_cores_c, -1, PAGE_ELEMENTS)], axis=1)
    weight_tiles = stream.shape[1]
    shard_bytes = weight_tiles * wtile
    weight_buffer = device.dram.allocate_interleaved("depthwise_weights", shard_bytes, pc.num_cores_c)
    device.dram.write_pages(weight_buffer, pack_tile(stream.reshape(-1, PAGE_ELEMENTS), wfmt).reshape(-1, shard_bytes))
    banks = tuple(b.noc_xy for b in device.dram.banks)

    out_page = tile_size_bytes(ofmt) if tile_output else BF16_PAGE
    out_pages = pc.out_shard * cpc // PAGE_ELEMENTS
    output = device.allocate_l1_buffer("conv_output", cores, out_pages * out_page)

    program = Program(DEPTHWISE_OP_CODE)
    table = CBTableBuilder(program, cores, cb_pages or {}, "depthwise")
    slots = -(-taps // readers)  # taps per reader and group (the readers alternate an odd one out)
    taps_in = [slots] * readers
    win_names = [f"win_cb{k}" for k in range(readers)]
    for name, count in zip(win_names, taps_in):
        table.add(name, BF16_PAGE, 2 * pages * count, DataFormat.BFLOAT16)  # two groups of taps
    table.add("weight_cb", wtile, weight_tiles, wfmt)
    if tile_output:
        # two whole tilize batches (TILIZE_LAG <= a batch): a batch never wraps around the CB
        table.add("rm_cb", BF16_PAGE, 2 * tilize_groups * pages, DataFormat.BFLOAT16)
    table.add("out_cb", out_page, out_pages, ofmt if tile_output else DataFormat.BFLOAT16, output)
    table.add("raw_in_cb", cpc * 2, halo_buffer.size_per_core // (cpc * 2), DataFormat.BFLOAT16, halo_buffer)
    cb = table.finish()
    reader_names = ["reader_depthwise_0", "reader_depthwise_1"][:readers]
    for reader, name, count in zip(reader_names, win_names, taps_in):
        table.request(reader, name, pages * count, "cb_reserve_back")
        table.request("compute_depthwise", name, pages * count, "cb_wait_front")
    table.request("reader_depthwise_0", "weight_cb", weight_tiles, "cb_reserve_back")
    if tile_output:
        table.request("compute_depthwise", "rm_cb", tilize_groups * pages, "cb_wait_front")
        table.request("compute_depthwise", "out_cb", pages, "cb_reserve_back")

    sender_sem = program.create_semaphore(cores)
    receiver_sem = program.create_semaphore(cores)
    stick_bytes = cpc * 2
    common = {
        "raw_in_cb": cb["raw_in_cb"], "weight_cb": cb["weight_cb"], "stick_bytes": stick_bytes,
        "block_pages": pages,
        "page_bytes": BF16_PAGE, "window_wait_taps": WINDOW_WAIT_TAPS,
        "weight_tile_bytes": wtile, "weight_row_tiles": (tap_tiles,) * taps + (pages,) * (bias is not None),
        "stick_fits_one_packet": stick_bytes <= device.spec.noc.max_burst_bytes.value,
    }
    offsets = [r * geom.dh * geom.padded_w + c * geom.dw for r in range(geom.kh) for c in range(geom.kw)]
    weights = TensorAccessor(weight_buffer, banks)
    reader_args: list[dict] = [{} for _ in range(readers)]
    compute_args = {}
    for i in range(pc.num_cores_nhw):
        segments = group_segments(halo[i].reader_indices, halo[i].num_outputs)
        for j in range(pc.num_cores_c):
            xy = pc.core_xy(i, j)
            for k in range(readers):
                args = {"tap_offsets": offsets, "groups": segments, "loads_weights": k == 0,
                        "reader_index": k, "num_readers": readers}
                if k == 0:
                    args.update({"weight_accessor": weights, "weight_page": j,
                                 "sender_semaphore": sender_sem, "receiver_semaphore": receiver_sem})
                    args.update(weights_multicast_role(device, pc, i, j))
                reader_args[k][xy] = args
            compute_args[xy] = {"num_groups": len(segments)}
    for k, (name, risc, noc) in enumerate(zip(reader_names, (Risc.BRISC, Risc.NCRISC), (0, 1))):
        program.create_kernel(name, reader_depthwise, cores, risc, {**common, "win_cb": cb[win_names[k]]},
                              reader_args[k], noc=noc)
    program.create_kernel("compute_depthwise", compute_depthwise, cores, "compute", {
        "win_cbs": tuple(cb[name] for name in win_names), "weight_cb": cb["weight_cb"],
        "out_cb": cb["out_cb"],
        "rm_cb": cb.get("rm_cb", -1), "taps": taps, "block_pages": pages, "dst_tiles": dst_tiles,
        "has_bias": bias is not None, "activation": spec.activation, "packer_relu": options.packer_relu,
        "sfpu_on_pack": options.sfpu_on_pack, "tile_output": tile_output,
        "srcb_reuse": options.srcb_reuse, "tap_tiles": tap_tiles, "srcb_period_rows": cpc // 16,
        "out_is_bf16": ofmt is DataFormat.BFLOAT16, "tilize_lag": TILIZE_LAG,
        "tilize_groups": tilize_groups, "window_wait_taps": WINDOW_WAIT_TAPS,
    }, compute_args, math_fidelity=spec.math_fidelity)

    return DepthwiseProgram(program=program, output=output, output_pc=pc, weights_seen=weights_seen,
                            bias_seen=bias_seen, plan=plan)


def report_tensors(setup: ConvSetup, built: DepthwiseProgram) -> ProgramReport:
    """The per-tap weight pages and the bias pages (the op's weight and bias inputs; in DRAM the bias
    pages follow the taps in one buffer) as the ops perf report lists them, and the plan."""
    geom, pc, plan = setup.geom, setup.pc, built.plan
    wfmt = DataFormat(setup.conv.weights_dtype)
    tap_bytes = pc.num_cores_c * plan.pages * tile_size_bytes(wfmt)
    tensors = [TensorDesc((1, 1, plan.taps * GROUP, pc.channels_padded), (1, 1, plan.taps, geom.channels),
                          "ROW_MAJOR", wfmt.value.upper(), "DEV_0_DRAM_INTERLEAVED",
                          plan.taps * tap_bytes * plan.tap_tiles // plan.pages)]
    if setup.bias is not None:
        tensors.append(TensorDesc((1, 1, GROUP, pc.channels_padded), (1, 1, 1, geom.channels), "ROW_MAJOR",
                                  wfmt.value.upper(), "DEV_0_DRAM_INTERLEAVED", tap_bytes))
    return ProgramReport(tensors, {"plan": plan})


def _build(setup: ConvSetup, options: DepthwiseOptions) -> DepthwiseProgram:
    return build_depthwise_program(setup.device, setup.conv, setup.geom, setup.pc, setup.halo, setup.halo_buffer,
                                   setup.weight, setup.bias, options.cb_pages(), options)


register(ProgramDefinition(
    name="depthwise", op_code=DEPTHWISE_OP_CODE, options_model=DepthwiseOptions, channel_align=GROUP,
    build=_build, report=report_tensors,
    description="Conv2dDepthwise: 32 output sticks per DST block, taps accumulated in DST (docs/depthwise.md)"))
