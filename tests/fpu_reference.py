"""An independent float64 model of the Wormhole FPU's fidelity phases, for the numeric tests.

Written from the prose of tenstorrent/tt-isa-documentation ``WormholeB0/TensixTile/
TensixCoprocessor/ELWMUL.md`` and ``MVMUL.md`` with integer significands (no bit masks, unlike
ttsim.fpu): a float32 value's 24-bit significand S (implicit one included) splits, from the top,
into SrcA's 5 bits of even phases and 5 bits of odd phases, or into SrcB's 7 bits of phases 0-1
and 4 bits of phases 2-3; the multipliers see only their phase's bits, truncated toward zero.
DST rounds to bfloat16 (nearest, ties to even) after every accumulation.
"""

from __future__ import annotations

import numpy as np

PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}


def _bits(x: np.ndarray, skip: int, keep: int) -> np.ndarray:
    """The part of float32 ``x`` made of its significand bits ``skip`` .. ``skip + keep - 1``
    counted from the top (bit 0 is the implicit one), in float64, sign kept."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    fraction, exponent = np.frexp(np.abs(x))  # |x| = fraction * 2**exponent, fraction in [0.5, 1)
    significand = np.round(np.ldexp(fraction, 24))  # the exact 24-bit integer significand
    low = 24 - skip - keep
    part = np.floor(significand / 2.0 ** low) % 2.0 ** keep * 2.0 ** low
    return np.sign(x) * np.ldexp(part, exponent - 24)


def srca(x: np.ndarray, phase: int) -> np.ndarray:
    """SrcA as the multipliers see it: bits 0-4 in even phases, bits 5-9 in odd ones."""
    return _bits(x, 5, 5) if phase % 2 else _bits(x, 0, 5)


def srcb(x: np.ndarray, phase: int) -> np.ndarray:
    """SrcB as the multipliers see it: bits 0-6 in phases 0-1, bits 7-10 in phases 2-3."""
    return _bits(x, 7, 4) if phase >= 2 else _bits(x, 0, 7)


def round_bf16(x: np.ndarray) -> np.ndarray:
    """Round float64 values to bfloat16's 8 significant bits, nearest with ties to even."""
    x = np.asarray(x, dtype=np.float64)
    fraction, exponent = np.frexp(x)
    return np.ldexp(np.rint(np.ldexp(fraction, 8)), exponent - 8)


def elwmul(a: np.ndarray, b: np.ndarray, fidelity: str, dst_bf16: bool = True) -> np.ndarray:
    """DST (initially zero) += A * B over the fidelity's phases, A in SrcA and B in SrcB."""
    dst = np.zeros(np.shape(a))
    for phase in range(PHASES[fidelity]):
        dst = dst + srca(a, phase) * srcb(b, phase)
        dst = round_bf16(dst) if dst_bf16 else dst
    return dst


def matmul(a: np.ndarray, b: np.ndarray, fidelity: str) -> np.ndarray:
    """DST (initially zero) += A @ B with A [M, K] in SrcB and B [K, N] in SrcA, one 32-deep
    tile step at a time (one matmul_block call each): per step and phase, one accumulation (and
    bfloat16 rounding) of DST per 16 rows of B."""
    out = np.zeros((a.shape[0], b.shape[1]))
    for step in range(0, b.shape[0], 32):
        for phase in range(PHASES[fidelity]):
            a_part, b_part = srcb(a, phase), srca(b, phase)
            for k in range(step, min(step + 32, b.shape[0]), 16):
                out = round_bf16(out + a_part[:, k : k + 16] @ b_part[k : k + 16])
    return out


def column_sum(rows: np.ndarray, scalar: float, fidelity: str) -> np.ndarray:
    """GAPOOL column sum of ``rows`` [R, C] times ``scalar`` (SrcB) into a zero DST row: per
    phase, one accumulation (and bfloat16 rounding) per 16 rows."""
    out = np.zeros(rows.shape[1])
    for phase in range(PHASES[fidelity]):
        products = srca(rows, phase) * srcb(np.float32(scalar), phase)
        for k in range(0, rows.shape[0], 16):
            out = round_bf16(out + products[k : k + 16].sum(axis=0))
    return out
