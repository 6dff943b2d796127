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
from ttsim.kernel_api.compute_eltwise import ReluType, VectorMode, relu_config

PACKER_RELU = {"relu": relu_config(ReluType.ZERO_RELU),
               "relu6": relu_config(ReluType.MAX_THRESHOLD_RELU, 6.0)}

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
    weight_tiles = arg("weight_tiles")
    in_ntiles_c = arg("in_ntiles_c")
    window_rows = arg("window_size_hw")
    has_bias = arg("has_bias")
    activation = arg("activation")
    tile_output = arg("is_output_tiled")
    max_tiles = arg("max_tiles_per_reduction")
    options = arg("options")
    num_outputs = ctx.get_arg_val("num_outputs")

    channels = in_ntiles_c * TILE_WIDTH
    stick_cb = pre_tilize_cb if tile_output else out_cb
    fused = options["fused_mul_reduce"]
    batch = options["dst_batch"]
    reconfig = not options["minimal_reconfig"]
    in_packer = options["packer_relu"] and activation in PACKER_RELU
    sfpu = activation if activation != "none" and not in_packer else None
    vector_mode = VectorMode.R if options["sfpu_valid_row"] else VectorMode.RC
    reduce_cb = in_cb if fused else mul_cb
    ctx.compute_kernel_hw_startup(in_cb, weight_cb, mul_cb)
    yield from ctx.cb_wait_front(weight_cb, weight_tiles)
    if has_bias:
        yield from ctx.cb_wait_front(bias_cb, in_ntiles_c)
    yield from ctx.cb_wait_front(scalar_cb, 1)
    yield from ctx.cb_wait_front(clear_cb, 1)
    if in_packer and fused:  # nothing else is packed: set once
        ctx.pack_relu_config(PACKER_RELU[activation])
    if not reconfig:  # configurations that do not change between sticks are set once
        ctx.pack_untilize_dest_init(stick_cb, face_r_dim=1, num_faces=2)

    for first_stick in range(0, num_outputs, batch):
        sticks = range(first_stick, min(first_stick + batch, num_outputs))
        if not fused:
            # A. products of the windows with the weights -> mul_cb, 8 tiles per DST acquire
            if reconfig:
                ctx.reconfig_data_format(in_cb, weight_cb)
                ctx.pack_reconfig_data_format(mul_cb)
            ctx.mul_tiles_init(in_cb, weight_cb)
            if in_packer:  # the products must leave DST unclamped
                ctx.pack_relu_config(relu_config(ReluType.NO_RELU))
            pending = 0
            for k, _ in enumerate(sticks):
                yield from ctx.cb_wait_front(in_cb, pages_per_stick)
                if k == 0:
                    yield from ctx.cb_reserve_back(mul_cb, len(sticks) * pages_per_stick)
                for page in range(pages_per_stick):
                    if pending == 0:
                        ctx.tile_regs_acquire()
                    ctx.mul_tiles(in_cb, weight_cb, page, page, pending)
                    pending += 1
                    if pending == max_tiles or (batch == 1 and page == pages_per_stick - 1):
                        _pack_products(ctx, pending, mul_cb)
                        pending = 0
                ctx.cb_pop_front(in_cb, pages_per_stick)
            if pending:
                _pack_products(ctx, pending, mul_cb)
            ctx.cb_push_back(mul_cb, len(sticks) * pages_per_stick)

        # B + C. tilize and column-sum the window rows, bias, activation, one output row. The
        # window's rows are all channels wide; the kernel points the CB's read pointer at each
        # (row chunk, channel block) by hand and restores it (tt-metal's reader gives each channel
        # block its own pages instead).
        if reconfig:
            ctx.reconfig_data_format(reduce_cb, scalar_cb)
            ctx.pack_reconfig_data_format(stick_cb)
        ctx.unpack_tilizeA_B_init(reduce_cb, scalar_cb, in_ntiles_c, face_r_dim=min(window_rows, 16))
        ctx.reduce_init(reduce_cb, scalar_cb, stick_cb)
        if reconfig:
            ctx.pack_untilize_dest_init(stick_cb, face_r_dim=1, num_faces=2)
        if in_packer and not fused:
            ctx.pack_relu_config(PACKER_RELU[activation])
        for n in sticks:
            yield from ctx.cb_wait_front(reduce_cb, pages_per_stick)
            yield from ctx.cb_reserve_back(stick_cb, 1)
            window = ctx.get_local_cb_interface(reduce_cb)
            front = window.fifo_rd_ptr
            for block_start in range(0, in_ntiles_c, max_tiles):
                block_tiles = min(max_tiles, in_ntiles_c - block_start)
                ctx.tile_regs_acquire()
                for row_start in range(0, window_rows, TILE_ROWS):
                    rows = min(TILE_ROWS, window_rows - row_start)
                    num_faces, face_r_dim = (2, rows) if rows <= 16 else (4, 16)
                    window.fifo_rd_ptr = front + (row_start * channels + block_start * TILE_WIDTH) * BF16_BYTES
                    ctx.unpack_tilizeA_B_block(reduce_cb, scalar_cb, block_tiles, 0, num_faces, face_r_dim)
                    # num_faces left at its default 4, so the reduce is charged as before
                    # (compute_pool_2d.cpp passes num_faces_in_input_tile, 2 here, which halves it)
                    for t in range(block_tiles):
                        if fused:  # weight tiles: [row block][channel tile]
                            ctx.mul_reduce_tile_math(weight_cb, row_start // TILE_ROWS * in_ntiles_c
                                                     + block_start + t, t)
                        else:
                            ctx.reduce_tile_math(t)
                window.fifo_rd_ptr = front
                if has_bias:
                    ctx.binary_dest_reuse_tiles_init(bias_cb)
                    for t in range(block_tiles):
                        ctx.binary_dest_reuse_tiles(bias_cb, block_start + t, t)
                if sfpu is not None:
                    ctx.sfpu_init(sfpu)
                    for t in range(block_tiles):
                        if vector_mode is VectorMode.RC:
                            ctx.sfpu_tile(sfpu, t)
                        else:
                            ctx.sfpu_tile_vector(sfpu, t, vector_mode)
                ctx.tile_regs_commit()
                ctx.tile_regs_wait()
                ctx.pack_untilize_dest(stick_cb, 1, 0, 1, 2, block_ct_dim=block_tiles, row_width=channels,
                                       col_offset=block_start * TILE_WIDTH)
                ctx.tile_regs_release()
            ctx.cb_push_back(stick_cb, 1)
            ctx.cb_pop_front(reduce_cb, pages_per_stick)
            if reconfig:
                ctx.reduce_uninit()
                ctx.pack_untilize_uninit(stick_cb)

            # every 32 sticks (or at the end): tilize the gathered rows into the output shard
            group = n % TILE_ROWS + 1
            if tile_output and (group == TILE_ROWS or n == num_outputs - 1):
                if not reconfig:
                    ctx.reduce_uninit()
                    ctx.pack_untilize_uninit(stick_cb)
                yield from ctx.cb_wait_front(pre_tilize_cb, group)
                yield from ctx.cb_reserve_back(out_cb, in_ntiles_c)
                ctx.fast_tilize_init_with_dt(pre_tilize_cb, in_ntiles_c, out_cb)
                ctx.fast_tilize_block(pre_tilize_cb, in_ntiles_c, out_cb)
                ctx.cb_push_back(out_cb, in_ntiles_c)
                ctx.cb_pop_front(pre_tilize_cb, group)
                ctx.fast_tilize_uninit(pre_tilize_cb, out_cb)
                if not reconfig:
                    ctx.unpack_tilizeA_B_init(reduce_cb, scalar_cb, in_ntiles_c,
                                              face_r_dim=min(window_rows, 16))
                    ctx.reduce_init(reduce_cb, scalar_cb, stick_cb)
                    ctx.pack_untilize_dest_init(stick_cb, face_r_dim=1, num_faces=2)


def _pack_products(ctx: ComputeContext, count: int, mul_cb: int):
    """Hand the ``count`` products in DST to pack and pack them into ``mul_cb``."""
    ctx.tile_regs_commit()
    ctx.tile_regs_wait()
    for i in range(count):
        ctx.pack_tile(i, mul_cb)
    ctx.tile_regs_release()
