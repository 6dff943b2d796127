"""Property-based fuzzing (issue 15) with hypothesis, in three parts:

1. random small valid depthwise convs on every registered program, the output checked against an
   independent float64 direct convolution written here (PCC >= 0.999 when every tensor is
   bfloat16, >= 0.99 with a bfloat8_b tensor, as the program tests promise) — or a clean ttsim
   error (e.g. a layout a program does not support);
2. random config text (mutated seed configs and free text) never raising anything but a ttsim error;
3. random ``--set`` values on real and made-up keys, likewise.

The suite runs a small derandomized budget (deterministic, ~20 s); the ``slow`` tests run a larger
one. ``classify_*`` return one outcome per case (ok, clean_error, wrong, crash) so that
``bench/fuzz.py`` can count a large run instead of stopping at the first failure.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ttsim
from ttsim.config import conv_output_size, load_config
from ttsim.errors import TtsimError, UnsupportedFunctionality
from ttsim.limits import check_conv_fits
from ttsim.device.spec import load_device
from ttsim.numerics import generate_conv_inputs
from ttsim.programs import registry

ROOT = Path(__file__).resolve().parents[1]
SEED_CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SMALL = settings(max_examples=10, derandomize=True, deadline=timedelta(seconds=60), database=None,
                 suppress_health_check=[HealthCheck.too_slow])
"""The suite's budget per test: deterministic, a hang guard of 60 s per example."""
LARGE = settings(SMALL, max_examples=200)
"""The slow run's budget per test."""

ACTIVATIONS = ["none", "relu", "relu6", "silu", "gelu"]
LAYOUTS = ["height_sharded", "block_sharded", "width_sharded"]
FORMATS = ["bfloat16", "bfloat8_b"]
FIDELITIES = ["LoFi", "HiFi2", "HiFi3", "HiFi4"]


