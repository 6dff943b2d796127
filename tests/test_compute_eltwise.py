"""The compute API additions (ttsim.kernel_api.compute_eltwise) against numpy: row-broadcast
multiply accumulating into DST at the kernel's math fidelity (the ISA's ELWMUL model,
ttsim.fpu.elwmul), SFPU vector modes and their cost,
SFPU issued from the pack thread, and the packer's ReLU modes."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ttsim.device.core import Risc
from ttsim.device.spec import load_device
from ttsim.errors import ConfigurationError
from ttsim.formats import tilize, untilize
from ttsim.fpu import FIDELITY_PHASES, elwmul
from ttsim.kernel_api.compute_eltwise import ReluType, VectorMode, _relu_fields, relu_config
from ttsim.numerics import ACTIVATIONS

from test_compute_ops import A, B, BF16, OUT, bf16, eltwise_kernel, out_tiles, random_tiles, run_compute, tiles_cb

SPEC = load_device("wormhole_b0")


@pytest.mark.parametrize("row", [0, 5, 16, 31])
def test_mul_tiles_bcast_rows_broadcasts_the_chosen_row(row: int) -> None:
    rng = np.random.default_rng(row)
    a_rows, b_rows = bf16(rng.standard_normal((32, 32))), bf16(rng.standard_normal((32, 32)))
    kernel = eltwise_kernel(1, lambda ctx, i: ctx.mul_tiles_bcast_rows(A, B, 0, 0, 0, row),
                            init=lambda ctx: ctx.mul_bcast_rows_init_short(A, B))
    run = run_compute(kernel, {A: tiles_cb(tilize(a_rows)), B: tiles_cb(tilize(b_rows))},
                      {OUT: (BF16, 2048, 1)})
    b_row = np.broadcast_to(b_rows[row][None, :], (32, 32))
    np.testing.assert_array_equal(untilize(out_tiles(run)), bf16(elwmul(None, a_rows, b_row, 4, True)))


def test_mul_tiles_bcast_rows_accumulates_taps_in_dst() -> None:
    """Three taps into one DST tile: DST rounds to bfloat16 after every accumulation."""
    rng = np.random.default_rng(3)
    a = [bf16(rng.standard_normal((32, 32))) for _ in range(3)]
    w = bf16(rng.standard_normal((32, 32)))  # tap t's weights in row t

    def body(ctx, i):
        for tap in range(3):
            ctx.mul_tiles_bcast_rows(A, B, tap, 0, 0, tap)

    kernel = eltwise_kernel(1, body)
    run = run_compute(kernel, {A: tiles_cb(np.stack([tilize(x)[0] for x in a])), B: tiles_cb(tilize(w))},
                      {OUT: (BF16, 2048, 1)})
    expected = None  # DST is zero after tile_regs_acquire
    for tap in range(3):
        expected = bf16(elwmul(expected, a[tap], np.broadcast_to(w[tap][None, :], (32, 32)), 4, True))
    np.testing.assert_array_equal(untilize(out_tiles(run)), expected)


def test_mul_tiles_bcast_rows_rejects_a_row_outside_the_tile() -> None:
    kernel = eltwise_kernel(1, lambda ctx, i: ctx.mul_tiles_bcast_rows(A, B, 0, 0, 0, 32))
    with pytest.raises(ConfigurationError, match="bcast_row_idx 32 outside 0..31"):
        run_compute(kernel, {A: tiles_cb(random_tiles(1, 1)), B: tiles_cb(random_tiles(1, 2))},
                    {OUT: (BF16, 2048, 1)})


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi2", "HiFi4"])
def test_mul_tiles_bcast_rows_multiplies_at_the_kernel_fidelity(fidelity: str) -> None:
    """LoFi drops SrcA's low mantissa bits: the products differ from HiFi4's exactly as the
    ISA model's phases say, accumulated on top of what DST already holds."""
    rng = np.random.default_rng(11)
    a_rows, b_rows = bf16(rng.standard_normal((32, 32))), bf16(rng.standard_normal((32, 32)))

    def body(ctx, i):
        ctx.mul_tiles_bcast_rows(A, B, 0, 0, 0, 2)
        ctx.mul_tiles_bcast_rows(A, B, 0, 0, 0, 7)

    run = run_compute(eltwise_kernel(1, body), {A: tiles_cb(tilize(a_rows)), B: tiles_cb(tilize(b_rows))},
                      {OUT: (BF16, 2048, 1)}, math_fidelity=fidelity)
    phases = FIDELITY_PHASES[fidelity]
    first = bf16(elwmul(None, a_rows, np.broadcast_to(b_rows[2][None, :], (32, 32)), phases, True))
    expected = bf16(elwmul(first, a_rows, np.broadcast_to(b_rows[7][None, :], (32, 32)), phases, True))
    np.testing.assert_array_equal(untilize(out_tiles(run)), expected)
    if fidelity == "LoFi":
        exact = bf16(bf16(a_rows * b_rows[2][None, :]) + a_rows * b_rows[7][None, :])
        assert not np.array_equal(expected, exact)


def _faces(tile: np.ndarray) -> np.ndarray:
    return tile.reshape(4, 256)


@pytest.mark.parametrize("mode,faces", [(VectorMode.R, (0, 1)), (VectorMode.C, (0, 2)),
                                        (VectorMode.RC, (0, 1, 2, 3))])
