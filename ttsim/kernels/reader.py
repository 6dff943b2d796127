"""Reader of the pool-based depthwise conv (``reader_pool_2d.cpp`` with ``IS_DEPTHWISE=1``).

Runs on BRISC / NoC0 on every conv core (tt-metal
``ttnn/cpp/ttnn/operations/pool/generic/device/kernels/dataflow/``, depthwise branch): clears the input CB, loads the
per-channel weights once (the sender reads them from DRAM and multicasts them with the
semaphore handshake; receivers wait for VALID), loads the bias, fills the 1.0 reduce scalar,
then per output stick issues one local NoC read per kernel row of ``kw`` sticks into the input
CB and pushes the window's E pages.
"""

from __future__ import annotations

import numpy as np

from ttsim.kernel_api import DataflowContext
from ttsim.kernels.weights_mcast import mcast_receive_block, mcast_send_block

BF16_ONE = 0x3F80


def reader_pool_depthwise(ctx: DataflowContext):
    arg = ctx.get_compile_time_arg_val  # names as reader_pool_2d.cpp's (docs/compile-time-args.md)
    in_cb = arg("in_cb_id")
    weight_cb = arg("weight_cb_id")
    bias_cb = arg("bias_cb_id")
    scalar_cb = arg("in_scalar_cb_id_0")
    clear_cb = arg("clear_value_cb_id")
    indices_cb = arg("in_reader_indices_cb_id")
    raw_in_cb = arg("in_shard_cb_id")
    pages_per_stick = arg("in_cb_pages_per_stick")
    in_cb_pages = arg("in_cb_num_pages")
    tile_bytes = arg("tile_bytes")
    kh, kw = arg("window_h"), arg("window_w")
    dil_h, dil_w = arg("dilation_h"), arg("dilation_w")
    padded_w = arg("in_w_padded")
    stick_bytes = arg("shard_width_bytes")
    weight_tiles = arg("weight_tiles")
    weight_tile_bytes = arg("weight_tile_bytes")
    bias_tiles = arg("bias_ntiles")

    weights = ctx.get_arg_val("weight_accessor")
    weight_start_tile = ctx.get_arg_val("weight_start_tile")
    bias = ctx.get_arg_val("bias_accessor")
    bias_start_tile = ctx.get_arg_val("bias_start_tile")
    is_sender = ctx.get_arg_val("is_sender")
    sender_sem = ctx.get_semaphore(ctx.get_arg_val("sender_semaphore"))
    receiver_sem = ctx.get_semaphore(ctx.get_arg_val("receiver_semaphore"))
    num_outputs = ctx.get_arg_val("num_outputs")

    # zero tile, then clear every in_cb page so the window's tail stays zero
    yield from ctx.cb_reserve_back(clear_cb, 1)
    clear_addr = ctx.get_write_ptr(clear_cb)
    ctx.l1_store(clear_addr, np.zeros(tile_bytes, dtype=np.uint8))
    ctx.cb_push_back(clear_cb, 1)
    in_base = ctx.get_write_ptr(in_cb)
    for page in range(in_cb_pages):
        ctx.noc_async_read(ctx.get_noc_addr(clear_addr), in_base + page * tile_bytes, tile_bytes)
    ctx.noc_async_read_barrier()

    # weights: read once on the sender, multicast to the receivers
    yield from ctx.cb_reserve_back(weight_cb, weight_tiles)
    weight_addr = ctx.get_write_ptr(weight_cb)
    if is_sender:
        for t in range(weight_tiles):
            ctx.noc_async_read_tile(weight_start_tile + t, weights, weight_addr + t * weight_tile_bytes)
        ctx.noc_async_read_barrier()
        yield from mcast_send_block(ctx, weight_addr, weight_tiles * weight_tile_bytes, sender_sem, receiver_sem)
    else:
        yield from mcast_receive_block(ctx, sender_sem, receiver_sem)
    ctx.cb_push_back(weight_cb, weight_tiles)

    if bias_tiles:
        yield from ctx.cb_reserve_back(bias_cb, bias_tiles)
        bias_addr = ctx.get_write_ptr(bias_cb)
        for t in range(bias_tiles):
            ctx.noc_async_read_tile(bias_start_tile + t, bias, bias_addr + t * weight_tile_bytes)
        ctx.noc_async_read_barrier()
        ctx.cb_push_back(bias_cb, bias_tiles)

    # reduce scalar 1.0 in the first 16 values of the scalar tile (srcB reuses face 0)
    yield from ctx.cb_reserve_back(scalar_cb, 1)
    ctx.l1_store(ctx.get_write_ptr(scalar_cb), np.full(16, BF16_ONE, dtype=np.uint16))
    ctx.cb_push_back(scalar_cb, 1)

    # one window per output stick
    indices = ctx.l1_load(ctx.get_read_ptr(indices_cb), num_outputs, np.uint32)
    raw_in = ctx.get_read_ptr(raw_in_cb)
    row_bytes = kw * stick_bytes
    contiguous = dil_w == 1
    if contiguous:
        ctx.noc_async_read_one_packet_set_state(ctx.get_noc_addr(raw_in), row_bytes)
    for top_left in indices:
        yield from ctx.cb_reserve_back(in_cb, pages_per_stick)
        write_ptr = ctx.get_write_ptr(in_cb)
        for r in range(kh):
            stick = int(top_left) + r * dil_h * padded_w
            if contiguous:
                ctx.noc_async_read_one_packet_with_state(raw_in + stick * stick_bytes, write_ptr)
                write_ptr += row_bytes
            else:
                for c in range(kw):
                    src = ctx.get_noc_addr(raw_in + (stick + c * dil_w) * stick_bytes)
                    ctx.noc_async_read(src, write_ptr, stick_bytes)
                    write_ptr += stick_bytes
        ctx.noc_async_read_barrier()
        ctx.cb_push_back(in_cb, pages_per_stick)
