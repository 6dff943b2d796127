"""Compute-kernel ops on real tile bytes against numpy, and the timing of the compute model.

Each test builds a one-core program: input CBs alias L1 buffers whose bytes the host writes
before the run (a BRISC feeder kernel only pushes the pages), a compute kernel calls the op,
and the output CB aliases an L1 buffer read back after the run. Rounding as documented in
ttsim.kernel_api.compute: DST holds bfloat16 (float32 with fp32_dest_acc), packing rounds to the
output CB's format. Multiplies follow the FPU's fidelity phases; their reference is the
independent float64 model in ``fpu_reference``.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import pytest

from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.formats import (DataFormat, encode_row_major, pack_tile, round_to_format,
                           tile_size_bytes, tilize, unpack_tile, untilize, decode_row_major)
from ttsim.errors import ConfigurationError
from ttsim.host import Program, run_program
from ttsim.numerics import ACTIVATIONS

import fpu_reference as ref

CORE = (0, 0)
A, B, SCALAR, OUT = 0, 1, 2, 16
BF16 = DataFormat.BFLOAT16


def bf16(x: np.ndarray) -> np.ndarray:
    """Round to bfloat16 (nearest even), back in float32: the numpy reference of DST / packing."""
    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


@dataclass
class CBData:
    """An input CB: raw page bytes [pages, page_size]."""

    fmt: DataFormat
    pages: np.ndarray


@dataclass
class Run:
    profile: object
    outputs: dict[int, np.ndarray]  # raw bytes [pages, page_size] of each output CB
    ctx: object


def tiles_cb(tiles: np.ndarray, fmt: DataFormat = BF16) -> CBData:
    return CBData(fmt, pack_tile(np.atleast_2d(tiles).astype(np.float32), fmt))


def rows_cb(rows: np.ndarray, page_size: int, pages: int = 1) -> CBData:
    """Row-major bf16 rows packed from the start of ``pages`` pages of ``page_size`` bytes."""
    raw = np.zeros(pages * page_size, dtype=np.uint8)
    data = encode_row_major(rows.astype(np.float32), BF16)
    raw[: data.size] = data
    return CBData(BF16, raw.reshape(pages, page_size))


def run_compute(kernel, inputs: dict[int, CBData], outputs: dict[int, tuple[DataFormat, int, int]],
                math_fidelity: str = "HiFi4", fp32_dest_acc: bool = False) -> Run:
    """Run ``kernel`` (a compute kernel) on one core; outputs maps cb -> (fmt, page_size, pages)."""
    device = Device(load_device("wormhole_b0"))
    program = Program("compute_test")
    for cb_id, data in inputs.items():
        pages, page_size = data.pages.shape
        buffer = device.allocate_l1_buffer(f"in{cb_id}", [CORE], pages * page_size)
        device.core(CORE).l1.write(buffer.address(CORE), data.pages.reshape(-1))
        program.create_circular_buffer(
            [CORE], CBConfig(cb_id, f"in{cb_id}", page_size, pages, data.fmt, True), buffer)
    out_buffers = {}
    for cb_id, (fmt, page_size, pages) in outputs.items():
        buffer = device.allocate_l1_buffer(f"out{cb_id}", [CORE], pages * page_size)
        out_buffers[cb_id] = (buffer, page_size, pages)
        program.create_circular_buffer(
            [CORE], CBConfig(cb_id, f"out{cb_id}", page_size, pages, fmt, True), buffer)

    def feeder(ctx):
        for cb_id, data in inputs.items():
            yield from ctx.cb_reserve_back(cb_id, data.pages.shape[0])
            ctx.cb_push_back(cb_id, data.pages.shape[0])

    captured = []

    def compute(ctx):
        captured.append(ctx)
        yield from kernel(ctx)

    program.create_kernel("feeder", feeder, [CORE], Risc.BRISC, {})
    program.create_kernel("compute", compute, [CORE], "compute", {}, math_fidelity=math_fidelity,
                          fp32_dest_acc=fp32_dest_acc)
    profile = run_program(device, program)
    l1 = device.core(CORE).l1
    got = {cb_id: l1.read(buffer.address(CORE), size * pages).copy().reshape(pages, size)
           for cb_id, (buffer, size, pages) in out_buffers.items()}
    return Run(profile, got, captured[0])


def eltwise_kernel(n: int, op, inputs=(A, B), init=None):
    """Per tile: acquire, op(ctx, i) into DST 0, commit, pack to OUT, release."""
    def kernel(ctx):
        if init is not None:
            init(ctx)
        for cb in inputs:
            yield from ctx.cb_wait_front(cb, n)
        yield from ctx.cb_reserve_back(OUT, n)
        for i in range(n):
            ctx.tile_regs_acquire()
            op(ctx, i)
            ctx.tile_regs_commit()
            ctx.tile_regs_wait()
            ctx.pack_tile(0, OUT)
            ctx.tile_regs_release()
        ctx.cb_push_back(OUT, n)
        for cb in inputs:
            ctx.cb_pop_front(cb, n)
    return kernel


def random_tiles(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return bf16(rng.standard_normal((n, 1024)) * scale)


def out_tiles(run: Run, fmt: DataFormat = BF16) -> np.ndarray:
    return unpack_tile(run.outputs[OUT], fmt)


# -- binary FPU ops ---------------------------------------------------------------------------

def test_mul_tiles() -> None:
    a, b = random_tiles(3, 1), random_tiles(3, 2)
    kernel = eltwise_kernel(3, lambda ctx, i: ctx.mul_tiles(A, B, i, i, 0),
                            init=lambda ctx: ctx.mul_tiles_init(A, B))
    run = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, 3)})
    np.testing.assert_array_equal(out_tiles(run), ref.elwmul(a, b, "HiFi4"))


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi2", "HiFi3", "HiFi4"])
def test_mul_tiles_numerics_follow_the_fidelity_phases(fidelity: str) -> None:
    """ELWMUL sees 5 bits of A (srcA) and 7 of B (srcB) at LoFi; each phase adds bits, and DST
    (bf16) rounds after every phase. Exact against the float64 significand model."""
    a, b = random_tiles(2, 41), random_tiles(2, 42)
    kernel = eltwise_kernel(2, lambda ctx, i: ctx.mul_tiles(A, B, i, i, 0))
    run = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, 2)},
                      math_fidelity=fidelity)
    got = out_tiles(run)
    np.testing.assert_array_equal(got, ref.elwmul(a, b, fidelity))
    error = np.abs(got - a.astype(np.float64) * b)
    # LoFi drops up to 4 + 3 of A's and 1 of B's bf16 mantissa bits: errors far above bf16's
    assert np.max(error / np.abs(a * b)) > (2.0 ** -6 if fidelity == "LoFi" else 0.0)
    assert np.max(error / np.abs(a * b)) <= (2.0 ** -3 if fidelity == "LoFi" else 2.0 ** -5)


def test_mul_tiles_lofi_sees_only_the_top_bits() -> None:
    """1.96875 (binary 1.11111) times 1.9921875 (1.1111111): at LoFi srcA keeps 1.1111 (1.9375)
    and srcB keeps 1.111111 (1.984375); the product rounds to bf16 in DST."""
    a = np.full((1, 1024), 1.96875, dtype=np.float32)
    b = np.full((1, 1024), 1.9921875, dtype=np.float32)
    kernel = eltwise_kernel(1, lambda ctx, i: ctx.mul_tiles(A, B, 0, 0, 0))
    lofi = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, 1)}, math_fidelity="LoFi")
    np.testing.assert_array_equal(out_tiles(lofi), bf16(np.full((1, 1024), 1.9375 * 1.984375)))
    hifi4 = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, 1)})
    np.testing.assert_array_equal(out_tiles(hifi4), ref.elwmul(a, b, "HiFi4"))


def test_mul_tiles_accumulates_into_dst() -> None:
    """ELWMUL is Dst += SrcA * SrcB: a second mul_tiles into the same DST tile adds to it."""
    a, b = random_tiles(1, 43), random_tiles(1, 44)

    def body(ctx, i):
        ctx.mul_tiles(A, B, 0, 0, 0)
        ctx.mul_tiles(A, B, 0, 0, 0)

    run = run_compute(eltwise_kernel(1, body), {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, 1)},
                      math_fidelity="LoFi")
    once = ref.elwmul(a, b, "LoFi")
    np.testing.assert_array_equal(out_tiles(run), ref.round_bf16(once + ref.srca(a, 0) * ref.srcb(b, 0)))


def test_mul_tiles_with_fp32_dest_does_not_round_between_phases() -> None:
    a, b = random_tiles(1, 45), random_tiles(1, 46)
    kernel = eltwise_kernel(1, lambda ctx, i: ctx.mul_tiles(A, B, 0, 0, 0))
    fp32 = DataFormat.FLOAT32
    run = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (fp32, 4096, 1)},
                      fp32_dest_acc=True)
    # bf16 x bf16 at HiFi4: every bit seen, and the 16-bit product is exact in float32
    np.testing.assert_array_equal(unpack_tile(run.outputs[OUT], fp32), a.astype(np.float64) * b)
    np.testing.assert_array_equal(ref.elwmul(a, b, "HiFi4", dst_bf16=False), a.astype(np.float64) * b)


def test_mul_tiles_by_index() -> None:
    """Tile indices address pages from the CB's front: out[i] = a[i] * b[2 - i]."""
    a, b = random_tiles(3, 3), random_tiles(3, 4)
    kernel = eltwise_kernel(3, lambda ctx, i: ctx.mul_tiles(A, B, i, 2 - i, 0))
    run = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, 3)})
    np.testing.assert_array_equal(out_tiles(run), ref.elwmul(a, b[::-1], "HiFi4"))


