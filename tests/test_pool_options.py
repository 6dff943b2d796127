"""The branch's TODO fixes as options of the pool program: each alone (and all together) gives
the default program's output, and each removes the cost it targets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ttsim

from conv_cases import BASE_CONV, assert_traced_run_matches

CONV = {**BASE_CONV, "channels": 64, "activation": "silu"}
OPTIONS: dict[str, dict[str, Any]] = {
    "sfpu_valid_row": {"sfpu_valid_row": True},
    "dst_batch": {"dst_batch": 4},
    "fused_mul_reduce": {"fused_mul_reduce": True},
    "minimal_reconfig": {"minimal_reconfig": True},
    "all": {"sfpu_valid_row": True, "dst_batch": 4, "fused_mul_reduce": True, "minimal_reconfig": True,
            "packer_relu": True},
}


def run(conv: dict[str, Any], options: dict[str, Any]):
    return ttsim.run({"name": "t", "conv": conv, "pool": options}, program="pool")[1]


@pytest.fixture(scope="module")
def default():
    return run(CONV, {})


@pytest.mark.parametrize("name", list(OPTIONS))
def test_option_keeps_the_output_and_is_faster(default, name: str) -> None:
    op = run(CONV, OPTIONS[name])
    np.testing.assert_array_equal(op.output, default.output)
    assert op.device_kernel_duration_cycles < default.device_kernel_duration_cycles


def test_sfpu_on_the_valid_row_halves_the_sfpu_work(default) -> None:
    """8 x 8 outputs over 2 cores: 32 sticks of 2 channel tiles per core, each tile's SiLU
    (1432 cycles in the wormhole_b0 preset) done on half the tile."""
    op = run(CONV, OPTIONS["sfpu_valid_row"])
    saved = default.device_kernel_duration_cycles - op.device_kernel_duration_cycles
    assert saved == pytest.approx(32 * 2 * 1432 / 2, rel=0.05)


@pytest.mark.parametrize("activation", ["relu", "relu6"])
def test_relu_in_the_packer_equals_relu_on_the_sfpu(activation: str) -> None:
    conv = {**CONV, "activation": activation, "output_layout": "row_major"}
    sfpu, packer = run(conv, {}), run(conv, {"packer_relu": True})
    np.testing.assert_array_equal(packer.output, sfpu.output)
    assert packer.device_kernel_duration_cycles < sfpu.device_kernel_duration_cycles


def test_fused_multiply_reduce_with_bfp8_weights_and_a_7x7_window() -> None:
    conv = {**CONV, "kernel": [7, 7], "padding": [3, 3], "weights_dtype": "bfloat8_b", "input_height": 10,
            "input_width": 9, "channels": 96, "activation": "none"}
    plain, fused = run(conv, {}), run(conv, {"fused_mul_reduce": True})
    np.testing.assert_array_equal(fused.output, plain.output)
    np.testing.assert_array_equal(fused.inputs["weight"], plain.inputs["weight"])


@pytest.mark.parametrize("options", ["default", "all"])
@pytest.mark.parametrize("activation", ["silu", "relu6"])
def test_traced_and_untraced_runs_charge_the_same_cycles(options: str, activation: str) -> None:
    """Untraced, the compute and CB calls charge their threads inline (the hot path); traced (every
    core), through the helpers that also record the timeline: every kernel zone, stall and busy
    cycle of every core and RISC, every CB statistic and the output are the same."""
    cfg = {"name": "t", "conv": {**CONV, "activation": activation},
           "pool": OPTIONS[options] if options != "default" else {}}
    plain = ttsim.run(cfg, program="pool")
    traced = ttsim.run(cfg, program="pool", trace=True)
    assert_traced_run_matches(plain, traced)
