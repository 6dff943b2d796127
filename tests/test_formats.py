"""Tests of ttsim.formats against independent references (hand-worked values, ml_dtypes,
bit-level formulas and an exact-arithmetic bfloat8_b model)."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from ttsim.formats import (
    FACE_H,
    FACE_W,
    TILE_ELEMENTS,
    TILE_H,
    TILE_W,
    DataFormat,
    bfloat16_bits,
    bfloat16_dtype,
    decode_row_major,
    element_size_bytes,
    encode_row_major,
    pack_tile,
    round_to_bfloat16,
    round_to_format,
    tile_positions,
    tile_size_bytes,
    tilize,
    unpack_tile,
    untilize,
)

ALL_FORMATS = list(DataFormat)
ROW_MAJOR_FORMATS = [f for f in DataFormat if f is not DataFormat.BFLOAT8_B]


def storage_index(r: int, c: int) -> int:
    """Where element (r, c) of a tile lives, from the face-major layout definition."""
    face = (r // 16) * 2 + (c // 16)
    return face * 256 + (r % 16) * 16 + (c % 16)


def ref_bfp8(values: np.ndarray) -> np.ndarray:
    """Exact-arithmetic bfloat8_b model, one 16-value block at a time."""
    bf16 = values.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)
    out = np.empty(values.size, dtype=np.float64)
    for start in range(0, values.size, 16):
        block = [float(x) for x in bf16.reshape(-1)[start : start + 16]]
        # frexp: x = f * 2^e with f in [0.5, 1), so the biased exponent is e - 1 + 127.
        exps = [math.frexp(x)[1] + 126 if abs(x) >= 2.0**-126 else 0 for x in block]
        shared = max(exps)
        unit = Fraction(2) ** (shared - 133)
        for i, (x, e) in enumerate(zip(block, exps)):
            m = 0 if e == 0 else min(round(Fraction(abs(x)) / unit), 127)  # round(): ties-even
            out[start + i] = math.copysign(float(m * unit), x) if m else 0.0
    return out.reshape(values.shape)


def test_format_names_and_constants() -> None:
    assert DataFormat("bfloat8_b") is DataFormat.BFLOAT8_B
    assert [f.value for f in DataFormat] == ["bfloat16", "bfloat8_b", "float32", "uint16", "uint32"]
    assert (TILE_H, TILE_W, FACE_H, FACE_W, TILE_ELEMENTS) == (32, 32, 16, 16, 1024)


@pytest.mark.parametrize(
    ("fmt", "size"),
    [
        (DataFormat.BFLOAT16, 2048),
        (DataFormat.FLOAT32, 4096),
        (DataFormat.BFLOAT8_B, 1088),
        (DataFormat.UINT16, 2048),
        (DataFormat.UINT32, 4096),
    ],
)
def test_tile_size_bytes(fmt: DataFormat, size: int) -> None:
    assert tile_size_bytes(fmt) == size
    assert tile_size_bytes(fmt.value) == size


def test_element_size_bytes() -> None:
    assert element_size_bytes(DataFormat.BFLOAT16) == 2
    assert element_size_bytes(DataFormat.FLOAT32) == 4
    assert element_size_bytes(DataFormat.UINT16) == 2
    assert element_size_bytes(DataFormat.UINT32) == 4
    with pytest.raises(ValueError, match="bfloat8_b has no row-major form"):
        element_size_bytes(DataFormat.BFLOAT8_B)
    with pytest.raises(ValueError):
        element_size_bytes("float16")  # type: ignore[arg-type]


# --- tile layout ---------------------------------------------------------------------------


@pytest.mark.parametrize("w", [1, 2, 3, 4])
def test_tilize_matches_layout_definition_and_round_trips(w: int) -> None:
    rng = np.random.default_rng(w)
    block = rng.standard_normal((32, 32 * w)).astype(np.float32)
    tiles = tilize(block)
    assert tiles.shape == (w, 1024) and tiles.dtype == np.float32
    expected = np.empty((w, 1024), dtype=np.float32)
    for r in range(32):
        for c in range(32 * w):
            expected[c // 32, storage_index(r, c % 32)] = block[r, c]
    np.testing.assert_array_equal(tiles, expected)
    np.testing.assert_array_equal(untilize(tiles), block)


def test_tilize_explicit_positions() -> None:
    block = np.arange(32 * 64, dtype=np.float32).reshape(32, 64)
    tiles = tilize(block)
    assert tiles[0, 2 * 256 + 1 * 16 + 3] == block[17, 3]
    assert tiles[0, 0] == block[0, 0]
    assert tiles[0, 256] == block[0, 16]  # face 1 starts at column 16
    assert tiles[0, 512] == block[16, 0]  # face 2 starts at row 16
    assert tiles[0, 3 * 256 + 15 * 16 + 15] == block[31, 31]
    assert tiles[1, 256 + 5 * 16 + 4] == block[5, 32 + 20]  # second tile, face 1
    np.testing.assert_array_equal(tiles[0, :16], block[0, :16])  # face row = 16 values


def test_tile_positions_are_where_tiling_each_row_of_tiles_puts_an_entry() -> None:
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((96, 160)).astype(np.float32)  # 3 x 5 tiles
    tiles = np.concatenate([tilize(matrix[r : r + 32]) for r in range(0, 96, 32)])
    rows, cols = np.indices(matrix.shape)
    tile_ids, offsets = tile_positions(rows, cols, 5)
    assert tile_ids.shape == offsets.shape == matrix.shape
    np.testing.assert_array_equal(tiles[tile_ids, offsets], matrix)
    for r, c in ((0, 0), (17, 3), (40, 70), (95, 159)):  # the layout definition, entry by entry
        assert tile_ids[r, c] == r // 32 * 5 + c // 32
        assert offsets[r, c] == storage_index(r % 32, c % 32)


def test_tilize_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        tilize(np.zeros((16, 32), dtype=np.float32))
    with pytest.raises(ValueError):
        tilize(np.zeros((32, 40), dtype=np.float32))
    with pytest.raises(ValueError):
        untilize(np.zeros((2, 512), dtype=np.float32))


# --- bfloat16 ------------------------------------------------------------------------------


def test_bfloat16_bits_match_ml_dtypes_on_every_bit_pattern_class() -> None:
    """The numpy rounding is bit-exact with ml_dtypes: random patterns, NaNs, infinities,
    subnormals, ties and the largest finite values (the last round to infinity)."""
    rng = np.random.default_rng(1)
    special = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF,
                        0x7F7FFFFF, 0x7F7F8000, 0x00000001, 0x00008000, 0x00018000, 0x3F808000,
                        0x3F818000, 0x807FFFFF], dtype=np.uint32)
    bits = np.concatenate([rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32), special])
    values = bits.view(np.float32)
    with np.errstate(invalid="ignore"):
        expected = values.astype(ml_dtypes.bfloat16).view(np.uint16)
    np.testing.assert_array_equal(bfloat16_bits(values), expected)
    encoded = encode_row_major(values, DataFormat.BFLOAT16)
    np.testing.assert_array_equal(encoded.view(np.uint16), expected)
    # the float32 result of the in-place rounding, and the lazily imported dtype, agree too
    np.testing.assert_array_equal(round_to_bfloat16(values).view(np.uint32), expected.astype(np.uint32) << 16)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(values.astype(bfloat16_dtype()).view(np.uint16), expected)


def test_round_to_bfloat16_keeps_shape_and_input() -> None:
    v = np.array([[1 + 2**-8, np.nan], [-np.nan, 3.0]], np.float32)
    before = v.copy()
    got = round_to_bfloat16(v)
    assert got.shape == (2, 2) and got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), [[0x3F800000, 0x7FC00000], [0xFFC00000, 0x40400000]])
    np.testing.assert_array_equal(v.view(np.uint32), before.view(np.uint32))  # input untouched
    assert round_to_bfloat16(np.zeros(0, np.float32)).size == 0


def test_bfloat16_rounding_hand_worked() -> None:
    v = np.array([1 + 2**-8, 1 + 3 * 2**-9, 1 + 2**-7 + 2**-8, -(1 + 2**-8), 3.0], np.float32)
    expected = np.array([1.0, 1 + 2**-7, 1 + 2**-6, -1.0, 3.0], np.float32)
    np.testing.assert_array_equal(round_to_format(v, DataFormat.BFLOAT16), expected)


def test_bfloat16_rounding_matches_ml_dtypes_and_bit_formula() -> None:
    rng = np.random.default_rng(0)
    v = (rng.standard_normal(4096) * np.exp2(rng.integers(-60, 60, 4096))).astype(np.float32)
    got = round_to_format(v, DataFormat.BFLOAT16)
    np.testing.assert_array_equal(got, v.astype(ml_dtypes.bfloat16).astype(np.float32))
    # Round-to-nearest-even on the raw bits: add 0x7FFF plus the lowest kept bit, truncate.
    u = v.view(np.uint32).astype(np.uint64)
    rne = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
    np.testing.assert_array_equal(got, rne)


def test_round_to_format_keeps_shape_and_copies() -> None:
    v = np.linspace(-4, 4, 64, dtype=np.float32).reshape(4, 16)
    for fmt in ALL_FORMATS:
        out = round_to_format(v, fmt)
        assert out.shape == v.shape and out.dtype == np.float32
        assert not np.shares_memory(out, v)
    np.testing.assert_array_equal(round_to_format(v, DataFormat.FLOAT32), v)


def test_pack_bfloat16_bytes() -> None:
    v = np.zeros(1024, dtype=np.float32)
    v[0], v[1] = 1.0, -2.0
    data = pack_tile(v, DataFormat.BFLOAT16)
    assert data.dtype == np.uint8 and data.shape == (2048,)
    assert list(data[:4]) == [0x80, 0x3F, 0x00, 0xC0]  # 0x3F80, 0xC000 little-endian


# --- bfloat8_b -----------------------------------------------------------------------------

HAND_BLOCK = np.array(
    # fmt: off
    [1.0, 0.5, 0.25, 3.0, 0.1, 2**-7, -1.5, 2**-6,
     1.5 * 2**-5, 2.5 * 2**-5, -0.0, 1e-40, 2.0, -3.0, 0.75, 0.0],
    # fmt: on
    dtype=np.float32,
)
# Shared exponent is that of 3.0 (biased 128): one mantissa step is 2^(128-133) = 2^-5.
HAND_MANTISSAS = [32, 16, 8, 96, 3, 0, 48, 0, 2, 2, 0, 0, 64, 96, 24, 0]
HAND_SIGNS = [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0]


def test_bfp8_hand_worked_block() -> None:
    got = round_to_format(HAND_BLOCK, DataFormat.BFLOAT8_B)
    expected = np.array(HAND_MANTISSAS, np.float32) * 2.0**-5 * (1 - 2 * np.array(HAND_SIGNS))
    np.testing.assert_array_equal(got, expected)
    assert got[4] == 0.09375  # 0.1 keeps only 3 steps of 2^-5
    assert got[5] == 0.0 and got[7] == 0.0  # 2^-7 and 2^-6 (a tie, to even) flush
    assert got[8] == got[9] == 0.0625  # 1.5 and 2.5 steps both round to 2 (ties to even)
    assert not np.signbit(got[10])  # -0.0 is stored as +0


def test_bfp8_flushes_values_far_below_block_max() -> None:
    v = np.zeros(16, dtype=np.float32)
    v[0], v[1], v[2], v[3] = 1.0, 2**-8, 0.9 * 2**-7, 2**-6
    got = round_to_format(v, DataFormat.BFLOAT8_B)
    np.testing.assert_array_equal(got[:4], [1.0, 0.0, 0.0, 2**-6])


def test_bfp8_saturates_instead_of_carrying() -> None:
    # bf16 1.9921875 = 255 * 2^-7 is its own block max; aligned mantissa 127.5 rounds to 128.
    v = np.full(16, 0.5, dtype=np.float32)
    v[0] = 1.9921875
    got = round_to_format(v, DataFormat.BFLOAT8_B)
    assert got[0] == 127 * 2.0**-6
    assert got[1] == 0.5


def test_bfp8_blocks_have_independent_exponents() -> None:
    v = np.zeros(32, dtype=np.float32)
    v[:16] = 1000.0
    v[16:] = 1e-3
    got = round_to_format(v, DataFormat.BFLOAT8_B)
    np.testing.assert_array_equal(got[:16], 1000.0)  # 1000 = 125 * 2^3 fits 7 bits
    # 1e-3 -> bf16 131 * 2^-17 -> aligned to its own exponent (2^-10): 65.5 -> 66 (ties to even).
    # Had it shared the first block's exponent it would have flushed to 0.
    np.testing.assert_array_equal(got[16:], 66 * 2.0**-16)
    with pytest.raises(ValueError):
        round_to_format(np.ones(24, np.float32), DataFormat.BFLOAT8_B)


def test_bfp8_matches_exact_reference() -> None:
    rng = np.random.default_rng(1)
    v = (rng.standard_normal(1024) * np.exp2(rng.integers(-12, 12, 1024))).astype(np.float32)
    v[::7] = 0.0
    np.testing.assert_array_equal(round_to_format(v, DataFormat.BFLOAT8_B), ref_bfp8(v))


def test_bfp8_error_bounded_by_block_max() -> None:
    rng = np.random.default_rng(2)
    v = rng.standard_normal((8, 1024)).astype(np.float32)
    err = np.abs(round_to_format(v, DataFormat.BFLOAT8_B) - v).reshape(-1, 16)
    block_max = np.abs(v).reshape(-1, 16).max(axis=1, keepdims=True)
    assert np.all(err < 2.0**-6 * block_max)


def test_bfp8_pack_byte_layout() -> None:
    v = np.zeros(1024, dtype=np.float32)
    v[:16] = HAND_BLOCK
    v[16:32] = 0.5
    v[1008:] = -0.25
    data = pack_tile(v, DataFormat.BFLOAT8_B)
    assert data.dtype == np.uint8 and data.shape == (1088,)
    exps = data[:64]
    assert exps[0] == 128 and exps[1] == 126 and exps[63] == 125
    np.testing.assert_array_equal(exps[2:63], 0)  # all-zero blocks
    mants = data[64:]
    expected_block0 = [m | (0x80 if s else 0) for m, s in zip(HAND_MANTISSAS, HAND_SIGNS)]
    assert list(mants[:16]) == expected_block0
    assert mants[6] == 0x80 | 48  # -1.5: sign bit 7, magnitude 48
    np.testing.assert_array_equal(mants[16:32], 64)  # 0.5 = 64 * 2^(126-133)
    np.testing.assert_array_equal(mants[1008:], 0x80 | 64)
    np.testing.assert_array_equal(mants[32:1008], 0)
    np.testing.assert_array_equal(unpack_tile(data, DataFormat.BFLOAT8_B)[16:32], 0.5)


# --- pack/unpack for every format ----------------------------------------------------------


def random_tiles(fmt: DataFormat, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if fmt is DataFormat.UINT16:
        return rng.integers(0, 2**16, (n, 1024)).astype(np.float32)
    if fmt is DataFormat.UINT32:
        return rng.integers(0, 2**24, (n, 1024)).astype(np.float32)
    scale = np.exp2(rng.integers(-20, 20, (n, 64, 1))).astype(np.float32)
    return (rng.standard_normal((n, 64, 16)).astype(np.float32) * scale).reshape(n, 1024)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_pack_unpack_round_trip_equals_round_to_format(fmt: DataFormat) -> None:
    tiles = random_tiles(fmt, 3, seed=5)
    data = pack_tile(tiles, fmt)
    assert data.shape == (3, tile_size_bytes(fmt)) and data.dtype == np.uint8
    back = unpack_tile(data, fmt)
    assert back.shape == (3, 1024) and back.dtype == np.float32
    np.testing.assert_array_equal(back, round_to_format(tiles, fmt))
    # single tile, and raw bytes (one tile or several) give the same answer
    np.testing.assert_array_equal(pack_tile(tiles[1], fmt), data[1])
    np.testing.assert_array_equal(unpack_tile(data[1], fmt), back[1])
    np.testing.assert_array_equal(unpack_tile(data[1].tobytes(), fmt), back[1])
    np.testing.assert_array_equal(unpack_tile(data.tobytes(), fmt), back)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_a_tile_of_zeros_packs_to_zero_bytes(fmt: DataFormat) -> None:
    """What the classic weights rely on to leave the matrix's empty tiles unencoded."""
    packed = pack_tile(np.zeros((3, TILE_ELEMENTS), dtype=np.float32), fmt)
    assert packed.shape == (3, tile_size_bytes(fmt)) and not packed.any()


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_pack_unpack_reject_bad_shapes(fmt: DataFormat) -> None:
    with pytest.raises(ValueError):
        pack_tile(np.zeros(512, np.float32), fmt)
    with pytest.raises(ValueError):
        unpack_tile(np.zeros(tile_size_bytes(fmt) - 1, np.uint8), fmt)
    with pytest.raises(ValueError):
        unpack_tile(np.zeros(tile_size_bytes(fmt), np.int8), fmt)