def test_add_tiles() -> None:
    a, b = random_tiles(2, 5), random_tiles(2, 6, scale=10.0)
    kernel = eltwise_kernel(2, lambda ctx, i: ctx.add_tiles(A, B, i, i, 0))
    run = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, 2)})
    np.testing.assert_array_equal(out_tiles(run), bf16(a.astype(np.float64) + b))


def test_add_tiles_acc_to_dest_adds_dst() -> None:
    """add_tiles_init(icb0, icb1, acc_to_dest=True): DST = A + B + DST (how tt-metal's depthwise
    pool kernel adds the bias onto the reduced row, with A a zero tile)."""
    a, b, c = random_tiles(1, 47), random_tiles(1, 48), random_tiles(1, 49)

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, 1)
        yield from ctx.cb_wait_front(B, 1)
        yield from ctx.cb_wait_front(SCALAR, 1)
        yield from ctx.cb_reserve_back(OUT, 1)
        ctx.tile_regs_acquire()
        ctx.copy_tile(SCALAR, 0, 0)
        ctx.add_tiles_init(A, B, acc_to_dest=True)
        ctx.add_tiles(A, B, 0, 0, 0)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        ctx.pack_tile(0, OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 1)

    run = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b), SCALAR: tiles_cb(c)}, {OUT: (BF16, 2048, 1)})
    np.testing.assert_array_equal(out_tiles(run), bf16(np.float32(a) + np.float32(b) + c))
    assert not np.array_equal(out_tiles(run), bf16(a.astype(np.float64) + b))


def test_add_tiles_bcast_rows_uses_row_0_of_b() -> None:
    rng = np.random.default_rng(7)
    a_rows = bf16(rng.standard_normal((32, 32)))
    b_rows = bf16(rng.standard_normal((32, 32)))  # rows 1..31 must be ignored
    kernel = eltwise_kernel(1, lambda ctx, i: ctx.add_tiles_bcast_rows(A, B, 0, 0, 0),
                            init=lambda ctx: ctx.add_bcast_rows_init_short(A, B))
    run = run_compute(kernel, {A: tiles_cb(tilize(a_rows)), B: tiles_cb(tilize(b_rows))},
                      {OUT: (BF16, 2048, 1)})
    got = untilize(out_tiles(run))
    np.testing.assert_array_equal(got, bf16(a_rows.astype(np.float64) + b_rows[0][None, :]))


