"""The pool-based depthwise conv2d end to end through ``ttsim.run`` on small shapes: numerics
against an independent float64 reference, result structure, profile sanity and determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import ttsim
from ttsim.config import conv_output_size, load_config
from ttsim.device.core import Risc
from ttsim.numerics import ACTIVATIONS, depthwise_conv2d_reference, generate_conv_inputs

import fpu_reference as ref
from conv_cases import BASE_CONV

ROOT = Path(__file__).resolve().parents[1]
RISCS = (Risc.BRISC, Risc.NCRISC, Risc.TRISC0, Risc.TRISC1, Risc.TRISC2)

CASES: dict[str, dict[str, Any]] = {
    "base_k3": {},
    "k5_pad2": {"kernel": [5, 5], "padding": [2, 2]},
    "k7_pad3": {"kernel": [7, 7], "padding": [3, 3], "input_height": 10, "input_width": 9},
    "k7_no_pad": {"kernel": [7, 7], "padding": [0, 0], "input_height": 12, "input_width": 12},
    "k3x5_asym_pad": {"kernel": [3, 5], "padding": [1, 2]},
    "stride2_pad1_0": {"stride": [2, 2], "padding": [1, 0], "input_height": 12, "input_width": 11},
    "stride2x1_pad0_1": {"stride": [2, 1], "padding": [0, 1], "input_height": 9},
    "dilation2": {"dilation": [2, 2], "padding": [2, 2]},
    "dilation2_k5_pad0": {"dilation": [2, 1], "kernel": [5, 3], "padding": [0, 1],
                          "input_height": 14},
    "block_sharded": {"memory_layout": "block_sharded", "channels": 64, "input_height": 16,
                      "input_width": 16},
    "block_sharded_s2_relu6": {"memory_layout": "block_sharded", "channels": 96,
                               "input_height": 16, "input_width": 16, "stride": [2, 2],
                               "activation": "relu6"},
    "batch2_height_sharded": {"batch": 2, "input_height": 12, "input_width": 12},
    "no_bias": {"bias": False},
    "relu": {"activation": "relu"},
    "relu6": {"activation": "relu6", "math_fidelity": "LoFi"},
    "silu": {"activation": "silu"},
    "gelu": {"activation": "gelu", "bias": False},
    "row_major_output": {"output_layout": "row_major"},
    "row_major_k5": {"output_layout": "row_major", "kernel": [5, 5], "padding": [2, 2]},
    "bfloat8_b_output": {"dtype": "bfloat8_b"},
    "channels_40": {"channels": 40},
    "channels_320_wide": {"channels": 320},
    "channels_320_block": {"channels": 320, "memory_layout": "block_sharded",
                           "input_height": 16, "input_width": 16},
    "bfp8_weights": {"weights_dtype": "bfloat8_b"},
    "bfp8_weights_k5_silu": {"weights_dtype": "bfloat8_b", "kernel": [5, 5], "padding": [2, 2],
                             "activation": "silu"},
    "bfp8_everything": {"weights_dtype": "bfloat8_b", "dtype": "bfloat8_b", "channels": 72},
}


def config(name: str = "t", seed: int = 0, **overrides: Any) -> dict[str, Any]:
    return {"name": name, "seed": seed, "conv": {**BASE_CONV, **overrides}}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Plain numpy Pearson correlation (independent of ttsim.numerics.pcc)."""
    return float(np.corrcoef(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64))[0, 1])


def bf16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