def test_uint_tiles_round_and_saturate() -> None:
    v = np.zeros(1024, dtype=np.float32)
    v[:5] = [2.5, 3.5, -7.0, 70000.0, 65535.0]
    got = round_to_format(v, DataFormat.UINT16)
    np.testing.assert_array_equal(got[:5], [2, 4, 0, 65535, 65535])
    data = pack_tile(v, DataFormat.UINT16)
    assert list(data[:4]) == [2, 0, 4, 0]
    assert list(data[6:8]) == [0xFF, 0xFF]


# --- row-major -----------------------------------------------------------------------------


def test_row_major_float_round_trips() -> None:
    rng = np.random.default_rng(3)
    v = rng.standard_normal((3, 5, 7)).astype(np.float32)
    data = encode_row_major(v, DataFormat.FLOAT32)
    assert data.dtype == np.uint8 and data.shape == (v.size * 4,)
    np.testing.assert_array_equal(data[:4], np.frombuffer(v.tobytes()[:4], np.uint8))
    np.testing.assert_array_equal(decode_row_major(data, DataFormat.FLOAT32), v.reshape(-1))

    data16 = encode_row_major(v, DataFormat.BFLOAT16)
    assert data16.shape == (v.size * 2,)
    ref = v.reshape(-1).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(data16, np.frombuffer(ref.tobytes(), np.uint8))
    back = decode_row_major(data16, DataFormat.BFLOAT16)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, ref.astype(np.float32))
    np.testing.assert_array_equal(encode_row_major(back, DataFormat.BFLOAT16), data16)


