"""Compute of the depthwise program: 32 output sticks at a time, every tap multiplied and
accumulated in DST, bias and activation once per output tile (docs/depthwise.md).

A group's input block for one tap is 32 row-major sticks of C_core channels, i.e. C_core / 32
pages of 1024 consecutive values. The FPU's element-wise multiply does not care how the 1024
values of a page are arranged as long as both operands agree, so each page is multiplied with
a weight page holding the tap's per-channel weights in the same row-major arrangement (host
prepared), with no tilize: ``mul_tiles`` (ELWMUL at the kernel's fidelity) accumulates
``DST[i] += window page i * weight page i`` over the taps (ELWMUL is ``Dst += SrcA * SrcB``).
Per output block the bias page (after the taps' pages in the weight CB) is added in DST
(``binary_dest_reuse_tiles``), relu / relu6 are the packer's ReLU stage, silu / gelu run on the SFPU (from the math
thread, or from the pack thread with ``silu_tile_pack``). DST then holds the 32 output sticks
row-major: a row-major output is packed straight into its shard; a tiled output is packed to
``rm_cb`` and tilized into the output shard, once per 32 sticks.

DST holds at most one half (8 bf16 tiles) per acquire, so wider channel slices run in chunks
of 8 pages over the same window block.
"""

from __future__ import annotations

from ttsim.kernel_api import ComputeContext
from ttsim.kernel_api.compute_eltwise import ReluType, relu_config
from ttsim.kernels.tilize import tilize_pages

SRCB_TILE_ROWS = 64
"""SrcB rows of 16 datums one 1024-value page fills."""
PACKER_RELU = {"relu": relu_config(ReluType.ZERO_RELU),
               "relu6": relu_config(ReluType.MAX_THRESHOLD_RELU, 6.0)}


