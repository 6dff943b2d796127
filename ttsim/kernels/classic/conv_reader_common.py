"""Stick reads shared by the classic conv readers (tt-metal ``conv_reader_common.hpp``).

One im2col row per output pixel and kernel row: ``kw`` sticks of the local halo shard, read with
one NoC read when the kernel is not dilated along w, then the write pointer skips the padding
that keeps each im2col row a whole number of tiles wide.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ttsim.kernel_api import DataflowContext


def conv_geometry(ctx: DataflowContext) -> dict:
    """The im2col geometry every classic-conv stick reader needs, from its compile-time args
    (kernel size and dilation, padded width in sticks, stick and alignment-skip bytes)."""
    kh, kw = ctx.get_compile_time_arg_val("kernel")
    dil_h, dil_w = ctx.get_compile_time_arg_val("dilation")
    return {"kh": kh, "kw": kw, "dil_h": dil_h, "dil_w": dil_w,
            "padded_w": ctx.get_compile_time_arg_val("padded_width"),
            "stick_bytes": ctx.get_compile_time_arg_val("stick_bytes"),
            "extra_align_bytes": ctx.get_compile_time_arg_val("act_block_w_extra_align_bytes"),
            "rows_per_block": ctx.get_compile_time_arg_val("kernel_rows_per_block")}


def setup_im2col_reader(ctx: DataflowContext) -> tuple[dict, int, list[int]]:
    """Start of every classic-conv stick reader: its geometry, the halo shard's L1 address and
    the per-output top-left indices; for an undilated kernel also the one-packet read state of
    ``kw`` sticks that every im2col row read then reuses."""
    geometry = conv_geometry(ctx)
    halo_base = ctx.get_read_ptr(ctx.get_compile_time_arg_val("act_sharded_cb"))
    indices_cb = ctx.get_compile_time_arg_val("reader_indices_cb")
    num_outputs = ctx.get_arg_val("num_outputs")
    # Python ints, not numpy scalars: every im2col row's address is computed from one
    indices = ctx.l1_load(ctx.get_read_ptr(indices_cb), num_outputs, dtype=np.uint32).tolist()
    if geometry["dil_w"] == 1:
        ctx.noc_async_read_one_packet_set_state(ctx.get_noc_addr(halo_base),
                                                geometry["kw"] * geometry["stick_bytes"])
    return geometry, halo_base, indices


def read_im2col_rows(ctx: DataflowContext, halo_base: int, top_lefts: Sequence[int],
                     kernel_rows: Sequence[int], write_ptr: int, geometry: dict) -> int:
    """Read ``kernel_rows`` of every pixel in ``top_lefts`` (one im2col row per pixel, then the
    alignment skip); returns the advanced write pointer."""
    stick_bytes = geometry["stick_bytes"]
    kw = geometry["kw"]
    dil_w = geometry["dil_w"]
    offsets = [r * geometry["dil_h"] * geometry["padded_w"] for r in kernel_rows]
    row_bytes = kw * stick_bytes
    skip = geometry["extra_align_bytes"]
    for top_left in top_lefts:
        for offset in offsets:
            stick = top_left + offset
            if dil_w == 1:
                ctx.noc_async_read_one_packet_with_state(halo_base + stick * stick_bytes, write_ptr)
                write_ptr += row_bytes
            else:
                for c in range(kw):
                    ctx.noc_async_read(ctx.get_noc_addr(halo_base + (stick + c * dil_w) * stick_bytes),
                                       write_ptr, stick_bytes)
                    write_ptr += stick_bytes
        write_ptr += skip
    return write_ptr


def block_pixels(indices: Sequence[int], block: int, rows_per_block: int, first_row: int,
                 num_rows: int) -> Sequence[int]:
    """Top-lefts of the pixels of act block ``block`` in tile rows [first_row, first_row+num_rows)."""
    start = block * rows_per_block * 32 + first_row * 32
    return indices[start : start + num_rows * 32]