@pytest.mark.parametrize(
    ("fmt", "dtype"), [(DataFormat.UINT16, np.uint16), (DataFormat.UINT32, np.uint32)]
)
def test_row_major_uint_round_trips(fmt: DataFormat, dtype: type) -> None:
    ints = np.array([0, 1, 255, 256, np.iinfo(dtype).max], dtype=dtype)
    data = encode_row_major(ints, fmt)
    assert list(data[2 * ints.itemsize : 3 * ints.itemsize][:2]) == [255, 0]  # little-endian
    back = decode_row_major(data, fmt)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, ints)
    np.testing.assert_array_equal(decode_row_major(bytes(data), fmt, count=2), ints[:2])


def test_decode_row_major_count_and_errors() -> None:
    data = encode_row_major(np.arange(8, dtype=np.float32), DataFormat.BFLOAT16)
    np.testing.assert_array_equal(decode_row_major(data, DataFormat.BFLOAT16, count=3), [0, 1, 2])
    assert decode_row_major(data, DataFormat.BFLOAT16, count=0).size == 0
    with pytest.raises(ValueError):
        decode_row_major(data, DataFormat.BFLOAT16, count=9)
    with pytest.raises(ValueError):
        decode_row_major(data[:3], DataFormat.BFLOAT16)
    with pytest.raises(ValueError, match="row-major"):
        encode_row_major(np.zeros(16, np.float32), DataFormat.BFLOAT8_B)
    with pytest.raises(ValueError, match="row-major"):
        decode_row_major(np.zeros(16, np.uint8), DataFormat.BFLOAT8_B)


