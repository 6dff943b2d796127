"""Compute of the pool-based depthwise conv (``compute_pool_2d.cpp`` with ``IS_DEPTHWISE=1``).

Per output stick (tt-metal ``ttnn/cpp/ttnn/operations/pool/generic/device/kernels/compute/``,
depthwise branch ``002a3f41``):

A. element-wise multiply the window (E pages of ``kh*kw`` sticks, flattened) by the per-channel
   weights laid out in the same order, packing the products to ``mul_cb``;
B. per channel block of at most 8 tiles (the DST half): tilize-on-unpack the ``kh*kw`` product
   rows (32 at a time) and column-sum them into row 0 of DST;
C. add the bias row and apply the SFPU activation in DST, then pack-untilize that one row.

With tiled output, sticks gather in ``pre_tilize_cb`` and every 32 sticks are tilized into the
output shard. The kernel switches its unpack/math/pack configuration between the phases on
every stick, as the branch kernel does.
"""

from __future__ import annotations

from ttsim.kernel_api import TILE_H as TILE_ROWS, TILE_W as TILE_WIDTH, ComputeContext

BF16_BYTES = 2


def compute_pool_depthwise(ctx: ComputeContext):
    arg = ctx.get_compile_time_arg_val  # names as compute_pool_2d.cpp's (docs/compile-time-args.md)
    in_cb = arg("in_cb_id_0")
    mul_cb = arg("mul_cb_id")
    weight_cb = arg("weight_cb_id")
    bias_cb = arg("bias_cb_id")
    scalar_cb = arg("in_scalar_cb_id_0")
    clear_cb = arg("clear_value_cb_id")
    out_cb = arg("out_cb_id")
    pre_tilize_cb = arg("pre_tilize_cb_id")
    pages_per_stick = arg("in_cb_pages_per_stick")
    in_ntiles_c = arg("in_ntiles_c")
    window_rows = arg("window_size_hw")
    has_bias = arg("has_bias")
    activation = arg("activation")
    tile_output = arg("is_output_tiled")
    max_tiles = arg("max_tiles_per_reduction")
    num_outputs = ctx.get_arg_val("num_outputs")

    channels = in_ntiles_c * TILE_WIDTH
    stick_cb = pre_tilize_cb if tile_output else out_cb
    ctx.compute_kernel_hw_startup(in_cb, weight_cb, mul_cb)
    yield from ctx.cb_wait_front(weight_cb, pages_per_stick)
    if has_bias:
        yield from ctx.cb_wait_front(bias_cb, in_ntiles_c)
    yield from ctx.cb_wait_front(scalar_cb, 1)
    yield from ctx.cb_wait_front(clear_cb, 1)

    for n in range(num_outputs):
        # A. products of the window with the weights -> mul_cb
        ctx.reconfig_data_format(in_cb, weight_cb)
        ctx.pack_reconfig_data_format(mul_cb)
        ctx.mul_tiles_init(in_cb, weight_cb)
        yield from ctx.cb_wait_front(in_cb, pages_per_stick)
        yield from ctx.cb_reserve_back(mul_cb, pages_per_stick)
        for first in range(0, pages_per_stick, max_tiles):
            count = min(max_tiles, pages_per_stick - first)
            ctx.tile_regs_acquire()
            for i in range(count):
                ctx.mul_tiles(in_cb, weight_cb, first + i, first + i, i)
            ctx.tile_regs_commit()
            ctx.tile_regs_wait()
            for i in range(count):
                ctx.pack_tile(i, mul_cb)
            ctx.tile_regs_release()
        ctx.cb_push_back(mul_cb, pages_per_stick)
        ctx.cb_pop_front(in_cb, pages_per_stick)

        # B + C. tilize and column-sum the window rows, bias, activation, one output row. The
        # window's rows are all channels wide; the kernel points mul_cb's read pointer at each
        # (row chunk, channel block) by hand and restores it (tt-metal's reader gives each channel
        # block its own pages instead).
        ctx.reconfig_data_format(mul_cb, scalar_cb)
        ctx.pack_reconfig_data_format(stick_cb)
        ctx.unpack_tilizeA_B_init(mul_cb, scalar_cb, in_ntiles_c, face_r_dim=min(window_rows, 16))
        ctx.reduce_init(mul_cb, scalar_cb, stick_cb)
        ctx.pack_untilize_dest_init(stick_cb, face_r_dim=1, num_faces=2)
        yield from ctx.cb_wait_front(mul_cb, pages_per_stick)
        yield from ctx.cb_reserve_back(stick_cb, 1)
        mul = ctx.get_local_cb_interface(mul_cb)
        front = mul.fifo_rd_ptr
        for block_start in range(0, in_ntiles_c, max_tiles):
            block_tiles = min(max_tiles, in_ntiles_c - block_start)
            ctx.tile_regs_acquire()
            for row_start in range(0, window_rows, TILE_ROWS):
                rows = min(TILE_ROWS, window_rows - row_start)
                num_faces, face_r_dim = (2, rows) if rows <= 16 else (4, 16)
                mul.fifo_rd_ptr = front + (row_start * channels + block_start * TILE_WIDTH) * BF16_BYTES
                ctx.unpack_tilizeA_B_block(mul_cb, scalar_cb, block_tiles, 0, num_faces, face_r_dim)
                # num_faces left at its default 4, so the reduce is charged as before
                # (compute_pool_2d.cpp passes num_faces_in_input_tile, 2 here, which halves it)
                for t in range(block_tiles):
                    ctx.reduce_tile_math(t)
            mul.fifo_rd_ptr = front
            if has_bias:
                ctx.binary_dest_reuse_tiles_init(bias_cb)
                for t in range(block_tiles):
                    ctx.binary_dest_reuse_tiles(bias_cb, block_start + t, t)
            if activation != "none":
                ctx.sfpu_init(activation)
                for t in range(block_tiles):
                    ctx.sfpu_tile(activation, t)
            ctx.tile_regs_commit()
            ctx.tile_regs_wait()
            ctx.pack_untilize_dest(stick_cb, 1, 0, 1, 2, block_ct_dim=block_tiles, row_width=channels,
                                   col_offset=block_start * TILE_WIDTH)
            ctx.tile_regs_release()
        ctx.cb_push_back(stick_cb, 1)
        ctx.cb_pop_front(mul_cb, pages_per_stick)
        ctx.reduce_uninit()
        ctx.pack_untilize_uninit(stick_cb)

        # every 32 sticks (or at the end): tilize the gathered rows into the output shard
        group = n % TILE_ROWS + 1
        if tile_output and (group == TILE_ROWS or n == num_outputs - 1):
            yield from ctx.cb_wait_front(pre_tilize_cb, group)
            yield from ctx.cb_reserve_back(out_cb, in_ntiles_c)
            ctx.fast_tilize_init_with_dt(pre_tilize_cb, in_ntiles_c, out_cb)
            ctx.fast_tilize_block(pre_tilize_cb, in_ntiles_c, out_cb)
            ctx.cb_push_back(out_cb, in_ntiles_c)
            ctx.cb_pop_front(pre_tilize_cb, group)
            ctx.fast_tilize_uninit(pre_tilize_cb, out_cb)
