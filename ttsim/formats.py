"""Tensix data formats and tile layouts, bit-exact with tt-metal.

What: the data formats a tensor or circular-buffer page can be stored in (bfloat16, bfloat8_b,
float32, uint16, uint32), their sizes, the 32x32 tile layout (four 16x16 faces, face-major), and
conversions between float32 values and the exact bytes L1/DRAM hold.

Why: ttsim computes real numbers, not just cycles. Every time a kernel packs a tile into a
circular buffer its values must be rounded exactly as the hardware would store them, otherwise
simulated outputs drift from what a device produces and the numerical checks are meaningless.
These functions run tens of thousands of times per simulation on 1024-element tiles, so all of
them are vectorized numpy with only a few checks of per-call overhead.

Conventions:

* "Storage order" is the order in which a tile's 1024 values sit in memory: face 0 (rows 0-15,
  cols 0-15), face 1 (rows 0-15, cols 16-31), face 2 (rows 16-31, cols 0-15), face 3 (rows 16-31,
  cols 16-31), each face row-major. Element (r, c) of a tile is at storage index
  ``(r // 16) * 512 + (c // 16) * 256 + (r % 16) * 16 + c % 16``.
* All multi-byte values are little-endian, as on the RISC-V cores and in tt-metal host buffers.
* bfloat8_b ("block float 8, exponent b"): every 16 consecutive values in storage order (one row
  of a face) share one 8-bit biased exponent. A tile is 64 exponent bytes (block order) followed
  by 1024 mantissa bytes (one per value: bit 7 sign, bits 0-6 magnitude ``m``). The value is
  ``(-1)^sign * m * 2^(shared_exp - 127 - 6)``.

Numeric choices (where tt-metal leaves freedom or the simulator simplifies):

* bfloat8_b is derived from the values rounded to bfloat16 first (the shared exponent is the
  maximum biased exponent of those bfloat16 values, and each mantissa is shifted from the
  bfloat16 significand). This double rounding (float32 -> bfloat16 -> bfloat8_b) models a packer
  fed with bfloat16-precision data.
* Mantissa alignment rounds to nearest, ties to even. If rounding carries a magnitude to 128 (it
  cannot fit in 7 bits) it saturates to 127 rather than bumping the shared exponent, because
  the exponent is shared by the other 15 values of the block.
* Zeros and subnormals (biased exponent 0 after bfloat16 rounding) become +0.0; a zero mantissa
  is always stored with the sign bit clear.
* Inf and NaN are not supported in bfloat8_b (results are unspecified); for bfloat16 and float32
  they pass through; float32 to bfloat16 rounds to nearest even on the bit pattern and turns
  every NaN into the quiet NaN of its sign (0x7FC0 / 0xFFC0), bit-exact with ml_dtypes (tested)
  without importing it (that import alone costs about 0.6 s); :func:`bfloat16_dtype` imports it
  on first use for the compute kernels' per-tile casts and the bfloat8_b encoder, where its
  single cast is cheaper.
* uint16/uint32 values arrive as floats: they are rounded to the nearest integer (ties to even)
  and saturated to the type's range. uint32 values above 2**24 are not all representable when
  read back as float32 (unpack_tile/round_to_format return float32).
"""

from __future__ import annotations

import enum
import functools

import numpy as np

__all__ = [
    "DataFormat",
    "TILE_H",
    "TILE_W",
    "FACE_H",
    "FACE_W",
    "TILE_ELEMENTS",
    "tile_size_bytes",
    "element_size_bytes",
    "tilize",
    "untilize",
    "tile_positions",
    "round_to_format",
    "bfloat16_bits",
    "bfloat16_to_float32",
    "round_to_bfloat16",
    "pack_tile",
    "pack_bfloat16_tiles",
    "unpack_tile",
    "unpack_tiles",
    "encode_row_major",
    "decode_row_major",
]


class DataFormat(str, enum.Enum):
    """A tt-metal data format (``tt::DataFormat``); the value is its lower-case name."""

    BFLOAT16 = "bfloat16"
    BFLOAT8_B = "bfloat8_b"
    FLOAT32 = "float32"
    UINT16 = "uint16"
    UINT32 = "uint32"