def test_sfpu_vector_mode_works_on_its_faces_and_costs_in_proportion(mode: VectorMode, faces) -> None:
    a = random_tiles(1, 6, scale=3.0)
    kernel = eltwise_kernel(1, lambda ctx, i: (ctx.copy_tile(A, 0, 0), ctx.sfpu_tile_vector("silu", 0, mode)),
                            inputs=(A,))
    run = run_compute(kernel, {A: tiles_cb(a)}, {OUT: (BF16, 2048, 1)})
    got, before = _faces(out_tiles(run)[0]), _faces(a[0])
    silu = bf16(ACTIVATIONS["silu"](before.astype(np.float64)))
    for face in range(4):
        np.testing.assert_array_equal(got[face], silu[face] if face in faces else before[face])
    plain = run_compute(eltwise_kernel(1, lambda ctx, i: ctx.copy_tile(A, 0, 0), inputs=(A,)),
                        {A: tiles_cb(a)}, {OUT: (BF16, 2048, 1)})
    sfpu_cycles = run.ctx.busy_cycles[Risc.TRISC1] - plain.ctx.busy_cycles[Risc.TRISC1]
    silu_tile = SPEC.compute.sfpu_tile_cycles.value["silu"]
    assert sfpu_cycles == pytest.approx(silu_tile * len(faces) / 4)


def test_silu_tile_pack_matches_silu_tile_and_runs_on_the_pack_thread() -> None:
    a = random_tiles(2, 7, scale=3.0)

    def on_math(ctx, i):
        ctx.copy_tile(A, i, 0)
        ctx.silu_tile(0)

    def kernel_pack(ctx):
        ctx.silu_tile_init_pack()
        yield from ctx.cb_wait_front(A, 2)
        yield from ctx.cb_reserve_back(OUT, 2)
        for i in range(2):
            ctx.tile_regs_acquire()
            ctx.copy_tile(A, i, 0)
            ctx.tile_regs_commit()
            ctx.tile_regs_wait()
            ctx.silu_tile_pack(0)
            ctx.pack_tile(0, OUT)
            ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 2)
        ctx.cb_pop_front(A, 2)

    math_run = run_compute(eltwise_kernel(2, on_math, inputs=(A,)), {A: tiles_cb(a)}, {OUT: (BF16, 2048, 2)})
    pack_run = run_compute(kernel_pack, {A: tiles_cb(a)}, {OUT: (BF16, 2048, 2)})
    np.testing.assert_array_equal(out_tiles(pack_run), out_tiles(math_run))
    silu = 2 * SPEC.compute.sfpu_tile_cycles.value["silu"]
    moved = pack_run.ctx.busy_cycles[Risc.TRISC2] - math_run.ctx.busy_cycles[Risc.TRISC2]
    assert moved >= silu
    assert math_run.ctx.busy_cycles[Risc.TRISC1] - pack_run.ctx.busy_cycles[Risc.TRISC1] == pytest.approx(silu)


@pytest.mark.parametrize("mode,threshold", [(ReluType.NO_RELU, 0.0), (ReluType.ZERO_RELU, 0.0),
                                            (ReluType.MIN_THRESHOLD_RELU, 0.5),
                                            (ReluType.MAX_THRESHOLD_RELU, 6.0)])
def test_pack_relu_config_modes(mode: ReluType, threshold: float) -> None:
    a = random_tiles(1, 8, scale=5.0)
    kernel = eltwise_kernel(1, lambda ctx, i: ctx.copy_tile(A, 0, 0), inputs=(A,),
                            init=lambda ctx: ctx.pack_relu_config(relu_config(mode, threshold)))
    run = run_compute(kernel, {A: tiles_cb(a)}, {OUT: (BF16, 2048, 1)})
    x = a[0]
    expected = {ReluType.NO_RELU: x, ReluType.ZERO_RELU: np.maximum(x, 0),
                ReluType.MIN_THRESHOLD_RELU: np.where(x <= threshold, 0, x),
                ReluType.MAX_THRESHOLD_RELU: np.clip(x, 0, threshold)}[mode]
    np.testing.assert_array_equal(out_tiles(run)[0], expected)
    if mode is ReluType.MAX_THRESHOLD_RELU:  # relu6 in the packer equals the reference relu6
        np.testing.assert_array_equal(out_tiles(run)[0], ACTIVATIONS["relu6"](x))


@pytest.mark.parametrize("config", [0, 1, 2 | (0x3F00 << 16), 3 | (0x40C0 << 16), 3 | (0x8000 << 16),
                                    2 | (0x7FC0 << 16), 1 | (0x7F80 << 16), 7, 15 | (0x4000 << 16)])
def test_pack_relu_config_decodes_each_word_as_its_bits_say(config: int) -> None:
    """The decoded (mode, threshold, sign) of a word, kept per word, against struct: the mode
    from bits 0-3, the threshold the float32 whose top 16 bits are bits 16-31; a second decode
    of the same word gives the same fields."""
    threshold = struct.unpack("<f", struct.pack("<I", (config >> 16) << 16))[0]
    mode = ReluType(config & 0xF) if config & 0xF in (0, 1, 2, 3) else None
    for _ in range(2):
        got_mode, got_threshold, negative = _relu_fields(config)
        assert got_mode is mode
        assert struct.pack("<d", got_threshold) == struct.pack("<d", threshold)  # bit for bit (NaN too)
        assert negative == (struct.pack("<f", threshold)[3] >= 0x80)


def test_pack_relu_config_rejects_a_negative_threshold() -> None:
    kernel = eltwise_kernel(1, lambda ctx, i: ctx.copy_tile(A, 0, 0), inputs=(A,),
                            init=lambda ctx: ctx.pack_relu_config(relu_config(ReluType.MAX_THRESHOLD_RELU, -1.0)))
    with pytest.raises(ConfigurationError, match="threshold -1.0 must be >= \\+0"):
        run_compute(kernel, {A: tiles_cb(random_tiles(1, 9))}, {OUT: (BF16, 2048, 1)})
