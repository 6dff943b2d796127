"""The compute kernels' vectorised numerics are bit-identical to computing each tile on its own.

ttsim computes a ``matmul_block`` step as one batched product (operand blocks cached while their
L1 bytes are unchanged), packs a ``pack_tile_block`` in one encode, and defers element-wise DST ops
(``mul_tiles``, ``binary_dest_reuse_tiles``, ``copy_tile``, element-wise SFPU activations) to
compute several tiles per numpy call. The references here are the per-tile forms those paths
replaced: :func:`ttsim.fpu.mvmul` on the subblock's rows per inner step, :func:`ttsim.fpu.elwmul`
and the activations on one tile at a time, :func:`ttsim.formats.pack_tile` per tile. Outputs are
packed to float32 CBs (exact copies of DST), so every DST bit is compared.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from ttsim.formats import DataFormat, pack_tile, tilize, unpack_tile, unpack_tiles, untilize
from ttsim.formats import (_BFP8_BIT_DECODE_MIN, _BFP8_SCALE, _BFP8_SIGNED_MANTISSA, _BFP8_SPARSE_MIN,
                           _bfp8_decode, _bfp8_encode, _bfp8_encode_blocks)
from ttsim.fpu import (FIDELITY_PHASES, accumulate, accumulate_from_zero, all_finite, column_sum_from_zero,
                       column_sum_partials, dense_mvmul_plan, elwmul, mvmul, mvmul_accumulate, mvmul_plan,
                       mvmul_sums, round_dst, srca_part, srcb_lofi_bits, srcb_part, zero_groups)
from ttsim.kernel_api.compute import BFLOAT16_CLOSED_ACTIVATIONS, ELEMENTWISE_ACTIVATIONS, FLOAT32_ACTIVATIONS
from ttsim.numerics import ACTIVATIONS

from test_compute_ops import A, B, BF16, OUT, CBData, random_tiles, run_compute, tiles_cb

F32 = DataFormat.FLOAT32
BF8 = DataFormat.BFLOAT8_B
C = 3  # a third input CB (bias tiles)


def _rows(tiles: np.ndarray, rt: int, ct: int) -> np.ndarray:
    """``rt * ct`` tiles (row-major over the block) as [rt, 32, 32 * ct] rows."""
    return np.stack([untilize(tiles[h * ct : (h + 1) * ct]) for h in range(rt)])


def _dst_round(values: np.ndarray, fp32_dest_acc: bool) -> np.ndarray:
    return round_dst(np.asarray(values, dtype=np.float32), not fp32_dest_acc)


def _mixed_tiles(n: int, seed: int) -> np.ndarray:
    """bfloat16 values of widely spread magnitudes, with signed zeros, so that rounding, bit masks
    and block exponents all matter."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1024)) * np.exp2(rng.integers(-6, 6, (n, 1024)))
    x[rng.random((n, 1024)) < 0.05] = 0.0
    x[rng.random((n, 1024)) < 0.05] = -0.0
    return x.astype(np.float32)


def _out_values(run, n: int) -> np.ndarray:
    return unpack_tile(run.outputs[OUT].reshape(n, -1), F32)


@pytest.mark.parametrize("rt, ct, kt, transpose", [(1, 5, 3, False), (2, 2, 2, False), (2, 3, 2, True),
                                                   (1, 1, 4, False)])
