"""Reader of the depthwise program: gathers, per group of 32 output sticks, one 32-stick block
of input sticks per kernel tap into the window CB (docs/depthwise.md).

Runs on BRISC / NoC0 and, with the split reader, a second copy on NCRISC / NoC1; each copy
gathers every other tap into its own window CB. The host gives each group's output sticks as
segments of consecutive window top-lefts (the sliding-window reader config of tt-metal,
``[start, end)`` runs stepping by one stick): a segment is one local NoC read of ``length``
sticks, shifted by the tap's offset in the halo buffer. Before the taps, the first reader loads
the per-tap weight tiles once (the sender reads them from DRAM and multicasts them with the
semaphore handshake; receivers wait for VALID), the bias tiles and the ones tile.
"""

from __future__ import annotations

from ttsim.kernel_api import DataflowContext

INVALID = 0
VALID = 1


def _load_weights(ctx: DataflowContext):
    """Weights once per core: DRAM read on the sender, multicast to the receivers."""
    weight_cb = ctx.get_compile_time_arg_val("weight_cb")
    weight_tiles = ctx.get_compile_time_arg_val("weight_tiles")
    weight_tile_bytes = ctx.get_compile_time_arg_val("weight_tile_bytes")
    sender_sem = ctx.get_semaphore(ctx.get_arg_val("sender_semaphore"))
    receiver_sem = ctx.get_semaphore(ctx.get_arg_val("receiver_semaphore"))
    yield from ctx.cb_reserve_back(weight_cb, weight_tiles)
    weight_addr = ctx.get_write_ptr(weight_cb)
    if ctx.get_arg_val("is_sender"):
        weights = ctx.get_arg_val("weight_accessor")
        first = ctx.get_arg_val("weight_start_tile")
        for t in range(weight_tiles):
            ctx.noc_async_read_tile(first + t, weights, weight_addr + t * weight_tile_bytes)
        ctx.noc_async_read_barrier()
        num_receivers = ctx.get_arg_val("num_receivers")
        if num_receivers > 0:
            x0, y0, x1, y1 = ctx.get_arg_val("mcast_rect")
            num_dests = ctx.get_arg_val("mcast_num_dests")
            yield from ctx.noc_semaphore_wait(sender_sem, num_receivers)
            ctx.noc_semaphore_set(sender_sem, 0)
            ctx.noc_async_write_multicast(
                weight_addr, ctx.get_noc_multicast_addr(x0, y0, x1, y1, weight_addr),
                weight_tiles * weight_tile_bytes, num_dests, linked=True)
            ctx.noc_semaphore_set(receiver_sem, VALID)
            ctx.noc_semaphore_set_multicast(
                receiver_sem, ctx.get_noc_multicast_addr(x0, y0, x1, y1, receiver_sem), num_dests)
    else:
        sender_x, sender_y = ctx.get_arg_val("sender_noc_xy")
        ctx.noc_semaphore_set(receiver_sem, INVALID)
        ctx.noc_semaphore_inc(ctx.get_noc_addr(sender_x, sender_y, sender_sem), 1)
        yield from ctx.noc_semaphore_wait(receiver_sem, VALID)
    ctx.cb_push_back(weight_cb, weight_tiles)


def _load_tiles(ctx: DataflowContext, cb: int, accessor, first: int, count: int, tile_bytes: int):
    """``count`` interleaved DRAM tiles from page ``first`` into ``cb``."""
    yield from ctx.cb_reserve_back(cb, count)
    address = ctx.get_write_ptr(cb)
    for t in range(count):
        ctx.noc_async_read_tile(first + t, accessor, address + t * tile_bytes)
    ctx.noc_async_read_barrier()
    ctx.cb_push_back(cb, count)


def reader_depthwise(ctx: DataflowContext):
    win_cb = ctx.get_compile_time_arg_val("win_cb")
    raw_in_cb = ctx.get_compile_time_arg_val("raw_in_cb")
    stick_bytes = ctx.get_compile_time_arg_val("stick_bytes")
    block_pages = ctx.get_compile_time_arg_val("block_pages")
    page_bytes = ctx.get_compile_time_arg_val("page_bytes")
    per_group = ctx.get_compile_time_arg_val("reserve_per_group")
    one_packet = ctx.get_compile_time_arg_val("stick_fits_one_packet")
    tap_offsets = ctx.get_arg_val("tap_offsets")
    groups = ctx.get_arg_val("groups")

    if ctx.get_arg_val("loads_weights"):
        yield from _load_weights(ctx)
        bias_tiles = ctx.get_compile_time_arg_val("bias_tiles")
        if bias_tiles:
            tile_bytes = ctx.get_compile_time_arg_val("weight_tile_bytes")
            yield from _load_tiles(ctx, ctx.get_compile_time_arg_val("ones_cb"),
                                   ctx.get_arg_val("ones_accessor"), 0, 1, page_bytes)
            yield from _load_tiles(ctx, ctx.get_compile_time_arg_val("bias_cb"),
                                   ctx.get_arg_val("bias_accessor"), ctx.get_arg_val("bias_start_tile"),
                                   bias_tiles, tile_bytes)

    raw_in = ctx.get_read_ptr(raw_in_cb)
    if one_packet:
        ctx.noc_async_read_one_packet_set_state(ctx.my_noc_addr(raw_in), stick_bytes)
    for segments in groups:
        if per_group:
            yield from ctx.cb_reserve_back(win_cb, block_pages * len(tap_offsets))
            base = ctx.get_write_ptr(win_cb)
        for k, offset in enumerate(tap_offsets):
            if per_group:
                block = base + k * block_pages * page_bytes
            else:
                yield from ctx.cb_reserve_back(win_cb, block_pages)
                block = ctx.get_write_ptr(win_cb)
            for row, top_left, length in segments:
                src = raw_in + (top_left + offset) * stick_bytes
                dst = block + row * stick_bytes
                if length == 1 and one_packet:
                    ctx.noc_async_read_one_packet_with_state(src, dst)
                else:
                    ctx.noc_async_read(ctx.my_noc_addr(src), dst, length * stick_bytes)
            if not per_group:
                ctx.noc_async_read_barrier()
                ctx.cb_push_back(win_cb, block_pages)
        if per_group:
            ctx.noc_async_read_barrier()
            ctx.cb_push_back(win_cb, block_pages * len(tap_offsets))
