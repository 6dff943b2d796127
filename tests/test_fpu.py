"""ttsim.fpu (bit masks on float32) against the independent float64 significand model."""

from __future__ import annotations

import numpy as np
import pytest

from ttsim import fpu

import fpu_reference as ref

FIDELITIES = ["LoFi", "HiFi2", "HiFi3", "HiFi4"]


def _values(seed: int, n: int = 4096) -> np.ndarray:
    """float32 values with full 24-bit significands over several binades, both signs, and 0."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 2.0 ** rng.integers(-8, 8, n)).astype(np.float32)
    x[:4] = 0.0
    return x


@pytest.mark.parametrize("phase", range(4))
def test_operand_parts_match_the_significand_model(phase: int) -> None:
    x = _values(phase)
    np.testing.assert_array_equal(fpu.srca_part(x, phase), ref.srca(x, phase))
    np.testing.assert_array_equal(fpu.srcb_part(x, phase), ref.srcb(x, phase))


def test_parts_cover_the_documented_bits() -> None:
    """SrcA's two parts hold the top 10 significand bits (TF32 without its last bit), SrcB's the
    top 11; at LoFi the multipliers see 5 and 7 bits."""
    x = _values(7)
    np.testing.assert_array_equal(fpu.srca_part(x, 0) + fpu.srca_part(x, 1), ref._bits(x, 0, 10))
    np.testing.assert_array_equal(fpu.srcb_part(x, 0) + fpu.srcb_part(x, 2), ref._bits(x, 0, 11))
    assert fpu.srca_part(np.array([1.96875], np.float32), 0)[0] == 1.9375  # 1.11111b -> 1.1111b
    assert fpu.srcb_part(np.array([1.9921875], np.float32), 0)[0] == 1.984375  # 1.1111111b -> 1.111111b


@pytest.mark.parametrize("fidelity", FIDELITIES)
def test_elwmul_matches_the_reference(fidelity: str) -> None:
    a, b = _values(11), _values(12)
    got = fpu.elwmul(None, a, b, fpu.FIDELITY_PHASES[fidelity], True)
    np.testing.assert_array_equal(got, ref.elwmul(a, b, fidelity))
    exact = fpu.elwmul(None, a, b, fpu.FIDELITY_PHASES[fidelity], False)
    np.testing.assert_allclose(exact, ref.elwmul(a, b, fidelity, dst_bf16=False), rtol=2.0 ** -23)


def test_elwmul_error_shrinks_with_fidelity() -> None:
    a, b = _values(13), _values(14)
    errors = [np.median(np.abs(fpu.elwmul(None, a, b, n, False) - a.astype(np.float64) * b)
                        / np.maximum(np.abs(a.astype(np.float64) * b), 1e-30))
              for n in (1, 2, 3, 4)]
    assert errors[0] > errors[1] > errors[3]
    assert errors[0] > 2.0 ** -7  # LoFi is far coarser than bf16 rounding


@pytest.mark.parametrize("fidelity", FIDELITIES)
def test_mvmul_matches_the_reference(fidelity: str) -> None:
    rng = np.random.default_rng(15)
    a = rng.standard_normal((32, 32)).astype(np.float32)  # in0 (srcB)
    b = rng.standard_normal((32, 64)).astype(np.float32)  # in1 (srcA)
    got = fpu.mvmul(None, a, b, fpu.FIDELITY_PHASES[fidelity], True)
    expected = ref.matmul(a, b, fidelity)
    ulp = np.ldexp(1.0, np.frexp(np.abs(expected))[1] - 8)
    assert np.all(np.abs(got - expected) <= ulp)  # the 16-product sums round in float32 here
    assert np.mean(got == expected) > 0.99


@pytest.mark.parametrize("fidelity", FIDELITIES)
def test_column_sum_matches_the_reference(fidelity: str) -> None:
    rng = np.random.default_rng(16)
    rows = rng.standard_normal((32, 96)).astype(np.float32)
    for scalar in (1.0, 0.3):
        partials = fpu.column_sum_partials(rows, np.float32(scalar), fpu.FIDELITY_PHASES[fidelity])
        got = fpu.round_dst(fpu.accumulate(np.zeros(96, np.float32), partials, True), True)
        expected = ref.column_sum(rows, scalar, fidelity)
        ulp = np.ldexp(1.0, np.frexp(np.abs(expected))[1] - 8)
        assert np.all(np.abs(got - expected) <= ulp)
        assert np.mean(got == expected) > 0.95


def test_mvmul_sums_are_exact_sums_rounded_once_in_any_order() -> None:
    """mvmul_sums against exact rational sums of the products rounded to float32 (via float64,
    exact for these spans): values spanning many binades, where a float32 running sum would
    round differently in a different order, and all negative-zero products (a +0 sum)."""
    from fractions import Fraction

    rng = np.random.default_rng(3)
    parts = lambda shape: fpu.srcb_part((rng.standard_normal(shape) * np.exp2(rng.integers(-12, 12, shape))).astype(np.float32), 0)
    b, a = parts((2, 3, 16)), fpu.srca_part(parts((16, 4)), 0)
    b[0, 0] = -0.0
    a[:, 0] = 0.0
    want = np.empty((2, 3, 4), np.float32)
    for index in np.ndindex(2, 3):
        for j in range(4):
            exact = sum((Fraction(float(b[index][k])) * Fraction(float(a[k, j])) for k in range(16)), Fraction(0))
            want[index][j] = np.float32(float(exact))
    got = fpu.mvmul_sums(b, a)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    reversed_k = fpu.mvmul_sums(b[..., ::-1].copy(), a[::-1].copy())
    np.testing.assert_array_equal(reversed_k.view(np.uint32), got.view(np.uint32))
    assert not np.signbit(got[0, 0, 0])


@pytest.mark.parametrize("fidelity, scalar", [(f, s) for f in ("LoFi", "HiFi2") for s in (1.0, 2.0, 0.5, -1.0, 0.3)]
                         + [(f, 0.3) for f in ("HiFi3", "HiFi4")])
def test_column_sum_partials_equal_the_sums_of_each_product(fidelity: str, scalar: float) -> None:
    """The scalar's parts come from a cache and a power of two scales the sum once (1.0 not at
    all): bit for bit the exact sums of the 16 products of each GAPOOL rounded once to float32,
    +0.0 for a zero sum (a zero part, e.g. the low part of 1.0 in HiFi3/4 phases 2-3, included)."""
    from fractions import Fraction

    rng = np.random.default_rng(17)
    rows = (rng.standard_normal((32, 96)) * np.exp2(rng.integers(-8, 8, (32, 96)))).astype(np.float32)
    rows[rng.random((32, 96)) < 0.1] = -0.0
    phases = fpu.FIDELITY_PHASES[fidelity]
    b = np.asarray(scalar, dtype=np.float32)
    expected = np.empty((phases * 2, 96), np.float32)
    for p in range(phases):
        products = (fpu.srca_part(rows, p) * fpu.srcb_part(b, p)).reshape(2, 16, 96)
        for g, c in np.ndindex(2, 96):
            exact = sum((Fraction(float(v)) for v in products[g, :, c]), Fraction(0))
            expected[p * 2 + g, c] = np.float32(float(exact))
    got = fpu.column_sum_partials(rows, np.float32(scalar), phases)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
