"""The weights multicast handshake both weight-loading readers use (classic conv, pool depthwise).

One sender per multicast group holds a block in L1 at the same address as every receiver's CB.
Each receiver sets its own semaphore INVALID and increments the sender's semaphore; the sender
waits until all receivers have checked in, resets its semaphore, multicasts the block (linked, so
the VALID flag that follows cannot overtake it) and multicasts VALID into every receiver's
semaphore. As in tt-metal's ``reader_writer_tiled_out_1d_mcast_{sender,receiver}_conv_weights_*``
and ``reader_pool_2d.cpp`` kernels. Runtime args: ``num_receivers``, ``mcast_rect``,
``mcast_num_dests`` on the sender, ``sender_noc_xy`` on receivers.
"""

from __future__ import annotations

from ttsim.kernel_api import INVALID, VALID, DataflowContext


def mcast_send_block(ctx: DataflowContext, addr: int, num_bytes: int, sender_sem: int, receiver_sem: int):
    """Sender: once every receiver is ready, multicast ``num_bytes`` at ``addr`` and signal VALID."""
    receivers = ctx.get_arg_val("num_receivers")
    if receivers == 0:
        return
    x0, y0, x1, y1 = ctx.get_arg_val("mcast_rect")
    num_dests = ctx.get_arg_val("mcast_num_dests")
    yield from ctx.noc_semaphore_wait(sender_sem, receivers)
    ctx.noc_semaphore_set(sender_sem, 0)
    ctx.noc_async_write_multicast(addr, ctx.get_noc_multicast_addr(x0, y0, x1, y1, addr),
                                  num_bytes, num_dests, linked=True)
    ctx.noc_semaphore_set(receiver_sem, VALID)
    ctx.noc_semaphore_set_multicast(receiver_sem, ctx.get_noc_multicast_addr(x0, y0, x1, y1, receiver_sem),
                                    num_dests)


def mcast_receive_block(ctx: DataflowContext, sender_sem: int, receiver_sem: int):
    """Receiver: check in with the sender, then wait until the block has landed (VALID)."""
    sender_x, sender_y = ctx.get_arg_val("sender_noc_xy")
    ctx.noc_semaphore_set(receiver_sem, INVALID)
    ctx.noc_semaphore_inc(ctx.get_noc_addr(sender_x, sender_y, sender_sem), 1)
    yield from ctx.noc_semaphore_wait(receiver_sem, VALID)