@pytest.mark.parametrize("fmt", ROW_MAJOR_FORMATS)
def test_decode_does_not_alias_input(fmt: DataFormat) -> None:
    data = encode_row_major(np.arange(4, dtype=np.float32), fmt)
    out = decode_row_major(data, fmt)
    data[:] = 0xFF
    np.testing.assert_array_equal(out, [0, 1, 2, 3])


def test_bfloat8_b_decode_is_exact_on_every_code_and_exponent() -> None:
    """Every (shared exponent, code byte) pair decodes to sign * magnitude * 2^(exp - 133), computed
    here in float64 (exact) and rounded once to float32, bit for bit (including -0.0 for 0x80,
    subnormal results at the smallest exponents and infinity past float32's range)."""
    exps = np.repeat(np.arange(256, dtype=np.uint8), 16)
    codes = np.tile(np.arange(256, dtype=np.uint8), 16 * 16).reshape(-1, 16)[: exps.size]
    tiles = np.concatenate([exps.reshape(-1, 64), codes.reshape(-1, 1024)], axis=1)  # 64 tiles
    with np.errstate(over="ignore"):
        got = unpack_tile(tiles, DataFormat.BFLOAT8_B).reshape(-1, 16)
        magnitude = (codes & 0x7F).astype(np.float64) * np.exp2(exps.astype(np.float64) - 133)[:, None]
        expected = np.where(codes & 0x80, -magnitude, magnitude).astype(np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_bfp8_encode_of_zeros_equals_the_general_path() -> None:
    """The all-zero shortcut (timing-only runs encode zero weights) gives the bytes the general
    encoder gives a zero block next to a non-zero one, for +0.0 and -0.0 alike."""
    from ttsim.formats import _bfp8_encode

    for zero in (0.0, -0.0):
        zeros = np.full(32, zero, dtype=np.float32)
        exp, code = _bfp8_encode(zeros)
        mixed_exp, mixed_code = _bfp8_encode(np.concatenate([zeros[:16], np.ones(16, np.float32)]))
        np.testing.assert_array_equal(exp, [mixed_exp[0]] * 2)
        np.testing.assert_array_equal(code, [mixed_code[0]] * 2)


# --- bfloat8_b encoder fast path against the formula it replaced ---------------------------


def reference_bfp8_encode_blocks(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ttsim's bfloat8_b block encoder before the code-table lookup (commit b6cf45b), kept
    verbatim but for the bfloat16 rounding inlined, as the bit-for-bit reference: shared
    exponent and code bytes of float32 ``[n_blocks, 16]`` values, inf/NaN blocks included."""
    f32 = np.array(blocks, dtype=np.float32, order="C")
    bits = f32.view(np.uint32)
    nan = np.isnan(f32)
    signs = bits[nan] & np.uint32(0x80000000)
    bits += ((bits >> 16) & np.uint32(1)) + np.uint32(0x7FFF)
    bits &= np.uint32(0xFFFF0000)
    bits[nan] = signs | np.uint32(0x7FC00000)
    exp = (bits >> 23) & 0xFF
    shared = exp.max(axis=1)
    magnitude = np.where(exp == 0, np.float32(0.0), np.abs(f32))
    shift = (133 - shared.astype(np.int32))[:, None]
    with np.errstate(invalid="ignore"):  # NaN to uint8 (it gives 0)
        mant = np.minimum(np.rint(np.ldexp(magnitude, shift)), 127).astype(np.uint8)
    sign = ((bits >> 24) & 0x80).astype(np.uint8)
    code = mant | np.where(mant > 0, sign, np.uint8(0))
    return shared.astype(np.uint8), code


def bfp8_blocks_per_shared_exponent(rng: np.random.Generator) -> np.ndarray:
    """float32 blocks of bfloat16 values, for every shared exponent 0-255: each block holds one
    value of exponent exactly ``s`` and 15 drawn from every sign, fraction and exponent from
    ``s - 9`` to ``s`` (so every entry of the code table and the zero/subnormal flush near the
    bottom are reached; at ``s = 255`` inf and NaNs of every payload)."""
    blocks = []
    fractions = np.arange(128, dtype=np.uint32)
    for s in range(256):
        exps = np.arange(max(0, s - 9), s + 1, dtype=np.uint32)
        pool = ((exps[:, None] << 7) | fractions).reshape(-1)
        pool = np.concatenate([pool, pool | 0x8000])
        pool = rng.permutation(np.resize(pool, -(-pool.size // 15) * 15)).reshape(-1, 15)
        anchor = (s << 7) | rng.integers(0, 128, (pool.shape[0], 1), dtype=np.uint32)
        anchor |= rng.integers(0, 2, anchor.shape, dtype=np.uint32) << 15
        blocks.append(np.concatenate([anchor, pool], axis=1))
    return (np.concatenate(blocks) << 16).view(np.float32)


def assert_bfp8_encode_matches_reference(blocks: np.ndarray) -> None:
    """The encoder (blocks, :func:`_bfp8_encode` and :func:`pack_tile` paths) gives the
    reference's bytes, and contiguous uint8 arrays of the reference's shapes."""
    from ttsim.formats import _bfp8_encode, _bfp8_encode_blocks

    blocks = np.ascontiguousarray(blocks, dtype=np.float32)
    exp_ref, code_ref = reference_bfp8_encode_blocks(blocks)
    with np.errstate(invalid="ignore"):
        exp, code = _bfp8_encode_blocks(blocks)
        exp_flat, code_flat = _bfp8_encode(blocks.reshape(-1))
    for e, c in ((exp, code), (exp_flat, code_flat)):
        assert e.dtype == c.dtype == np.uint8 and e.flags.c_contiguous and c.flags.c_contiguous
        np.testing.assert_array_equal(e, exp_ref)
        np.testing.assert_array_equal(c, code_ref)
    whole = blocks.shape[0] // 64 * 64
    if whole:
        with np.errstate(invalid="ignore"):
            packed = pack_tile(blocks[:whole].reshape(-1, 1024), DataFormat.BFLOAT8_B)
        np.testing.assert_array_equal(packed[:, :64].reshape(-1), exp_ref[:whole])
        np.testing.assert_array_equal(packed[:, 64:].reshape(-1, 16), code_ref[:whole])


def test_bfp8_encoder_matches_reference_on_every_shared_exponent() -> None:
    """Blocks of exact bfloat16 values for every shared exponent, then the same with low float32
    bits that make bfloat16 ties (0x8000), near-ties and carries into the next binade."""
    rng = np.random.default_rng(11)
    blocks = bfp8_blocks_per_shared_exponent(rng)
    assert_bfp8_encode_matches_reference(blocks)
    low = rng.choice(np.array([0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF], np.uint32), blocks.shape)
    low = np.where(rng.random(blocks.shape) < 0.5, low, rng.integers(0, 1 << 16, blocks.shape, dtype=np.uint32))
    assert_bfp8_encode_matches_reference((blocks.view(np.uint32) | low).view(np.float32))


def test_bfp8_encoder_matches_reference_on_random_values_and_edge_blocks() -> None:
    """Random values over every binade (a scale per block), random bit patterns (NaN, inf,
    subnormals included), zero and -0 blocks, subnormal blocks, values that round to inf in
    bfloat16, bfloat8_b ties and saturation, tile-sized and large arrays (the sparse path)."""
    rng = np.random.default_rng(12)
    n = 4096
    scale = np.exp2(rng.integers(-150, 128, (n, 1))).astype(np.float32)
    with np.errstate(over="ignore"):
        wide = (rng.standard_normal((n, 16)) * scale).astype(np.float32)
    spread = (rng.standard_normal((n, 16)) * np.exp2(rng.integers(-12, 1, (n, 16)))).astype(np.float32)
    patterns = rng.integers(0, 1 << 32, (n, 16), dtype=np.uint64).astype(np.uint32).view(np.float32)
    tiny = (rng.integers(0, 1 << 24, (n, 16), dtype=np.uint32) | (rng.integers(0, 2, (n, 16), dtype=np.uint32) << 31))
    tiny = tiny.view(np.float32)  # subnormals and the lowest normal binades, either sign
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 3.4e38, -3.4e38, 2.0**-126, 2.0**-133,
                        2.0**-149, -(2.0**-149), 1.0, 1.9921875, 1.0 + 2**-7, 0.5], np.float32)
    edge = np.stack([
        np.zeros(16, np.float32), np.full(16, -0.0, np.float32), special, special[::-1],
        np.full(16, 3.4e38, np.float32), np.full(16, np.nan, np.float32),
        np.r_[np.float32(1.0), (np.arange(15, dtype=np.float32) + 0.5) * 2**-6],  # ties at the block's step
        np.r_[np.float32(-1.9921875), np.full(15, 1.0 + 2**-7, np.float32)],  # saturation, signs
        np.r_[np.float32(2.0**-120), np.full(15, 2.0**-130, np.float32)],  # subnormals under shared 7
    ]).astype(np.float32)
    mixed = np.concatenate([wide, spread, patterns, tiny, np.tile(edge, (8, 1))])
    mixed = mixed[rng.permutation(mixed.shape[0])]
    for blocks in (wide, spread, patterns, tiny, edge, mixed, mixed[:64 * 14], mixed[:1]):
        assert_bfp8_encode_matches_reference(blocks)
    sparse = np.zeros((1 << 13, 16), np.float32)  # 2^17 values, mostly zero: the sparse path
    sparse[rng.integers(0, sparse.shape[0], 500)] = mixed[:500]
    assert_bfp8_encode_matches_reference(sparse)


def test_bfp8_encode_zero_check_edges() -> None:
    """The all-zero shortcut looks at the first value before scanning: empty input, a zero first
    block before nonzero values, -0, NaN and a nonzero first value all give the reference bytes."""
    from ttsim.formats import _bfp8_encode

    exp, code = _bfp8_encode(np.zeros(0, np.float32))
    assert exp.shape == (0,) and code.shape == (0, 16)
    for first in (0.0, -0.0, np.nan, 1.0):
        blocks = np.zeros((3, 16), np.float32)
        blocks[0, 0], blocks[2, 5] = first, -3.0
        assert_bfp8_encode_matches_reference(blocks)
        assert_bfp8_encode_matches_reference(np.where(blocks == -3.0, np.float32(0.0), blocks))


def test_bfp8_unpack_of_one_tile_equals_the_general_path() -> None:
    """A single [1088]-byte tile (the fast path) decodes as the same tile in an [n, 1088] batch,
    bit for bit, over every exponent and code byte; a strided view decodes alike."""
    exps = np.repeat(np.arange(256, dtype=np.uint8), 16)
    codes = np.tile(np.arange(256, dtype=np.uint8), 16 * 16).reshape(-1, 16)[: exps.size]
    tiles = np.concatenate([exps.reshape(-1, 64), codes.reshape(-1, 1024)], axis=1)
    with np.errstate(over="ignore"):
        batch = unpack_tile(tiles, DataFormat.BFLOAT8_B)
        for i, tile in enumerate(tiles):
            one = unpack_tile(tile, DataFormat.BFLOAT8_B)
            assert one.shape == (1024,) and one.dtype == np.float32
            np.testing.assert_array_equal(one.view(np.uint32), batch[i].view(np.uint32))
        strided = np.repeat(tiles[5], 2)[::2]
        np.testing.assert_array_equal(unpack_tile(strided, DataFormat.BFLOAT8_B).view(np.uint32),
                                      batch[5].view(np.uint32))


def test_pack_bfloat16_tiles_equals_pack_tile_of_the_values() -> None:
    """``pack_bfloat16_tiles`` (tilize_block's bfloat16 rows) gives the bytes ``pack_tile`` gives
    the float32 values of the same bits, for bfloat8_b (every shared exponent, random patterns
    with NaN, inf, subnormals and -0, zero and sparse tiles), bfloat16 (with and without NaNs of
    any payload) and float32."""
    from ttsim.formats import bfloat16_to_float32, pack_bfloat16_tiles

    rng = np.random.default_rng(13)
    exponents = bfp8_blocks_per_shared_exponent(rng).view(np.uint32) >> 16
    exponents = exponents[: exponents.shape[0] // 64 * 64].reshape(-1, TILE_ELEMENTS)
    patterns = rng.integers(0, 1 << 16, (8, TILE_ELEMENTS), dtype=np.uint32)
    finite = patterns[(patterns & 0x7F80) != 0x7F80].reshape(-1)[: 4 * TILE_ELEMENTS].reshape(4, -1)
    zeros = np.zeros((3, TILE_ELEMENTS), np.uint32)
    zeros[1, ::7] = 0x8000  # -0
    sparse = np.zeros((80, TILE_ELEMENTS), np.uint32)  # from 2^16 values _bfp8_encode skips zero blocks
    sparse.reshape(-1)[rng.integers(0, sparse.size, 300)] = patterns.reshape(-1)[:300]
    cases = [exponents, patterns, finite, zeros, sparse, patterns[:1], finite[:1]]
    for bits in cases:
        bits = bits.astype(np.uint16)
        values = bfloat16_to_float32(bits)
        for fmt in (DataFormat.BFLOAT8_B, DataFormat.BFLOAT16, DataFormat.FLOAT32):
            with np.errstate(invalid="ignore"):
                expected = pack_tile(values, fmt)
                packed = pack_bfloat16_tiles(bits, fmt)
            assert packed.dtype == np.uint8 and packed.shape == expected.shape, fmt
            np.testing.assert_array_equal(packed, expected, err_msg=str(fmt))
    with pytest.raises(ValueError):
        pack_bfloat16_tiles(np.zeros(TILE_ELEMENTS, np.uint16), DataFormat.BFLOAT8_B)