@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi2", "HiFi4"])
@pytest.mark.parametrize("fmt, fp32_dest_acc", [(BF16, False), (BF8, False), (BF16, True)])
@pytest.mark.parametrize("weights", ["dense", "zero faces", "zero faces, inf in0", "diagonal faces",
                                     "shifted diagonal faces", "shifted diagonal faces, inf in0", "zero",
                                     "zero, inf in0"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the inf in in0 makes inf - inf and inf * 0
def test_matmul_block_equals_per_step_mvmul(rt: int, ct: int, kt: int, transpose: bool, fidelity: str,
                                            fmt: DataFormat, fp32_dest_acc: bool, weights: str) -> None:
    """kt inner steps into one subblock, then again (the operand cache hit) into DST holding the
    first pass: every DST value as mvmul on the subblock's rows, DST rounded per call; also with
    half the in1 faces zero (products skipped), with an inf in in0 (nothing skipped), with every
    in1 face zero off its diagonal (one product per sum), or off a diagonal 8 rows above or below
    it (one product per sum, SrcB's columns gathered; with an inf in in0 the dense product) and
    with every in1 face zero (bfloat16: no product computed, unless in0 holds an inf)."""
    if fp32_dest_acc:  # a DST half holds 4 float32 tiles
        ct = min(ct, 4 // rt)
    in0 = _mixed_tiles(rt * kt, 71)
    in1 = _mixed_tiles(kt * ct, 72)
    faces = in1.reshape(-1, 16, 16)
    if weights.startswith("zero faces"):
        faces[np.random.default_rng(73).random(len(faces)) < 0.5] = 0.0
        faces[::5] = 0.0
    elif weights.startswith("zero"):
        faces[...] = 0.0
        faces[::3, 2] = -0.0
    elif weights == "diagonal faces":
        faces[:, ~np.eye(16, dtype=bool)] = 0.0
        faces[::4] = 0.0
    elif weights.startswith("shifted diagonal faces"):  # a depthwise conv's K slices half a face off
        faces[0::3, ~np.eye(16, k=-8, dtype=bool)] = 0.0
        faces[1::3, ~np.eye(16, k=8, dtype=bool)] = 0.0
        faces[2::3, ~np.eye(16, dtype=bool)] = 0.0
        faces[::4] = 0.0
    if weights.endswith("inf in0"):
        in0[0, 17] = np.inf
    count = rt * ct

    def kernel(ctx):
        ctx.mm_init(A, B, OUT)
        yield from ctx.cb_wait_front(A, rt * kt)
        yield from ctx.cb_wait_front(B, kt * ct)
        ctx.tile_regs_acquire()
        for _ in range(2):
            for k in range(kt):
                ctx.matmul_block(A, B, k, k * ct, 0, transpose, ct, rt, kt)
        ctx.tile_regs_commit()
        yield from ctx.cb_reserve_back(OUT, count)
        ctx.tile_regs_wait()
        ctx.pack_tile_block(0, OUT, count)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, count)

    run = run_compute(kernel, {A: tiles_cb(in0, fmt), B: tiles_cb(in1, fmt)}, {OUT: (F32, 4096, count)},
                      math_fidelity=fidelity, fp32_dest_acc=fp32_dest_acc)
    a_seen = unpack_tile(pack_tile(in0, fmt), fmt)  # the values the unpacker reads
    b_seen = unpack_tile(pack_tile(in1, fmt), fmt)
    phases = FIDELITY_PHASES[fidelity]
    dst = None
    for _ in range(2):
        for k in range(kt):
            a_rows = np.stack([untilize(a_seen[h * kt + k][None]) for h in range(rt)])  # [rt, 32, 32]
            b_tiles = b_seen[k * ct : (k + 1) * ct]
            if transpose:
                b_tiles = np.stack([tilize(untilize(t[None]).T)[0] for t in b_tiles])
            result = mvmul(dst, a_rows, untilize(b_tiles), phases, not fp32_dest_acc, round_last=False)
            dst = _dst_round(result, fp32_dest_acc)
    got = _rows(_out_values(run, count), rt, ct)
    np.testing.assert_array_equal(got.view(np.uint32), dst.view(np.uint32))


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi4"])
@pytest.mark.parametrize("fp32_dest_acc", [False, True])
def test_deferred_matmul_runs_interleaved_with_other_dst_tiles(fidelity: str, fp32_dest_acc: bool) -> None:
    """matmul_block steps are deferred and each run into the same DST tiles computed at once:
    runs into DST[0], then DST[1], then DST[0] again, a copy_tile between, and an SFPU op on
    DST[0] after, give every DST bit of mvmul per step (DST rounded per call) and the copy."""
    kt = 3
    in0, in1, extra = (round_dst(_mixed_tiles(n, seed), True) for n, seed in ((kt, 81), (kt, 82), (1, 83)))

    def kernel(ctx):
        ctx.mm_init(A, B, OUT)
        yield from ctx.cb_wait_front(A, kt)
        yield from ctx.cb_wait_front(B, kt)
        yield from ctx.cb_wait_front(C, 1)
        ctx.tile_regs_acquire()
        for idst in (0, 1):
            for k in range(kt):
                ctx.matmul_block(A, B, k, k, idst, False, 1, 1, kt)
        ctx.copy_tile_init(C)
        ctx.copy_tile(C, 0, 2)
        ctx.mm_init(A, B, OUT)
        for k in range(kt):
            ctx.matmul_block(A, B, k, k, 0, False, 1, 1, kt)
        ctx.relu_tile(0)
        ctx.tile_regs_commit()
        yield from ctx.cb_reserve_back(OUT, 3)
        ctx.tile_regs_wait()
        ctx.pack_tile_block(0, OUT, 3)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 3)

    run = run_compute(kernel, {A: tiles_cb(in0, BF16), B: tiles_cb(in1, BF16), C: tiles_cb(extra, BF16)},
                      {OUT: (F32, 4096, 3)}, math_fidelity=fidelity, fp32_dest_acc=fp32_dest_acc)
    phases = FIDELITY_PHASES[fidelity]

    def steps(dst, passes):
        for _ in range(passes):
            for k in range(kt):
                result = mvmul(dst, untilize(in0[k][None]), untilize(in1[k][None]), phases,
                               not fp32_dest_acc, round_last=False)
                dst = _dst_round(result, fp32_dest_acc)
        return dst

    want = [np.maximum(steps(None, 2), 0.0), steps(None, 1), untilize(extra)]
    got = _out_values(run, 3)
    for t in range(3):
        np.testing.assert_array_equal(untilize(got[t][None]).view(np.uint32),
                                      np.asarray(want[t], np.float32).view(np.uint32))


@pytest.mark.parametrize("activation", ["relu6", "silu", "gelu", "relu"])
@pytest.mark.parametrize("fidelity, fp32_dest_acc", [("LoFi", False), ("HiFi4", False), ("HiFi2", True)])
@pytest.mark.parametrize("weights", [BF16, BF8])
def test_deferred_elementwise_ops_equal_per_tile(activation: str, fidelity: str, fp32_dest_acc: bool,
                                                 weights: DataFormat) -> None:
    """A depthwise-style DST sequence: copy, multiply-accumulate taps (twice into one tile with no
    yield between: two runs), bias add, a DST multiply, SFPU, packed in a block and tile by tile."""
    n, taps = 3, 3  # n + 1 tiles fit a float32 DST half
    x = _mixed_tiles(taps * n, 81)
    w = _mixed_tiles(taps * n, 82)
    bias = _mixed_tiles(n, 83)

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, taps * n)
        yield from ctx.cb_wait_front(B, taps * n)
        yield from ctx.cb_wait_front(C, n)
        ctx.tile_regs_acquire()
        ctx.copy_tile(C, 0, n)  # DST[n] = bias 0, then multiplied twice in a row below
        for tap in range(taps):
            for i in range(n):
                ctx.mul_tiles(A, B, tap * n + i, tap * n + i, i)
        ctx.mul_tiles(A, B, 0, 1, n)
        ctx.mul_tiles(A, B, 2, 3, n)
        for i in range(n):
            ctx.binary_dest_reuse_tiles(C, i, i, op="add")
        ctx.binary_dest_reuse_tiles(C, 1, n, op="mul")
        for i in range(n + 1):
            ctx.sfpu_tile(activation, i)
        ctx.tile_regs_commit()
        yield from ctx.cb_reserve_back(OUT, 2 * (n + 1))
        ctx.tile_regs_wait()
        ctx.pack_tile_block(0, OUT, n + 1)
        for i in range(n + 1):
            ctx.pack_tile(i, OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 2 * (n + 1))

    run = run_compute(kernel, {A: tiles_cb(x), B: tiles_cb(w, weights), C: tiles_cb(bias, weights)},
                      {OUT: (F32, 4096, 2 * (n + 1))}, math_fidelity=fidelity, fp32_dest_acc=fp32_dest_acc)
    x = unpack_tile(pack_tile(x, BF16), BF16)  # the values the unpacker reads
    w_seen = unpack_tile(pack_tile(w, weights), weights)
    bias_seen = unpack_tile(pack_tile(bias, weights), weights)
    phases, dst_bf16 = FIDELITY_PHASES[fidelity], not fp32_dest_acc

    def rnd(v):
        return _dst_round(v, fp32_dest_acc)

    def act(v):
        fast = FLOAT32_ACTIVATIONS.get(activation)
        return fast(v) if fast is not None else ACTIVATIONS[activation](v).astype(np.float32, copy=False)

    expected = []
    for i in range(n):  # one tile at a time, as the eager per-tile ops computed it
        d = rnd(elwmul(None, x[i], w_seen[i], phases, dst_bf16, round_last=False))
        for tap in range(1, taps):
            d = rnd(elwmul(d, x[tap * n + i], w_seen[tap * n + i], phases, dst_bf16, round_last=False))
        expected.append(rnd(act(rnd(d + bias_seen[i]))))
    d = rnd(bias_seen[0])
    d = rnd(elwmul(d, x[0], w_seen[1], phases, dst_bf16, round_last=False))
    d = rnd(elwmul(d, x[2], w_seen[3], phases, dst_bf16, round_last=False))
    d = rnd(elwmul(None, d, bias_seen[1], phases, dst_bf16, round_last=False))
    expected.append(rnd(act(d)))
    expected = np.stack(expected)
    got = _out_values(run, 2 * (n + 1))
    np.testing.assert_array_equal(got[: n + 1].view(np.uint32), expected.view(np.uint32))
    np.testing.assert_array_equal(got[n + 1 :].view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("fmt", [BF8, BF16, F32])
def test_pack_tile_block_writes_the_bytes_of_per_tile_packs(fmt: DataFormat) -> None:
    """One encode for the block, the same bytes as pack_tile tile by tile (bfloat8_b blocks of
    16 share an exponent, so a block encode that mixed tiles would show)."""
    n = 5
    x = _mixed_tiles(n, 91)
    size = pack_tile(x[:1], fmt).shape[1]

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, n)
        yield from ctx.cb_reserve_back(OUT, 2 * n)
        ctx.tile_regs_acquire()
        ctx.copy_block_matmul_partials(A, 0, 0, n)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        ctx.pack_tile_block(0, OUT, n)
        for i in range(n):
            ctx.pack_tile(i, OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 2 * n)

    run = run_compute(kernel, {A: tiles_cb(x, F32)}, {OUT: (fmt, size, 2 * n)})
    out = run.outputs[OUT]
    np.testing.assert_array_equal(out[:n], out[n:])
    dst = round_dst(x, True)
    np.testing.assert_array_equal(out[n:], np.stack([pack_tile(t, fmt) for t in dst]))


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_ACTIVATIONS))
def test_batched_activations_equal_per_tile(name: str) -> None:
    """The activations deferred DST ops batch give each tile the values it gets alone, and each
    face the values it gets alone (the SFPU's VectorMode.RC computes a tile in one call)."""
    x = _mixed_tiles(8, 101) * 4
    func = FLOAT32_ACTIVATIONS.get(name) or (lambda v: ACTIVATIONS["none" if name == "identity" else name](v)
                                             .astype(np.float32, copy=False))
    batched = func(x)
    for i in range(len(x)):
        np.testing.assert_array_equal(batched[i].view(np.uint32), func(x[i]).view(np.uint32))
        for face in range(4):
            np.testing.assert_array_equal(batched[i, face * 256 : (face + 1) * 256].view(np.uint32),
                                          func(x[i, face * 256 : (face + 1) * 256]).view(np.uint32))