TILE_H = 32
"""Tile height in elements."""
TILE_W = 32
"""Tile width in elements."""
FACE_H = 16
"""Face height in elements."""
FACE_W = 16
"""Face width in elements."""
TILE_ELEMENTS = TILE_H * TILE_W
"""Elements per tile (1024)."""

_BFP_BLOCK = 16
"""Values sharing one exponent in bfloat8_b (one face row)."""
_BFP8_EXP_BYTES = TILE_ELEMENTS // _BFP_BLOCK
"""Exponent section of a bfloat8_b tile, bytes (64)."""
_BFP8_MANT_BITS = 7
"""Magnitude bits per bfloat8_b value, including the explicit leading one."""
_BFP8_MANT_MAX = (1 << _BFP8_MANT_BITS) - 1
_BFP8_SCALE_OFFSET = 127 + _BFP8_MANT_BITS - 1
"""value = m * 2^(shared_exp - _BFP8_SCALE_OFFSET)."""

_TILE_SIZE_BYTES: dict[DataFormat, int] = {
    DataFormat.BFLOAT16: 2 * TILE_ELEMENTS,
    DataFormat.BFLOAT8_B: _BFP8_EXP_BYTES + TILE_ELEMENTS,
    DataFormat.FLOAT32: 4 * TILE_ELEMENTS,
    DataFormat.UINT16: 2 * TILE_ELEMENTS,
    DataFormat.UINT32: 4 * TILE_ELEMENTS,
}

_ROW_MAJOR_DTYPE: dict[DataFormat, np.dtype] = {
    DataFormat.BFLOAT16: np.dtype("<u2"),  # bfloat16 bit patterns
    DataFormat.FLOAT32: np.dtype("<f4"),
    DataFormat.UINT16: np.dtype("<u2"),
    DataFormat.UINT32: np.dtype("<u4"),
}
"""Element dtype in memory of every format that has one value per element."""

_UINT_MAX: dict[DataFormat, float] = {
    DataFormat.UINT16: float(np.iinfo(np.uint16).max),
    DataFormat.UINT32: float(np.iinfo(np.uint32).max),
}


def tile_size_bytes(fmt: DataFormat) -> int:
    """Bytes one 32x32 tile occupies in L1/DRAM in format ``fmt`` (bfloat8_b includes exponents)."""
    return _TILE_SIZE_BYTES[DataFormat(fmt)]


def element_size_bytes(fmt: DataFormat) -> int:
    """Bytes per element of a row-major tensor in format ``fmt``.

    Raises:
        ValueError: for bfloat8_b, which only exists tiled (its exponents are shared per block).
    """
    fmt = DataFormat(fmt)
    if fmt is DataFormat.BFLOAT8_B:
        raise ValueError(
            "bfloat8_b has no row-major form: its exponent is shared by 16-value blocks of a "
            "tile, so it has no per-element size; use tile_size_bytes() for tiled data"
        )
    return _ROW_MAJOR_DTYPE[fmt].itemsize


def tilize(block: np.ndarray) -> np.ndarray:
    """Convert one tile-row of a row-major matrix into tiles in storage order.

    Args:
        block: array of shape ``[32, 32 * w]`` (row-major, usually float32).

    Returns:
        Array of shape ``[w, 1024]`` (same dtype); row ``t`` is tile ``t`` (columns ``32t`` to
        ``32t + 31``) in face-major storage order.
    """
    rows, cols = block.shape
    if rows != TILE_H or cols % TILE_W:
        raise ValueError(f"tilize expects shape [32, 32*w], got {list(block.shape)}")
    w = cols // TILE_W
    # axes: (face_row, row_in_face, tile, face_col, col_in_face)
    faces = block.reshape(2, FACE_H, w, 2, FACE_W)
    return faces.transpose(2, 0, 3, 1, 4).reshape(w, TILE_ELEMENTS)


