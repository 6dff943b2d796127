"""The depthwise program's custom compute calls against numpy references: the custom LLK
``mul_tiles_srcb_held`` (a tap's first weight page held in SrcB serves every page of the block,
each page reading the held rows from its own phase of the channel period) and the custom
composition ``tilize_add_block`` (tilize with the bias tiles added by ELWADD, through the
packer's ReLU stage)."""

from __future__ import annotations

import numpy as np
import pytest

from ttsim.device.core import Risc
from ttsim.device.spec import load_device
from ttsim.formats import DataFormat, tilize, unpack_tile
from ttsim.kernel_api.compute_eltwise import ReluType, relu_config

from test_compute_ops import A, B, OUT, bf16, rows_cb, run_compute, tiles_cb

BF16 = DataFormat.BFLOAT16
SPEC = load_device("wormhole_b0")


@pytest.mark.parametrize("channels", [96, 160, 224])
def test_mul_tiles_srcb_held_equals_mul_tiles_on_every_page(channels: int) -> None:
    """Pages of a 32-stick row-major block of ``channels`` channels times the tap's weights: the
    held first page, read from row 64 p mod (C / 16), gives what the full page p would."""
    pages = channels // 32
    rng = np.random.default_rng(channels)
    weights = bf16(rng.standard_normal(channels))
    block = bf16(rng.standard_normal((pages, 1024)))
    full = weights[(np.arange(pages)[:, None] * 1024 + np.arange(1024)) % channels]  # page p of the tap
    period = channels // 16

    def kernel(held: bool):
        def run(ctx):
            ctx.mul_tiles_init(A, B)
            yield from ctx.cb_wait_front(A, pages)
            yield from ctx.cb_wait_front(B, 1 if held else pages)
            ctx.tile_regs_acquire()
            for p in range(pages):
                if held:
                    ctx.mul_tiles_srcb_held(A, B, p, 0, p, reload_srcb=p == 0, srcb_row_start=64 * p % period,
                                            srcb_period_rows=period)
                else:
                    ctx.mul_tiles(A, B, p, p, p)
            ctx.tile_regs_commit()
            yield from ctx.cb_reserve_back(OUT, pages)
            ctx.tile_regs_wait()
            for p in range(pages):
                ctx.pack_tile(p, OUT)
            ctx.tile_regs_release()
            ctx.cb_push_back(OUT, pages)
        return run

    run = run_compute(kernel(True), {A: tiles_cb(block), B: tiles_cb(full[:1])}, {OUT: (BF16, 2048, pages)})
    standard = run_compute(kernel(False), {A: tiles_cb(block), B: tiles_cb(full)}, {OUT: (BF16, 2048, pages)})
    got = unpack_tile(run.outputs[OUT], BF16).reshape(pages, 1024)
    np.testing.assert_array_equal(got, unpack_tile(standard.outputs[OUT], BF16).reshape(pages, 1024))
    np.testing.assert_allclose(got, block * full, rtol=2 ** -6, atol=1e-6)  # DST and pack roundings
    # unpack: both operands once (5 + 4096 / 80), then A alone (5 + 2048 / 64) per page
    c = SPEC.compute
    two = 2 * c.unpack_tile_overhead_cycles.value + 4096 / c.unpack_two_operand_bytes_per_cycle.value
    one = c.unpack_tile_overhead_cycles.value + 2048 / c.unpack_bytes_per_cycle.value
    busy = run.ctx.busy_cycles[Risc.TRISC0]
    assert busy == pytest.approx(c.init_cycles.value["unpack"] + 2 * SPEC.risc.cb_check_cycles.value
                                 + two + (pages - 1) * one)


@pytest.mark.parametrize("relu", [None, "relu6"])
def test_tilize_add_block_adds_the_bias_tiles_then_the_packer_relu(relu: str | None) -> None:
    ntiles = 3
    rng = np.random.default_rng(7)
    rows = bf16(rng.standard_normal((32, 32 * ntiles)) * 4)
    bias_row = bf16(rng.standard_normal(32 * ntiles) * 4)
    bias_tiles = tilize(np.ascontiguousarray(np.broadcast_to(bias_row, (32, 32 * ntiles))))

    def kernel(ctx):
        if relu is not None:
            ctx.pack_relu_config(relu_config(ReluType.MAX_THRESHOLD_RELU, 6.0))
        ctx.tilize_init(A, ntiles, OUT)
        yield from ctx.cb_wait_front(A, 1)
        yield from ctx.cb_wait_front(B, ntiles)
        yield from ctx.cb_reserve_back(OUT, ntiles)
        ctx.tilize_add_block(A, B, ntiles, 0, OUT)
        ctx.cb_push_back(OUT, ntiles)
        ctx.cb_pop_front(A, 1)
        ctx.tilize_uninit(A, OUT)

    run = run_compute(kernel, {A: rows_cb(rows, 32 * 32 * ntiles * 2), B: tiles_cb(bias_tiles)},
                      {OUT: (BF16, 2048, ntiles)})
    expected = bf16(tilize(rows) + bias_tiles)
    if relu is not None:
        expected = np.clip(expected, 0.0, 6.0)
    np.testing.assert_array_equal(unpack_tile(run.outputs[OUT], BF16).reshape(ntiles, 1024), expected)
    # unpack per tile: the tilize plus the bias tile as one more unpacked tile
    c = SPEC.compute
    per_tile = (c.unpack_tilize_tile_cycles.value + c.unpack_tile_overhead_cycles.value
                + 2048 / c.unpack_bytes_per_cycle.value)
    busy = run.ctx.busy_cycles[Risc.TRISC0]
    assert busy == pytest.approx(2 * c.init_cycles.value["unpack"] + 2 * SPEC.risc.cb_check_cycles.value
                                 + SPEC.risc.cb_update_cycles.value + ntiles * per_tile)