def _bcast_rows_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DST after ``add_tiles_bcast_rows`` of tiles ``a`` and ``b`` (float32 storage order): the
    float32 sum of A and row 0 of B repeated over the rows, rounded to bfloat16."""
    row = untilize(b[None])[0]
    return bf16(a + tilize(np.repeat(row[None], 32, axis=0))[0])


@pytest.mark.parametrize("fmt", [BF16, DataFormat.BFLOAT8_B])
@pytest.mark.parametrize("untilized", [False, True])
def test_add_tiles_bcast_rows_over_subblocks_and_a_changed_bias(fmt: DataFormat, untilized: bool) -> None:
    """The conv's bias add: subblocks of 4 DST tiles, tile t adding bias tile t % 2 (the deferred
    adds computed together, the broadcast bias kept between subblocks), then the bias rewritten
    in L1 (standing in for a new bias at the same address: its broadcast is not reused). Packed
    as tiles or, with ``untilized``, as rows (the pending adds computed on those rows only)."""
    n, subblocks = 4, 2
    a = round_to_format(random_tiles(n * subblocks, 31, 4.0), fmt)
    b = round_to_format(random_tiles(2, 32), fmt)
    new_b = round_to_format(random_tiles(2, 33), fmt)
    size = tile_size_bytes(fmt)
    out_fmt = BF16 if untilized else fmt

    def kernel(ctx):
        ctx.add_bcast_rows_init_short(A, B)
        yield from ctx.cb_wait_front(A, n * subblocks)
        yield from ctx.cb_wait_front(B, 2)
        for s in range(subblocks):
            if s == subblocks - 1:  # the bias tiles' bytes change (same addresses)
                address = ctx.cb(B).front_page_address(0)
                ctx.core.l1.data[address : address + 2 * size] = pack_tile(new_b, fmt).reshape(-1)
            yield from ctx.cb_reserve_back(OUT, n)
            ctx.tile_regs_acquire()
            for t in range(n):
                ctx.add_tiles_bcast_rows(A, B, s * n + t, t % 2, t)
            ctx.tile_regs_commit()
            ctx.tile_regs_wait()
            if untilized:
                ctx.pack_untilize_dest(OUT, 1, 0, 16, 4, block_ct_dim=n, row_width=32 * n)
            else:
                ctx.pack_tile_block(0, OUT, n)
            ctx.tile_regs_release()
            ctx.cb_push_back(OUT, n)

    run = run_compute(kernel, {A: tiles_cb(a, fmt), B: tiles_cb(b, fmt)},
                      {OUT: (out_fmt, tile_size_bytes(out_fmt), n * subblocks)})
    expected = np.stack([_bcast_rows_reference(a[i], (new_b if i >= n else b)[i % 2])
                         for i in range(n * subblocks)])
    if untilized:
        got = decode_row_major(run.outputs[OUT].reshape(-1), BF16).reshape(subblocks, 32, 32 * n)
        np.testing.assert_array_equal(got, np.stack([untilize(expected[s * n : (s + 1) * n])
                                                     for s in range(subblocks)]))
    else:
        np.testing.assert_array_equal(out_tiles(run, fmt), round_to_format(expected, fmt))


@pytest.mark.parametrize("op", ["add", "mul"])
def test_binary_dest_reuse_tiles(op: str) -> None:
    a, b = random_tiles(2, 8), random_tiles(2, 9)

    def body(ctx, i):
        ctx.copy_tile(A, i, 0)
        ctx.binary_dest_reuse_tiles(B, i, 0, op=op)

    kernel = eltwise_kernel(2, body, init=lambda ctx: ctx.binary_dest_reuse_tiles_init(B))
    run = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, 2)})
    expected = bf16(a.astype(np.float64) + b) if op == "add" else ref.elwmul(a, b, "HiFi4")
    np.testing.assert_array_equal(out_tiles(run), expected)


# -- copy and DST precision ---------------------------------------------------------------------

def test_copy_tile_rounds_to_bf16_in_dst() -> None:
    rng = np.random.default_rng(10)
    a = rng.standard_normal((2, 1024)).astype(np.float32)  # not bf16-representable
    assert not np.array_equal(a, bf16(a))
    kernel = eltwise_kernel(2, lambda ctx, i: ctx.copy_tile(A, i, 0), inputs=(A,),
                            init=lambda ctx: ctx.copy_tile_init(A))
    fp32 = DataFormat.FLOAT32
    run = run_compute(kernel, {A: tiles_cb(a, fp32)}, {OUT: (fp32, 4096, 2)})
    np.testing.assert_array_equal(unpack_tile(run.outputs[OUT], fp32), bf16(a))
    # with fp32 accumulation DST keeps float32 and the copy is exact
    run = run_compute(kernel, {A: tiles_cb(a, fp32)}, {OUT: (fp32, 4096, 2)}, fp32_dest_acc=True)
    np.testing.assert_array_equal(unpack_tile(run.outputs[OUT], fp32), a)


def _every_bfp8_code_and_exponent() -> np.ndarray:
    """bfloat8_b tile bytes [64, 1088] holding every (shared exponent, code byte) pair."""
    exps = np.repeat(np.arange(256, dtype=np.uint8), 16)
    codes = np.tile(np.arange(256, dtype=np.uint8), 16 * 16).reshape(-1, 16)[: exps.size]
    return np.concatenate([exps.reshape(-1, 64), codes.reshape(-1, 1024)], axis=1)


def test_bfloat8_b_values_are_bfloat16_values_that_round_to_themselves() -> None:
    """What lets a copy from a bfloat8_b CB skip DST's rounding (BFLOAT16_VALUED_FORMATS): every
    decoded value, on every exponent and code byte, keeps its float32 bits through the bfloat16
    cast DST's rounding is, and none is NaN."""
    from ttsim.kernel_api.compute import BFLOAT16_VALUED_FORMATS

    assert BFLOAT16_VALUED_FORMATS == {DataFormat.BFLOAT8_B}
    with np.errstate(over="ignore"):
        values = unpack_tile(_every_bfp8_code_and_exponent(), DataFormat.BFLOAT8_B)
    assert not np.isnan(values).any()
    np.testing.assert_array_equal(bf16(values).view(np.uint32), values.view(np.uint32))


