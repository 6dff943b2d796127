"""Stick reads shared by the classic conv readers (tt-metal ``conv_reader_common.hpp``).

One im2col row per output pixel and kernel row: ``kw`` sticks of the local halo shard, read with
one NoC read when the kernel is not dilated along w, then the write pointer skips the padding
that keeps each im2col row a whole number of tiles wide.
"""

from __future__ import annotations

from typing import Sequence

from ttsim.kernel_api import DataflowContext


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
            stick = int(top_left) + offset
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