@pytest.mark.parametrize("fmt", [BF8, BF16, F32, DataFormat.UINT16])
def test_unpack_tiles_equals_unpack_tile(fmt: DataFormat) -> None:
    values = np.abs(_mixed_tiles(3, 111)) if fmt is DataFormat.UINT16 else _mixed_tiles(3, 111)
    raw = pack_tile(values, fmt)
    np.testing.assert_array_equal(unpack_tiles(raw, fmt).view(np.uint32), unpack_tile(raw, fmt).view(np.uint32))
    np.testing.assert_array_equal(unpack_tiles(raw[1:2], fmt)[0], unpack_tile(raw[1], fmt))


def test_bfloat8_b_decode_of_many_tiles_equals_the_table_decode_on_every_code_and_exponent() -> None:
    """The block decode (4 tiles and more) against the per-value table: every code byte with every
    shared exponent, in blocks of 16."""
    code = np.tile(np.arange(256, dtype=np.uint8), (256, 1)).reshape(-1, 16)
    shared = np.repeat(np.arange(256, dtype=np.uint8), 16)
    with np.errstate(over="ignore"):  # 127 * 2^122 is past float32: inf, as the table gives
        got = _bfp8_decode(shared, code)
        table = _BFP8_SIGNED_MANTISSA[code] * _BFP8_SCALE[shared][:, None]
    assert code.size >= _BFP8_BIT_DECODE_MIN
    np.testing.assert_array_equal(got.view(np.uint32), table.view(np.uint32))


def test_a_weight_tile_rewritten_in_l1_is_read_again() -> None:
    """The matmul operand cache compares bytes: after the in1 tile's bytes change in L1 (written
    here by the kernel itself between two steps), the next matmul_block sees the new values."""
    in0 = random_tiles(1, 121)
    first, second = random_tiles(1, 122), random_tiles(1, 123)

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, 1)
        yield from ctx.cb_wait_front(B, 1)
        yield from ctx.cb_reserve_back(OUT, 2)
        for step in range(2):
            ctx.tile_regs_acquire()
            ctx.matmul_block(A, B, 0, 0, 0, False, 1, 1, 1)
            ctx.tile_regs_commit()
            ctx.tile_regs_wait()
            ctx.pack_tile(0, OUT)
            ctx.tile_regs_release()
            if step == 0:
                ctx.core.l1.write(ctx.cb(B).front_page_address(0), pack_tile(second[0], BF16))
        ctx.cb_push_back(OUT, 2)

    run = run_compute(kernel, {A: tiles_cb(in0), B: tiles_cb(first)}, {OUT: (F32, 4096, 2)},
                      math_fidelity="LoFi")
    got = _out_values(run, 2)
    for out, b in zip(got, (first, second)):
        expected = round_dst(mvmul(None, untilize(in0)[None], untilize(b), 1, True, round_last=False), True)
        np.testing.assert_array_equal(untilize(out[None]), expected[0])


def _mvmul_operands(accumulations: int, faces: int, rows: int, zero_faces: float, seed: int):
    """Fidelity parts for :func:`mvmul_accumulate`: srcb [S, rows, 16], srca [S, faces, 16, 16]
    with a share ``zero_faces`` of its blocks zero (some -0), both float64."""
    rng = np.random.default_rng(seed)
    srcb = srcb_part(_mixed_tiles(accumulations, seed)[:, : rows * 16].reshape(accumulations, rows, 16), 0)
    srca = srca_part(_mixed_tiles(accumulations * faces // 4 + 1, seed + 1).reshape(-1)[
        : accumulations * faces * 256].reshape(accumulations, faces, 16, 16), 0)
    zero = rng.random((accumulations, faces)) < zero_faces
    srca[zero] = 0.0
    srca[zero & (rng.random((accumulations, faces)) < 0.3)] = -0.0
    return srcb.astype(np.float64), srca.astype(np.float64)