def untilize(tiles: np.ndarray) -> np.ndarray:
    """Inverse of :func:`tilize`: ``[w, 1024]`` tiles in storage order -> ``[32, 32 * w]``."""
    w, n = tiles.shape
    if n != TILE_ELEMENTS:
        raise ValueError(f"untilize expects shape [w, 1024], got {list(tiles.shape)}")
    # axes: (tile, face_row, face_col, row_in_face, col_in_face)
    faces = tiles.reshape(w, 2, 2, FACE_H, FACE_W)
    return faces.transpose(1, 3, 0, 2, 4).reshape(TILE_H, w * TILE_W)


def tile_positions(rows: np.ndarray, cols: np.ndarray, width_tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Where entry (``rows``, ``cols``) of a row-major matrix ``width_tiles`` tiles wide lands
    when it is tiled row of tiles by row of tiles (:func:`tilize` of each 32-row block, the
    tiles in row-major order): its tile id ``row_tile * width_tiles + col_tile`` and its index
    in that tile's storage order (face-major), arrays of the shape of ``rows``."""
    rows, cols = np.asarray(rows), np.asarray(cols)
    tile_ids = rows // TILE_H * width_tiles + cols // TILE_W
    r, c = rows % TILE_H, cols % TILE_W
    offsets = ((r // FACE_H * 2 + c // FACE_W) * FACE_H + r % FACE_H) * FACE_W + c % FACE_W
    return tile_ids, offsets


@functools.cache
def bfloat16_dtype() -> np.dtype:
    """ml_dtypes' bfloat16 as a numpy dtype, imported on first use.

    Casting float32 to it rounds to nearest even in one numpy call, several times cheaper per
    1024-value tile than :func:`round_to_bfloat16`'s bit arithmetic, so the tile numerics of
    the compute kernels and the bfloat8_b encoder (:func:`_bfp8_encode_blocks`; all-zero
    weights skip it) use it. It is imported on first use all the same (``timing_only`` runs and
    ``import ttsim`` never import it); pyproject keeps it below 0.7, whose import costs ~0.9 s
    CPU against under 0.02 s for 0.4-0.6.
    """
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """Round float values to bfloat16 (nearest, ties to even); returns the uint16 bit patterns
    (same shape).

    Adding 0x7FFF plus the lowest kept bit and truncating is round-to-nearest-even on the
    float32 bit pattern (carries into the exponent give the next binade or infinity, as they
    should); NaNs become the quiet NaN of their sign, as ml_dtypes and Eigen produce.
    """
    return (round_to_bfloat16(values).view(np.uint32) >> 16).astype(np.uint16)


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 bit patterns to a new float32 array (exact: bfloat16 is float32's top half)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float values rounded to bfloat16 (as :func:`bfloat16_bits`), as a new float32 array of
    the same shape.

    Hot path (every DST write and pack of a tile): the rounding works in place on one float32
    copy, and NaNs are looked for only when the values' maximum is NaN (the maximum is
    NaN whenever a NaN is present).
    """
    f32 = np.array(values, dtype=np.float32, order="C")
    bits = f32.view(np.uint32)
    nan = None
    if f32.size and np.isnan(np.maximum.reduce(f32, axis=None)):
        nan = np.isnan(f32)
        signs = bits[nan] & np.uint32(0x80000000)
    lowest_kept = bits >> 16
    lowest_kept &= np.uint32(1)
    bits += lowest_kept
    bits += np.uint32(0x7FFF)
    bits &= np.uint32(0xFFFF0000)
    if nan is not None and nan.any():
        bits[nan] = signs | np.uint32(0x7FC00000)
    return f32


def _to_uint(values: np.ndarray, fmt: DataFormat) -> np.ndarray:
    """Round to nearest integer (ties to even) and saturate to the range of uint ``fmt``."""
    ints = np.clip(np.rint(np.asarray(values, dtype=np.float64)), 0.0, _UINT_MAX[fmt])
    return ints.astype(_ROW_MAJOR_DTYPE[fmt])


def _bfp8_encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode float values (size a multiple of 16) as bfloat8_b.

    Returns:
        ``(shared_exp, code)``: uint8 ``[n_blocks]`` biased shared exponents and uint8
        ``[n_blocks, 16]`` sign-magnitude codes (bit 7 sign, bits 0-6 magnitude).

    A block of +-0 values encodes as exponent 0 and code 0 (what :func:`_bfp8_encode_blocks`
    gives it), and each block is encoded on its own, so from :data:`_BFP8_SPARSE_MIN` values on,
    when at most half the values are nonzero, only the blocks holding a nonzero value are encoded
    (a grouped conv's weight matrix is mostly zero blocks; the same bytes, tested).
    """
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    if flat.size % _BFP_BLOCK:
        raise ValueError(f"bfloat8_b needs a multiple of {_BFP_BLOCK} values, got {flat.size}")
    n_blocks = flat.size // _BFP_BLOCK
    if flat.size < _BFP8_SPARSE_MIN:
        # Every value +-0? Most tiles start with a nonzero value, whose test spares the scan.
        if not (flat.size and flat[0]) and not flat.any():
            return np.zeros(n_blocks, np.uint8), np.zeros((n_blocks, _BFP_BLOCK), np.uint8)
        return _bfp8_encode_blocks(flat.reshape(-1, _BFP_BLOCK))
    blocks = flat.reshape(-1, _BFP_BLOCK)
    if 2 * np.count_nonzero(flat) > flat.size:  # dense: few blocks to skip, not worth finding
        return _bfp8_encode_blocks(blocks)
    block_of_nonzero = np.flatnonzero(flat) // _BFP_BLOCK  # ascending
    keep = np.empty(block_of_nonzero.size, dtype=bool)
    keep[:1] = True
    np.not_equal(block_of_nonzero[1:], block_of_nonzero[:-1], out=keep[1:])
    nonzero_blocks = block_of_nonzero[keep]
    shared = np.zeros(n_blocks, np.uint8)
    code = np.zeros((n_blocks, _BFP_BLOCK), np.uint8)
    if nonzero_blocks.size:
        shared[nonzero_blocks], code[nonzero_blocks] = _bfp8_encode_blocks(blocks[nonzero_blocks])
    return shared, code


_BFP8_SPARSE_MIN = 1 << 16
"""Values from which :func:`_bfp8_encode` looks for the blocks to encode (below, one test for
all-zero values costs less)."""


def _bfp8_encode_blocks(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_bfp8_encode` of float32 ``[n_blocks, 16]`` values (hot path: every pack of a
    bfloat8_b tile).

    A handful of passes instead of :func:`_bfp8_encode_blocks_general`'s ~25: one cast to
    bfloat16 (ml_dtypes rounds exactly as :func:`round_to_bfloat16`, tested on every bit-pattern
    class), the per-block maximum exponent, one subtraction and one lookup in
    :data:`_BFP8_CODE`, which holds the code byte of every reachable
    ``(bfloat16 bits - (shared_exp << 7)) mod 2**16``. Blocks whose shared exponent is 1-7 or 255
    (:data:`_BFP8_SUBTRAHEND`'s odd entries) are encoded again by the general formula: there a
    flushed subnormal or an inf/NaN would look up the entry of a finite normal value.
    """
    return _bfp8_encode_half(blocks.astype(bfloat16_dtype()).view(np.uint16), blocks)


def _bfp8_encode_half(half: np.ndarray, blocks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_bfp8_encode_blocks` of the values whose bfloat16 bit patterns are uint16
    ``[n_blocks, 16]`` ``half``: ``blocks`` their float32 values, which the general formula
    encodes (None: values that are bfloat16 already, whose float32 form is ``half`` shifted up)."""
    # The per-block maximum of the bit patterns with the sign shifted out has the block's
    # largest biased exponent in its high byte. Reducing the 16 values of a block is cheaper over
    # the rows of a transposed copy than along each short row (about 2.5x, measured).
    magnitude_t = np.left_shift(half.T, 1, order="C")
    shared = (np.maximum.reduce(magnitude_t, axis=0) >> 8).astype(np.uint8)
    subtrahend = _BFP8_SUBTRAHEND.take(shared)  # the method: np.take's Python wrapper costs more here
    # A per-value subtrahend makes the subtraction one contiguous loop (a [n, 1] broadcast runs
    # one short loop per block, slower than the repeat); the result overwrites magnitude_t.
    index = np.subtract(half, np.repeat(subtrahend, _BFP_BLOCK).reshape(half.shape),
                        out=magnitude_t.reshape(half.shape))
    # every uint16 index is in range (the table has 2**16 entries), so "wrap" changes none; it
    # skips the per-index clamping of the default modes
    code = _BFP8_CODE.take(index, mode="wrap")
    if np.bitwise_or.reduce(subtrahend) & 1:
        general = (subtrahend & 1).astype(bool)
        chosen = bfloat16_to_float32(half[general]) if blocks is None else blocks[general]
        shared[general], code[general] = _bfp8_encode_blocks_general(chosen)
    return shared, code


def _bfp8_encode_blocks_general(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_bfp8_encode` of float32 ``[n_blocks, 16]`` values by the defining arithmetic, for
    the blocks :func:`_bfp8_encode_blocks` cannot look up (the two agree bit for bit on every
    block, tested)."""
    rounded = round_to_bfloat16(blocks)
    bits = rounded.view(np.uint32)
    exp = (bits >> 23) & 0xFF
    shared = exp.max(axis=1)
    magnitude = np.where(exp == 0, np.float32(0.0), np.abs(rounded))
    shift = (_BFP8_SCALE_OFFSET - shared.astype(np.int32))[:, None]
    # ldexp by a power of two is exact, so rint sees the exact aligned mantissa.
    mant = np.minimum(np.rint(np.ldexp(magnitude, shift)), _BFP8_MANT_MAX).astype(np.uint8)
    sign = ((bits >> 24) & 0x80).astype(np.uint8)
    code = mant | np.where(mant > 0, sign, np.uint8(0))
    return shared.astype(np.uint8), code


def _bfp8_code_table() -> np.ndarray:
    """The bfloat8_b code byte of every ``(bfloat16 bits - (shared_exp << 7)) mod 2**16``.

    A bfloat16 of biased exponent ``e >= 1`` and fraction ``f`` has magnitude ``(128 + f) *
    2^(e - 134)``, so its aligned mantissa ``rint(magnitude / 2^(shared_exp - 133))`` is
    ``rint((128 + f) * 2^(d - 1))`` (capped at 127) with ``d = e - shared_exp <= 0``: a function
    of ``v = (e << 7 | f) - (shared_exp << 7) = 128 * d + f`` alone, ``v`` in ``[-254 * 128,
    127]``. Modulo 2**16 a positive value's ``v`` lands in ``[0, 127]`` or ``[33024, 65535]`` and a
    negative one's ``v + 32768`` (its sign bit) in ``[256, 32895]``: disjoint, so one table serves
    both signs. From ``d = -8`` down the mantissa is at most ``255 / 512``, which rounds to 0, the
    table's fill; a zero or subnormal (``e = 0``, flushed to 0) has ``d = -shared_exp``, so its
    entry is 0 too when ``shared_exp >= 8``.
    """
    v = np.arange(-8 * 128, 128)
    aligned = np.ldexp((128 + (v & 127)).astype(np.float64), (v >> 7) - 1)  # exact
    mant = np.minimum(np.rint(aligned), _BFP8_MANT_MAX).astype(np.uint8)
    table = np.zeros(1 << 16, dtype=np.uint8)
    table[v % (1 << 16)] = mant
    table[v + (1 << 15)] = np.where(mant > 0, mant | np.uint8(0x80), np.uint8(0))
    return table


_BFP8_CODE = _bfp8_code_table()
"""uint8 [65536]: :func:`_bfp8_code_table`."""
_BFP8_SUBTRAHEND = np.arange(256, dtype=np.uint16) << 7
"""What :func:`_bfp8_encode_blocks` subtracts from the bfloat16 bits of a block with each shared
exponent: ``shared_exp << 7``, but ``8 << 7`` for exponent 0 (a block of zeros and subnormals,
whose codes are then all 0), and odd (bit 0 set) for exponents 1-7 and 255, whose blocks the
general formula encodes: there a subnormal (flushed to 0) has ``d > -8``, and inf and NaN are no
finite normal."""
_BFP8_SUBTRAHEND[0] = 8 << 7
_BFP8_SUBTRAHEND[1:8] |= 1
_BFP8_SUBTRAHEND[255] |= 1


_BFP8_SIGNED_MANTISSA = np.where(np.arange(256) & 0x80, -1.0, 1.0).astype(np.float32) * \
    (np.arange(256) & _BFP8_MANT_MAX).astype(np.float32)
"""Value of each bfloat8_b code byte before scaling: sign (bit 7) times magnitude (bits 0-6);
code 0x80 is -0.0."""
with np.errstate(over="ignore"):
    _BFP8_SCALE = np.ldexp(np.float32(1.0), np.arange(256) - _BFP8_SCALE_OFFSET).astype(np.float32)
"""2^(shared_exp - _BFP8_SCALE_OFFSET) for each shared exponent byte (2^-133 .. 2^122: every one a
float32, subnormal at the low end)."""


def _bfp8_decode(shared_exp: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Decode bfloat8_b: uint8 ``[n_blocks]`` exponents and ``[n_blocks, 16]`` codes -> float32.

    Two table lookups and one multiply: a 7-bit magnitude times a power of two is exact in
    float32 down to 2^-149, so this equals ``ldexp(magnitude, shared_exp - offset)`` with the
    sign applied, bit for bit (tested on every code and exponent).

    From 4 tiles on, the magnitude is converted and scaled and the sign bit set on the float32
    bits instead (cheaper per value than the table gather; the same bits, tested likewise).
    """
    if code.size < _BFP8_BIT_DECODE_MIN:
        return _BFP8_SIGNED_MANTISSA[code] * _BFP8_SCALE[shared_exp][:, None]
    values = (code & np.uint8(_BFP8_MANT_MAX)).astype(np.float32)
    values *= _BFP8_SCALE.take(shared_exp)[:, None]
    bits = values.view(np.uint32)
    bits |= (code & np.uint8(0x80)).astype(np.uint32) << 24
    return values


_BFP8_BIT_DECODE_MIN = 4 * TILE_ELEMENTS
"""Values from which :func:`_bfp8_decode` works on the float32 bits rather than a table."""


def round_to_format(values: np.ndarray, fmt: DataFormat) -> np.ndarray:
    """Round float values as storing them in ``fmt`` and reading them back would.

    Args:
        values: float values in storage order, any shape (for bfloat8_b the size must be a
            multiple of 16; blocks are 16 consecutive values of the flattened array).
        fmt: target format.

    Returns:
        New float32 array of the same shape holding the representable values.
    """
    fmt = DataFormat(fmt)
    if fmt is DataFormat.FLOAT32:
        return np.array(values, dtype=np.float32)
    if fmt is DataFormat.BFLOAT16:
        return round_to_bfloat16(values)
    if fmt is DataFormat.BFLOAT8_B:
        return _bfp8_decode(*_bfp8_encode(values)).reshape(np.shape(values))
    return _to_uint(values, fmt).astype(np.float32)


def _bf16_decode_fast(raw: np.ndarray) -> np.ndarray:
    """Hot path: little-endian bfloat16 bytes (1-D uint8 array) to a new float32 array."""
    return (np.ascontiguousarray(raw).view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def _bf16_encode_fast(values: np.ndarray) -> np.ndarray:
    """Hot path: float values to little-endian bfloat16 bytes (round to nearest even)."""
    return bfloat16_bits(values).reshape(-1).view(np.uint8)


def _as_uint8(data: np.ndarray | bytes | bytearray | memoryview) -> np.ndarray:
    """View raw memory as a C-contiguous uint8 array (no copy when already one)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ValueError(f"expected uint8 bytes, got dtype {data.dtype}")
        return np.ascontiguousarray(data)
    return np.frombuffer(data, dtype=np.uint8)


def pack_tile(values: np.ndarray, fmt: DataFormat) -> np.ndarray:
    """Encode tiles of float values into the bytes L1 holds.

    Args:
        values: ``[1024]`` or ``[n, 1024]`` float values in storage order.
        fmt: storage format.

    Returns:
        uint8 array ``[tile_size_bytes(fmt)]`` or ``[n, tile_size_bytes(fmt)]``. bfloat8_b tiles
        are 64 shared exponents (one per 16-value block, in order) then 1024 sign-magnitude bytes.
    """
    if fmt is DataFormat.BFLOAT16 and isinstance(values, np.ndarray) and values.shape == (TILE_ELEMENTS,):
        return _bf16_encode_fast(values)
    fmt = DataFormat(fmt)
    values = np.asarray(values)
    if values.shape[-1:] != (TILE_ELEMENTS,) or values.ndim > 2:
        raise ValueError(f"pack_tile expects [1024] or [n, 1024] values, got {list(values.shape)}")
    lead = values.shape[:-1]
    if fmt is DataFormat.BFLOAT8_B:
        shared, code = _bfp8_encode(values)
        packed = np.concatenate(
            (shared.reshape(-1, _BFP8_EXP_BYTES), code.reshape(-1, TILE_ELEMENTS)), axis=1
        )
        return packed.reshape(*lead, _TILE_SIZE_BYTES[fmt])
    return encode_row_major(values, fmt).reshape(*lead, _TILE_SIZE_BYTES[fmt])


def pack_bfloat16_tiles(bits: np.ndarray, fmt: DataFormat) -> np.ndarray:
    """:func:`pack_tile` of the values whose bfloat16 bit patterns are uint16 ``[n, 1024]``
    ``bits`` (storage order), without forming their float32 values: tilizing bfloat16 rows
    (``tilize_block``) moves bit patterns, and the float32 values would only be cast back to them.

    The same bytes as ``pack_tile(bfloat16_to_float32(bits), fmt)`` (tested): bfloat8_b encodes
    from the bfloat16 bits :func:`_bfp8_encode_blocks` would cast back (exactly these: a bfloat16
    value rounds to itself; a NaN only sends its block to the general formula, which gets the
    float32 values), and every block is encoded as on its own, as for any size (the zero and sparse
    shortcuts of :func:`_bfp8_encode` give the same bytes). bfloat16 bytes are the bits themselves
    but where a NaN is (the cast makes it the quiet NaN of its sign); other formats take the values.
    """
    if bits.ndim != 2 or bits.shape[1] != TILE_ELEMENTS:
        raise ValueError(f"pack_bfloat16_tiles expects [n, 1024] bits, got {list(bits.shape)}")
    if fmt is DataFormat.BFLOAT8_B:
        shared, code = _bfp8_encode_half(bits.reshape(-1, _BFP_BLOCK), None)
        return np.concatenate((shared.reshape(-1, _BFP8_EXP_BYTES), code.reshape(-1, TILE_ELEMENTS)), axis=1)
    if fmt is DataFormat.BFLOAT16 and not (np.bitwise_and(bits, 0x7FFF) > 0x7F80).any():
        return np.ascontiguousarray(bits).view(np.uint8)
    return pack_tile(bfloat16_to_float32(bits), fmt)


def unpack_tile(data: np.ndarray | bytes | bytearray | memoryview, fmt: DataFormat) -> np.ndarray:
    """Decode tile bytes produced by :func:`pack_tile` (or read from L1) into float32.

    Args:
        data: uint8 ``[tile_size_bytes(fmt)]`` or ``[n, tile_size_bytes(fmt)]`` (raw buffers are
            read as one tile or a flat run of tiles).
        fmt: storage format.

    Returns:
        float32 ``[1024]`` or ``[n, 1024]`` in storage order; equal to
        ``round_to_format(values, fmt)`` for the values that were packed.
    """
    if (fmt is DataFormat.BFLOAT16 and isinstance(data, np.ndarray) and data.dtype == np.uint8
            and data.shape == (2 * TILE_ELEMENTS,)):
        return _bf16_decode_fast(data)
    if (fmt is DataFormat.BFLOAT8_B and isinstance(data, np.ndarray) and data.dtype == np.uint8
            and data.shape == (_BFP8_EXP_BYTES + TILE_ELEMENTS,)):  # hot path: one tile from L1
        code = data[_BFP8_EXP_BYTES:].reshape(_BFP8_EXP_BYTES, _BFP_BLOCK)
        return _bfp8_decode(data[:_BFP8_EXP_BYTES], code).reshape(TILE_ELEMENTS)
    fmt = DataFormat(fmt)
    size = _TILE_SIZE_BYTES[fmt]
    raw = _as_uint8(data)
    if not isinstance(data, np.ndarray) and raw.size > size and raw.size % size == 0:
        raw = raw.reshape(-1, size)
    if raw.shape[-1:] != (size,) or raw.ndim > 2:
        raise ValueError(
            f"unpack_tile expects [{size}] or [n, {size}] bytes for {fmt.value}, "
            f"got {list(raw.shape)}"
        )
    lead = raw.shape[:-1]
    if fmt is DataFormat.BFLOAT8_B:
        tiles = raw.reshape(-1, size)
        shared = tiles[:, :_BFP8_EXP_BYTES].reshape(-1)
        code = tiles[:, _BFP8_EXP_BYTES:].reshape(-1, _BFP_BLOCK)
        return _bfp8_decode(shared, code).reshape(*lead, TILE_ELEMENTS)
    values = decode_row_major(raw, fmt).astype(np.float32, copy=False)
    return values.reshape(*lead, TILE_ELEMENTS)


def unpack_tiles(tiles: np.ndarray, fmt: DataFormat) -> np.ndarray:
    """:func:`unpack_tile` of ``[n, tile_size_bytes(fmt)]`` uint8 tile bytes (C-contiguous),
    without its argument checks: the compute kernels' hot path. Returns float32 [n, 1024]."""
    if fmt is DataFormat.BFLOAT8_B:
        shared = tiles[:, :_BFP8_EXP_BYTES].reshape(-1)
        code = tiles[:, _BFP8_EXP_BYTES:].reshape(-1, _BFP_BLOCK)
        return _bfp8_decode(shared, code).reshape(-1, TILE_ELEMENTS)
    return unpack_tile(tiles, fmt)


def encode_row_major(values: np.ndarray, fmt: DataFormat) -> np.ndarray:
    """Encode values (any shape, flattened in C order) as the bytes of a row-major tensor.

    bfloat16 rounds to nearest even; uint formats round to the nearest integer and saturate.

    Returns:
        New 1-D uint8 array of ``values.size * element_size_bytes(fmt)`` bytes, little-endian.

    Raises:
        ValueError: for bfloat8_b (tile-only format).
    """
    if fmt is DataFormat.BFLOAT16 and isinstance(values, np.ndarray):
        return _bf16_encode_fast(values)
    fmt = DataFormat(fmt)
    element_size_bytes(fmt)  # rejects bfloat8_b with a clear message
    if fmt is DataFormat.BFLOAT16:
        encoded = bfloat16_bits(values)
    elif fmt is DataFormat.FLOAT32:
        encoded = np.array(values, dtype="<f4")
    else:
        encoded = _to_uint(values, fmt)
    return np.ascontiguousarray(encoded).reshape(-1).view(np.uint8)


def decode_row_major(
    data: np.ndarray | bytes | bytearray | memoryview, fmt: DataFormat, count: int | None = None
) -> np.ndarray:
    """Decode the bytes of a row-major tensor.

    Args:
        data: uint8 bytes, little-endian elements (any shape; read in C order).
        fmt: element format (not bfloat8_b).
        count: number of elements to decode from the start; ``None`` decodes all of them.

    Returns:
        New 1-D array (never a view of ``data``): float32 for bfloat16/float32,
        ``np.uint16``/``np.uint32`` for the uint formats.
    """
    if (fmt is DataFormat.BFLOAT16 and count is None and isinstance(data, np.ndarray)
            and data.dtype == np.uint8 and data.ndim == 1 and data.size % 2 == 0):
        return _bf16_decode_fast(data)
    fmt = DataFormat(fmt)
    itemsize = element_size_bytes(fmt)
    raw = _as_uint8(data).reshape(-1)
    if count is None:
        if raw.size % itemsize:
            raise ValueError(f"{raw.size} bytes is not a whole number of {fmt.value} elements")
        count = raw.size // itemsize
    elif count < 0 or count * itemsize > raw.size:
        raise ValueError(f"cannot decode {count} {fmt.value} elements from {raw.size} bytes")
    raw = raw[: count * itemsize]
    if fmt is DataFormat.BFLOAT16:
        return bfloat16_to_float32(raw.view("<u2"))
    dtype = _ROW_MAJOR_DTYPE[fmt]
    return raw.view(dtype).astype(dtype.newbyteorder("="))
