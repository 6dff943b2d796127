"""The classic program (``OptimizedConvNew``) on the six seed configs against the measured Tracy
DEVICE KERNEL DURATION (``measured.classic_device_kernel_duration_ns``): each within ±15 %, and
the mean absolute error below 15 % (docs/calibration.md, "Classic conv against the six measured
ops").
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import ttsim
from ttsim.config import load_config

pytestmark = pytest.mark.slow

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SEEDS = ("mobilenetv2_op14", "mobilenetv2_op27", "mobilenetv2_op40", "mobilenetv2_op53",
         "yolov10_op66", "yolov10_op79")
BAND = 0.15


def _simulate(name: str) -> tuple[str, float, float, float, str]:
    """(name, simulated ns, measured ns, pcc, op code) of the classic conv op of a seed config."""
    path = CONFIGS / f"{name}.yaml"
    op = ttsim.run(path, program="classic")[1]
    measured = load_config(path).measured.classic_device_kernel_duration_ns
    return name, op.device_kernel_duration_ns, measured, op.pcc, op.op_code


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[float, float, float, str]]:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return {name: rest for name, *rest in pool.map(_simulate, SEEDS)}


def _error(runs, name: str) -> float:
    simulated, measured, _, _ = runs[name]
    return (simulated - measured) / measured


def test_every_seed_config_has_a_measurement() -> None:
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(SEEDS)
    for name in SEEDS:
        assert load_config(CONFIGS / f"{name}.yaml").measured.classic_device_kernel_duration_ns > 0


@pytest.mark.parametrize("name", SEEDS)
def test_classic_duration_within_15_percent(runs, name: str) -> None:
    simulated, measured, pcc, op_code = runs[name]
    assert op_code == "OptimizedConvNew"
    assert pcc >= 0.99
    error = _error(runs, name)
    assert abs(error) <= BAND, f"{name}: simulated {simulated:,.0f} ns vs measured {measured:,.0f} ns ({error:+.1%})"


def test_mean_absolute_error_below_15_percent(runs) -> None:
    mae = sum(abs(_error(runs, name)) for name in SEEDS) / len(SEEDS)
    assert mae < BAND, f"mean absolute error {mae:.1%}"
