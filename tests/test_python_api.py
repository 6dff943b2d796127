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


def test_the_programs_of_a_run_share_its_inputs_and_each_distinct_reference(
        results: list[OpResult], monkeypatch: pytest.MonkeyPatch) -> None:
    """A run draws the inputs once for all its programs and computes the float64 reference once
    per distinct (weights, bias) the programs see; each program's output, inputs and PCC are
    those of running it alone."""
    import ttsim.simulate as simulate
    from ttsim.numerics import depthwise_conv2d_reference, pcc

    calls = []
    real = simulate.depthwise_conv2d_reference
    monkeypatch.setattr(simulate, "depthwise_conv2d_reference", lambda *a: calls.append(a) or real(*a))
    shared = ttsim.run(SMALL)
    convs = [r for r in shared if r.inputs is not None]
    distinct = {(r.inputs["weight"].tobytes(), r.inputs["bias"].tobytes()) for r in convs}
    assert len(calls) == len(distinct) < len(convs)  # pool and depthwise see the same weights
    assert all(r.inputs["input"] is convs[0].inputs["input"] for r in convs)
    assert not convs[0].inputs["input"].flags.writeable
    alone = [r for r in results if r.inputs is not None]  # the module's run, every program
    for name, mine in zip(registry.names(), convs):
        solo = [r for r in ttsim.run(SMALL, program=name) if r.inputs is not None][0]
        assert mine.output.tobytes() == solo.output.tobytes()
        assert mine.inputs["weight"].tobytes() == solo.inputs["weight"].tobytes()
        assert mine.pcc == solo.pcc
        reference = depthwise_conv2d_reference(solo.inputs["input"].astype("float64"),
                                               solo.inputs["weight"].astype("float64"),
                                               solo.inputs["bias"].astype("float64"),
                                               (1, 1), (1, 1), (1, 1), "relu6")
        assert mine.pcc == pcc(solo.output, reference)
    assert [r.pcc for r in alone] == [r.pcc for r in convs]
