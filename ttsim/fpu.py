"""Matrix Unit (FPU) arithmetic as the ISA's functional model describes it, vectorised in numpy.

What: the multipliers' view of their operands at each math-fidelity phase, and the three FPU
operations the compute kernels use (element-wise ``ELWMUL``, matrix ``MVMUL`` and the column
reduce ``GAPOOL``), each accumulating into DST and rounding DST after every accumulation.

Why: math fidelity changes the numbers, not only the cycles. The Wormhole multipliers consume
at most 5 significant bits of SrcA (the implicit one and 4 mantissa bits) and 7 of SrcB (the
implicit one and 6 mantissa bits) per pass; HiFi modes add passes ("fidelity phases") over the
remaining mantissa bits. Source: tenstorrent/tt-isa-documentation
``WormholeB0/TensixTile/TensixCoprocessor/ELWMUL.md`` (functional model, ``SrcAFidelityBits`` /
``SrcBFidelityBits``), ``MVMUL.md`` and ``GAPOOL.md`` (Dst += SrcB @ SrcA, 16 products summed per
instruction, then added to Dst and rounded to bfloat16 unless Dst is FP32).

Phase ``p`` (0..3) multiplies the SrcA part selected by bit 0 of ``p`` with the SrcB part
selected by bit 1: phase 0 the high parts, 1 SrcA's low part by SrcB's high part, 2 SrcA's high
part by SrcB's low part, 3 the low parts. LoFi runs phase 0, HiFi2 phases 0-1, HiFi3 0-2, HiFi4
0-3. For bfloat16 operands HiFi4 sees every bit (SrcA: 4 + 3 mantissa bits, SrcB: 6 + 1); for
wider inputs SrcA keeps 9 and SrcB 10 mantissa bits (SrcA holds at most TF32).

The ISA notes the floating-point model is a guide (hardware may fuse or reorder); here each
instruction's 16 products are summed exactly and rounded once to float32 (:func:`mvmul_sums`:
the same on every host), and DST is rounded (nearest even) after every instruction and phase, as
the model writes it. Subnormals and NaN handling are not modelled.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ttsim.formats import bfloat16_dtype

FIDELITY_PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
"""Fidelity phases each ``MathFidelity`` runs (tt-metal ``MathFidelity``; ELWMUL.md)."""

_SRCA_HIGH = np.array(0xFFF80000, dtype=np.uint32)
"""Sign, exponent, and the 4 mantissa bits SrcA offers in even phases (ELWMUL.md). The masks are
0-d uint32 arrays: ``bits & mask`` then skips the conversion of a Python int operand, which
costs more than the ``&`` of a tile."""
_SRCA_LOW_CLEAR = np.array(0xFFF83FFF, dtype=np.uint32)
"""Clears the next 5 mantissa bits, which SrcA offers in odd phases."""
_SRCB_HIGH = np.array(0xFFFE0000, dtype=np.uint32)
"""Sign, exponent, and the 6 mantissa bits SrcB offers in phases 0 and 1."""
_SRCB_LOW_CLEAR = np.array(0xFFFE1FFF, dtype=np.uint32)
"""Clears the next 4 mantissa bits, which SrcB offers in phases 2 and 3."""
for _mask in (_SRCA_HIGH, _SRCA_LOW_CLEAR, _SRCB_HIGH, _SRCB_LOW_CLEAR):
    _mask.flags.writeable = False
_U32 = np.dtype(np.uint32)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_MANTISSA = 0x7FFFFF
_POSITIVE_ZERO = np.float32(0.0)
"""+0 as a float32 scalar made once: ``x += _POSITIVE_ZERO`` (a -0 made +0) in the pool's
per-stick column sums without building the scalar on every call."""
REDUCE_ROWS_PER_INSTRUCTION = 16
"""Rows of SrcA one GAPOOL / MVMUL sums into DST before DST is rounded (one face height)."""
FACE_COLUMNS = 16
"""Columns of a face: the output columns of one MVMUL's SrcA block."""


def srca_part(x: np.ndarray, phase: int) -> np.ndarray:
    """The value the multipliers see of SrcA operand ``x`` (float32) in fidelity ``phase``."""
    bits = x.view(_U32)
    if phase & 1 == 0:
        return (bits & _SRCA_HIGH).view(_F32)
    return x - (bits & _SRCA_LOW_CLEAR).view(_F32)