def _copy_kernel(n: int, partials_on_odd_groups: bool):
    """A compute kernel copying CB A's ``n`` tiles to OUT through DST, four at a time: every other
    group of four by copy_block_matmul_partials (the odd groups or the even ones), the rest tile
    by tile with copy_tile, each group packed with pack_tile_block."""

    def kernel(ctx):
        ctx.copy_tile_init(A)
        yield from ctx.cb_wait_front(A, n)
        yield from ctx.cb_reserve_back(OUT, n)
        for first in range(0, n, 4):
            ctx.tile_regs_acquire()
            if (first % 8 != 0) == partials_on_odd_groups:
                ctx.copy_block_matmul_partials(A, first, 0, 4)
            else:
                for i in range(4):
                    ctx.copy_tile(A, first + i, i)
            ctx.tile_regs_commit()
            ctx.tile_regs_wait()
            ctx.pack_tile_block(0, OUT, 4)
            ctx.tile_regs_release()
        ctx.cb_push_back(OUT, n)

    return kernel


def test_copy_tile_from_bfloat8_b_holds_every_value_bit_for_bit() -> None:
    """copy_tile (and copy_block_matmul_partials) from a bfloat8_b CB into a bfloat16 DST, packed
    as float32: every decoded value, -0, subnormals and infinities included, as rounding them
    to bfloat16 gives."""
    raw = _every_bfp8_code_and_exponent()
    with np.errstate(over="ignore"):
        values = unpack_tile(raw, DataFormat.BFLOAT8_B)
    n = raw.shape[0]

    kernel = _copy_kernel(n, partials_on_odd_groups=True)
    fp32 = DataFormat.FLOAT32
    with np.errstate(over="ignore"):  # the decode's infinities
        run = run_compute(kernel, {A: CBData(DataFormat.BFLOAT8_B, raw)}, {OUT: (fp32, 4096, n)})
    got = unpack_tile(run.outputs[OUT], fp32)
    np.testing.assert_array_equal(got.view(np.uint32), bf16(values).view(np.uint32))


@pytest.mark.parametrize("fp32_dest_acc", [False, True])
def test_copy_tile_from_bfloat16_holds_every_bit_pattern_as_dst_rounds_it(fp32_dest_acc: bool) -> None:
    """copy_tile and copy_block_matmul_partials from a bfloat16 CB, packed as float32: every one
    of the 65536 bfloat16 bit patterns (NaN payloads, infinities, -0, subnormals), runs with and
    without a NaN or inf (a run of finite tiles is stored without DST's cast), as the per-tile
    reference gives: the values rounded to a bfloat16 DST (each NaN the quiet NaN of its sign),
    or as they are in a float32 DST."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).reshape(64, 1024)
    finite = (bits & 0x7FFF) < 0x7F80
    order = np.argsort(~finite.all(axis=1), kind="stable")  # the tiles with inf or NaN last
    bits = np.ascontiguousarray(bits[order])
    bits[:4] = np.where(finite[order][:4], bits[:4], 0)  # the first run holds no inf or NaN
    values = (bits.astype(np.uint32) << 16).view(np.float32)
    n = bits.shape[0]

    kernel = _copy_kernel(n, partials_on_odd_groups=False)
    fp32 = DataFormat.FLOAT32
    run = run_compute(kernel, {A: CBData(BF16, bits.view(np.uint8))}, {OUT: (fp32, 4096, n)},
                      fp32_dest_acc=fp32_dest_acc)
    got = unpack_tile(run.outputs[OUT], fp32)
    expected = values if fp32_dest_acc else bf16(values)
    assert np.isnan(expected).any() and np.isinf(expected).any()
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN patterns cast to bfloat16
def test_bfloat16_bits_of_dst_values_equal_the_cast() -> None:
    """pack_tile's bfloat16 DST into a bfloat16 CB takes each value's high half: on every value
    DST's rounding gives (all 65536 bfloat16 bit patterns widened, signalling NaNs too, and
    random float32 bit patterns, each rounded as DST rounds it) the bits the cast gives."""
    from ttsim.kernel_api.compute import _bf16_bits_of_bf16_values

    rng = np.random.default_rng(7)
    patterns = np.concatenate([np.arange(1 << 16, dtype=np.uint32) << 16,
                               rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint32),
                               np.array([0x7F800001, 0xFF800001, 0x7FC00001, 0x00000001, 0x807FFFFF],
                                        dtype=np.uint32)])
    patterns = np.resize(patterns, 128 * 1025)  # 128 rows of 1024 with a stride (DST tiles' rows)
    dst = bf16(patterns.view(np.float32)).reshape(128, 1025)[:, :1024]
    got = _bf16_bits_of_bf16_values(dst)
    expected = dst.astype(ml_dtypes.bfloat16).view(np.uint16)
    assert np.isnan(dst).any() and np.isinf(dst).any() and (dst.view(np.uint32) == 0x80000000).any()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_pack_tile_of_bfloat16_dst_into_bfloat16_writes_the_cast_bits() -> None:
    """pack_tile from a bfloat16 DST into a bfloat16 CB (the bits path) writes the bytes the
    float32 path (a float32 DST's values cast on the way out) writes, inf, NaN, -0 and
    subnormals included."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).reshape(64, 1024)[::7][:8]
    bits = np.ascontiguousarray(bits)
    n = bits.shape[0]

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, n)
        yield from ctx.cb_reserve_back(OUT, n)
        for i in range(n):
            ctx.tile_regs_acquire()
            ctx.copy_tile(A, i, 2)
            ctx.tile_regs_commit()
            ctx.tile_regs_wait()
            ctx.pack_tile(2, OUT)
            ctx.tile_regs_release()
        ctx.cb_push_back(OUT, n)

    outs = [run_compute(kernel, {A: CBData(BF16, bits.view(np.uint8))}, {OUT: (BF16, 2048, n)},
                        fp32_dest_acc=fp32).outputs[OUT] for fp32 in (False, True)]
    expected = (bits.astype(np.uint32) << 16).view(np.float32).astype(ml_dtypes.bfloat16).view(np.uint8)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(np.asarray(outs[0]).reshape(-1), expected.reshape(-1))


