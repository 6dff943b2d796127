"""Reference numerics, in float64 and independent of the simulator.

The simulator's output is checked against :func:`depthwise_conv2d_reference` with :func:`pcc`
(Pearson correlation, the metric tt-metal's tests use). :func:`generate_conv_inputs` makes the
deterministic float32 inputs of a config; the simulator rounds them to device formats itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ttsim.config import ConvSpec, conv_output_size

_REFERENCE_BLOCK_BYTES = 1 << 17
"""Output bytes :func:`depthwise_conv2d_reference` computes at a time (a fraction of a CPU's L2:
its accumulator, product and input rows stay in cache across the taps)."""
_ERF_SATURATION = 6.0
"""|x| beyond which erf(x) = ±1 in float64 (1 - erf(6) ~ 2e-17)."""


def erf(x: np.ndarray | float) -> np.ndarray:
    """Error function, elementwise, to ~1e-14 absolute (float64; NaN propagates).

    Uses the all-positive series erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n x (2x^2)^n / (2n+1)!!,
    which has no cancellation, for |x| < 6 and saturates to ±1 beyond.
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), _ERF_SATURATION)
    two_a2 = 2.0 * a * a
    term = a.copy()
    total = a.copy()
    n = 0
    while np.any(term > 1e-17 * total):
        n += 1
        term = term * two_a2 / (2 * n + 1)
        total = total + term
    series = 2.0 / math.sqrt(math.pi) * np.exp(-a * a) * total
    magnitude = np.where(np.abs(x) >= _ERF_SATURATION, 1.0, series)
    return np.copysign(magnitude, x)


def _none(x: np.ndarray) -> np.ndarray:
    """Identity."""
    return x


def _relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0)."""
    return np.maximum(x, 0.0)


def _relu6(x: np.ndarray) -> np.ndarray:
    """min(max(x, 0), 6)."""
    return np.clip(x, 0.0, 6.0)


def _silu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x), via tanh so that large |x| does not overflow exp."""
    return x * 0.5 * (1.0 + np.tanh(0.5 * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": _none,
    "relu": _relu,
    "relu6": _relu6,
    "silu": _silu,
    "gelu": _gelu,
}
"""Activation functions by config name, applied elementwise in float64."""


def depthwise_conv2d_reference(
    x_nhwc: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    activation: str,
) -> np.ndarray:
    """Depthwise conv2d (groups = C) + bias + activation in float64, NHWC in and out.

    ``weight`` is [C, 1, kh, kw] (PyTorch layout), ``bias`` is [C] or None; ``padding`` (ph, pw)
    is zero padding on both sides of H and W. Loops over the batch images, blocks of output rows
    (:data:`_REFERENCE_BLOCK_BYTES` of output, so a block's accumulator, product and input rows
    stay in the CPU cache) and the kh*kw taps, accumulating each tap in place into the block and
    then adding the bias: every output element gets the same float64 operations in the same
    order as a whole-batch ``out += tap`` over the taps then ``out += bias``. With stride 1 in W
    a block's rows are multiplied as [rows, out_w * C] by the tap's weights repeated out_w
    times (the same products, one long inner loop rather than one per output pixel).
    """
    x = np.asarray(x_nhwc, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    n, h, wd, c = x.shape
    if w.shape[:2] != (c, 1):
        raise ValueError(f"weight shape {w.shape} does not match {c} channels (want [C,1,kh,kw])")
    kh, kw = w.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    out_h = conv_output_size(h, kh, sh, ph, dh)
    out_w = conv_output_size(wd, kw, sw, pw, dw)
    if sw == 1:  # a block's columns and channels merge into one axis
        taps = [np.tile(w[:, 0, i, j], out_w) for i in range(kh) for j in range(kw)]
    else:
        taps = [w[:, 0, i, j] for i in range(kh) for j in range(kw)]
    b = None if bias is None else np.asarray(bias, dtype=np.float64)
    block_rows = max(1, _REFERENCE_BLOCK_BYTES // (out_w * c * 8))
    xp = np.zeros((h + 2 * ph, wd + 2 * pw, c), dtype=np.float64)
    out = np.zeros((n, out_h, out_w, c), dtype=np.float64)
    product = np.empty(block_rows * out_w * c, dtype=np.float64)
    for image in range(n):
        xp[ph : ph + h, pw : pw + wd] = x[image]
        for r0 in range(0, out_h, block_rows):
            r1 = min(out_h, r0 + block_rows)
            shape = (r1 - r0, out_w * c) if sw == 1 else (r1 - r0, out_w, c)
            acc = out[image, r0:r1].reshape(shape)  # a view: out is contiguous
            block_product = product[: acc.size].reshape(shape)
            for i in range(kh):
                for j in range(kw):
                    rows = slice(i * dh + r0 * sh, i * dh + (r1 - 1) * sh + 1, sh)
                    cols = slice(j * dw, j * dw + (out_w - 1) * sw + 1, sw)
                    np.multiply(xp[rows, cols, :].reshape(shape), taps[i * kw + j], out=block_product)
                    acc += block_product
            if b is not None:
                out[image, r0:r1] += b
    return ACTIVATIONS[activation](out)  # on the whole output: gelu's erf series is not per element


def pcc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two equally sized arrays, flattened, in float64.

    Constant inputs have no correlation defined: 1.0 if both arrays are equal, else 0.0.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size != y.size or x.size == 0:
        raise ValueError(f"pcc needs two non-empty arrays of equal size, got {x.size} and {y.size}")
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    if sxx == 0.0 or syy == 0.0:
        return 1.0 if np.array_equal(x, y) else 0.0
    return float(np.clip((dx @ dy) / math.sqrt(sxx * syy), -1.0, 1.0))


def zero_conv_inputs(spec: ConvSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Zero float32 inputs of the shapes :func:`generate_conv_inputs` draws: what a timing-only
    run moves (no cost depends on a value, so the cycles are those of the drawn inputs; drawing
    and encoding them would only cost host time)."""
    kh, kw = spec.kernel
    c = spec.channels
    x = np.zeros((spec.batch, spec.input_height, spec.input_width, c), dtype=np.float32)
    return x, np.zeros((c, 1, kh, kw), dtype=np.float32), np.zeros(c, dtype=np.float32) if spec.bias else None


def generate_conv_inputs(
    spec: ConvSpec, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Deterministic float32 inputs of a conv: x [N,H,W,C], weight [C,1,kh,kw], bias [C] or None.

    x ~ N(0, 1); weight ~ N(0, 1)/sqrt(kh*kw) so outputs stay O(1); bias ~ 0.1*N(0, 1). Drawn in
    that order from ``np.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    kh, kw = spec.kernel
    c = spec.channels
    x = rng.standard_normal((spec.batch, spec.input_height, spec.input_width, c))
    weight = rng.standard_normal((c, 1, kh, kw)) / math.sqrt(kh * kw)
    bias = 0.1 * rng.standard_normal(c) if spec.bias else None
    return (
        x.astype(np.float32),
        weight.astype(np.float32),
        None if bias is None else bias.astype(np.float32),
    )
