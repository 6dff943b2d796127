"""Compute of the classic sharded conv (``conv_bmm_tilize.cpp``; tt-metal
``ttnn/cpp/ttnn/operations/conv/conv2d/device/kernels/``).

Per act block and inner-K block: tilize the im2col rows (HS: ACT [+ ACT_SECOND_READER] into
ACT_TILIZED; BS: own ACT_ROW_MAJOR into ACT_TILIZED once per kernel row, the matmul then uses
the multicast-received ACT), then for each output subblock reload the partials (k > 0), run
``act_block_w`` matmul_block steps, and pack to the partials, or on the last block to the output
(with the SFPU activation when there is no bias). With bias, a last pass adds the bias row
(broadcast over rows) and applies the activation. ReLU is the packer's free PACK_RELU.
"""

from __future__ import annotations

from ttsim.kernel_api import ComputeContext
from ttsim.kernels.tilize import tilize_pages


def _tilize_rows(ctx: ComputeContext, sources: list[tuple[int, int]], act_block_w: int, out_cb: int):
    """Tilize tile rows from (cb, rows) sources, one tile row at a time."""
    ctx.fast_tilize_init_with_dt(sources[0][0], act_block_w, out_cb)
    for cb, rows in sources:
        for _ in range(rows):
            yield from tilize_pages(ctx, cb, act_block_w, out_cb, act_block_w)
    ctx.fast_tilize_uninit(sources[0][0], out_cb)


def _activation(ctx: ComputeContext, activation: str, tiles: int) -> None:
    if activation in ("none", "relu"):  # relu: PACK_RELU in the packer, no SFPU work
        return
    ctx.sfpu_init(activation)
    for t in range(tiles):
        ctx.sfpu_tile(activation, t)


def compute_conv(ctx: ComputeContext):
    arg = ctx.get_compile_time_arg_val  # names as conv_bmm_tilize.cpp's (docs/compile-time-args.md)
    act_cb, act_second_cb = arg("in0_cb_id"), arg("in0_cb_second_reader_id")
    act_rm_cb, act_tilized_cb = arg("in0_pretilize_cb_id"), arg("tilized_in0_cb_id")
    weights_cb, bias_cb = arg("in1_cb_id"), arg("bias_cb_id")
    partials_cb, out_cb = arg("matmul_partials_cb"), arg("out_cb_id")
    act_block_w = arg("in0_block_w")
    sub_h, sub_w = arg("out_subblock_h"), arg("out_subblock_w")
    act_block_h = arg("in0_num_subblocks") * sub_h
    wbw = arg("in1_block_w")
    num_blocks_act_h = arg("in0_num_blocks_h")
    c_blocks = arg("in0_nblocks_w_tilize")  # the act block is tilized once per kernel row
    kh_blocks = arg("in0_num_blocks_w") // c_blocks  # inner blocks per channel block
    has_bias, activation = arg("fuse_bias"), arg("activation")
    block_sharded, split_reader = not arg("height_sharded"), arg("split_reader")
    reader_rows = arg("reader_num_h_subblocks")
    reader0_rows = reader_rows - (reader_rows // 2 if split_reader else 0)
    skip_compute = ctx.get_arg_val("skip_compute")
    act_tiles = act_block_h * act_block_w
    sub_tiles = sub_h * sub_w
    last_k = kh_blocks * c_blocks - 1
    pack_relu = arg("pack_relu")

    ctx.mm_init(act_cb, weights_cb, out_cb)
    partials = ctx.get_local_cb_interface(partials_cb)
    for _ in range(num_blocks_act_h):
        # partials alias this act block's slice of the output: every inner block spills and
        # reloads them there (tt-metal moves the partials CB pointers by hand)
        block_start = ctx.get_local_cb_interface(out_cb).fifo_wr_ptr
        for kernel_row in range(kh_blocks):
            if block_sharded:
                yield from _tilize_rows(ctx, [(act_rm_cb, act_block_h)], act_block_w, act_tilized_cb)
                in0_cb = act_cb
            else:
                sources = [(act_cb, reader0_rows)]
                if split_reader:
                    sources.append((act_second_cb, act_block_h - reader0_rows))
                yield from _tilize_rows(ctx, sources, act_block_w, act_tilized_cb)
                in0_cb = act_tilized_cb
            ctx.mm_init(in0_cb, weights_cb, out_cb)
            for c_block in range(c_blocks):
                k = kernel_row * c_blocks + c_block
                partials.fifo_rd_ptr = partials.fifo_wr_ptr = block_start
                yield from ctx.cb_wait_front(in0_cb, act_tiles)
                if not skip_compute:
                    yield from ctx.cb_wait_front(weights_cb, act_block_w * wbw)
                    final = k == last_k and not has_bias
                    target = out_cb if final else partials_cb
                    for sb_row in range(act_block_h // sub_h):
                        for sb_col in range(wbw // sub_w):
                            ctx.tile_regs_acquire()
                            if k > 0:
                                ctx.copy_tile_init(partials_cb)
                                yield from ctx.cb_wait_front(partials_cb, sub_tiles)
                                ctx.copy_block_matmul_partials(partials_cb, 0, 0, sub_tiles)
                                ctx.cb_pop_front(partials_cb, sub_tiles)
                                ctx.mm_init(in0_cb, weights_cb, out_cb)
                            in0_index = sb_row * sub_h * act_block_w
                            in1_index = sb_col * sub_w
                            for _inner in range(act_block_w):
                                ctx.matmul_block(in0_cb, weights_cb, in0_index, in1_index, 0, False,
                                                 sub_w, sub_h, act_block_w)
                                in0_index += 1
                                in1_index += wbw
                            if final:
                                _activation(ctx, activation, sub_tiles)
                            ctx.tile_regs_commit()
                            yield from ctx.cb_reserve_back(target, sub_tiles)
                            ctx.tile_regs_wait()
                            ctx.pack_relu_config(int(final and pack_relu))
                            ctx.pack_tile_block(0, target, sub_tiles)
                            ctx.tile_regs_release()
                            ctx.cb_push_back(target, sub_tiles)
                    ctx.cb_pop_front(weights_cb, act_block_w * wbw)
                ctx.cb_pop_front(in0_cb, act_tiles)
        if has_bias and not skip_compute:
            partials.fifo_rd_ptr = block_start
            yield from ctx.cb_wait_front(bias_cb, wbw)  # cumulative: returns at once after the first block
            ctx.add_bcast_rows_init_short(partials_cb, bias_cb)
            for _sb_row in range(act_block_h // sub_h):
                for sb_col in range(wbw // sub_w):
                    yield from ctx.cb_wait_front(partials_cb, sub_tiles)
                    ctx.tile_regs_acquire()
                    for t in range(sub_tiles):
                        ctx.add_tiles_bcast_rows(partials_cb, bias_cb, t, sb_col * sub_w + t % sub_w, t)
                    _activation(ctx, activation, sub_tiles)
                    ctx.tile_regs_commit()
                    ctx.cb_pop_front(partials_cb, sub_tiles)
                    yield from ctx.cb_reserve_back(out_cb, sub_tiles)
                    ctx.tile_regs_wait()
                    ctx.pack_relu_config(int(pack_relu))
                    ctx.pack_tile_block(0, out_cb, sub_tiles)
                    ctx.tile_regs_release()
                    ctx.cb_push_back(out_cb, sub_tiles)