def test_copy_tile_into_other_dst_slots_and_pack_by_index() -> None:
    a = random_tiles(3, 11)

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, 3)
        yield from ctx.cb_reserve_back(OUT, 3)
        ctx.tile_regs_acquire()
        for i in range(3):
            ctx.copy_tile(A, i, 5 - i)  # DST 5, 4, 3
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        for i in range(3):
            ctx.pack_tile(3 + i, OUT, i)  # out[i] = DST[3 + i] = a[2 - i]
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 3)

    run = run_compute(kernel, {A: tiles_cb(a)}, {OUT: (BF16, 2048, 3)})
    np.testing.assert_array_equal(out_tiles(run), a[::-1])


# -- reductions ---------------------------------------------------------------------------------

def _reduce_kernel(pool: str):
    def kernel(ctx):
        ctx.reduce_init(A, SCALAR, OUT)
        yield from ctx.cb_wait_front(A, 1)
        yield from ctx.cb_wait_front(SCALAR, 1)
        yield from ctx.cb_reserve_back(OUT, 1)
        ctx.tile_regs_acquire()
        ctx.reduce_tile(A, SCALAR, 0, 0, 0, pool=pool)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        ctx.pack_tile(0, OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 1)
    return kernel


def _assert_bf16_close(got: np.ndarray, expected: np.ndarray, atol: float = 0.0,
                       exact: bool = False) -> None:
    """Equal to the float64 reference rounded to bf16, up to one bf16 ulp (the simulator computes
    in float32 before rounding), or ``atol``; with ``exact`` at least 99 % of values are equal."""
    ulp = np.ldexp(1.0, np.floor(np.log2(np.maximum(np.abs(expected), 1e-30))).astype(int) - 7)
    error = np.abs(got - bf16(expected))
    assert np.all((error <= ulp) | (error <= atol)), float(np.max(error / ulp))
    assert np.mean(got == bf16(expected)) > (0.99 if exact else 0.9)


def test_reduce_tile_col_sum_into_row_0_scaled() -> None:
    rng = np.random.default_rng(12)
    rows = bf16(rng.standard_normal((32, 32)))
    scalar = np.full(1024, 0.25, dtype=np.float32)
    run = run_compute(_reduce_kernel("sum"), {A: tiles_cb(tilize(rows)), SCALAR: tiles_cb(scalar)},
                      {OUT: (BF16, 2048, 1)})
    got = untilize(out_tiles(run))
    _assert_bf16_close(got[0], ref.column_sum(rows, 0.25, "HiFi4"), exact=True)
    assert not got[1:].any()  # only row 0 of DST is written


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi2", "HiFi4"])
def test_reduce_tile_sum_follows_the_fidelity_phases(fidelity: str) -> None:
    """GAPOOL multiplies the data (srcA) by the scaler (srcB): at LoFi the data keeps 5 bits;
    DST rounds after each 16-row accumulation."""
    rng = np.random.default_rng(26)
    rows = bf16(rng.standard_normal((32, 32)))
    scalar = np.full(1024, 0.75, dtype=np.float32)
    run = run_compute(_reduce_kernel("sum"), {A: tiles_cb(tilize(rows)), SCALAR: tiles_cb(scalar)},
                      {OUT: (BF16, 2048, 1)}, math_fidelity=fidelity)
    got = untilize(out_tiles(run))[0]
    _assert_bf16_close(got, ref.column_sum(rows, 0.75, fidelity), exact=True)
    if fidelity == "LoFi":
        assert not np.allclose(got, bf16(rows.astype(np.float64).sum(axis=0) * 0.75), rtol=2.0 ** -8, atol=0)


def test_reduce_tile_col_max() -> None:
    rng = np.random.default_rng(13)
    rows = bf16(rng.standard_normal((32, 32)))
    rows[5] = bf16(np.abs(rows[5]) + 0.5)  # every column has a positive maximum
    scalar = np.full(1024, 2.0, dtype=np.float32)
    run = run_compute(_reduce_kernel("max"), {A: tiles_cb(tilize(rows)), SCALAR: tiles_cb(scalar)},
                      {OUT: (BF16, 2048, 1)})
    got = untilize(out_tiles(run))
    np.testing.assert_array_equal(got[0], rows.max(axis=0) * 2.0)
    assert not got[1:].any()


@pytest.mark.parametrize(("rows", "ntiles", "row_tiles", "col_offset", "row_offset", "fidelity"), [
    (9, 2, 2, 0, 0, "HiFi4"),    # a 3x3 window of 64 channels
    (9, 2, 2, 0, 0, "LoFi"),     # the same at LoFi: srcA keeps 5 bits
    (16, 1, 2, 32, 0, "HiFi4"),  # second channel block of a row (read pointer moved by hand)
    (5, 1, 1, 0, 7, "HiFi4"),    # rows starting 7 rows into the page
    (25, 3, 3, 0, 0, "HiFi4"),   # 4 faces of 16 rows: rows 25..31 lie past the waited page
    (32, 3, 3, 0, 0, "HiFi2"),   # a full 32-row tile height
])
def test_unpack_tilize_a_b_block_and_reduce_tile_math(rows: int, ntiles: int, row_tiles: int,
                                                      col_offset: int, row_offset: int,
                                                      fidelity: str) -> None:
    """Rows are unpack_tilizeA_B_init's block tiles wide and start at the CB's read pointer; a
    tile is face_r_dim rows (2 faces) or 2 * face_r_dim rows (4 faces)."""
    rng = np.random.default_rng(rows * 100 + ntiles)
    row_width = row_tiles * 32
    total_rows = row_offset + rows
    data = bf16(rng.standard_normal((total_rows, row_width)))
    page = total_rows * row_width * 2
    scalar = np.full(1024, 0.5, dtype=np.float32)
    width = ntiles * 32
    num_faces, face_r_dim = (2, rows) if rows <= 16 else (4, 16)

    def kernel(ctx):
        ctx.unpack_tilizeA_B_init(A, SCALAR, row_tiles, num_faces, face_r_dim)
        ctx.reduce_init(A, SCALAR, OUT)
        ctx.pack_untilize_dest_init(OUT, 1, 2)
        yield from ctx.cb_wait_front(A, 1)
        yield from ctx.cb_wait_front(SCALAR, 1)
        yield from ctx.cb_reserve_back(OUT, 1)
        ctx.tile_regs_acquire()
        cb = ctx.get_local_cb_interface(A)
        front = cb.fifo_rd_ptr
        cb.fifo_rd_ptr = front + (row_offset * row_width + col_offset) * 2
        ctx.unpack_tilizeA_B_block(A, SCALAR, ntiles, 0, num_faces, face_r_dim)
        cb.fifo_rd_ptr = front
        for t in range(ntiles):
            ctx.reduce_tile_math(t, num_faces)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        ctx.pack_untilize_dest(OUT, 1, 0, 1, 2, block_ct_dim=ntiles, row_width=width)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 1)

    run = run_compute(kernel, {A: rows_cb(data, page), SCALAR: tiles_cb(scalar)},
                      {OUT: (BF16, width * 2, 1)}, math_fidelity=fidelity)
    got = decode_row_major(run.outputs[OUT].reshape(-1), BF16)
    block = np.zeros((32, width), dtype=np.float32)
    block[:rows] = data[row_offset:, col_offset : col_offset + width]
    _assert_bf16_close(got, ref.column_sum(block, 0.5, fidelity), exact=True)


