"""Activation readers of the classic sharded conv (tt-metal ``ttnn/cpp/ttnn/operations/conv/conv2d/device/kernels/``), on NCRISC.

* Height sharded (``reader_conv_activations_padded_with_halo_3x3_weights_v2``): per act block and
  kernel row, one im2col row per output pixel from the local halo shard into ACT.
* Block sharded (``reader_conv_activations_2d_mcast_padded_with_halo_3x3_weights_v2``): per kernel
  row, the core's own im2col rows go to ACT_ROW_MAJOR (compute tilizes them into ACT_TILIZED);
  then, round-robin along the grid row, each core multicasts its tilized block into every row
  core's ACT (loopback), so every core sees the whole K dimension.
"""

from __future__ import annotations

import numpy as np

from ttsim.kernel_api import INVALID, VALID, DataflowContext
from ttsim.kernels.conv_reader_common import block_pixels, read_im2col_rows, setup_im2col_reader


def reader_conv_activations_hs(ctx: DataflowContext):
    """Height-sharded im2col reader; with the split reader it reads the first ceil(h/2) rows."""
    act_cb = ctx.get_compile_time_arg_val("act_cb")
    act_block_h = ctx.get_compile_time_arg_val("act_block_h_ntiles")
    act_block_w = ctx.get_compile_time_arg_val("act_block_w_ntiles")
    num_blocks_act_h = ctx.get_compile_time_arg_val("num_blocks_act_h")
    rows = ctx.get_compile_time_arg_val("reader0_rows_ntiles")
    geometry, halo_base, indices = setup_im2col_reader(ctx)
    for block in range(num_blocks_act_h):
        pixels = block_pixels(indices, block, act_block_h, 0, rows)
        for kernel_row in range(geometry["kh"]):
            yield from ctx.cb_reserve_back(act_cb, rows * act_block_w)
            read_im2col_rows(ctx, halo_base, pixels, [kernel_row], ctx.get_write_ptr(act_cb), geometry)
            ctx.noc_async_read_barrier()
            ctx.cb_push_back(act_cb, rows * act_block_w)


def reader_conv_activations_bs(ctx: DataflowContext):
    """Block-sharded im2col reader with the activation multicast along the grid row."""
    act_cb = ctx.get_compile_time_arg_val("act_cb")
    act_rm_cb = ctx.get_compile_time_arg_val("act_row_major_cb")
    act_tilized_cb = ctx.get_compile_time_arg_val("act_tilized_cb")
    l1_array_cb = ctx.get_compile_time_arg_val("l1_array_cb")
    act_block_h = ctx.get_compile_time_arg_val("act_block_h_ntiles")
    act_block_w = ctx.get_compile_time_arg_val("act_block_w_ntiles")
    num_blocks_act_h = ctx.get_compile_time_arg_val("num_blocks_act_h")
    c_blocks = ctx.get_compile_time_arg_val("conv_act_c_blocks")
    act_block_tiles = act_block_h * act_block_w
    tile_bytes = ctx.get_compile_time_arg_val("act_tilized_tile_bytes")
    my_c = ctx.get_arg_val("c_index")
    row_noc = ctx.get_arg_val("row_noc_xy")  # physical (x, y) of each core of this grid row
    sender_sem = ctx.get_semaphore(ctx.get_arg_val("act_sender_semaphore"))
    receiver_sem = ctx.get_semaphore(ctx.get_arg_val("act_receiver_semaphore"))
    (x0, y0), (x1, y1) = row_noc[0], row_noc[-1]
    valid_word = ctx.get_write_ptr(l1_array_cb)
    ctx.l1_store(valid_word, np.array([VALID], dtype=np.uint32))
    geometry, halo_base, indices = setup_im2col_reader(ctx)

    for block in range(num_blocks_act_h):
        pixels = block_pixels(indices, block, act_block_h, 0, act_block_h)
        rows_per_block = geometry["rows_per_block"]
        for first_row in range(0, geometry["kh"], rows_per_block):
            yield from ctx.cb_reserve_back(act_rm_cb, act_block_tiles)
            read_im2col_rows(ctx, halo_base, pixels, range(first_row, first_row + rows_per_block),
                             ctx.get_write_ptr(act_rm_cb), geometry)
            ctx.noc_async_read_barrier()
            ctx.cb_push_back(act_rm_cb, act_block_tiles)
            for sender in range(c_blocks):
                yield from ctx.cb_reserve_back(act_cb, act_block_tiles)
                if sender == my_c:
                    if c_blocks > 1:
                        yield from ctx.noc_semaphore_wait(sender_sem, c_blocks - 1)
                        ctx.noc_semaphore_set(sender_sem, 0)
                    ctx.noc_semaphore_set(receiver_sem, INVALID)
                    yield from ctx.cb_wait_front(act_tilized_cb, act_block_tiles)
                    write_ptr = ctx.get_write_ptr(act_cb)
                    ctx.noc_async_write_multicast(
                        ctx.get_read_ptr(act_tilized_cb),
                        ctx.get_noc_multicast_addr(x0, y0, x1, y1, write_ptr),
                        act_block_tiles * tile_bytes, c_blocks, linked=True, loopback_src=True)
                    ctx.noc_semaphore_set_multicast(
                        valid_word, ctx.get_noc_multicast_addr(x0, y0, x1, y1, receiver_sem),
                        c_blocks, loopback_src=True)
                    yield from ctx.noc_semaphore_wait(receiver_sem, VALID)
                    ctx.cb_pop_front(act_tilized_cb, act_block_tiles)
                else:
                    ctx.noc_semaphore_set(receiver_sem, INVALID)
                    sx, sy = row_noc[sender]
                    ctx.noc_semaphore_inc(ctx.get_noc_addr(sx, sy, sender_sem), 1)
                    yield from ctx.noc_semaphore_wait(receiver_sem, VALID)
                ctx.cb_push_back(act_cb, act_block_tiles)
