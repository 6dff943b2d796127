"""Reader of the depthwise program: gathers, per group of 32 output sticks, one 32-stick block
of input sticks per kernel tap into the window CB (docs/depthwise.md).

Runs on BRISC / NoC0 and, with the split reader, a second copy on NCRISC / NoC1; each copy
gathers every other tap into its own window CB (with an odd tap count the copies take the extra
tap in turn, group by group, so that both NoCs move the same bytes). The host gives each group's output sticks as
segments of consecutive window top-lefts (the sliding-window reader config of tt-metal,
``[start, end)`` runs stepping by one stick): a segment is one local NoC read of ``length``
sticks, shifted by the tap's offset in the halo buffer. A reader reserves a whole group's taps
at once and pushes them tap by tap. Before the taps, the first reader loads the weights once
(the sender reads them from DRAM in one read and multicasts them, tap by tap, with a counting
semaphore); the bias pages come as one more tap.
"""

from __future__ import annotations

from ttsim.kernel_api import INVALID, DataflowContext


class _Weights:
    """The weights (per tap its pages, then the bias pages), loaded once per core and handed to
    compute tap by tap so that it can start on tap 0: the sender reads its channel shard's one
    interleaved DRAM page (every row, one read), then per row multicasts its pages and the count
    of rows sent into the receivers' semaphore; a receiver pushes a row once the count reaches
    it (``noc_semaphore_wait_min``)."""

    def __init__(self, ctx: DataflowContext) -> None:
        self.ctx = ctx
        self.cb = ctx.get_compile_time_arg_val("weight_cb")
        self.row_tiles = ctx.get_compile_time_arg_val("weight_row_tiles")
        self.taps = len(self.row_tiles)
        self.tile_bytes = ctx.get_compile_time_arg_val("weight_tile_bytes")
        self.sender_sem = ctx.get_semaphore(ctx.get_arg_val("sender_semaphore"))
        self.receiver_sem = ctx.get_semaphore(ctx.get_arg_val("receiver_semaphore"))
        self.is_sender = ctx.get_arg_val("is_sender")
        self.offsets = [sum(self.row_tiles[:k]) * self.tile_bytes for k in range(self.taps)]
        self.loaded = 0

    def start(self):
        ctx = self.ctx
        yield from ctx.cb_reserve_back(self.cb, sum(self.row_tiles))
        self.address = ctx.get_write_ptr(self.cb)
        if not self.is_sender:
            sender_x, sender_y = ctx.get_arg_val("sender_noc_xy")
            ctx.noc_semaphore_set(self.receiver_sem, INVALID)
            ctx.noc_semaphore_inc(ctx.get_noc_addr(sender_x, sender_y, self.sender_sem), 1)

    def load_through(self, last: int):
        """Load (or receive) every row up to ``last`` not loaded yet."""
        ctx = self.ctx
        if self.is_sender and self.loaded == 0 and last >= 0:
            weights = ctx.get_arg_val("weight_accessor")  # the shard's rows: one page, one read
            ctx.noc_async_read_tile(ctx.get_arg_val("weight_page"), weights, self.address)
            ctx.noc_async_read_barrier()
        while self.loaded <= min(last, self.taps - 1):
            tap = self.loaded
            if self.is_sender:
                yield from self._multicast(tap)
            else:
                yield from ctx.noc_semaphore_wait_min(self.receiver_sem, tap + 1)
            ctx.cb_push_back(self.cb, self.row_tiles[tap])
            self.loaded += 1

    def _multicast(self, tap: int):
        ctx = self.ctx
        num_receivers = ctx.get_arg_val("num_receivers")
        if num_receivers == 0:
            return
        address = self.address + self.offsets[tap]
        x0, y0, x1, y1 = ctx.get_arg_val("mcast_rect")
        num_dests = ctx.get_arg_val("mcast_num_dests")
        if tap == 0:
            yield from ctx.noc_semaphore_wait(self.sender_sem, num_receivers)
            ctx.noc_semaphore_set(self.sender_sem, 0)
        ctx.noc_async_write_multicast(address, ctx.get_noc_multicast_addr(x0, y0, x1, y1, address),
                                      self.row_tiles[tap] * self.tile_bytes, num_dests, linked=True)
        ctx.noc_semaphore_set(self.receiver_sem, tap + 1)
        ctx.noc_semaphore_set_multicast(
            self.receiver_sem, ctx.get_noc_multicast_addr(x0, y0, x1, y1, self.receiver_sem), num_dests)


def reader_depthwise(ctx: DataflowContext):
    win_cb = ctx.get_compile_time_arg_val("win_cb")
    raw_in_cb = ctx.get_compile_time_arg_val("raw_in_cb")
    stick_bytes = ctx.get_compile_time_arg_val("stick_bytes")
    block_pages = ctx.get_compile_time_arg_val("block_pages")
    page_bytes = ctx.get_compile_time_arg_val("page_bytes")
    one_packet = ctx.get_compile_time_arg_val("stick_fits_one_packet")
    wait_taps = ctx.get_compile_time_arg_val("window_wait_taps")
    tap_offsets = ctx.get_arg_val("tap_offsets")
    groups = ctx.get_arg_val("groups")

    reader, readers = ctx.get_arg_val("reader_index"), ctx.get_arg_val("num_readers")
    weights = _Weights(ctx) if ctx.get_arg_val("loads_weights") else None
    if weights is not None:
        yield from weights.start()
    raw_in = ctx.get_read_ptr(raw_in_cb)
    slots = -(-len(tap_offsets) // readers)  # taps per reader and group, rounded up
    for g, segments in enumerate(groups):
        # the readers alternate the odd tap out group by group, so both gather as many taps
        mine = [t for t in range(len(tap_offsets)) if (t + g) % readers == reader]
        yield from ctx.cb_reserve_back(win_cb, block_pages * slots)  # the group's taps
        base = ctx.get_write_ptr(win_cb)
        for k, tap in enumerate(mine):
            if weights is not None and g == 0 and weights.is_sender:  # send each tap before gathering it
                yield from weights.load_through(tap)
            if one_packet and g == 0:
                ctx.noc_async_read_one_packet_set_state(ctx.get_noc_addr(raw_in), stick_bytes)
            block = base + k * block_pages * page_bytes
            for row, top_left, length in segments:
                src = raw_in + (top_left + tap_offsets[tap]) * stick_bytes
                dst = block + row * stick_bytes
                if length == 1 and one_packet:
                    ctx.noc_async_read_one_packet_with_state(src, dst)
                else:
                    ctx.noc_async_read(ctx.get_noc_addr(src), dst, length * stick_bytes)
            last = k + 1 == len(mine)
            if (k + 1) % wait_taps == 0 or last:  # the taps compute waits for at once
                ctx.noc_async_read_barrier()
                # (the last push also hands over the group's unused slot, if any)
                ctx.cb_push_back(win_cb, block_pages * ((k % wait_taps) + 1 + (slots - len(mine) if last else 0)))
            if weights is not None and g == 0:  # receivers: the weights up to this tap, after it
                yield from weights.load_through(tap)
        if not mine:
            ctx.cb_push_back(win_cb, block_pages * slots)
        if weights is not None and g == 0:  # the bias after the first group's taps
            yield from weights.load_through(weights.taps - 1)
    if weights is not None:  # the rest (the bias, or every tap on a core without outputs)
        yield from weights.load_through(weights.taps - 1)
