"""Halo gather kernel (tt-metal ``halo_gather.cpp``): build each core's padded input sticks.

Runs on both data-movement RISCs with the transfers split between them. The RISC that owns the
padding fills one zero stick and copies it into every padding position with local NoC reads;
each RISC then writes its share of the core's own input sticks to every core that needs them
(itself included), one NoC write per contiguous run.
"""

from __future__ import annotations

import numpy as np

from ttsim.kernel_api import DataflowContext, NocAddr


def halo_gather(ctx: DataflowContext):
    stick_bytes = ctx.get_compile_time_arg_val("stick_bytes")
    pad_cb = ctx.get_compile_time_arg_val("pad_cb")
    halo_addr = ctx.get_arg_val("halo_addr")
    input_addr = ctx.get_arg_val("input_addr")
    pad_runs = ctx.get_arg_val("pad_runs")
    sends = ctx.get_arg_val("sends")

    if pad_runs:
        yield from ctx.cb_reserve_back(pad_cb, 1)
        pad_stick = ctx.get_write_ptr(pad_cb)
        ctx.l1_store(pad_stick, np.zeros(stick_bytes, dtype=np.uint8))
        source = ctx.get_noc_addr(pad_stick)
        for dst_offset, length in pad_runs:
            for k in range(length):
                ctx.noc_async_read(source, halo_addr + (dst_offset + k) * stick_bytes, stick_bytes)
        ctx.noc_async_read_barrier()

    for x, y, dst_halo_addr, src_offset, dst_offset, length in sends:
        ctx.noc_async_write(input_addr + src_offset * stick_bytes,
                            NocAddr(x, y, dst_halo_addr + dst_offset * stick_bytes),
                            length * stick_bytes)
    ctx.noc_async_write_barrier()
