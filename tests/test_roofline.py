"""The roofline (ttsim.programs.roofline): the per-engine bound against hand-computed figures from the
preset, and no program below its bound (small convs here; the six seed ops, slow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ttsim
from ttsim.device.spec import load_device

from conv_cases import BASE_CONV

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("classic", "pool", "depthwise")
SMALL: dict[str, dict[str, Any]] = {
    "hs_silu": {"activation": "silu", "math_fidelity": "LoFi"},
    "bs_relu6_s2": {"memory_layout": "block_sharded", "channels": 96, "input_height": 16, "input_width": 16,
                    "stride": [2, 2], "activation": "relu6"},
    "k5_bfp8": {"kernel": [5, 5], "padding": [2, 2], "weights_dtype": "bfloat8_b", "dtype": "bfloat8_b"},
}


def test_engines_of_one_tile_per_core_from_the_preset() -> None:
    """8 x 8 x 32, 3 x 3, HS on 2 cores: the busiest core has 32 sticks x 32 channels = one tile."""
    spec = load_device("wormhole_b0")
    c = spec.compute
    op = ttsim.run({"name": "t", "conv": {**BASE_CONV, **SMALL["hs_silu"]}}, program="depthwise")[1]
    roof = op.info["roofline"]
    assert roof.engines["unpack"] == pytest.approx(9 * 2048 / c.unpack_bytes_per_cycle.value)
    assert roof.engines["fpu"] == pytest.approx(9 * c.eltwise_mul_tile_cycles_per_phase.value * 1)
    assert roof.engines["sfpu"] == pytest.approx(c.sfpu_tile_cycles.value["silu"])
    assert roof.engines["pack"] == pytest.approx(2048 / c.pack_bytes_per_cycle.value)
    assert roof.binding == "sfpu"
    assert roof.bound_cycles == pytest.approx(c.sfpu_tile_cycles.value["silu"])


def test_relu6_costs_no_sfpu_and_fidelity_scales_the_fpu() -> None:
    conv = {**BASE_CONV, "activation": "relu6", "math_fidelity": "HiFi4"}
    roof = ttsim.run({"name": "t", "conv": conv}, program="depthwise")[1].info["roofline"]
    assert roof.engines["sfpu"] == 0
    assert roof.engines["fpu"] == pytest.approx(9 * 8 * 4)
    assert roof.binding == "unpack"


@pytest.mark.parametrize("case", list(SMALL))
@pytest.mark.parametrize("program", PROGRAMS)
def test_no_program_beats_its_roofline(case: str, program: str) -> None:
    for op in ttsim.run({"name": case, "conv": {**BASE_CONV, **SMALL[case]}}, program=program):
        roof = op.info["roofline"]
        assert 0 < roof.bound_cycles <= op.device_kernel_duration_cycles, (op.op_code, roof.engines)


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_no_program_beats_its_roofline_on_the_seed_ops(path: Path) -> None:
    for op in ttsim.run(path, program="all"):
        roof = op.info["roofline"]
        assert roof.bound_cycles <= op.device_kernel_duration_cycles, (op.program, op.op_code, roof.engines)