def test_unpack_tilize_a_b_block_rejects_a_block_wider_than_its_rows() -> None:
    def kernel(ctx):
        ctx.unpack_tilizeA_B_init(A, SCALAR, 1)
        yield from ctx.cb_wait_front(A, 1)
        ctx.tile_regs_acquire()
        ctx.unpack_tilizeA_B_block(A, SCALAR, 2, 0, 2, 9)

    data = np.zeros((9, 32), dtype=np.float32)
    with pytest.raises(ConfigurationError, match="unpack_tilizeA_B_block of 2 tiles from rows 1 tiles wide"):
        run_compute(kernel, {A: rows_cb(data, 2048), SCALAR: tiles_cb(np.ones(1024, np.float32))},
                    {OUT: (BF16, 2048, 1)})


# -- SFPU -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["relu", "relu6", "silu", "gelu"])
def test_sfpu_activation(name: str) -> None:
    a = random_tiles(1, 14, scale=4.0)  # spans relu6's clamp at 6

    def body(ctx, i):
        ctx.copy_tile(A, i, 0)
        ctx.sfpu_tile(name, 0)

    kernel = eltwise_kernel(1, body, inputs=(A,), init=lambda ctx: ctx.sfpu_init(name))
    run = run_compute(kernel, {A: tiles_cb(a)}, {OUT: (BF16, 2048, 1)})
    expected = ACTIVATIONS[name](a.astype(np.float64))
    # gelu(x) for x < -5 is below 1e-6 and its erf-based value loses relative precision
    _assert_bf16_close(out_tiles(run), expected, atol=1e-6)
    if name in ("relu", "relu6"):
        np.testing.assert_array_equal(out_tiles(run), bf16(expected))


@pytest.mark.parametrize(("method", "name"), [("relu_tile", "relu"), ("silu_tile", "silu"),
                                              ("gelu_tile", "gelu")])
def test_named_sfpu_calls_match_sfpu_tile(method: str, name: str) -> None:
    a = random_tiles(1, 15, scale=3.0)
    via_name = run_compute(eltwise_kernel(1, lambda ctx, i: (ctx.copy_tile(A, 0, 0),
                                                             getattr(ctx, method)(0)), inputs=(A,)),
                           {A: tiles_cb(a)}, {OUT: (BF16, 2048, 1)})
    via_tile = run_compute(eltwise_kernel(1, lambda ctx, i: (ctx.copy_tile(A, 0, 0),
                                                             ctx.sfpu_tile(name, 0)), inputs=(A,)),
                           {A: tiles_cb(a)}, {OUT: (BF16, 2048, 1)})
    np.testing.assert_array_equal(via_name.outputs[OUT], via_tile.outputs[OUT])


def test_relu_max_tile_is_relu6() -> None:
    a = random_tiles(1, 16, scale=5.0)
    run = run_compute(eltwise_kernel(1, lambda ctx, i: (ctx.copy_tile(A, 0, 0),
                                                        ctx.relu_max_tile(0, 6.0)), inputs=(A,)),
                      {A: tiles_cb(a)}, {OUT: (BF16, 2048, 1)})
    np.testing.assert_array_equal(out_tiles(run), np.clip(a, 0.0, 6.0))


# -- layout conversions ---------------------------------------------------------------------------

@pytest.mark.parametrize(("rows", "row_width", "col_offset"), [(32, 64, 0), (1, 64, 0), (32, 96, 32)])
def test_pack_untilize_dest_writes_row_major_rows(rows: int, row_width: int, col_offset: int) -> None:
    rng = np.random.default_rng(17)
    matrix = bf16(rng.standard_normal((32, 64)))
    tiles = tilize(matrix)

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, 2)
        yield from ctx.cb_reserve_back(OUT, 1)
        ctx.tile_regs_acquire()
        ctx.copy_tile(A, 0, 0)
        ctx.copy_tile(A, 1, 1)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        num_faces, face_r_dim = (4, 16) if rows == 32 else (2, rows)
        ctx.pack_untilize_dest(OUT, 1, 0, face_r_dim, num_faces, block_ct_dim=2, row_width=row_width,
                               col_offset=col_offset)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 1)

    run = run_compute(kernel, {A: tiles_cb(tiles)}, {OUT: (BF16, 32 * row_width * 2, 1)})
    got = decode_row_major(run.outputs[OUT].reshape(-1), BF16).reshape(32, row_width)
    np.testing.assert_array_equal(got[:rows, col_offset : col_offset + 64], matrix[:rows])
    untouched = np.ones((32, row_width), dtype=bool)
    untouched[:rows, col_offset : col_offset + 64] = False
    assert not got[untouched].any()


@pytest.mark.parametrize("ntiles", [1, 3])
def test_tilize_block_equals_formats_tilize(ntiles: int) -> None:
    rng = np.random.default_rng(18)
    rows = bf16(rng.standard_normal((32, 32 * ntiles)))

    def kernel(ctx):
        ctx.tilize_init(A, ntiles, OUT)
        yield from ctx.cb_wait_front(A, 1)
        yield from ctx.cb_reserve_back(OUT, ntiles)
        ctx.tilize_block(A, ntiles, OUT)
        ctx.cb_push_back(OUT, ntiles)
        ctx.cb_pop_front(A, 1)
        ctx.tilize_uninit(A, OUT)

    run = run_compute(kernel, {A: rows_cb(rows, 32 * 32 * ntiles * 2)}, {OUT: (BF16, 2048, ntiles)})
    np.testing.assert_array_equal(out_tiles(run).reshape(ntiles, 1024), tilize(rows))


