"""Uncertainty: preset ranges (schema, coverage), perturbed presets, and the report on one tiny op:
ranges bracket the nominal duration, a zero-width constant changes nothing, a constant the op
depends on moves it, and the ranking / speedup checks against hand-made durations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conv_cases import BASE_CONV
from ttsim.device.spec import DeviceSpec, available_devices, load_device, with_value
from ttsim.errors import ConfigurationError
from ttsim.suite import LayerResult, Outcome, load_suite
from ttsim.uncertainty import _check, analyse_layer, analyse_totals, perturbations, run_perturbed

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("classic", "pool")
# a zero-width constant, constants both programs use, and one only the classic program's weight reads use
CONSTANTS = ("dram.bank_noc_xy", "risc.cb_check_cycles", "compute.sfpu_tile_cycles",
             "noc.interleaved_page_address_cycles")


@pytest.mark.parametrize("name", available_devices())
def test_every_uncertain_constant_has_a_range_with_a_reason(name: str) -> None:
    for dotted, param in load_device(name).params().items():
        if param.confidence == "H":
            continue
        assert param.range is not None, f"{name} {dotted} ({param.confidence}) has no range"
        assert len(param.range.reason) > 10, dotted


def test_a_range_must_bracket_the_value() -> None:
    spec = load_device("wormhole_b0").model_dump()
    spec["noc"]["read_issue_cycles"]["range"] = {"min": 25, "max": 30, "reason": "deliberately wrong"}
    with pytest.raises(ValueError, match=r"noc.read_issue_cycles: value 20.0 outside its range \[25.0, 30.0\]"):
        DeviceSpec.model_validate(spec)
    spec["noc"]["read_issue_cycles"]["range"] = {"min": 20, "max": 20, "reason": "zero width is allowed"}
    DeviceSpec.model_validate(spec)
    sfpu = spec["compute"]["sfpu_tile_cycles"]
    sfpu["range"] = {"min": {**sfpu["value"], "silu": 2000}, "max": sfpu["value"], "reason": "per key"}
    with pytest.raises(ValueError, match="compute.sfpu_tile_cycles: value .* outside its range"):
        DeviceSpec.model_validate(spec)
    sfpu["range"] = {"min": {"silu": 1}, "max": {"silu": 2000}, "reason": "keys must match"}
    with pytest.raises(ValueError, match=r"compute.sfpu_tile_cycles: range keys \['silu'\] / \['silu'\] differ"):
        DeviceSpec.model_validate(spec)


def test_with_value_changes_one_constant_and_names_it() -> None:
    spec = load_device("wormhole_b0")
    changed = with_value(spec, "noc.read_issue_cycles", 16)
    assert changed.name == "wormhole_b0~noc.read_issue_cycles=16"
    assert changed.noc.read_issue_cycles.value == 16 and spec.noc.read_issue_cycles.value == 20
    others = {k: p for k, p in changed.params().items() if k != "noc.read_issue_cycles"}
    assert others == {k: p for k, p in spec.params().items() if k != "noc.read_issue_cycles"}
    with pytest.raises(ConfigurationError, match="no constant 'noc.bogus'"):
        with_value(spec, "noc.bogus", 1)
    sfpu = spec.compute.sfpu_tile_cycles.range.max
    long = with_value(spec, "compute.sfpu_tile_cycles", sfpu)  # a dict value: the name carries a hash
    assert long.name.startswith("wormhole_b0~compute.sfpu_tile_cycles#") and len(long.name) <= 100
    assert long.name != with_value(spec, "compute.sfpu_tile_cycles", spec.compute.sfpu_tile_cycles.range.min).name


def test_perturbations_are_both_ends_of_every_ranged_constant() -> None:
    points = perturbations("wormhole_b0")
    ranged = [k for k, p in load_device("wormhole_b0").params().items() if p.range is not None]
    assert [(c, e) for c, e, _ in points] == [(c, e) for c in ranged for e in ("min", "max")]
    with pytest.raises(ConfigurationError, match="no ranged constant 'chip.clock_mhz'"):
        perturbations("wormhole_b0", ["chip.clock_mhz"])  # an H constant has no range


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unc")
    data = {"name": "tiny", "conv": {**BASE_CONV, "activation": "relu"}}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data))
    suite = load_suite(folder)
    layers, perturbed = run_perturbed(suite, PROGRAMS, None, jobs=2, constants=CONSTANTS)
    return layers, perturbed


def test_ranges_bracket_the_nominal_and_zero_width_changes_nothing(tiny) -> None:
    layers, perturbed = tiny
    (layer,) = layers
    assert len(perturbed) == len(PROGRAMS) * len(CONSTANTS) * 2
    report = analyse_layer(layer, perturbed, PROGRAMS)
    for program in PROGRAMS:
        op = report.ops[program]
        nominal = layer.outcomes[program].device_kernel_duration_ns
        assert op.nominal_ns == nominal
        runs = [perturbed[("tiny", program, c, e)].device_kernel_duration_ns for c in CONSTANTS for e in ("min", "max")]
        assert op.low_ns == min(runs + [nominal]) <= nominal <= op.high_ns == max(runs + [nominal])
        assert op.low_ns < op.high_ns  # the perturbations do move this op
        for end in ("min", "max"):  # zero-width range: the very same cycles
            same = perturbed[("tiny", program, "dram.bank_noc_xy", end)]
            assert same.device_kernel_duration_cycles == layer.outcomes[program].device_kernel_duration_cycles
        assert len(op.movers) == 3 and "dram.bank_noc_xy" not in [m.constant for m in op.movers]
        spreads = [m.spread_ns for m in op.movers]
        assert spreads == sorted(spreads, reverse=True) and spreads[-1] >= 0
        assert not op.failures
    # each CB check costs cycles: its max end slows both programs, its min end speeds them up
    for program in PROGRAMS:
        nominal = layer.outcomes[program].device_kernel_duration_ns
        assert perturbed[("tiny", program, "risc.cb_check_cycles", "min")].device_kernel_duration_ns < nominal
        assert perturbed[("tiny", program, "risc.cb_check_cycles", "max")].device_kernel_duration_ns > nominal


def test_ranking_check_of_the_tiny_op_matches_its_durations(tiny) -> None:
    layers, perturbed = tiny
    report = analyse_layer(layers[0], perturbed, PROGRAMS)
    check = report.check
    nominal = {p: layers[0].outcomes[p].device_kernel_duration_ns for p in PROGRAMS}
    assert check.ranking == tuple(sorted(PROGRAMS, key=nominal.get))
    speedups = [nominal["classic"] / nominal["pool"]] + [
        perturbed[("tiny", "classic", c, e)].device_kernel_duration_ns
        / perturbed[("tiny", "pool", c, e)].device_kernel_duration_ns for c in CONSTANTS for e in ("min", "max")]
    assert check.speedup_range["pool"] == pytest.approx((min(speedups), max(speedups)))
    assert check.speedup_holds["pool"] == (all(s > 1 for s in speedups) or all(s < 1 for s in speedups))
    totals = analyse_totals(layers, perturbed, PROGRAMS)  # one layer, count 1: totals = the layer
    assert totals.band_ns == {p: (report.ops[p].low_ns, report.ops[p].high_ns) for p in PROGRAMS}


def test_checks_on_hand_made_durations() -> None:
    nominal = {"classic": 100.0, "pool": 80.0}
    points = {("a", "min"): {"classic": 90.0, "pool": 85.0},   # pool still faster
              ("a", "max"): {"classic": 110.0, "pool": 120.0},  # order flips
              ("b", "min"): {"classic": 100.0, "pool": None}}   # failed run: not counted
    check = _check(nominal, points, PROGRAMS)
    assert check.ranking == ("pool", "classic")
    assert not check.ranking_holds and check.ranking_breakers == ("a=max",)
    assert check.speedup_range["pool"] == pytest.approx((110 / 120, 100 / 80))
    assert check.speedup_holds == {"pool": False}
    steady = _check(nominal, {("a", "min"): {"classic": 90.0, "pool": 85.0}}, PROGRAMS)
    assert steady.ranking_holds and steady.speedup_holds == {"pool": True}


def test_a_failed_perturbed_run_is_reported_not_raised() -> None:
    layer = LayerResult("x", 1, None, {p: Outcome("x", p, "ok", 100.0) for p in PROGRAMS})
    perturbed = {("x", p, "l1.unreserved_base_bytes", e): Outcome("x", p, "ok", 100.0) for p in PROGRAMS
                 for e in ("min", "max")}
    perturbed[("x", "pool", "l1.unreserved_base_bytes", "max")] = Outcome(
        "x", "pool", "error", error="L1 overflow on core (0,0)", perturbation=("l1.unreserved_base_bytes", "max"))
    report = analyse_layer(layer, perturbed, PROGRAMS)
    assert report.ops["pool"].failures == ("l1.unreserved_base_bytes=max: L1 overflow on core (0,0)",)
    assert report.ops["pool"].movers[0].delta_max_ns is None
    totals = analyse_totals([layer], perturbed, PROGRAMS)
    assert totals.incomplete_points == ("l1.unreserved_base_bytes=max",)


@pytest.mark.slow  # every ranged constant of the preset: 130 runs of a tiny op
def test_cli_uncertainty_on_one_op_writes_the_report(tmp_path: Path) -> None:
    data = {"name": "tiny", "conv": dict(BASE_CONV)}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "ttsim.cli", "run", str(config), "--uncertainty", "--json",
                           str(tmp_path / "u.json")], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    (record,) = json.loads((tmp_path / "u.json").read_text())["suites"]
    (layer,) = record["uncertainty"]["layers"]
    for program in PROGRAMS:
        op = layer["ops"][program]
        assert op["low_ns"] <= op["nominal_ns"] <= op["high_ns"]
    assert "with each ranged preset constant at its min and max" in " ".join(done.stdout.split())


def test_cli_uncertainty_on_chosen_constants(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"name": "tiny", "conv": dict(BASE_CONV)}))
    done = subprocess.run([sys.executable, "-m", "ttsim.cli", "run", str(config), "--uncertainty",
                           "--uncertainty-constants", "risc.cb_check_cycles, dram.bank_noc_xy",
                           "--json", str(tmp_path / "u.json")], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    (record,) = json.loads((tmp_path / "u.json").read_text())["suites"]
    (layer,) = record["uncertainty"]["layers"]
    for program in PROGRAMS:
        op = layer["ops"][program]
        assert op["nominal_ns"] == record["layers"][0]["results"][program]["device_kernel_duration_ns"]
        assert op["low_ns"] < op["nominal_ns"] < op["high_ns"]  # cb checks at 15 and 25 cycles
        assert [m["constant"] for m in op["movers"]] == ["risc.cb_check_cycles", "dram.bank_noc_xy"]
        assert op["movers"][1]["delta_min_ns"] == op["movers"][1]["delta_max_ns"] == 0
    flat = " ".join(done.stdout.split())
    assert "risc.cb_check_cycles" in flat and "holds" in flat


@pytest.mark.parametrize("args, message", [
    (("--uncertainty-constants", "risc.cb_check_cycles"), "--uncertainty-constants needs --uncertainty"),
    (("--uncertainty", "--uncertainty-constants", "chip.clock_mhz"), "no ranged constant 'chip.clock_mhz'"),
])
def test_bad_uncertainty_options_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    from click.testing import CliRunner

    from ttsim.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"name": "tiny", "conv": dict(BASE_CONV)}))
    done = CliRunner().invoke(main, ["run", str(config), *args])
    assert done.exit_code == 2 and done.stderr.startswith("ttsim: error: ") and message in done.stderr
