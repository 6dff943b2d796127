"""Weights readers of the classic sharded conv (tt-metal ``ttnn/cpp/ttnn/operations/conv/conv2d/device/kernels/``), on BRISC.

The dense (for depthwise: block-diagonal) weight matrix lives tiled in interleaved DRAM. One
sender per multicast group reads each weight block and multicasts it to the group with the
semaphore handshake (receivers: reserve, INVALID, increment the sender's semaphore, wait VALID,
push); the bias row follows once.

* Height sharded (``reader_writer_tiled_out_1d_mcast_{sender,receiver}_...``): core (0,0) sends
  to the whole grid; blocks are kernel rows. With the split reader this kernel also reads the
  second half of every act block's im2col rows into ACT_SECOND_READER.
* Block sharded (``writer_tiled_out_2d_mcast_{sender,receiver}_...``): the first core of each
  output column sends its column's slice down the column; blocks are (kernel row, channel block).
"""

from __future__ import annotations

from ttsim.kernel_api import DataflowContext
from ttsim.kernels.conv_reader_common import block_pixels, read_im2col_rows, setup_im2col_reader
from ttsim.kernels.weights_mcast import mcast_receive_block, mcast_send_block


def _send_block(ctx: DataflowContext, tile_ids: list[int], accessor, write_ptr: int, tile_bytes: int,
                sender_sem: int, receiver_sem: int):
    """Read tiles from DRAM into ``write_ptr``, then multicast them to the group."""
    for i, tile_id in enumerate(tile_ids):
        ctx.noc_async_read_tile(tile_id, accessor, write_ptr + i * tile_bytes)
    ctx.noc_async_read_barrier()
    yield from mcast_send_block(ctx, write_ptr, len(tile_ids) * tile_bytes, sender_sem, receiver_sem)


def conv_weights_mcast(ctx: DataflowContext):
    """Weights (and bias) sender or receiver; the second activation reader when split."""
    weights_cb = ctx.get_compile_time_arg_val("weights_cb")
    bias_cb = ctx.get_compile_time_arg_val("bias_cb")
    act_second_cb = ctx.get_compile_time_arg_val("act_second_reader_cb")
    tile_bytes = ctx.get_compile_time_arg_val("weight_tile_bytes")
    wbh = ctx.get_compile_time_arg_val("weight_block_h_ntiles")
    wbw = ctx.get_compile_time_arg_val("weight_block_w_ntiles")
    n_tiles = ctx.get_compile_time_arg_val("weight_matrix_width_ntiles")
    num_blocks_act_h = ctx.get_compile_time_arg_val("num_blocks_act_h")
    c_blocks = ctx.get_compile_time_arg_val("conv_act_c_blocks")
    kh_blocks = ctx.get_compile_time_arg_val("kernel")[0] // ctx.get_compile_time_arg_val("kernel_rows_per_block")
    has_bias = ctx.get_compile_time_arg_val("has_bias")
    weights_fully_buffered = ctx.get_compile_time_arg_val("weights_fully_buffered")
    split_reader = ctx.get_compile_time_arg_val("split_reader")
    is_sender = ctx.get_arg_val("is_sender")
    accessor = ctx.get_arg_val("weight_accessor")
    bias_accessor = ctx.get_arg_val("bias_accessor")
    column = ctx.get_arg_val("weight_column")
    sender_sem = ctx.get_semaphore(ctx.get_arg_val("weights_sender_semaphore"))
    receiver_sem = ctx.get_semaphore(ctx.get_arg_val("weights_receiver_semaphore"))
    block_tiles = wbh * wbw

    if split_reader:
        act_block_h = ctx.get_compile_time_arg_val("act_block_h_ntiles")
        act_block_w = ctx.get_compile_time_arg_val("act_block_w_ntiles")
        first = ctx.get_compile_time_arg_val("reader0_rows_ntiles")
        rows = act_block_h - first
        geometry, halo_base, indices = setup_im2col_reader(ctx)

    for block in range(num_blocks_act_h):
        for kernel_row in range(kh_blocks):
            if split_reader:
                yield from ctx.cb_reserve_back(act_second_cb, rows * act_block_w)
                read_im2col_rows(ctx, halo_base, block_pixels(indices, block, act_block_h, first, rows),
                                 [kernel_row], ctx.get_write_ptr(act_second_cb), geometry)
                ctx.noc_async_read_barrier()
                ctx.cb_push_back(act_second_cb, rows * act_block_w)
            for c_block in range(c_blocks):
                yield from ctx.cb_reserve_back(weights_cb, block_tiles)
                if block == 0 or not weights_fully_buffered:
                    k_block = c_block * kh_blocks + kernel_row
                    if is_sender:
                        ids = [(k_block * wbh + k) * n_tiles + column * wbw + n
                               for k in range(wbh) for n in range(wbw)]
                        yield from _send_block(ctx, ids, accessor, ctx.get_write_ptr(weights_cb),
                                               tile_bytes, sender_sem, receiver_sem)
                    else:
                        yield from mcast_receive_block(ctx, sender_sem, receiver_sem)
                ctx.cb_push_back(weights_cb, block_tiles)
        if block == 0 and has_bias:
            yield from ctx.cb_reserve_back(bias_cb, wbw)
            if is_sender:
                ids = [column * wbw + n for n in range(wbw)]
                yield from _send_block(ctx, ids, bias_accessor, ctx.get_write_ptr(bias_cb), tile_bytes,
                                       sender_sem, receiver_sem)
            else:
                yield from mcast_receive_block(ctx, sender_sem, receiver_sem)
            ctx.cb_push_back(bias_cb, wbw)