@st.composite
def small_convs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid depthwise conv small enough to simulate in about a second."""
    kernel = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    dilation = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    padding = [draw(st.integers(0, 2)), draw(st.integers(0, 2))]
    size = []
    for k, d, p in zip(kernel, dilation, padding):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)  # output extent >= 1
        size.append(draw(st.integers(smallest, max(smallest, 14))))
    dtype = draw(st.sampled_from(FORMATS))
    return {
        "batch": draw(st.integers(1, 2)), "input_height": size[0], "input_width": size[1],
        "channels": draw(st.integers(1, 80)), "kernel": kernel,
        "stride": [draw(st.integers(1, 3)), draw(st.integers(1, 3))], "dilation": dilation,
        "padding": padding, "bias": draw(st.booleans()), "activation": draw(st.sampled_from(ACTIVATIONS)),
        "dtype": dtype, "weights_dtype": draw(st.sampled_from(FORMATS)),
        "memory_layout": draw(st.sampled_from(LAYOUTS)), "math_fidelity": draw(st.sampled_from(FIDELITIES)),
        "output_layout": "tile" if dtype == "bfloat8_b" else draw(st.sampled_from(["tile", "row_major"])),
    }


def direct_conv_float64(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, conv: dict[str, Any]
                        ) -> np.ndarray:
    """Depthwise conv2d by its definition, one output pixel at a time (NHWC in and out, float64)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv["kernel"], conv["stride"], conv["padding"], conv["dilation"]
    n, h, w, c = x.shape
    out_h, out_w = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    padded = np.zeros((n, h + 2 * ph, w + 2 * pw, c))
    padded[:, ph:ph + h, pw:pw + w] = x
    out = np.zeros((n, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, i * sh: i * sh + dh * (kh - 1) + 1: dh, j * sw: j * sw + dw * (kw - 1) + 1: dw]
            out[:, i, j] = np.einsum("nrsc,crs->nc", window, weight[:, 0].astype(np.float64))
    if bias is not None:
        out += bias
    act = conv["activation"]
    if act == "relu":
        out = np.maximum(out, 0)
    elif act == "relu6":
        out = np.clip(out, 0, 6)
    elif act == "silu":
        out = out / (1 + np.exp(-out))
    elif act == "gelu":
        from math import erf, sqrt
        out = 0.5 * out * (1 + np.vectorize(erf)(out / sqrt(2)))
    return out


def _pcc(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation, or None where it is undefined (one value, or a constant array)."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def classify_conv(conv: dict[str, Any], program: str, seed: int = 0) -> tuple[str, str]:
    """Run one conv: ('ok' | 'clean_error' | 'wrong' | 'crash', detail)."""
    config = {"name": "fuzz", "seed": seed, "conv": conv}
    try:
        op = ttsim.run(config, program=program)[-1]
    except TtsimError as exc:
        return "clean_error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    except Exception as exc:  # noqa: BLE001 - anything else is the bug being looked for
        return "crash", f"{type(exc).__name__}: {exc}"
    x, weight, bias = generate_conv_inputs(load_config(config).conv, seed)
    reference = direct_conv_float64(x.astype(np.float64), weight, bias, conv)
    if op.output is None or op.output.shape != reference.shape:
        return "wrong", f"output shape {None if op.output is None else op.output.shape} != {reference.shape}"
    # the programs' promise: PCC >= 0.999 with bfloat16 tensors above LoFi; >= 0.99 with
    # bfloat8_b or at LoFi, whose multipliers see 5 bits of srcA (products off by up to 2^-4)
    exact = conv["dtype"] == conv["weights_dtype"] == "bfloat16" and conv["math_fidelity"] != "LoFi"
    threshold = 0.999 if exact else 0.99
    value = _pcc(op.output, reference)
    scale = max(float(np.abs(reference).max()), 1e-3)
    if value is None:  # constant or single-value output: compare the values themselves
        ok = float(np.abs(op.output - reference).max()) <= (0.03 if exact else 0.1) * scale
        return ("ok", "constant output") if ok else ("wrong", "constant output differs")
    if value < threshold:
        return "wrong", f"PCC {value:.5f} < {threshold}"
    return "ok", f"PCC {value:.5f}"


def classify_text(text: str) -> tuple[str, str]:
    """Load config text from a file: ('ok' | 'clean_error' | 'crash', detail); an accepted config
    is also checked against every device (the step after the preset is loaded)."""
    fd, name = tempfile.mkstemp(suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as handle:
            handle.write(text)
        return _classify_load(lambda: load_config(name))
    finally:
        os.unlink(name)


def classify_set(key: str, value: str) -> tuple[str, str]:
    """Apply ``--set key=value`` to a seed config: as :func:`classify_text`."""
    return _classify_load(lambda: load_config(SEED_CONFIGS[-1], [f"{key}={value}"]))


def _classify_load(load) -> tuple[str, str]:
    try:
        config = load()
        check_conv_fits(config.conv, load_device(config.device))
    except TtsimError as exc:
        return "clean_error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    except Exception as exc:  # noqa: BLE001
        return "crash", f"{type(exc).__name__}: {exc}"
    return "ok", "valid"


# -- strategies of hostile text -------------------------------------------------------------------

YAML_CHARS = st.sampled_from(list("[]{}:,&*!|>-?'\"#%@` \n\t0123456789.eE+_xabcyn~") + ["\u00e9", "\x00", "\ufeff"])
yaml_noise = st.text(YAML_CHARS, max_size=60)
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """A seed config with one line's value replaced, a line dropped, noise inserted, or free text."""
    text = Path(draw(st.sampled_from(SEED_CONFIGS))).read_text()
    lines = text.splitlines()
    i = draw(st.integers(0, len(lines) - 1))
    how = draw(st.sampled_from(["value", "noise", "drop", "free", "dump"]))
    if how == "free":
        return draw(st.text(max_size=200))
    if how == "dump":
        return yaml.safe_dump(draw(yaml_values))
    if how == "drop":
        del lines[i]
    elif how == "noise":
        lines.insert(i, draw(yaml_noise))
    else:
        key, sep, _ = lines[i].partition(":")
        replacement = draw(yaml_noise | yaml_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))
        lines[i] = f"{key}{sep or ':'} {replacement}"
    return "\n".join(lines) + "\n"


SET_KEYS = ["conv.channels", "conv.batch", "conv.input_height", "conv.input_width", "conv.kernel",
            "conv.stride", "conv.padding", "conv.dilation", "conv.bias", "conv.activation", "conv.dtype",
            "conv.memory_layout", "seed", "device", "name", "pool.cb.in_cb.pages", "classic.core_grid",
            "classic.act_block_h_override", "measured.classic_device_kernel_duration_ns", "conv", "pool.cb"]
set_keys = st.sampled_from(SET_KEYS) | st.text(st.sampled_from(list("ab.c_=[ ")), min_size=1, max_size=12)
set_values = (yaml_noise | yaml_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())
              | st.integers(-3, 300).map(str) | st.sampled_from(ACTIVATIONS + LAYOUTS + FORMATS + ["[3, 3]", "[2,2]"])
              | st.integers(0, 10**30).map(lambda v: f"[{v}, 1]"))


# -- the tests ------------------------------------------------------------------------------------

def _assert_conv(conv: dict[str, Any], program: str) -> None:
    outcome, detail = classify_conv(conv, program)
    assert outcome in ("ok", "clean_error"), (outcome, detail, conv)
    if outcome == "clean_error":  # a small valid conv may only be refused as unsupported
        assert detail.startswith(UnsupportedFunctionality.__name__), (detail, conv)


@pytest.mark.parametrize("program", registry.names())
@SMALL
@given(conv=small_convs())
def test_small_convs_match_the_float64_reference(program: str, conv: dict[str, Any]) -> None:
    _assert_conv(conv, program)


@settings(SMALL, max_examples=100)
@given(text=config_texts())
def test_random_config_text_raises_only_ttsim_errors(text: str) -> None:
    outcome, detail = classify_text(text)
    assert outcome != "crash", (detail, text)


@settings(SMALL, max_examples=100)
@given(key=set_keys, value=set_values)
def test_random_set_values_raise_only_ttsim_errors(key: str, value: str) -> None:
    outcome, detail = classify_set(key, value)
    assert outcome != "crash", (detail, key, value)


@pytest.mark.slow
@pytest.mark.parametrize("program", registry.names())
@LARGE
@given(conv=small_convs())
def test_many_small_convs_match_the_float64_reference(program: str, conv: dict[str, Any]) -> None:
    _assert_conv(conv, program)


@pytest.mark.slow
@settings(LARGE, max_examples=2000)
@given(text=config_texts())
def test_much_random_config_text_raises_only_ttsim_errors(text: str) -> None:
    outcome, detail = classify_text(text)
    assert outcome != "crash", (detail, text)


@pytest.mark.slow
@settings(LARGE, max_examples=2000)
@given(key=set_keys, value=set_values)
def test_many_random_set_values_raise_only_ttsim_errors(key: str, value: str) -> None:
    outcome, detail = classify_set(key, value)
    assert outcome != "crash", (detail, key, value)