def compute_depthwise(ctx: ComputeContext):
    win_cbs = ctx.get_compile_time_arg_val("win_cbs")
    weight_cb = ctx.get_compile_time_arg_val("weight_cb")
    out_cb = ctx.get_compile_time_arg_val("out_cb")
    rm_cb = ctx.get_compile_time_arg_val("rm_cb")
    taps = ctx.get_compile_time_arg_val("taps")
    pages = ctx.get_compile_time_arg_val("block_pages")
    dst_tiles = ctx.get_compile_time_arg_val("dst_tiles")
    has_bias = ctx.get_compile_time_arg_val("has_bias")
    activation = ctx.get_compile_time_arg_val("activation")
    packer_relu = ctx.get_compile_time_arg_val("packer_relu")
    sfpu_on_pack = ctx.get_compile_time_arg_val("sfpu_on_pack")
    tile_output = ctx.get_compile_time_arg_val("tile_output")
    out_is_bf16 = ctx.get_compile_time_arg_val("out_is_bf16")
    srcb_reuse = ctx.get_compile_time_arg_val("srcb_reuse")
    tap_tiles = ctx.get_compile_time_arg_val("tap_tiles")  # weight pages per tap (1 with srcb_reuse)
    period = ctx.get_compile_time_arg_val("srcb_period_rows")
    wait_taps = ctx.get_compile_time_arg_val("window_wait_taps")
    tilize_groups = ctx.get_compile_time_arg_val("tilize_groups")
    lag = ctx.get_compile_time_arg_val("tilize_lag")
    num_groups = ctx.get_arg_val("num_groups")

    readers = len(win_cbs)
    chunk = -(-pages // -(-pages // dst_tiles))  # equal DST chunks: both halves pipeline evenly
    pack_cb = rm_cb if tile_output else out_cb
    slots = -(-taps // readers)  # window CB slots per reader and group
    bias_tile = taps * tap_tiles  # the bias pages follow the taps in weight_cb
    in_packer = packer_relu and activation in PACKER_RELU
    sfpu = activation if activation != "none" and not in_packer else None
    # the bias rides in the output tilize (ELWADD instead of its datacopy) unless an SFPU
    # activation must follow it before the tilize; the packer's ReLU then runs in the tilize pack
    bias_in_tilize = has_bias and tile_output and sfpu is None
    relu = PACKER_RELU[activation] if in_packer else None

    ctx.compute_kernel_hw_startup(win_cbs[0], weight_cb, pack_cb)
    if relu is not None and not bias_in_tilize:
        ctx.pack_relu_config(relu)
    if sfpu is not None:
        if sfpu_on_pack:
            ctx.sfpu_tile_init_pack(sfpu)
        else:
            ctx.sfpu_init(sfpu)
    ctx.mul_tiles_init(win_cbs[0], weight_cb)

    tilized = 0
    for group in range(num_groups):
        for first in range(0, pages, chunk):
            n = min(chunk, pages - first)
            ctx.tile_regs_acquire()
            for tap in range(taps):
                if group == 0 and first == 0:  # weights arrive tap by tap; never popped
                    yield from ctx.cb_wait_front(weight_cb, (tap + 1) * tap_tiles)
                r, k = (tap + group) % readers, tap // readers  # the readers alternate the odd tap out
                cb = win_cbs[r]
                if first == 0 and k % wait_taps == 0:  # the group's taps stay until its last chunk
                    mine = len(range((r - group) % readers, taps, readers))  # (the last wait: every slot)
                    yield from ctx.cb_wait_front(cb, (k + wait_taps if k + wait_taps < mine else slots) * pages)
                base = k * pages
                for i in range(n):
                    if srcb_reuse:  # custom LLK: the tap's weights stay in SrcB for the chunk
                        ctx.mul_tiles_srcb_held(cb, weight_cb, base + first + i, tap, i, reload_srcb=i == 0,
                                                srcb_row_start=SRCB_TILE_ROWS * (first + i) % period,
                                                srcb_period_rows=period)
                    else:
                        ctx.mul_tiles(cb, weight_cb, base + first + i, tap * pages + first + i, i)
            if has_bias and not bias_in_tilize:  # DST += bias page
                if group == 0 and first == 0:
                    yield from ctx.cb_wait_front(weight_cb, bias_tile + pages)
                ctx.binary_dest_reuse_tiles_init(weight_cb)
                for i in range(n):
                    ctx.binary_dest_reuse_tiles(weight_cb, bias_tile + first + i, i, op="add")
                ctx.mul_tiles_init(win_cbs[0], weight_cb)
            if sfpu is not None and not sfpu_on_pack:
                for i in range(n):
                    ctx.sfpu_tile(sfpu, i)
            ctx.tile_regs_commit()
            yield from ctx.cb_reserve_back(pack_cb, n)
            ctx.tile_regs_wait()
            for i in range(n):
                if sfpu is not None and sfpu_on_pack:
                    ctx.sfpu_tile_pack(sfpu, i)
                ctx.pack_tile(i, pack_cb)
            ctx.tile_regs_release()
            ctx.cb_push_back(pack_cb, n)
        for r, cb in enumerate(win_cbs):
            if not range((r - group) % readers, taps, readers):  # a 1x1 window: this reader's slot
                yield from ctx.cb_wait_front(cb, slots * pages)  # holds no tap but is pushed all the same
            ctx.cb_pop_front(cb, slots * pages)
        # tilize the groups packed `lag` groups ago, `tilize_groups` at a time: their packing (and
        # SFPU) overlapped the later groups' multiplies, and one init serves them all
        if tile_output and group + 1 - lag - tilized >= tilize_groups:
            yield from _tilize_groups(ctx, rm_cb, out_cb, pages, tilize_groups, weight_cb,
                                      bias_tile if bias_in_tilize else None, relu)
            _back_to_multiply(ctx, out_is_bf16, rm_cb, out_cb, win_cbs[0], weight_cb)
            tilized += tilize_groups
    if tile_output and num_groups > tilized:  # the last batch: nothing to reconfigure back for
        yield from _tilize_groups(ctx, rm_cb, out_cb, pages, num_groups - tilized, weight_cb,
                                  bias_tile if bias_in_tilize else None, relu)


def _tilize_groups(ctx: ComputeContext, rm_cb: int, out_cb: int, pages: int, count: int, weight_cb: int,
                   bias_tile: int | None, relu: int | None):
    """``count`` groups of 32 row-major output sticks from ``rm_cb`` -> ``pages`` tiles each in the
    output shard, under one tilize configuration (as tt-metal's tilize kernels loop
    ``tilize_block`` after one ``tilize_init``). With ``bias_tile`` the bias tiles (tiles
    ``bias_tile`` .. of ``weight_cb``) are added on the way and the packer's ReLU (``relu``)
    clamps the biased outputs."""
    ctx.tilize_init(rm_cb, pages, out_cb)
    if bias_tile is None:
        for _ in range(count):
            yield from tilize_pages(ctx, rm_cb, pages, out_cb, pages)
    else:  # tile column by tile column over the groups: one bias tile unpack serves them all
        if relu is not None:
            ctx.pack_relu_config(relu)
        yield from ctx.cb_wait_front(rm_cb, count * pages)
        yield from ctx.cb_reserve_back(out_cb, count * pages)
        ctx.tilize_add_block(rm_cb, weight_cb, pages, bias_tile, out_cb, nblocks=count)
        ctx.cb_push_back(out_cb, count * pages)
        ctx.cb_pop_front(rm_cb, count * pages)
    if bias_tile is not None and relu is not None:
        ctx.pack_relu_config(int(ReluType.NO_RELU))


def _back_to_multiply(ctx: ComputeContext, out_is_bf16: bool, rm_cb: int, out_cb: int, win_cb: int,
                      weight_cb: int) -> None:
    """After a tilize batch: the unpacker, packer and math back to the multiply's configuration."""
    ctx.tilize_uninit(rm_cb, out_cb)
    if not out_is_bf16:
        ctx.pack_reconfig_data_format(rm_cb)
    ctx.mul_tiles_init(win_cb, weight_cb)