@pytest.mark.parametrize("dst_bf16", [True, False])
@pytest.mark.parametrize("fresh", [True, False])
@pytest.mark.parametrize("zero_faces", [0.0, 0.5, 0.9, 1.0, "block diagonal", "depthwise", "shifted depthwise"])
@pytest.mark.parametrize("srcb_finite", [True, False])
def test_mvmul_accumulate_equals_every_accumulation_added_in_order(dst_bf16: bool, fresh: bool,
                                                                   zero_faces: float | str, srcb_finite: bool) -> None:
    """A matmul run accumulated with the zero SrcA blocks skipped gives every DST bit of adding
    every accumulation's :func:`mvmul_sums` in order with DST rounded after each (then the DST
    store): zero, -0 and NaN DST values, all-zero weight faces, and SrcB holding inf or NaN (where
    nothing may be skipped) included. "block diagonal": a grouped conv's weights, one nonzero
    face per accumulation (face s mod 5, face 5 and the last accumulation all zero), whose pairs
    are consecutive accumulations (SrcB taken by a slice). "depthwise": those faces zero off their
    diagonals (one product per sum, some of them zero, -0 among the zeros). "shifted depthwise":
    zero off a diagonal 8 above or below theirs, one face with one value per column anywhere
    (SrcB's columns gathered as rows of a K-major copy), and SrcB and SrcA values whose products overflow
    float32 or fall below its normal range."""
    accumulations, faces, rows = 12, 6, 64
    diagonal = zero_faces in ("block diagonal", "depthwise", "shifted depthwise")
    srcb, srca = _mvmul_operands(accumulations, faces, rows, 0.0 if diagonal else zero_faces, 151)
    if diagonal:
        keep = np.zeros((accumulations, faces), dtype=bool)
        keep[np.arange(accumulations - 1), np.arange(accumulations - 1) % 5] = True
        srca[~keep] = 0.0
        if zero_faces == "depthwise":
            srca[:, :, ~np.eye(16, dtype=bool)] *= -0.0  # -0 where positive, +0 where negative
            srca[2, 2, 3, 3] = -0.0
        elif zero_faces == "shifted depthwise":
            for s in range(accumulations):
                srca[s, :, ~np.eye(16, k=(-8, 8, 0)[s % 3], dtype=bool)] *= -0.0
            srca[4, 4] = 0.0
            srca[4, 4, np.random.default_rng(5).permutation(16), np.arange(16)] = np.arange(1.0, 17.0)
            srca[4, 4, :, 7] = -0.0  # an empty column
            srca[2, 2, 3, 3] = -0.0
            srca[1, 1, 9, 1] = 2.0 ** 100  # x 2^100 SrcB: overflows float32
            srca[5, 0, 11, 11] = 2.0 ** -100  # x 2^-40 SrcB: below float32's normals
            srcb[1, :5, 9] = [2.0 ** 100, -(2.0 ** 28), 3.0 * 2.0 ** 27, 1.5, -0.0]
            srcb[5, :4, 11] = [2.0 ** -40, -(2.0 ** -49), 2.0 ** -55, 1.75 * 2.0 ** -48]
        plan = mvmul_plan(srca)
        assert plan.srcb_steps == slice(0, accumulations - 1)
        assert (plan.single is not None) == (zero_faces != "block diagonal")
        assert (plan.single_k is not None) == (zero_faces == "shifted depthwise")
        zero_faces = 1.0 - keep.mean()
    if not srcb_finite:
        srcb[3, 5, 2], srcb[7, 0, 0] = np.inf, np.nan
    plan = mvmul_plan(srca) if srcb_finite else dense_mvmul_plan(accumulations, faces)
    assert plan.dense == (zero_faces == 0.0 or not srcb_finite)
    start = np.zeros((faces, rows, 16), np.float32)
    if not fresh:
        start = round_dst(_mixed_tiles(faces * rows // 64, 152).reshape(faces, rows, 16), dst_bf16)
        start[0, :4] = -0.0
        start[1, 0] = np.nan
    dense_srca = srca.transpose(0, 2, 1, 3).reshape(accumulations, 16, faces * 16)
    with np.errstate(invalid="ignore", over="ignore"):
        partials = np.stack([mvmul_sums(srcb[s], dense_srca[s]).reshape(rows, faces, 16).transpose(1, 0, 2)
                             for s in range(accumulations)])
        expected = round_dst(accumulate(start, partials, dst_bf16), dst_bf16)
        acc = start.copy()
        mvmul_accumulate(acc, srcb, srca, plan, dst_bf16, fresh)
    np.testing.assert_array_equal(acc.view(np.uint32), expected.view(np.uint32))
    if zero_faces == "shifted depthwise" and srcb_finite:  # the products above did overflow and underflow
        assert np.isinf(partials[1]).any() and (np.abs(partials[5][partials[5] != 0]) < 2.0 ** -126).any()


def test_mvmul_plan_ranks_each_face_s_nonzero_accumulations_in_order() -> None:
    """Rank r of a plan holds the r-th accumulation with a nonzero block of every face that has
    one (a NaN block counts as nonzero); a slice when its faces are consecutive."""
    srca = np.zeros((4, 3, 16, 16))
    srca[0, 0, 1, 1] = 1.0
    srca[2, 0, 0, 0] = np.nan
    srca[1, 1, 3, 4] = -2.0
    srca[3, 2, 5, 5] = 0.5
    srca[0, 2, 0, 0] = -0.0
    plan = mvmul_plan(srca)
    assert not plan.dense
    pairs = [list(zip(plan.steps[a:b].tolist(), plan.faces[a:b].tolist())) for a, b, _ in plan.ranks]
    assert pairs == [[(0, 0), (1, 1), (3, 2)], [(2, 0)]]
    assert plan.ranks[0][2] == slice(0, 3) and plan.ranks[1][2] == slice(0, 1)
    assert plan.steps.tolist() == [0, 1, 3, 2] and plan.srcb_steps.tolist() == [0, 1, 3, 2]
    np.testing.assert_array_equal(plan.srca_pairs, srca[plan.steps, plan.faces])
    srca[1] = 0.0  # faces 0 and 2 only: not consecutive
    assert mvmul_plan(srca).ranks[0][2].tolist() == [0, 2]
    assert mvmul_plan(srca).srcb_steps.tolist() == [0, 3, 2]
    assert mvmul_plan(np.zeros((2, 3, 16, 16))).ranks == ()


def test_mvmul_plan_keeps_the_one_value_per_column_of_finite_blocks() -> None:
    """A plan's ``single`` is each pair's SrcA value per column when every pair block is finite
    and has at most one nonzero per column (+0 or -0 elsewhere; an empty column takes its
    diagonal's zero), ``single_rows`` it repeated over rows (kept); ``single_k`` None when every
    value is on its diagonal, else each value's row of SrcB K-major (accumulation * 16 + K) with
    ``single_k_values`` the values in float32. An inf or NaN anywhere, or two nonzeros in a
    column, gives None."""
    srca = np.zeros((3, 2, 16, 16))
    srca[0, 0] = np.diag(np.arange(1.0, 17.0))
    srca[2, 1] = np.diag(np.full(16, -0.5))
    srca[2, 1, 4, 5] = -0.0
    plan = mvmul_plan(srca)
    np.testing.assert_array_equal(plan.single[:, 0], [np.arange(1.0, 17.0), np.full(16, -0.5)])
    assert plan.single_k is None and plan.single_k_values is None
    rows = plan.single_rows(5)
    assert plan.single_rows(5) is rows and rows.shape == (2, 5, 16)
    np.testing.assert_array_equal(rows, np.broadcast_to(plan.single, (2, 5, 16)))
    shifted = srca.copy()
    shifted[2, 1] = np.diag(np.full(8, -0.5), k=8)  # K = column - 8; columns 0-7 empty
    shifted[0, 0, :, 3] = 0.0
    shifted[0, 0, 12, 3] = 7.0  # one value off the diagonal
    plan = mvmul_plan(shifted)
    expected_k = [np.r_[0:3, 12, 4:16], 2 * 16 + np.r_[0:8, 0:8]]
    np.testing.assert_array_equal(plan.single_k, np.concatenate(expected_k))
    np.testing.assert_array_equal(plan.single[:, 0], [np.r_[1.0:4.0, 7.0, 5.0:17.0], np.r_[np.zeros(8), np.full(8, -0.5)]])
    np.testing.assert_array_equal(plan.single_k_values[:, 0], plan.single[:, 0].reshape(-1))
    assert plan.single_k_values.dtype == np.float32
    for row, column, value in ((0, 1, 2.0), (3, 3, np.inf), (3, 3, np.nan), (5, 4, np.nan)):
        changed = srca.copy()
        changed[0, 0, row, column] = value
        assert mvmul_plan(changed).single is None


@pytest.mark.parametrize("density", [0.0, 0.001, 0.3, 1.0])
def test_bfloat8_b_encode_of_only_the_nonzero_blocks_equals_encoding_every_block(density: float) -> None:
    """A large array (mostly zero blocks, as a grouped conv's weights) encodes to the bytes of
    encoding every block: zero and -0.0 blocks, NaN, infinities and subnormals included."""
    rng = np.random.default_rng(141)
    n = 4 * _BFP8_SPARSE_MIN
    with np.errstate(over="ignore"):  # magnitudes past float32 become infinities
        x = (rng.standard_normal(n) * np.exp2(rng.integers(-140, 128, n))).astype(np.float32)
    x[rng.random(n) >= density] = 0.0
    x[rng.random(n) < 0.01] = -0.0
    x[:3] = [np.nan, np.inf, -np.inf]
    with np.errstate(all="ignore"):
        shared, code = _bfp8_encode(x)
        every_shared, every_code = _bfp8_encode_blocks(x.reshape(-1, 16))
    np.testing.assert_array_equal(shared, every_shared)
    np.testing.assert_array_equal(code, every_code)


@pytest.mark.parametrize("activation", ["relu6", "silu"])
@pytest.mark.parametrize("rows", [1, 9, 32])
@pytest.mark.parametrize("stored", [False, True])
def test_pack_untilize_of_pending_ops_equals_the_whole_dst(activation: str, rows: int, stored: bool) -> None:
    """pack_untilize_dest computes the pending element-wise ops on the rows it packs alone; the
    rows equal those of the whole DST, which a pack_tile after it (the ops still pending)
    computes in full. ``stored``: the products are in DST's storage before (read through
    ``dst``), else all ops are pending on a zero DST."""
    n = 3
    x, w, bias = _mixed_tiles(n, 121), _mixed_tiles(n, 122), _mixed_tiles(n, 123)
    width = n * 32
    row_bytes = width * 4

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, n)
        yield from ctx.cb_wait_front(B, n)
        yield from ctx.cb_wait_front(C, n)
        yield from ctx.cb_reserve_back(OUT, n)
        yield from ctx.cb_reserve_back(OUT + 1, 1)
        ctx.tile_regs_acquire()
        for i in range(n):
            ctx.mul_tiles(A, B, i, i, i)
        if stored:
            assert ctx.dst[:n].any()
        for i in range(n):
            ctx.binary_dest_reuse_tiles(C, i, i, op="add")
        for i in range(n):
            ctx.sfpu_tile(activation, i)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        num_faces, face_r_dim = (4, 16) if rows == 32 else (2, rows)
        ctx.pack_untilize_dest(OUT + 1, 1, 0, face_r_dim, num_faces, block_ct_dim=n, row_width=width)
        for i in range(n):
            ctx.pack_tile(i, OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, n)
        ctx.cb_push_back(OUT + 1, 1)

    run = run_compute(kernel, {A: tiles_cb(x), B: tiles_cb(w, BF8), C: tiles_cb(bias, BF8)},
                      {OUT: (F32, 4096, n), OUT + 1: (F32, 32 * row_bytes, 1)}, math_fidelity="LoFi")
    whole = untilize(_out_values(run, n))  # [32, 32 n]
    got = run.outputs[OUT + 1].reshape(-1).view(np.float32).reshape(32, width)
    assert whole[:rows].any()
    np.testing.assert_array_equal(got[:rows].view(np.uint32), whole[:rows].view(np.uint32))
    assert not got[rows:].any()


@pytest.mark.parametrize("name", sorted(FLOAT32_ACTIVATIONS))
def test_float32_activations_equal_the_reference(name: str) -> None:
    """Each float32 fast path gives the reference activation's float32 bits, edge values too
    (signed zeros, NaN, infinities, subnormals, the clamp bounds)."""
    edges = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 6.0, -6.0, 6.0000005, 5.9999995, 1e-45, -1e-45,
                      np.finfo(np.float32).max, -np.finfo(np.float32).max], dtype=np.float32)
    for x in (_mixed_tiles(4, 131) * 8, edges):
        expected = ACTIVATIONS[name](x).astype(np.float32, copy=False)
        got = FLOAT32_ACTIVATIONS[name](x)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("name", sorted(FLOAT32_ACTIVATIONS))
