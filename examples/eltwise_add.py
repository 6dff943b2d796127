"""A complete user-written program: C = relu(A + B) on tiled bfloat16 tensors in DRAM.

Three kernels per core, as a tt-metal eltwise binary program has them: a reader (BRISC) reads a
tile of A and a tile of B per step from interleaved DRAM into two CBs, the compute kernel adds
them and applies ReLU, and a writer (NCRISC) writes each result tile back to DRAM. The tiles are
split evenly over ``num_cores`` cores. Run it: ``python examples/eltwise_add.py``.
"""

from __future__ import annotations

import numpy as np

from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.formats import DataFormat, pack_tile, tile_size_bytes, unpack_tile
from ttsim.host import Program, run_program
from ttsim.kernel_api import ComputeContext, DataflowContext, TensorAccessor

CB_A, CB_B, CB_OUT = 0, 1, 16


def reader(ctx: DataflowContext):
    """Read tiles [start, start + count) of A and B into CB_A and CB_B, one tile at a time."""
    a, b = ctx.get_arg_val("a"), ctx.get_arg_val("b")
    start, count = ctx.get_arg_val("start_tile"), ctx.get_arg_val("num_tiles")
    for tile in range(start, start + count):
        yield from ctx.cb_reserve_back(CB_A, 1)
        yield from ctx.cb_reserve_back(CB_B, 1)
        ctx.noc_async_read_tile(tile, a, ctx.get_write_ptr(CB_A))
        ctx.noc_async_read_tile(tile, b, ctx.get_write_ptr(CB_B))
        ctx.noc_async_read_barrier()
        ctx.cb_push_back(CB_A, 1)
        ctx.cb_push_back(CB_B, 1)


def compute(ctx: ComputeContext):
    """CB_OUT[i] = relu(CB_A[i] + CB_B[i])."""
    count = ctx.get_arg_val("num_tiles")
    ctx.binary_op_init_common(CB_A, CB_B, CB_OUT)
    ctx.add_tiles_init(CB_A, CB_B)
    for _ in range(count):
        yield from ctx.cb_wait_front(CB_A, 1)
        yield from ctx.cb_wait_front(CB_B, 1)
        ctx.tile_regs_acquire()
        ctx.add_tiles(CB_A, CB_B, 0, 0, 0)
        ctx.relu_tile(0)
        ctx.tile_regs_commit()
        yield from ctx.cb_reserve_back(CB_OUT, 1)
        ctx.tile_regs_wait()
        ctx.pack_tile(0, CB_OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(CB_OUT, 1)
        ctx.cb_pop_front(CB_A, 1)
        ctx.cb_pop_front(CB_B, 1)


def writer(ctx: DataflowContext):
    """Write each result tile to its page of C."""
    c = ctx.get_arg_val("c")
    start, count = ctx.get_arg_val("start_tile"), ctx.get_arg_val("num_tiles")
    for tile in range(start, start + count):
        yield from ctx.cb_wait_front(CB_OUT, 1)
        ctx.noc_async_write(ctx.get_read_ptr(CB_OUT), c.get_noc_addr(tile), c.buffer.page_size)
        ctx.noc_async_write_barrier()
        ctx.cb_pop_front(CB_OUT, 1)


def eltwise_add(a_tiles: np.ndarray, b_tiles: np.ndarray, num_cores: int = 4, device_name: str = "wormhole_b0"):
    """Run the program on ``a_tiles`` + ``b_tiles`` (float32 [n, 1024], tile storage order).

    Returns (result tiles as the device wrote them, the op's profile).
    """
    device = Device(load_device(device_name))
    fmt = DataFormat.BFLOAT16
    size = tile_size_bytes(fmt)
    n = a_tiles.shape[0]
    buffers = {}
    for name, tiles in (("a", a_tiles), ("b", b_tiles), ("c", np.zeros_like(a_tiles))):
        buffer = device.dram.allocate_interleaved(name, size, n)
        device.dram.write_pages(buffer, pack_tile(tiles, fmt).reshape(n, size))
        buffers[name] = TensorAccessor(buffer, tuple(bank.noc_xy for bank in device.dram.banks))

    cores = [(x, 0) for x in range(num_cores)]
    program = Program("EltwiseAddRelu")
    for index, name, pages in ((CB_A, "cb_a", 2), (CB_B, "cb_b", 2), (CB_OUT, "cb_out", 2)):
        program.create_circular_buffer(cores, CBConfig(index, name, size, pages, fmt))
    per_core = -(-n // num_cores)
    args = {xy: {**buffers, "start_tile": i * per_core, "num_tiles": max(0, min(per_core, n - i * per_core))}
            for i, xy in enumerate(cores)}
    program.create_kernel("reader", reader, cores, Risc.BRISC, {}, args, noc=0)
    program.create_kernel("compute", compute, cores, "compute", {}, args, math_fidelity="HiFi4")
    program.create_kernel("writer", writer, cores, Risc.NCRISC, {}, args, noc=1)
    profile = run_program(device, program)

    c = buffers["c"].buffer
    out = np.stack([unpack_tile(device.dram.banks[bank].read(address, size), fmt)
                    for bank, address in (c.page_location(i) for i in range(n))])
    return out, profile


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    a = rng.standard_normal((16, 1024)).astype(np.float32)
    b = rng.standard_normal((16, 1024)).astype(np.float32)
    c, profile = eltwise_add(a, b)
    print(f"DEVICE KERNEL DURATION {profile.device_kernel_duration_ns:,.0f} ns on {profile.core_count} cores; "
          f"max |error| {np.abs(c - np.maximum(a + b, 0)).max():.3g}")