def srcb_part(x: np.ndarray, phase: int) -> np.ndarray:
    """The value the multipliers see of SrcB operand ``x`` (float32) in fidelity ``phase``."""
    bits = x.view(_U32)
    if phase & 2 == 0:
        return (bits & _SRCB_HIGH).view(_F32)
    return x - (bits & _SRCB_LOW_CLEAR).view(_F32)


def round_dst(values: np.ndarray, dst_bf16: bool) -> np.ndarray:
    """``values`` as DST stores them: rounded to bfloat16 (nearest even) unless DST is FP32."""
    return values.astype(_bfloat16()).astype(_F32) if dst_bf16 else values


@functools.cache
def _bfloat16() -> np.dtype:
    """:func:`ttsim.formats.bfloat16_dtype`, looked up once (round_dst runs several times per
    pool output stick; the lookup imports ml_dtypes on first use only, as that function does)."""
    return bfloat16_dtype()


def elwmul(dst: np.ndarray | None, srca: np.ndarray, srcb: np.ndarray, phases: int,
           dst_bf16: bool, round_last: bool = True,
           srcb_parts: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """``Dst += SrcA * SrcB`` element-wise over ``phases`` fidelity phases (any equal shapes;
    ``dst`` None is a zero DST); DST is rounded after each phase (the last rounding is left to
    the caller when ``round_last`` is false). Returns the new DST values (float32).

    ``srcb_parts``: ``srcb_part(srcb, p)`` for each phase p, if the caller kept them (weights
    multiplied again and again)."""
    acc = dst
    for phase in range(phases):
        b = srcb_part(srcb, phase) if srcb_parts is None else srcb_parts[phase]
        product = srca_part(srca, phase) * b
        acc = product if acc is None else acc + product
        if round_last or phase < phases - 1:
            acc = round_dst(acc, dst_bf16)
    return acc


def mvmul_sums(srcb: np.ndarray, srca: np.ndarray) -> np.ndarray:
    """``srcb @ srca`` (float32 fidelity parts, any batch dimensions), each dot product the exact
    sum of its products rounded once to float32 (nearest even; +0 for a zero sum).

    A fidelity part has at most 7 significant bits (SrcB) or 5 (SrcA), so every product is exact
    in float64 and so is any float64 sum of 16 of them that spans at most 53 bits: the result does
    not depend on the order the host's BLAS kernel adds in, which differs between CPUs (a float32
    ``np.matmul`` gave other last bits on an AVX-512 machine). MVMUL.md's functional model sums in
    float32 in K order; the ISA calls its floating-point model a guide, and this is the
    order-free reading of it (the two differ only where a float32 partial sum would round)."""
    sums = np.matmul(srcb.astype(np.float64), srca.astype(np.float64)).astype(np.float32)
    sums += np.float32(0.0)
    return sums


def exact_sum(values: np.ndarray, axis: int) -> np.ndarray:
    """The sum of float32 ``values`` (each at most 24 significant bits) along ``axis``, exact in
    float64 within a 53-bit span and rounded once to float32, so independent of the order numpy's
    reduction adds in."""
    sums = np.add.reduce(values.astype(np.float64), axis=axis).astype(np.float32)
    sums += np.float32(0.0)
    return sums


def mvmul(dst: np.ndarray | None, srcb: np.ndarray, srca: np.ndarray, phases: int,
          dst_bf16: bool, round_last: bool = True) -> np.ndarray:
    """``Dst += SrcB @ SrcA`` as a sequence of MVMULs: ``srcb`` [..., M, K] (the matmul's in0),
    ``srca`` [K, N] (in1), ``dst`` [..., M, N] (None: zero). Per phase, each 16-deep slice of K
    is one accumulation into DST followed by its rounding (the last left to the caller when
    ``round_last`` is false). Returns the new DST values (float32).

    The per-step reference form: ``ComputeContext.matmul_block`` computes the same sums with one
    batched product per run of steps into the same DST tiles (tests/test_vectorised_numerics.py
    holds the two bit-identical)."""
    acc = dst
    k = srca.shape[0]
    step = REDUCE_ROWS_PER_INSTRUCTION
    last = phases * (-(-k // step)) - 1
    n = 0
    for phase in range(phases):
        b_part = srcb_part(srcb, phase)
        a_part = srca_part(srca, phase)
        for k0 in range(0, k, step):
            product = mvmul_sums(b_part[..., k0 : k0 + step], a_part[k0 : k0 + step])
            acc = product if acc is None else acc + product
            if round_last or n < last:
                acc = round_dst(acc, dst_bf16)
            n += 1
    return acc


def column_sum_partials(srca: np.ndarray, scalar: np.float32, phases: int,
                        zero_from: int | None = None) -> np.ndarray:
    """GAPOOL column reduce of ``srca`` [R, C] (float32, R a multiple of 16) by ``scalar``
    (SrcB): returns [phases * R / 16, C] float32 partial sums, one per GAPOOL in DST order
    (phase-major, then 16-row groups top first), each the exact sum of its 16 products rounded
    once to float32 (:func:`exact_sum`).

    A scalar part that is a power of two (the pool kernels' 1.0) scales every product exactly,
    so the sum is scaled once instead of each product: the same float32 result (and a part of
    1.0 leaves the sum as it is).

    ``zero_from``: the caller knows rows ``zero_from``.. are zero (a 3x3 pool window fills 9 of
    srcA's 32 rows). Where every scalar part is finite, the 16-row groups of zero rows are not
    summed (:func:`zero_groups` says which): a zero row's products are +-0 (0 * finite), so such
    a group's sum is the +0 :func:`exact_sum` makes of them. An infinite or NaN part makes
    0 * part NaN: every group is summed then.
    """
    rows, cols = srca.shape
    step = REDUCE_ROWS_PER_INSTRUCTION
    groups = rows // step
    zero = zero_groups(rows, phases, float(scalar), zero_from)
    summed = groups - sum(zero[:groups])  # per phase, the first groups are summed and the rest +0
    partials = np.zeros((phases * groups, cols), dtype=np.float32)
    if summed:
        for phase, (b, power_of_two) in enumerate(_scalar_parts(float(scalar), phases)):
            a = srca_part(srca[: summed * step], phase).reshape(summed, step, cols)
            partials[phase * groups : phase * groups + summed] = _scaled_sum(a, b, power_of_two)
    return partials


def column_sum_from_zero(srca: np.ndarray, scalar: np.float32, phases: int, dst_bf16: bool,
                         zero_from: int | None = None) -> np.ndarray:
    """A zero DST row after the GAPOOL column reduce of ``srca`` [R, C] by ``scalar``, [C]:
    ``accumulate_from_zero(column_sum_partials(srca, scalar, phases, zero_from), dst_bf16,
    zero_groups(R, phases, scalar, zero_from))`` (tests/test_vectorised_numerics.py), the same
    operations on each partial in the same order, without building the array of partials (the
    pool kernels' hot path: one call per output stick and channel block)."""
    rows, cols = srca.shape
    step = REDUCE_ROWS_PER_INSTRUCTION
    groups = rows // step
    zero = zero_groups(rows, phases, float(scalar), zero_from)
    summed = groups - sum(zero[:groups])  # per phase, the first groups are summed and the rest +0
    if not summed:
        zeros = np.zeros(cols, dtype=np.float32)
        return accumulate_from_zero(np.broadcast_to(zeros, (phases * groups, cols)), dst_bf16, zero)
    # one 16-row group summed and its rows zero_from.. zero (a pool window of up to 16 rows):
    # those rows only. The rows left out add products +-0 (every scalar part finite, as
    # zero_groups found): a nonzero sum stays as it is and a zero one is the +0 exact_sum makes.
    live = zero_from if summed == 1 and summed < groups and zero[summed] else step
    if summed == 1 and groups > 1:
        return _one_group_from_zero(srca[:live], scalar, phases, dst_bf16)
    acc = None
    for phase, (b, power_of_two) in enumerate(_scalar_parts(float(scalar), phases)):
        a = srca_part(srca[: (summed - 1) * step + live], phase).reshape(summed, -1, cols)
        sums = _scaled_sum(a, b, power_of_two)
        for g in range(groups):
            if g >= summed:  # a +0 partial (zero_groups), as accumulate_from_zero adds it
                acc = acc + np.float32(0.0)
            elif acc is None:
                acc = round_dst(sums[g], dst_bf16)
            else:
                acc = round_dst(acc + sums[g], dst_bf16)
    return acc


def _one_group_from_zero(rows: np.ndarray, scalar: np.float32, phases: int, dst_bf16: bool) -> np.ndarray:
    """:func:`column_sum_from_zero` when only the first of two or more 16-row groups is summed
    (``rows``: its rows that may be nonzero; the other groups' partials are +0): per phase
    DST = R(DST + s) + 0 (the first: R(s) + 0), s the group's exact sum (:func:`_scaled_sum`).

    The operations of the general loop on the same operands in the same order, with two
    shortcuts that leave every bit as it is: the sum of the rows is taken in float64 by the
    reduction itself (``dtype``: each float32 widened exactly, then added row after row, as
    :func:`exact_sum` adds its float64 copy; tests/test_vectorised_numerics.py holds them equal on
    sums whose order matters), and s is not normalised to +0: DST is added to it only after a
    "+ 0" (so it is never -0 then, and x + -0 = x + +0 for every other x), and R(-0) + 0 is
    R(+0) + 0. One "+ 0" stands for the several of the other groups (x + 0 + 0 = x + 0)."""
    acc = None
    for phase, (b, power_of_two) in enumerate(_scalar_parts(float(scalar), phases)):
        a = srca_part(rows, phase)
        if not power_of_two:
            a = a * b
        s = np.add.reduce(a, axis=0, dtype=_F64).astype(_F32)
        if power_of_two and b != 1.0:
            s *= b  # exact scaling
        if acc is not None:
            np.add(acc, s, out=s)  # acc + s, in that order (the sign of a NaN is the first's)
        acc = round_dst(s, dst_bf16)
        acc += _POSITIVE_ZERO
    return acc


@functools.lru_cache(maxsize=256)
def zero_groups(rows: int, phases: int, scalar: float, zero_from: int | None) -> tuple[bool, ...]:
    """Per partial of :func:`column_sum_partials` on ``rows`` rows with rows ``zero_from``.. known
    zero: whether it is +0 without a sum (its 16 rows all zero and every scalar part finite)."""
    groups = rows // REDUCE_ROWS_PER_INSTRUCTION
    if zero_from is None or not _finite_parts(scalar, phases):
        return (False,) * (phases * groups)
    live = -(-zero_from // REDUCE_ROWS_PER_INSTRUCTION)
    return tuple(g >= live for _ in range(phases) for g in range(groups))


def _scaled_sum(a: np.ndarray, b: np.float32, power_of_two: bool) -> np.ndarray:
    """The exact sums of each 16-row group of the SrcA part ``a`` [groups, 16, C] times the SrcB
    part ``b``."""
    if not power_of_two:
        return exact_sum(a * b, axis=1)
    if b == 1.0:
        return exact_sum(a, axis=1)
    return exact_sum(a, axis=1) * b + np.float32(0.0)  # exact scaling; + 0: a zero part's products sum to +0


@functools.lru_cache(maxsize=64)
def _finite_parts(scalar: float, phases: int) -> bool:
    """Every SrcB part of the float32 ``scalar`` in ``phases`` phases is finite."""
    return all(bool(np.isfinite(b)) for b, _ in _scalar_parts(scalar, phases))


@functools.lru_cache(maxsize=64)
def _scalar_parts(scalar: float, phases: int) -> tuple[tuple[np.float32, bool], ...]:
    """Per fidelity phase, SrcB's part of the float32 ``scalar`` and whether it is a power of
    two (mantissa bits zero; zero counts too: every product is then zero, exactly)."""
    array = np.asarray(scalar, dtype=np.float32)
    parts = []
    for phase in range(phases):
        b = srcb_part(array, phase)
        parts.append((np.float32(b), int(b.view(_U32)) & _MANTISSA == 0))
    return tuple(parts)


def accumulate(dst: np.ndarray, partials: np.ndarray, dst_bf16: bool) -> np.ndarray:
    """Add each of ``partials`` [n, ...] to ``dst`` [...] in order, rounding DST after each but
    the last (the caller stores the result in DST, which rounds it)."""
    acc = dst
    last = len(partials) - 1
    for i, part in enumerate(partials):
        acc = acc + part
        if i < last:
            acc = round_dst(acc, dst_bf16)
    return acc


def accumulate_from_zero(partials: np.ndarray, dst_bf16: bool, zero: tuple[bool, ...] = ()) -> np.ndarray:
    """A zero DST row after adding each of ``partials`` [k, ...] in order, DST rounded after
    each: R(...R(R(p0) + p1)... + p[k-1]) with R = :func:`round_dst`.

    ``zero[i]``: partial i is known to be +0 (:func:`zero_groups`); it is added as ``+ 0``
    without the rounding, the same values: R returns bfloat16 values and one quiet NaN per
    sign, v + 0 of such a v is one too, and R leaves them as they are (R(v + 0) = v + 0;
    tests/test_fpu.py checks it on all 65536 bfloat16 bit patterns)."""
    acc = round_dst(partials[0], dst_bf16)
    for i in range(1, len(partials)):
        if i < len(zero) and zero[i]:
            acc = acc + np.float32(0.0)
        else:
            acc = round_dst(acc + partials[i], dst_bf16)
    return acc


def srcb_lofi_bits(bits: np.ndarray) -> np.ndarray:
    """:func:`srcb_part` of bfloat16 values in phase 0, on their uint16 bit patterns ``bits``:
    the same mask on the float32 bits' upper half (a bfloat16 is that half), so the part is
    taken before the values are widened. Returns new uint16 bit patterns."""
    return np.bitwise_and(bits, np.uint16(_SRCB_HIGH >> 16))


def all_finite(parts: np.ndarray) -> bool:
    """Whether every value of the float64 array ``parts`` (float32 values or their fidelity
    parts) is finite, by one BLAS dot product with itself: a square of at most float32's maximum
    (~1.2e77) cannot overflow float64 in any sum of fewer than 1e231 of them, while an inf or NaN
    makes the sum inf or NaN (squares are never negative, so no inf cancels). One pass, where
    ``np.isfinite(...).all()`` makes two and a bool array."""
    flat = parts.reshape(-1)
    return bool(np.isfinite(np.dot(flat, flat)))


@dataclass(frozen=True)
class MvmulPlan:
    """Which products of a run of MVMUL accumulations to compute: for operand blocks
    ``srca`` [S, F, 16, 16] (S accumulations into DST in order, F 16-column faces of the output
    rows), the (accumulation, face) pairs whose SrcA block is not all zero, grouped in ranks: rank
    ``r`` holds the ``r``-th such accumulation of every face that has one.

    Skipping a zero block is exact: its 16-term sums are +0 (:func:`mvmul_sums`) when SrcB is
    finite (the caller checks; inf * 0 would be NaN), and adding +0 to a DST value already
    rounded to the DST format leaves it unchanged, but for -0, which becomes +0
    (:func:`mvmul_accumulate` normalises the faces no rank touched). A grouped convolution's block-diagonal weights have
    one nonzero face per 16-deep slice of K, so most products are skipped."""

    steps: np.ndarray
    """[pairs] the accumulation of each product computed, rank by rank."""
    faces: np.ndarray
    """[pairs] its output face."""
    ranks: tuple[tuple[int, int, "slice | np.ndarray"], ...]
    """Per rank: the range of its pairs, and its faces (a slice when they are consecutive)."""
    dense: bool
    """Every pair is computed, rank ``r`` being accumulation ``r`` (the fields below unused)."""
    srcb_steps: "slice | np.ndarray"
    """``steps`` as an index of SrcB's accumulations: a slice when they are consecutive and
    ascending (a block-diagonal weight's pairs often are), so SrcB's blocks are not copied."""
    srca_pairs: np.ndarray
    """[pairs, 16, 16] the SrcA block of each pair, gathered once: the plan is kept with its SrcA
    operand (the cached weights), which every run of the plan would otherwise gather again."""
    single: np.ndarray | None = None
    """[pairs, 1, 16] per column of each pair's SrcA block the one value that may be nonzero
    there, when every block is finite and holds at most one nonzero per column (a depthwise
    conv's weights: one channel per column, on the diagonal when the channels line up with the
    faces, 8 rows off it when a K slice starts half a face into a channel block), else None. Then
    each 16-term sum holds one product and fifteen zeros (SrcB is finite), so :func:`mvmul_sums`
    of the pair is that product, exact in float64 (7 by 5 significant bits), with -0 made +0
    like every zero sum: one element-wise multiply instead of a BLAS call per pair. (A column
    with no nonzero takes a zero of its diagonal: its products are zeros too.)"""
    single_k: np.ndarray | None = None
    """[pairs * 16] for each :attr:`single` value (pair, then column) the row of SrcB's K-major
    copy [S * 16, R] (accumulation, then K) that it multiplies, None when every value is on its
    block's diagonal (SrcB's blocks :attr:`srcb_steps` are then multiplied as they are)."""
    single_k_values: np.ndarray | None = None
    """[pairs * 16, 1] :attr:`single` in float32, in :attr:`single_k`'s order (None with it)."""
    _single_rows: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    """:meth:`single_rows` by rows."""

    def single_rows(self, rows: int) -> np.ndarray:
        """[pairs, rows, 16] :attr:`single` repeated over ``rows`` rows, kept per rows: the
        product with SrcB is then one contiguous multiply rather than rows x pairs broadcasts of
        16 values (several times the instructions)."""
        tiled = self._single_rows.get(rows)
        if tiled is None:
            tiled = self._single_rows[rows] = np.repeat(self.single, rows, axis=1)
            tiled.flags.writeable = False
        return tiled


def mvmul_plan(srca: np.ndarray) -> MvmulPlan:
    """The :class:`MvmulPlan` of SrcA operand blocks ``srca`` [S, F, 16, 16] (NaN counts as
    nonzero)."""
    nonzero = (srca != 0).any(axis=(2, 3))
    accumulations, faces = nonzero.shape
    if nonzero.all():
        return dense_mvmul_plan(accumulations, faces)
    per_face = [np.flatnonzero(nonzero[:, f]) for f in range(faces)]
    steps: list[int] = []
    pair_faces: list[int] = []
    ranks = []
    for r in range(max(len(s) for s in per_face)):
        members = [f for f in range(faces) if len(per_face[f]) > r]
        start = len(steps)
        steps.extend(int(per_face[f][r]) for f in members)
        pair_faces.extend(members)
        consecutive = members[-1] - members[0] == len(members) - 1
        which = slice(members[0], members[-1] + 1) if consecutive else np.array(members)
        ranks.append((start, len(steps), which))
    step_array = np.array(steps, dtype=np.intp)
    face_array = np.array(pair_faces, dtype=np.intp)
    first = steps[0] if steps else 0
    consecutive = steps == list(range(first, first + len(steps)))
    srcb_steps = slice(first, first + len(steps)) if consecutive else step_array
    srca_pairs = srca[step_array, face_array]
    srca_pairs.flags.writeable = False
    return MvmulPlan(step_array, face_array, tuple(ranks), False, srcb_steps, srca_pairs,
                     *_single_blocks(srca_pairs, step_array))


def _single_blocks(blocks: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray | None, ...]:
    """(:attr:`MvmulPlan.single`, :attr:`MvmulPlan.single_k`, :attr:`MvmulPlan.single_k_values`)
    of the [n, 16, 16] SrcA ``blocks`` of the accumulations ``steps``: all None unless every
    block is finite and holds at most one nonzero per column."""
    nonzero = blocks != 0  # NaN counts as nonzero
    if not (np.isfinite(blocks).all() and (np.add.reduce(nonzero, axis=1, dtype=np.intp) <= 1).all()):
        return None, None, None
    columns = np.arange(FACE_COLUMNS)
    k = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), columns)  # [n, 16]; an empty column: its diagonal
    single = np.take_along_axis(blocks, k[:, None, :], axis=1)  # [n, 1, 16]
    single.flags.writeable = False
    if (k == columns).all():
        return single, None, None
    rows = (steps[:, None] * FACE_COLUMNS + k).reshape(-1)
    values = single.astype(np.float32).reshape(-1, 1)
    rows.flags.writeable = values.flags.writeable = False
    return single, rows, values


@functools.lru_cache(maxsize=64)
def dense_mvmul_plan(accumulations: int, faces: int) -> MvmulPlan:
    """The plan computing every product (SrcB not finite, or no SrcA block zero)."""
    none = np.zeros(0, dtype=np.intp)
    ranks = tuple((s * faces, (s + 1) * faces, slice(None)) for s in range(accumulations))
    return MvmulPlan(none, none, ranks, True, none, np.zeros((0, REDUCE_ROWS_PER_INSTRUCTION, FACE_COLUMNS)))


def mvmul_accumulate(acc: np.ndarray, srcb: np.ndarray, srca: np.ndarray, plan: MvmulPlan,
                     dst_bf16: bool, fresh: bool) -> None:
    """DST ``acc`` [F, R, 16] (float32 by output face, in place) after the run of MVMUL
    accumulations ``Dst += SrcB[s] @ SrcA[s]`` for s in order, DST rounded after each.

    ``srcb`` [S, R, 16] and ``srca`` [S, F, 16, 16] are float64 fidelity parts (R output rows,
    16 deep; F faces of 16 output columns), ``plan`` the products to compute
    (:func:`mvmul_plan` of ``srca``, whose SrcA blocks a sparse plan holds gathered); each
    product is :func:`mvmul_sums`'s exact sum. ``fresh``: DST was
    zero (``acc`` is +0). The same values as adding every accumulation's [R, F * 16] sums in
    order (:func:`accumulate`), with one numpy product for the run."""
    if not plan.ranks:  # every SrcA block zero: DST unchanged but for -0
        if not fresh:
            acc += np.float32(0.0)
        return
    if plan.single_k is not None:  # one product per sum, off the diagonals
        sums32 = _single_k_sums(srcb, plan)
    else:
        rows = srcb.shape[1]
        if plan.dense:
            sums = np.matmul(srcb[:, None], srca)
        elif plan.single is not None:  # one product per sum, on the diagonals: the product
            sums = np.multiply(srcb[plan.srcb_steps], plan.single_rows(rows))
        else:
            sums = np.matmul(srcb[plan.srcb_steps], plan.srca_pairs)
        sums32 = sums.astype(np.float32).reshape(-1, rows, REDUCE_ROWS_PER_INSTRUCTION)
        sums32 += np.float32(0.0)  # a zero sum is +0
    for start, stop, faces in plan.ranks:
        if isinstance(faces, slice):
            part = acc[faces]
            part += sums32[start:stop]
            if dst_bf16:
                part[...] = part.astype(bfloat16_dtype())
        else:
            acc[faces] = round_dst(acc[faces] + sums32[start:stop], dst_bf16)
    if not (fresh or plan.dense):
        acc += np.float32(0.0)  # -0 + 0: faces no accumulation reached


def _single_k_sums(srcb: np.ndarray, plan: MvmulPlan) -> np.ndarray:
    """The float32 sums [pairs, R, 16] of a plan whose every sum is one product, some off their
    blocks' diagonals (:attr:`MvmulPlan.single_k`), SrcB ``srcb`` [S, R, 16] finite.

    SrcB is copied K-major in float32 ([S * 16, R]: exact, its parts are float32 values), so
    the SrcB column each product takes is a whole row, gathered with one copy per (pair, column)
    rather than one per value. The products are taken in float32: the product of two float32
    values is the exact product rounded once to float32, as :func:`mvmul_sums` rounds the exact
    float64 sum that product is (overflow to inf and subnormals alike), and adding +0 while the
    sums are transposed back makes -0 +0 as there."""
    rows = srcb.shape[1]
    by_k = np.ascontiguousarray(srcb.transpose(0, 2, 1), dtype=np.float32).reshape(-1, rows)
    products = by_k.take(plan.single_k, axis=0)
    products *= plan.single_k_values
    sums32 = np.empty((len(products) // FACE_COLUMNS, rows, FACE_COLUMNS), dtype=np.float32)
    np.add(products.reshape(-1, FACE_COLUMNS, rows).transpose(0, 2, 1), np.float32(0.0), out=sums32)
    return sums32
