"""Reference numerics: the depthwise conv, activations, erf, pcc and input generation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from ttsim.config import ConvSpec
from ttsim.numerics import (
    ACTIVATIONS,
    depthwise_conv2d_reference,
    erf,
    generate_conv_inputs,
    pcc,
)


def _naive_depthwise(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Six nested loops straight from the definition, reading out-of-image taps as zero."""
    n_, h_, w_, c_ = x.shape
    kh, kw = weight.shape[2:]
    out_h = (h_ + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (w_ + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n_, out_h, out_w, c_))
    for n in range(n_):
        for oh in range(out_h):
            for ow in range(out_w):
                for c in range(c_):
                    acc = 0.0 if bias is None else float(bias[c])
                    for i in range(kh):
                        for j in range(kw):
                            h = oh * stride[0] - padding[0] + i * dilation[0]
                            w = ow * stride[1] - padding[1] + j * dilation[1]
                            if 0 <= h < h_ and 0 <= w < w_:
                                acc += float(x[n, h, w, c]) * float(weight[c, 0, i, j])
                    out[n, oh, ow, c] = acc
    return out


@pytest.mark.parametrize("with_bias", [True, False])
def test_reference_matches_naive(with_bias: bool) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    weight = rng.standard_normal((3, 1, 3, 2)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32) if with_bias else None
    stride, padding, dilation = (2, 2), (1, 2), (2, 2)
    got = depthwise_conv2d_reference(x, weight, bias, stride, padding, dilation, "none")
    expected = _naive_depthwise(x, weight, bias, stride, padding, dilation)
    assert got.dtype == np.float64 and got.shape == expected.shape == (2, 4, 5, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    relu6 = depthwise_conv2d_reference(x, weight, bias, stride, padding, dilation, "relu6")
    np.testing.assert_allclose(relu6, np.clip(expected, 0.0, 6.0), rtol=1e-12, atol=1e-12)


def _whole_batch_depthwise(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                           stride: tuple[int, int], padding: tuple[int, int],
                           dilation: tuple[int, int]) -> np.ndarray:
    """The whole-batch form: ``out += x_shifted * w`` tap by tap (kh then kw), then the bias."""
    n, h, wd, c = x.shape
    kh, kw = weight.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    out_h = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.zeros((n, h + 2 * ph, wd + 2 * pw, c))
    xp[:, ph : ph + h, pw : pw + wd] = x
    out = np.zeros((n, out_h, out_w, c))
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, i * dh : i * dh + (out_h - 1) * sh + 1 : sh, j * dw : j * dw + (out_w - 1) * sw + 1 : sw]
            out += tap * weight[:, 0, i, j].astype(np.float64)
    if bias is not None:
        out += bias.astype(np.float64)
    return out


@pytest.mark.parametrize(("stride", "padding", "dilation"),
                         [((1, 1), (1, 1), (1, 1)), ((2, 2), (1, 2), (2, 2)), ((2, 1), (0, 1), (1, 2))])
def test_reference_bit_identical_to_whole_batch_taps(monkeypatch: pytest.MonkeyPatch, stride: tuple[int, int],
                                                     padding: tuple[int, int], dilation: tuple[int, int]) -> None:
    """Blocked over output rows (several blocks, a short last one) and, at stride 1 in W, with
    columns and channels merged: every bit as the whole-batch tap-order sum, on wide-range
    values with -0, inf and NaN among them."""
    import ttsim.numerics as numerics

    monkeypatch.setattr(numerics, "_REFERENCE_BLOCK_BYTES", 3 * 8 * 8 * 5)  # 3-row blocks at out_w 8
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((2, 17, 16, 5)) * 2.0 ** rng.integers(-60, 60, (2, 17, 16, 5))).astype(np.float32)
    x[0, 3, 4] = [-0.0, np.inf, np.nan, -np.inf, 1e-40]
    weight = rng.standard_normal((5, 1, 3, 3)).astype(np.float32)
    weight[1, 0, 1, 1] = -0.0
    bias = rng.standard_normal(5).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf * 0
        got = depthwise_conv2d_reference(x, weight, bias, stride, padding, dilation, "none")
        expected = _whole_batch_depthwise(x, weight, bias, stride, padding, dilation)
    assert got.shape == expected.shape
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))


def test_reference_rejects_bad_weight_shape() -> None:
    with pytest.raises(ValueError):
        depthwise_conv2d_reference(
            np.zeros((1, 4, 4, 3)), np.zeros((2, 1, 3, 3)), None, (1, 1), (1, 1), (1, 1), "none"
        )


