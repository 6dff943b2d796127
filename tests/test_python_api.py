"""The Python API as users expect it: ``ttsim.run`` defaults to the programs the CLI runs, results
print as one short line, every duration is a property named as in the profiler, and the
package ships its ``py.typed`` marker."""

from __future__ import annotations

import inspect
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import ttsim
from ttsim.cli import run_command
from ttsim.device.core import Risc
from ttsim.device.profiler import OpProfile
from ttsim.programs import registry
from ttsim.results import OpResult

ROOT = Path(__file__).resolve().parents[1]
SMALL: dict[str, Any] = {"name": "api", "conv": {
    "batch": 1, "input_height": 8, "input_width": 8, "channels": 32, "kernel": [3, 3],
    "stride": [1, 1], "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6",
    "dtype": "bfloat16", "weights_dtype": "bfloat16", "memory_layout": "height_sharded",
    "math_fidelity": "LoFi"}}


@pytest.fixture(scope="module")
def results() -> list[OpResult]:
    return ttsim.run(SMALL)


def test_run_defaults_to_the_clis_programs(results: list[OpResult]) -> None:
    cli_default = next(p.default for p in run_command.params if p.name == "program")
    assert inspect.signature(ttsim.run).parameters["program"].default == cli_default == "all"
    assert [r.program for r in results] == [name for name in registry.names() for _ in range(2)]


def test_results_have_a_short_repr(results: list[OpResult]) -> None:
    conv = results[1]
    assert conv.output is not None and conv.output.size > 1000  # a repr of the fields would be long
    text = repr(conv)
    assert len(text) < 250, text
    assert text.startswith("OpResult(config='api', program='classic', op_code='OptimizedConvNew'")
    assert f"device_kernel_duration_ns={conv.device_kernel_duration_ns:.0f}" in text
    assert f"pcc={conv.pcc:.6f}" in text
    assert "pcc" not in repr(results[0])  # the halo op has no numerics
    assert len(repr(results)) < 250 * len(results)
    assert len(repr(conv.profile)) < 200 and "OptimizedConvNew" in repr(conv.profile)


@pytest.mark.parametrize("owner", [OpResult, OpProfile])
def test_durations_are_all_properties(owner: type) -> None:
    for name in ("device_kernel_duration_cycles", "device_kernel_duration_ns", "risc_duration_cycles",
                 "risc_duration_ns"):
        assert isinstance(inspect.getattr_static(owner, name), property), name


def test_risc_durations_follow_the_first_last_rule(results: list[OpResult]) -> None:
    for result in results:
        profile = result.profile
        cycles, ns = result.risc_duration_cycles, result.risc_duration_ns
        assert set(cycles) == set(ns) == set(Risc)
        for risc in Risc:
            zones = [z for z in profile.zones if z.risc == risc]
            expected = round(max(z.end for z in zones) - min(z.start for z in zones)) if zones else 0
            assert cycles[risc] == expected
            assert ns[risc] == pytest.approx(expected * 1000.0 / profile.clock_mhz)
            assert cycles[risc] <= result.device_kernel_duration_cycles
        assert result.device_kernel_duration_ns == pytest.approx(
            result.device_kernel_duration_cycles * 1000.0 / profile.clock_mhz)
    conv = results[1]
    assert all(conv.risc_duration_cycles[r] > 0 for r in (Risc.BRISC, Risc.NCRISC, Risc.TRISC1))
    assert results[0].risc_duration_cycles[Risc.TRISC1] == 0  # the halo op computes nothing


def test_the_package_is_marked_typed() -> None:
    assert (resources.files("ttsim") / "py.typed").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["ttsim"]