def test_bfloat8_b_output_cb() -> None:
    a, b = random_tiles(2, 19), random_tiles(2, 20)
    bfp8 = DataFormat.BFLOAT8_B
    kernel = eltwise_kernel(2, lambda ctx, i: ctx.mul_tiles(A, B, i, i, 0))
    run = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)},
                      {OUT: (bfp8, tile_size_bytes(bfp8), 2)})
    dst = ref.elwmul(a, b, "HiFi4").astype(np.float32)
    np.testing.assert_array_equal(run.outputs[OUT], pack_tile(dst, bfp8))
    np.testing.assert_array_equal(unpack_tile(run.outputs[OUT], bfp8), round_to_format(dst, bfp8))
    assert not np.array_equal(round_to_format(dst, bfp8), dst)  # the format really is coarser


def test_bfloat8_b_input_cb() -> None:
    bfp8 = DataFormat.BFLOAT8_B
    a = round_to_format(random_tiles(1, 21), bfp8)
    b = random_tiles(1, 22)
    kernel = eltwise_kernel(1, lambda ctx, i: ctx.mul_tiles(A, B, 0, 0, 0))
    run = run_compute(kernel, {A: tiles_cb(a, bfp8), B: tiles_cb(b)}, {OUT: (BF16, 2048, 1)})
    np.testing.assert_array_equal(out_tiles(run), ref.elwmul(a, b, "HiFi4"))


# -- timing of the compute model --------------------------------------------------------------------

def _mul_run(fidelity: str, n: int) -> Run:
    a, b = random_tiles(n, 23), random_tiles(n, 24)
    kernel = eltwise_kernel(n, lambda ctx, i: ctx.mul_tiles(A, B, i, i, 0))
    return run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, n)},
                       math_fidelity=fidelity)


def test_mul_tiles_math_cost_scales_with_fidelity() -> None:
    n = 8
    spec = load_device("wormhole_b0")
    per_phase = spec.compute.eltwise_mul_tile_cycles_per_phase.value  # 8 cycles (ELWMUL)
    lofi, hifi4 = _mul_run("LoFi", n), _mul_run("HiFi4", n)
    assert not np.array_equal(lofi.outputs[OUT], hifi4.outputs[OUT])  # fidelity changes the numbers
    busy_diff = hifi4.ctx.busy_cycles[Risc.TRISC1] - lofi.ctx.busy_cycles[Risc.TRISC1]
    assert busy_diff == pytest.approx((4 - 1) * per_phase * n)
    assert hifi4.ctx.busy_cycles[Risc.TRISC0] == lofi.ctx.busy_cycles[Risc.TRISC0]
    d_lofi = lofi.profile.risc_duration_cycles[Risc.TRISC1]
    d_hifi4 = hifi4.profile.risc_duration_cycles[Risc.TRISC1]
    # unpacking two bf16 tiles (2 x 5 + 4096 / 80 cycles) outlasts even HiFi4 math (32 cycles), so
    # the math thread waits on unpack and only the last tile's extra phases show in the duration
    assert d_hifi4 - d_lofi >= (4 - 1) * per_phase
    assert d_hifi4 <= d_lofi + (4 - 1) * per_phase * n


def _matmul_run(ct_dim: int, fmt: DataFormat,
                transpose: bool = False) -> tuple[Run, np.ndarray, np.ndarray]:
    """One matmul_block step: in0 (1 tile) times ct_dim in1 tiles, packed to OUT (bf16)."""
    a, b = random_tiles(1, 31, 0.5), random_tiles(ct_dim, 32, 0.5)

    def kernel(ctx):
        ctx.mm_init(A, B, OUT)
        yield from ctx.cb_wait_front(A, 1)
        yield from ctx.cb_wait_front(B, ct_dim)
        ctx.tile_regs_acquire()
        ctx.matmul_block(A, B, 0, 0, 0, transpose, ct_dim, 1, 1)
        ctx.tile_regs_commit()
        yield from ctx.cb_reserve_back(OUT, ct_dim)
        ctx.tile_regs_wait()
        for w in range(ct_dim):
            ctx.pack_tile(w, OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, ct_dim)

    run = run_compute(kernel, {A: tiles_cb(a, fmt), B: tiles_cb(b, fmt)},
                      {OUT: (BF16, 2048, ct_dim)}, math_fidelity="LoFi")
    return run, a, b


@pytest.mark.parametrize("fmt", [BF16, DataFormat.BFLOAT8_B])
def test_matmul_block_result_and_per_tile_unpack_cost(fmt: DataFormat) -> None:
    """Each tile a matmul_block step unpacks pays the per-tile overhead, and its bytes stream
    at the two-operand unpacker rate: a 1 x 5 step costs four tiles more than a 1 x 1 step."""
    spec = load_device("wormhole_b0").compute
    one, _, _ = _matmul_run(1, fmt)
    five, a, b = _matmul_run(5, fmt)
    a_rows = untilize(unpack_tile(pack_tile(a, fmt), fmt))  # the bytes the unpacker reads
    b_rows = untilize(unpack_tile(pack_tile(b, fmt), fmt))  # [32, 5 * 32]
    _assert_bf16_close(untilize(out_tiles(five)), ref.matmul(a_rows, b_rows, "LoFi"), exact=True)
    per_tile = (spec.unpack_tile_overhead_cycles.value
                + tile_size_bytes(fmt) / spec.unpack_two_operand_bytes_per_cycle.value)
    unpack_diff = five.ctx.busy_cycles[Risc.TRISC0] - one.ctx.busy_cycles[Risc.TRISC0]
    assert unpack_diff == pytest.approx(4 * per_tile)
    math_diff = five.ctx.busy_cycles[Risc.TRISC1] - one.ctx.busy_cycles[Risc.TRISC1]
    assert math_diff == pytest.approx(4 * spec.matmul_tile_cycles_lofi.value)