@pytest.fixture(scope="module")
def results() -> dict[str, list]:
    return {name: ttsim.run(config(name, **overrides), program="pool") for name, overrides in CASES.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_numerics_against_independent_reference(results, case: str) -> None:
    conv = {**BASE_CONV, **CASES[case]}
    _, op = results[case]
    n, h, w, c = conv["batch"], conv["input_height"], conv["input_width"], conv["channels"]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (conv["kernel"], conv["stride"], conv["padding"],
                                              conv["dilation"])
    out_h = conv_output_size(h, kh, sh, ph, dh)
    out_w = conv_output_size(w, kw, sw, pw, dw)

    assert op.output.shape == (n, out_h, out_w, c)
    assert op.output.dtype == np.float32
    assert set(op.inputs) == {"input", "weight", "bias"}
    assert op.inputs["input"].shape == (n, h, w, c)
    assert op.inputs["weight"].shape == (c, 1, kh, kw)
    if conv["bias"]:
        assert op.inputs["bias"].shape == (c,)
    else:
        assert op.inputs["bias"] is None

    # the inputs are the config's deterministic data as the device holds it
    x, weight, bias = generate_conv_inputs(load_config(config(case, **CASES[case])).conv, 0)
    np.testing.assert_array_equal(op.inputs["input"], bf16(x))
    if conv["weights_dtype"] == "bfloat16":
        np.testing.assert_array_equal(op.inputs["weight"], bf16(weight))
        if bias is not None:
            np.testing.assert_array_equal(op.inputs["bias"], bf16(bias))
    else:  # block float: same values to within the 7-bit shared-exponent mantissa
        np.testing.assert_allclose(op.inputs["weight"], weight, atol=np.abs(weight).max() / 32)

    bias_in = op.inputs["bias"]
    reference = depthwise_conv2d_reference(
        op.inputs["input"].astype(np.float64), op.inputs["weight"].astype(np.float64),
        None if bias_in is None else bias_in.astype(np.float64),
        tuple(conv["stride"]), tuple(conv["padding"]), tuple(conv["dilation"]), conv["activation"])
    threshold = 0.999 if conv["weights_dtype"] == "bfloat16" else 0.99
    assert pearson(op.output, reference) >= threshold
    assert op.pcc >= threshold
    assert op.pcc == pytest.approx(pearson(op.output, reference), abs=1e-9)
    # not just correlated: the error is at bfloat16 (or bfloat8_b) scale, at LoFi against the
    # operands the multipliers see
    if conv["math_fidelity"] == "LoFi":
        reference = _lofi_reference(op.inputs["input"], op.inputs["weight"], bias_in, conv)
    scale = np.abs(reference).max()
    tolerance = 0.02 if conv["dtype"] == "bfloat16" and conv["weights_dtype"] == "bfloat16" else 0.1
    assert np.abs(op.output - reference).max() <= tolerance * scale


def _lofi_reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                    conv: dict[str, Any]) -> np.ndarray:
    """The pool kernel's math at LoFi in float64: per tap, ELWMUL sees 5 bits of the input
    (srcA) and 7 of the weight (srcB) and DST rounds the product to bf16; the column sum (GAPOOL)
    sees 5 bits of each packed product (srcA again) times the scaler 1.0."""
    assert conv["math_fidelity"] == "LoFi" and conv["stride"] == [1, 1] and conv["dilation"] == [1, 1]
    (kh, kw), (ph, pw) = conv["kernel"], conv["padding"]
    xp = np.pad(x.astype(np.float64), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    out_h, out_w = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    total = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(kh):
        for j in range(kw):
            product = ref.round_bf16(ref.srca(xp[:, i : i + out_h, j : j + out_w], 0)
                                     * ref.srcb(weight[:, 0, i, j], 0))
            total += ref.srca(product, 0)
    total = ref.round_bf16(total) + (0.0 if bias is None else bias.astype(np.float64))
    return ACTIVATIONS[conv["activation"]](total)


def test_direct_reference_from_generated_inputs(results) -> None:
    """Compute the reference straight from the seed's float32 data (no ttsim rounding) too."""
    _, op = results["base_k3"]
    x, weight, bias = generate_conv_inputs(load_config(config()).conv, 0)
    reference = depthwise_conv2d_reference(x, weight, bias, (1, 1), (1, 1), (1, 1), "none")
    assert pearson(op.output, reference) >= 0.999


@pytest.mark.parametrize("case", list(CASES))
def test_results_structure_and_durations(results, case: str) -> None:
    halo, op = results[case]
    assert [halo.op_code, op.op_code] == ["HaloDeviceOperation", "Conv2dDepthwisePool"]
    assert halo.pcc is None and halo.output is None
    assert halo.program == op.program == "pool"
    assert halo.device == op.device == "wormhole_b0"
    for result in (halo, op):
        profile = result.profile
        assert result.device_kernel_duration_cycles > 0
        assert result.device_kernel_duration_ns == pytest.approx(
            result.device_kernel_duration_cycles * 1000.0 / 1000.0)
        for risc in RISCS:
            assert profile.risc_duration_cycles[risc] <= profile.device_kernel_duration_cycles
        per_core = profile.per_core_duration_cycles()
        assert max(per_core.values()) <= profile.device_kernel_duration_cycles
        assert profile.core_count == len(per_core)
    for risc in RISCS:  # the conv op runs all five RISCs
        assert op.profile.risc_duration_cycles[risc] > 0
    assert op.profile.core_count == halo.profile.core_count


def test_bias_and_activation_change_the_result(results) -> None:
    _, plain = results["base_k3"]
    _, no_bias = results["no_bias"]
    _, relu = results["relu"]
    assert not np.array_equal(plain.output, no_bias.output)
    np.testing.assert_array_equal(relu.output, np.maximum(plain.output, 0.0))
    assert (plain.output < 0).any()


def test_row_major_and_tile_outputs_agree(results) -> None:
    _, tile = results["base_k3"]
    _, row_major = results["row_major_output"]
    np.testing.assert_array_equal(tile.output, row_major.output)


def test_same_config_twice_gives_identical_cycles() -> None:
    cfg = config(**CASES["block_sharded_s2_relu6"])
    first = ttsim.run(cfg, program="pool")
    second = ttsim.run(cfg, program="pool")
    for a, b in zip(first, second):
        assert a.device_kernel_duration_cycles == b.device_kernel_duration_cycles
        assert a.profile.zones == b.profile.zones
    np.testing.assert_array_equal(first[1].output, second[1].output)


def test_subprocess_run_gives_identical_cycles(tmp_path: Path) -> None:
    cfg = config(**CASES["block_sharded_s2_relu6"])
    here = [r.device_kernel_duration_cycles for r in ttsim.run(cfg, program="pool")]
    code = ("import json, sys, ttsim; cfg = json.loads(sys.argv[1]); "
            "print(json.dumps([r.device_kernel_duration_cycles for r in ttsim.run(cfg, program=\"pool\")]))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == here


def test_device_override_runs_blackhole() -> None:
    halo, op = ttsim.run(config(), program="pool", device="blackhole")
    assert op.device == "blackhole"
    assert op.profile.clock_mhz == 1350
    assert op.device_kernel_duration_ns == pytest.approx(op.device_kernel_duration_cycles / 1.35)
    assert op.pcc >= 0.999


@pytest.mark.slow
def test_yolov10_op66_full() -> None:
    halo, op = ttsim.run(ROOT / "configs" / "yolov10_op66.yaml", program="pool")
    assert op.pcc >= 0.999
    assert op.profile.core_count == 50
    assert halo.profile.core_count == 50
    assert op.output.shape == (1, 80, 80, 320)


@pytest.mark.parametrize("program", ["classic", "pool", "depthwise"])
def test_data_movement_context_instance_dicts_keep_within_the_shared_keys(program: str, monkeypatch) -> None:
    """Every data-movement context of a run (readers, writers, weight multicasts, the halo op)
    keeps at most 30 attributes in its instance dict, its own state in DataflowContext's slots
    (past 30 CPython 3.11 makes the dict a plain one; see DataflowContext.__slots__)."""
    import ttsim.host as host
    from ttsim.kernel_api.dataflow import DataflowContext

    made = []
    make = host._make_context

    def recording(*args, **kwargs):
        context = make(*args, **kwargs)
        made.append(context)
        return context

    monkeypatch.setattr(host, "_make_context", recording)
    ttsim.run({"name": "dicts", "conv": {**BASE_CONV, "channels": 64}}, program=program)
    movers = [c for c in made if isinstance(c, DataflowContext)]
    assert movers and max(len(vars(c)) for c in movers) <= 30, sorted(vars(movers[0]))