@pytest.mark.parametrize(
    ("name", "x", "y"),
    [
        ("none", -2.5, -2.5),
        ("relu", -1.0, 0.0),
        ("relu", 3.0, 3.0),
        ("relu6", 7.0, 6.0),
        ("relu6", 2.0, 2.0),
        ("relu6", -1.0, 0.0),
        ("silu", 0.0, 0.0),
        ("silu", 1.0, 1.0 / (1.0 + math.exp(-1.0))),
        ("silu", -2.0, -2.0 / (1.0 + math.exp(2.0))),
        ("gelu", 0.0, 0.0),
        ("gelu", 1.0, 0.8413447460685429),
        ("gelu", -1.0, -0.15865525393145707),
        ("gelu", 3.0, 3.0 * 0.5 * (1.0 + math.erf(3.0 / math.sqrt(2.0)))),
    ],
)
def test_activation_hand_points(name: str, x: float, y: float) -> None:
    assert float(ACTIVATIONS[name](np.array(x))) == pytest.approx(y, rel=1e-12, abs=1e-15)


def test_activations_saturate_without_warnings() -> None:
    x = np.array([-1e4, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(ACTIVATIONS["silu"](x), [0.0, 1e4])
        np.testing.assert_allclose(ACTIVATIONS["gelu"](x), [0.0, 1e4])


def test_erf_matches_math_erf() -> None:
    xs = np.concatenate([np.linspace(-7.0, 7.0, 4001), [0.0, 1e-9, -1e-300, 5.999, 6.0, 40.0]])
    expected = np.array([math.erf(v) for v in xs])
    assert np.abs(erf(xs) - expected).max() < 1e-7
    assert np.isnan(erf(np.array([np.nan])))[0]
    assert erf(np.array([-np.inf, np.inf])).tolist() == [-1.0, 1.0]


def test_pcc_properties() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(1000)
    b = rng.standard_normal(1000)
    assert pcc(a, a) == pytest.approx(1.0)
    assert pcc(a, -a) == pytest.approx(-1.0)
    assert pcc(a, 3.0 * a + 2.0) == pytest.approx(1.0)
    assert pcc(a, b) == pytest.approx(pcc(b, a))
    assert abs(pcc(a, b)) < 0.1
    assert pcc(a.reshape(10, 100), a) == pytest.approx(1.0)
    assert pcc(np.full(5, 2.0), np.full(5, 2.0)) == 1.0
    assert pcc(np.full(5, 2.0), np.full(5, 3.0)) == 0.0
    assert pcc(np.full(5, 2.0), np.arange(5.0)) == 0.0
    with pytest.raises(ValueError):
        pcc(np.zeros(3), np.zeros(4))


def _spec(bias: bool) -> ConvSpec:
    return ConvSpec(
        batch=2,
        input_height=5,
        input_width=4,
        channels=6,
        kernel=(3, 5),
        stride=(1, 1),
        padding=(1, 2),
        dilation=(1, 1),
        bias=bias,
        activation="silu",
        dtype="bfloat16",
        weights_dtype="bfloat16",
        memory_layout="height_sharded",
        math_fidelity="LoFi",
    )


def test_generate_conv_inputs() -> None:
    x, weight, bias = generate_conv_inputs(_spec(True), seed=5)
    assert x.shape == (2, 5, 4, 6) and weight.shape == (6, 1, 3, 5) and bias.shape == (6,)
    assert x.dtype == weight.dtype == bias.dtype == np.float32
    x2, weight2, bias2 = generate_conv_inputs(_spec(True), seed=5)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(weight, weight2)
    np.testing.assert_array_equal(bias, bias2)
    x3, _, _ = generate_conv_inputs(_spec(True), seed=6)
    assert not np.array_equal(x, x3)
    x4, weight4, bias4 = generate_conv_inputs(_spec(False), seed=5)
    assert bias4 is None
    np.testing.assert_array_equal(x4, x)
    np.testing.assert_array_equal(weight4, weight)


def test_generated_weights_are_scaled() -> None:
    spec = _spec(True).model_copy(update={"channels": 4000})
    _, weight, bias = generate_conv_inputs(spec, seed=1)
    assert weight.std() == pytest.approx(1.0 / math.sqrt(15), rel=0.05)
    assert bias.std() == pytest.approx(0.1, rel=0.05)