def test_float32_activations_equal_the_reference_on_every_bfloat16_and_any_layout(name: str) -> None:
    """Each float32 fast path gives the reference's bits on every bfloat16 bit pattern (the values
    a bfloat16 DST holds; NaNs of every payload) and on random float32 bit patterns, for arrays
    of any length, offset and stride (numpy's SIMD loops and their tails)."""
    every = (np.arange(1 << 16, dtype=np.uint32) << 16).view(np.float32)
    random32 = np.random.default_rng(141).integers(0, 1 << 32, 5003, dtype=np.uint32).view(np.float32)
    with np.errstate(all="ignore"):
        for values in (every, random32):
            for x in (values, values[3:], values[1:40], values[5:6], values[: 2 * 31].reshape(2, 31)[:, ::3]):
                expected = ACTIVATIONS[name](x).astype(np.float32, copy=False)
                got = FLOAT32_ACTIVATIONS[name](x)
                assert got.dtype == np.float32
                np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("fmt", [BF16, BF8])
def test_matmul_run_of_zero_weights_makes_dst_s_negative_zeros_positive(fmt: DataFormat) -> None:
    """A matmul run whose in1 tiles are all zero adds +0 to DST (mvmul's sums are +0): a DST
    holding -0 (copied from a CB tile) ends +0 there and unchanged elsewhere, as mvmul per step."""
    kt = 2
    in0, in1, start = _mixed_tiles(kt, 91), np.zeros((kt, 1024), np.float32), _mixed_tiles(1, 92)
    start[0, ::7] = -0.0

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, kt)
        yield from ctx.cb_wait_front(B, kt)
        yield from ctx.cb_wait_front(C, 1)
        ctx.tile_regs_acquire()
        ctx.copy_tile_init(C)
        ctx.copy_tile(C, 0, 0)
        ctx.mm_init(A, B, OUT)
        for k in range(kt):
            ctx.matmul_block(A, B, k, k, 0, False, 1, 1, kt)
        ctx.tile_regs_commit()
        yield from ctx.cb_reserve_back(OUT, 1)
        ctx.tile_regs_wait()
        ctx.pack_tile(0, OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 1)

    run = run_compute(kernel, {A: tiles_cb(in0, fmt), B: tiles_cb(in1, fmt), C: tiles_cb(start, F32)},
                      {OUT: (F32, 4096, 1)}, math_fidelity="LoFi")
    a_seen = unpack_tile(pack_tile(in0, fmt), fmt)
    dst = round_dst(untilize(start), True)
    for k in range(kt):
        dst = round_dst(mvmul(dst, untilize(a_seen[k][None]), untilize(in1[k][None]), 1, True, round_last=False),
                        True)
    got = untilize(_out_values(run, 1))
    assert np.signbit(untilize(start)).any() and not np.signbit(got[got == 0]).any()
    np.testing.assert_array_equal(got.view(np.uint32), dst.view(np.uint32))