def test_matmul_block_with_transpose_uses_each_in1_tile_transposed() -> None:
    run, a, b = _matmul_run(3, BF16, transpose=True)
    a_rows = untilize(a)
    expected = np.hstack([ref.matmul(a_rows, untilize(b[w : w + 1]).T, "LoFi") for w in range(3)])
    _assert_bf16_close(untilize(out_tiles(run)), expected, exact=True)


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi2", "HiFi3", "HiFi4"])
def test_matmul_block_accumulates_over_k_at_each_fidelity(fidelity: str) -> None:
    """A 2 x 2 subblock over kt = 2 inner steps, DST accumulating across the steps: in0 feeds srcB
    (7 bits at LoFi), in1 srcA (5 bits), DST rounds after every 16-deep MVMUL."""
    rt, ct, kt = 2, 2, 2
    a = random_tiles(rt * kt, 51, 0.5)  # in0: rt x kt tiles, row-major
    b = random_tiles(kt * ct, 52, 0.5)  # in1: kt x ct tiles, row-major

    def kernel(ctx):
        ctx.mm_init(A, B, OUT)
        yield from ctx.cb_wait_front(A, rt * kt)
        yield from ctx.cb_wait_front(B, kt * ct)
        ctx.tile_regs_acquire()
        for k in range(kt):
            ctx.matmul_block(A, B, k, k * ct, 0, False, ct, rt, kt)
        ctx.tile_regs_commit()
        yield from ctx.cb_reserve_back(OUT, rt * ct)
        ctx.tile_regs_wait()
        ctx.pack_tile_block(0, OUT, rt * ct)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, rt * ct)

    run = run_compute(kernel, {A: tiles_cb(a), B: tiles_cb(b)}, {OUT: (BF16, 2048, rt * ct)},
                      math_fidelity=fidelity)
    a_rows = np.vstack([untilize(a[h * kt : (h + 1) * kt]) for h in range(rt)])  # [64, 64]
    b_rows = np.vstack([untilize(b[k * ct : (k + 1) * ct]) for k in range(kt)])  # [64, 64]
    expected = ref.matmul(a_rows, b_rows, fidelity)
    got = np.vstack([untilize(out_tiles(run)[h * ct : (h + 1) * ct]) for h in range(rt)])
    _assert_bf16_close(got, expected, exact=True)
    exact = a_rows.astype(np.float64) @ b_rows
    error = np.abs(got - exact).max()
    assert error > 1e-3 if fidelity == "LoFi" else error < 0.2


def test_three_trisc_zones_exist_and_are_ordered() -> None:
    run = _mul_run("HiFi2", 4)
    zones = {(z.core, z.risc): z for z in run.profile.zones}
    assert set(zones) == {(CORE, Risc.BRISC), (CORE, Risc.TRISC0), (CORE, Risc.TRISC1),
                          (CORE, Risc.TRISC2)}
    unpack, math, pack = (zones[(CORE, r)] for r in (Risc.TRISC0, Risc.TRISC1, Risc.TRISC2))
    assert unpack.start == math.start == pack.start
    assert unpack.end > unpack.start and math.end > math.start and pack.end > pack.start
    assert pack.end > math.end  # the last tile is packed after its math finished
    assert run.profile.device_kernel_duration_cycles == round(
        max(z.end for z in zones.values()) - min(z.start for z in zones.values()))
    for risc in (Risc.TRISC0, Risc.TRISC1, Risc.TRISC2):
        assert 0 < run.profile.risc_duration_cycles[risc] <= run.profile.device_kernel_duration_cycles


def test_reduce_tile_col_max_of_negative_columns() -> None:
    rng = np.random.default_rng(25)
    rows = bf16(-np.abs(rng.standard_normal((32, 32))) - 0.25)
    scalar = np.full(1024, 1.0, dtype=np.float32)
    run = run_compute(_reduce_kernel("max"), {A: tiles_cb(tilize(rows)), SCALAR: tiles_cb(scalar)},
                      {OUT: (BF16, 2048, 1)})
    np.testing.assert_array_equal(untilize(out_tiles(run))[0], rows.max(axis=0))


def test_pack_relu_config_applies_to_the_packs_that_follow() -> None:
    a = random_tiles(2, 61)

    def kernel(ctx):
        yield from ctx.cb_wait_front(A, 2)
        yield from ctx.cb_reserve_back(OUT, 2)
        ctx.tile_regs_acquire()
        ctx.copy_block_matmul_partials(A, 0, 0, 2)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        ctx.pack_relu_config(1)
        ctx.pack_tile(0, OUT)
        ctx.pack_relu_config(0)
        ctx.pack_tile(1, OUT)
        ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 2)

    run = run_compute(kernel, {A: tiles_cb(a)}, {OUT: (BF16, 2048, 2)})
    got = out_tiles(run)
    np.testing.assert_array_equal(got[0], np.maximum(a[0], 0.0))
    np.testing.assert_array_equal(got[1], a[1])


def test_pack_relu_config_rejects_a_mode_that_is_no_relu_type() -> None:
    def kernel(ctx):
        ctx.pack_relu_config(5)
        yield from ()

    with pytest.raises(ConfigurationError, match=r"pack_relu_config\(5\): mode 5 in bits 0-3 is not a ReluType"):
        run_compute(kernel, {}, {OUT: (BF16, 2048, 1)})


def test_compute_context_instance_dict_keeps_within_the_shared_keys() -> None:
    """The compute state lives in ComputeContext's slots and the instance dict holds at most 30
    attributes (CPython's shared-keys limit: past it the dict is a plain one and method calls on
    the context lose their specialization, see ComputeContext.__slots__), after a kernel that
    makes the calls of the pool kernel."""
    run = run_compute(eltwise_kernel(2, lambda ctx, i: ctx.mul_tiles(A, B, i, i, 0),
                                     init=lambda ctx: ctx.mul_tiles_init(A, B)),
                      {A: tiles_cb(random_tiles(2, 1)), B: tiles_cb(random_tiles(2, 2))},
                      {OUT: (BF16, 2048, 2)})
    assert len(vars(run.ctx)) <= 30, sorted(vars(run.ctx))