def test_bf16_finite_of_every_bit_pattern() -> None:
    """``_bf16_finite`` (tiles' bytes as 8-byte words) is False exactly when a value is inf or NaN."""
    from ttsim.kernel_api.compute import _bf16_finite

    patterns = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    finite = np.isfinite(patterns.view(ml_dtypes.bfloat16).astype(np.float32))
    words = np.zeros((len(patterns), 4), dtype=np.uint16)
    words[:, 1] = patterns  # one value among finite ones
    assert [_bf16_finite(w.view(np.uint64)) for w in words] == finite.tolist()


def test_matmul_run_view_holds_the_run_s_tiles_in_order() -> None:
    """``ComputeContext._run_view`` (a run's tiles: each step's first tile address, its others a
    fixed stride apart, or the step's addresses where its CB wrapped) holds the bytes of one slice
    per tile, step by step: a strided view of L1 for equally spaced 8-byte-aligned steps (one
    tile, consecutive tiles or rows kt tiles apart per step; the last tiles of L1), a copy for
    unequal spacing, steps given by their addresses and unaligned tiles; equal keys name the same
    tiles."""
    from types import SimpleNamespace

    from ttsim.kernel_api.compute import ComputeContext

    l1 = np.random.default_rng(14).integers(0, 256, 20000, dtype=np.uint8)
    ctx = SimpleNamespace(_l1=l1)
    size = 40
    cases = [  # (steps, tiles per step, tile stride, a view of L1)
        ([104 + s * 504 for s in range(7)], 3, size, True),  # 7 steps x 3 consecutive tiles
        ([304 + s * 120 for s in range(5)], 1, size, True),  # one tile per step
        ([200 + s * size for s in range(6)], 2, 10 * size, True),  # 2 rows 10 tiles apart per step
        ([l1.size - 3 * size], 3, size, True),  # one step: the last tiles of L1
        ([16, 56, 96, 936], 1, size, False),  # unequal spacing
        ([8, [800, 840, 24], 88], 3, size, False),  # the second step's CB wrapped
        ([5 + s * 80 for s in range(4)], 2, size, False),  # unaligned
    ]
    keys = {}
    for steps, per_step, stride, is_view in cases:
        view, key = ComputeContext._run_view(ctx, steps, per_step, stride, size)
        addresses = [a for step in steps for a in
                     (step if isinstance(step, list) else range(step, step + per_step * stride, stride))]
        expected = np.concatenate([l1[a : a + size] for a in addresses])
        assert view.shape[:2] == (len(steps), per_step) and view.dtype == np.uint64
        assert np.shares_memory(view, l1) == is_view
        np.testing.assert_array_equal(np.array(view).view(np.uint8).reshape(-1), expected)
        assert keys.setdefault(key, addresses) == addresses


def _edge_rows(rows: int, cols: int, seed: int) -> np.ndarray:
    """bfloat16-exact rows of spread magnitudes with the edge values a column sum meets: signed
    zeros, infinities of both signs, NaN, subnormals, the largest finite values."""
    x = _mixed_tiles(1 + rows * cols // 1024, seed).reshape(-1)[: rows * cols].reshape(rows, cols)
    rng = np.random.default_rng(seed)
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 9.2e-41, -3.4e38, 3.4e38],
                     dtype=np.float32)
    pick = rng.random((rows, cols)) < 0.08
    x[pick] = rng.choice(edges, int(pick.sum()))
    x[:, : cols // 4] = -0.0  # columns of negative zeros only (their sums are +0)
    return round_dst(x, True)


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi2", "HiFi3", "HiFi4"])
@pytest.mark.parametrize("scalar", [1.0, 2.0, 0.3, -1.0, 0.0, -0.0, 1e-40, np.inf, np.nan])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf, inf * 0 and the NaN casts
def test_column_sums_of_the_nonzero_rows_equal_the_sums_of_all_rows(fidelity: str, scalar: float) -> None:
    """column_sum_partials with rows zero_from.. known zero, and accumulate_from_zero adding the
    +0 partials zero_groups names as + 0: the bits of summing every row and the DST chain
    R(R(p0) + p1)... (accumulate, then round_dst), for window heights 0..32."""
    phases = FIDELITY_PHASES[fidelity]
    b = np.float32(scalar)
    for zero_from in (0, 1, 9, 15, 16, 17, 25, 31, 32):
        rows = _edge_rows(32, 96, 140 + zero_from)
        rows[zero_from:] = 0.0
        rows[zero_from:, ::3] = -0.0
        full = column_sum_partials(rows, b, phases)
        fast = column_sum_partials(rows, b, phases, zero_from)
        np.testing.assert_array_equal(fast.view(np.uint32), full.view(np.uint32))
        for dst_bf16 in (True, False):
            chain = round_dst(accumulate(round_dst(full[0], dst_bf16), full[1:], dst_bf16), dst_bf16)
            got = accumulate_from_zero(fast, dst_bf16, zero_groups(32, phases, float(b), zero_from))
            np.testing.assert_array_equal(got.view(np.uint32), chain.view(np.uint32))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN patterns cast to bfloat16
def test_dst_rounding_leaves_its_own_results_and_their_sum_with_zero() -> None:
    """accumulate_from_zero's premise on every bfloat16 bit pattern w (every float32 round_dst
    returns is one): R(R(w)) = R(w) and R(R(w) + 0) = R(w) + 0."""
    w = (np.arange(1 << 16, dtype=np.uint32) << 16).view(np.float32)
    r = round_dst(w, True)
    np.testing.assert_array_equal(round_dst(r, True).view(np.uint32), r.view(np.uint32))
    v = r + np.float32(0.0)
    np.testing.assert_array_equal(round_dst(v, True).view(np.uint32), v.view(np.uint32))


@pytest.mark.parametrize("rows, ntiles, fidelity", [(9, 5, "LoFi"), (9, 3, "HiFi4"), (25, 2, "HiFi2"),
                                                    (1, 8, "LoFi"), (16, 4, "HiFi3")])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf and the NaN casts
def test_reduce_tile_math_of_a_short_window_equals_reducing_all_of_srca(rows: int, ntiles: int,
                                                                         fidelity: str) -> None:
    """A window of ``rows`` rows tilized into srcA after a wider, taller one (stale srcA columns
    past the block), reduced by reduce_tile_math into a zero DST row and into a written one,
    then one tile past the block: every DST bit as column_sum_partials over all 32 rows of the
    tile, added to DST by the chain of rounded accumulations."""
    phases = FIDELITY_PHASES[fidelity]
    width = ntiles * 32
    data = _edge_rows(rows, width, 150 + rows)
    wide = _edge_rows(32, 8 * 32, 151)
    page = 32 * 8 * 32 * 2
    raw = np.zeros(2 * page, dtype=np.uint8)
    raw[: wide.size * 2] = wide.astype(ml_dtypes.bfloat16).view(np.uint8).reshape(-1)
    raw[page : page + data.size * 2] = data.astype(ml_dtypes.bfloat16).view(np.uint8).reshape(-1)
    scalar = np.full((1, 1024), 0.5, dtype=np.float32)
    num_faces, face_r_dim = (2, rows) if rows <= 16 else (4, 16)
    stale = ntiles  # past the block: srcA still holds the wide tilize's columns there

    def kernel(ctx):
        yield from ctx.cb_wait_front(B, 1)
        yield from ctx.cb_reserve_back(OUT, 8)
        ctx.unpack_tilizeA_B_init(A, B, 8)
        yield from ctx.cb_wait_front(A, 1)
        ctx.tile_regs_acquire()
        ctx.unpack_tilizeA_B_block(A, B, 8, 0, 4, 16)
        for t in range(8):
            ctx.reduce_tile_math(t)  # DST rows 0 written: the second reduce accumulates
        ctx.cb_pop_front(A, 1)
        ctx.unpack_tilizeA_B_init(A, B, ntiles)
        yield from ctx.cb_wait_front(A, 1)
        ctx.unpack_tilizeA_B_block(A, B, ntiles, 0, num_faces, face_r_dim)
        for t in range(ntiles // 2):
            ctx.reduce_tile_math(t)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        for t in range(8):
            ctx.pack_tile(t, OUT)
        ctx.tile_regs_release()
        ctx.tile_regs_acquire()
        for t in range(ntiles):
            ctx.reduce_tile_math(t)
        if stale < 8:
            ctx.reduce_tile_math(stale)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        for t in range(8):
            ctx.pack_tile(t, OUT + 1)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 8)

    run = run_compute(kernel, {A: CBData(BF16, raw.reshape(2, page)), B: tiles_cb(scalar)},
                      {OUT: (F32, 4096, 8), OUT + 1: (F32, 4096, 8)}, math_fidelity=fidelity)
    first = np.array([untilize(t[None])[0] for t in _out_values(run, 8)])  # [tile, 32]: row 0
    second = np.array([untilize(t[None])[0] for t in unpack_tile(run.outputs[OUT + 1].reshape(8, -1), F32)])
    b = np.float32(0.5)

    def tile_partials(block: np.ndarray, t: int) -> np.ndarray:
        return column_sum_partials(block[:, t * 32 : (t + 1) * 32], b, phases)

    srca = np.zeros((32, 8 * 32), dtype=np.float32)
    srca[:] = wide
    srca[:, :width] = 0.0
    srca[:rows, :width] = data
    for t in range(8):
        wide_row = round_dst(accumulate(round_dst(tile_partials(wide, t)[0], True), tile_partials(wide, t)[1:], True), True)
        if t < ntiles // 2:  # into the row the wide reduce wrote
            want = round_dst(accumulate(wide_row, tile_partials(srca, t), True), True)
        else:
            want = wide_row
        np.testing.assert_array_equal(first[t].view(np.uint32), want.view(np.uint32))
        if t < ntiles or t == stale:
            p = tile_partials(srca, t)
            want = round_dst(accumulate(round_dst(p[0], True), p[1:], True), True)
        else:
            want = np.zeros(32, np.float32)
        np.testing.assert_array_equal(second[t].view(np.uint32), want.view(np.uint32))


def test_tilizes_of_any_height_and_width_leave_srca_as_each_tilize_alone_would() -> None:
    """A sequence of tilize-on-unpack blocks of varying heights and widths (narrower after wider,
    shorter after taller and the reverse): after each, srcA holds the block's rows, zeros below
    them in its tiles, and the last contents elsewhere, as a srcA written in full by each tilize
    (the zeroing skipped where a tile's rows are known zero) holds."""
    wide = np.random.default_rng(161).uniform(1.0, 2.0, (32, 8 * 32)).astype(np.float32)  # no zeros
    wide = wide.astype(ml_dtypes.bfloat16).astype(np.float32)
    raw = wide.astype(ml_dtypes.bfloat16).view(np.uint8).reshape(1, -1)
    steps = [(9, 2), (9, 8), (24, 3), (4, 8), (32, 1), (9, 8), (1, 5), (16, 8)]  # rows: 2 * face_r_dim past 16
    model = np.zeros((32, 8 * 32), dtype=np.float32)
    checked = []

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, 1)
        yield from ctx.cb_wait_front(B, 1)
        ctx.unpack_tilizeA_B_init(A, B, 8)
        for rows, block in steps:
            num_faces, face_r_dim = (2, rows) if rows <= 16 else (4, rows // 2)
            ctx.unpack_tilizeA_B_block(A, B, block, 0, num_faces, face_r_dim)
            width = block * 32
            model[:, :width] = 0.0
            model[:rows, :width] = wide[:rows, :width]
            np.testing.assert_array_equal(ctx._srca.view(np.uint32), model.view(np.uint32))
            checked.append((rows, block))

    run_compute(kernel, {A: CBData(BF16, raw), B: tiles_cb(np.ones((1, 1024), np.float32))}, {},
                math_fidelity="LoFi")
    assert checked == steps


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi2", "HiFi3", "HiFi4"])
@pytest.mark.parametrize("scalar", [1.0, 2.0, 0.3, -1.0, 0.0, -0.0, 1e-40, np.inf, np.nan])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf, inf * 0 and the NaN casts
def test_column_sum_from_zero_equals_the_chain_of_every_partial(fidelity: str, scalar: float) -> None:
    """column_sum_from_zero (no array of partials; a short window's rows only) gives the bits of
    the DST chain R(R(p0) + p1)... over column_sum_partials of all 32 rows, for window heights
    0..32 and both DST formats."""
    phases = FIDELITY_PHASES[fidelity]
    b = np.float32(scalar)
    for zero_from in (None, 0, 1, 9, 15, 16, 17, 25, 31, 32):
        rows = _edge_rows(32, 96, 160 + (zero_from or 0))
        if zero_from is not None:
            rows[zero_from:] = 0.0
            rows[zero_from:, ::3] = -0.0
        full = column_sum_partials(rows, b, phases)
        for dst_bf16 in (True, False):
            chain = round_dst(accumulate(round_dst(full[0], dst_bf16), full[1:], dst_bf16), dst_bf16)
            got = column_sum_from_zero(rows, b, phases, dst_bf16, zero_from)
            assert got.shape == (96,) and got.dtype == np.float32
            np.testing.assert_array_equal(got.view(np.uint32), chain.view(np.uint32))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN patterns cast to bfloat16
@pytest.mark.parametrize("name", sorted(BFLOAT16_CLOSED_ACTIVATIONS))
def test_bfloat16_closed_activations_need_no_rounding_on_bfloat16_values(name: str) -> None:
    """The deferred SFPU ops skip rounding these activations' results on a bfloat16 DST: on
    every bfloat16 bit pattern (as DST holds them) the result rounded is the result."""
    w = round_dst((np.arange(1 << 16, dtype=np.uint32) << 16).view(np.float32), True)
    func = FLOAT32_ACTIVATIONS.get(name) or (lambda v: ACTIVATIONS["none" if name == "identity" else name](v)
                                             .astype(np.float32, copy=False))
    out = func(w)
    np.testing.assert_array_equal(round_dst(out, True).view(np.uint32), out.view(np.uint32))


@pytest.mark.parametrize("fmt", [BF8, BF16])
def test_tile_values_of_some_elements_equal_those_of_the_whole_tiles(fmt: DataFormat) -> None:
    """``ComputeContext._tile_values`` with columns (pack_untilize_dest's rows: bfloat16 taken
    before the cast, other formats taken once and kept) gives those elements of the whole tiles'
    values, again after the tiles are rewritten in L1."""
    from types import SimpleNamespace

    from ttsim.kernel_api.compute import ComputeContext, _row_columns
    from ttsim.kernel_api.tile_cache import DecodedTiles

    tiles = _mixed_tiles(3, 171)
    packed = pack_tile(tiles, fmt)
    size = packed.shape[1]
    l1 = np.zeros(8 * size, dtype=np.uint8)
    cb = SimpleNamespace(tile_bytes=size, is_bf16=fmt is BF16, data_format=fmt)
    ctx = SimpleNamespace(_l1=l1, _bf16=np.dtype(ml_dtypes.bfloat16), _decoded=DecodedTiles(8))
    for seed in (172, 173):
        l1[size : 4 * size] = packed.reshape(-1)
        whole = ComputeContext._tile_values(ctx, [(size + k * size, cb) for k in range(3)])
        for rows in (1, 9, 32):
            columns = _row_columns(rows)
            for _ in range(2):  # the second read of the unchanged bytes: the kept values
                got = ComputeContext._tile_values(ctx, [(size + k * size, cb) for k in range(3)], columns)
                np.testing.assert_array_equal(got.view(np.uint32), whole.take(columns, axis=1).view(np.uint32))
        packed = pack_tile(_mixed_tiles(3, seed), fmt)


def test_a_release_zeroes_every_dst_tile_written() -> None:
    """tile_regs_release zeroes the DST tiles written (by math and the pack thread's SFPU), so
    the next acquire packs zeros from every tile of the half."""
    x = _mixed_tiles(2, 181) + 3.0

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, 2)
        yield from ctx.cb_reserve_back(OUT, 8)
        ctx.tile_regs_acquire()
        ctx.copy_tile(A, 0, 1)
        ctx.copy_tile(A, 1, 6)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        ctx.sfpu_tile_pack("silu", 3)
        ctx.tile_regs_release()
        ctx.tile_regs_acquire()
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        for t in range(8):
            ctx.pack_tile(t, OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 8)

    run = run_compute(kernel, {A: tiles_cb(x)}, {OUT: (F32, 4096, 8)})
    assert not _out_values(run, 8).any()


def test_tiles_decoded_by_another_core_from_the_same_bytes_are_those_bytes_values() -> None:
    """DecodedTiles of two cores share decodes by the tiles' bytes: each core reads its own
    bytes' values (same bytes at other addresses: the shared decode; other bytes: their own)."""
    from ttsim.kernel_api.tile_cache import DecodedTiles

    first, other = pack_tile(_mixed_tiles(2, 191), BF8), pack_tile(_mixed_tiles(2, 192), BF8)
    a, b = DecodedTiles(8), DecodedTiles(8)
    for cache, address, raw in ((a, 0, first), (b, 4096, first), (b, 0, other), (a, 0, first)):
        got = cache.values(address, raw, BF8)
        np.testing.assert_array_equal(got.view(np.uint32), unpack_tiles(raw, BF8).view(np.uint32))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # ml_dtypes' casts of the NaN patterns
def test_lofi_srcb_bits_and_the_finiteness_dot_product_on_every_bfloat16() -> None:
    """:func:`ttsim.fpu.srcb_lofi_bits` widened gives :func:`ttsim.fpu.srcb_part`'s phase 0 of
    the float32 values, every bit (NaN payloads too) on all 65536 bfloat16 bit patterns, and
    :func:`ttsim.fpu.all_finite` answers as ``np.isfinite(...).all()`` on each value alone, on
    all finite values together (the largest included) and in float32-range float64 parts."""
    bits = np.arange(1 << 16, dtype=np.uint16)
    values = bits.view(ml_dtypes.bfloat16).astype(np.float32)
    want = srcb_part(values, 0).astype(np.float64)
    got = srcb_lofi_bits(bits).view(ml_dtypes.bfloat16).astype(np.float64)
    np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
    finite = np.isfinite(values)
    assert [all_finite(v[None].astype(np.float64)) for v in values[::97]] == finite[::97].tolist()
    assert all_finite(values[finite].astype(np.float64))
    assert all_finite(np.full(1 << 16, np.finfo(np.float32).max, dtype=np.float64))
    assert not all_finite(values.astype(np.float64))


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi4"])
@pytest.mark.parametrize("scalar", [1.0, 2.0, 0.3])
def test_column_sum_from_zero_of_one_group_keeps_the_row_order_of_the_sums(fidelity: str, scalar: float) -> None:
    """The one-group path of column_sum_from_zero (float64 sum taken by the reduction) on
    columns whose float64 sum depends on the order of its rows (2^100, -2^100, 2^-100, ...): the
    bits of the chain over column_sum_partials, which sums a float64 copy row after row."""
    phases = FIDELITY_PHASES[fidelity]
    rng = np.random.default_rng(170)
    b = np.float32(scalar)
    for zero_from in (2, 9, 16):
        rows = np.zeros((32, 96), dtype=np.float32)
        rows[:zero_from] = rng.choice(np.array([2.0 ** 100, -(2.0 ** 100), 2.0 ** -100, -(2.0 ** -100), 1.0],
                                               dtype=np.float32), (zero_from, 96))
        full = column_sum_partials(rows, b, phases)
        for dst_bf16 in (True, False):
            chain = round_dst(accumulate(round_dst(full[0], dst_bf16), full[1:], dst_bf16), dst_bf16)
            got = column_sum_from_zero(rows, b, phases, dst_bf16, zero_from)
            np.testing.assert_array_equal(got.view(np.uint32), chain.view(np.uint32))
