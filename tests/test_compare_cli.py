"""``ttsim compare`` as a subprocess: the classic vs pool table, the JSON document (schema 1) and
one clear message with exit status 2 for a bad config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import ttsim

SMALL_CONV: dict[str, Any] = {
    "batch": 1, "input_height": 8, "input_width": 8, "channels": 32, "kernel": [3, 3],
    "stride": [1, 1], "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6",
    "dtype": "bfloat16", "weights_dtype": "bfloat16", "memory_layout": "height_sharded",
    "math_fidelity": "LoFi",
}
MEASURED_NS = 4321.0
OP_KEYS = {"config", "device", "classic_device_kernel_duration_ns", "pool_device_kernel_duration_ns",
           "speedup_classic_over_pool", "measured_classic_device_kernel_duration_ns", "classic_error",
           "classic_pcc", "pool_pcc", "depthwise_device_kernel_duration_ns", "speedup_classic_over_depthwise",
           "depthwise_pcc", "roofline"}


def write_config(folder: Path, name: str, measured: float | None = None, **conv: Any) -> Path:
    data: dict[str, Any] = {"name": name, "conv": {**SMALL_CONV, **conv}}
    if measured is not None:
        data["measured"] = {"classic_device_kernel_duration_ns": measured}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def ttsim_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compare")


@pytest.fixture(scope="module")
def configs(folder: Path) -> tuple[Path, Path]:
    measured = write_config(folder, "with_measured", measured=MEASURED_NS)
    plain = write_config(folder, "without_measured", memory_layout="block_sharded", channels=64,
                         input_height=16, input_width=16, activation="silu")
    return measured, plain


@pytest.fixture(scope="module")
def good(folder: Path, configs: tuple[Path, Path]):
    json_path = folder / "compare.json"
    done = ttsim_cli("compare", *configs, "--json", json_path)
    return done, json_path


@pytest.fixture(scope="module")
def in_process(configs: tuple[Path, Path]) -> dict[str, list]:
    """The same runs through the Python API (the simulation is deterministic)."""
    return {path.stem: ttsim.run(path, program="all") for path in configs}


def test_compare_exits_0_and_shows_both_configs(good, in_process) -> None:
    done, _ = good
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert "with_measured" in out and "without_measured" in out
    assert "classic" in out and "pool" in out and "speedup" in out
    for results in in_process.values():
        classic, pool = results[1], results[3]
        assert f"{classic.device_kernel_duration_ns:,.0f}" in out
        assert f"{pool.device_kernel_duration_ns:,.0f}" in out
        assert f"{classic.device_kernel_duration_ns / pool.device_kernel_duration_ns:.2f}x" in out
    assert f"{MEASURED_NS:,.0f}" in out
    assert "mean absolute error" in out


def test_compare_json_document(good, in_process) -> None:
    done, json_path = good
    assert done.returncode == 0, done.stderr
    doc = json.loads(json_path.read_text())
    assert set(doc) == {"schema_version", "ops", "classic_mean_absolute_error", "timing_only"}
    assert doc["timing_only"] is False
    assert doc["schema_version"] == 1
    assert [op["config"] for op in doc["ops"]] == ["with_measured", "without_measured"]
    for op in doc["ops"]:
        assert set(op) == OP_KEYS
        assert op["device"] == "wormhole_b0"
        results = in_process[op["config"]]
        assert op["classic_device_kernel_duration_ns"] == results[1].device_kernel_duration_ns
        assert op["pool_device_kernel_duration_ns"] == results[3].device_kernel_duration_ns
        assert op["speedup_classic_over_pool"] == pytest.approx(
            op["classic_device_kernel_duration_ns"] / op["pool_device_kernel_duration_ns"], rel=1e-12)
        assert op["classic_pcc"] >= 0.999 and op["pool_pcc"] >= 0.999
        assert op["depthwise_device_kernel_duration_ns"] == results[5].device_kernel_duration_ns
        assert op["speedup_classic_over_depthwise"] == pytest.approx(
            op["classic_device_kernel_duration_ns"] / op["depthwise_device_kernel_duration_ns"], rel=1e-12)
        for program, result in zip(("classic", "pool", "depthwise"), (results[1], results[3], results[5])):
            roof = op["roofline"][program]
            assert 0 < roof["bound_ns"] <= result.device_kernel_duration_ns
            assert roof["achieved_fraction"] == pytest.approx(roof["bound_ns"] / result.device_kernel_duration_ns)
    with_measured, without = doc["ops"]
    assert with_measured["measured_classic_device_kernel_duration_ns"] == MEASURED_NS
    error = (with_measured["classic_device_kernel_duration_ns"] - MEASURED_NS) / MEASURED_NS
    assert with_measured["classic_error"] == pytest.approx(error, rel=1e-12)
    assert without["measured_classic_device_kernel_duration_ns"] is None
    assert without["classic_error"] is None
    # only the op with a measurement counts
    assert doc["classic_mean_absolute_error"] == pytest.approx(abs(error), rel=1e-12)


def test_compare_without_any_measurement_has_no_mean_error(folder: Path, configs) -> None:
    json_path = folder / "plain.json"
    done = ttsim_cli("compare", configs[1], "--json", json_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(json_path.read_text())
    assert doc["classic_mean_absolute_error"] is None
    assert "mean absolute error" not in done.stdout


@pytest.mark.parametrize(("conv", "needles"), [
    ({"activation": "tanh"}, ["conv.activation", "'tanh'"]),
    ({"output_layout": "row_major"}, ["output_layout"]),  # valid config the classic program cannot run
])
def test_bad_config_exits_2_with_one_line(folder: Path, configs, conv: dict[str, Any],
                                          needles: list[str]) -> None:
    bad = write_config(folder, "bad_" + "_".join(conv), **conv)
    json_path = folder / f"{bad.stem}.json"
    done = ttsim_cli("compare", configs[0], bad, "--json", json_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert done.stderr.startswith("ttsim: error: ")
    assert done.stderr.strip().count("\n") == 0
    for needle in needles:
        assert needle in done.stderr, (needle, done.stderr)
    assert not json_path.exists()  # nothing half-written


def test_missing_config_file_exits_2(folder: Path) -> None:
    done = ttsim_cli("compare", folder / "nope.yaml")
    assert done.returncode == 2
    assert done.stderr.startswith("ttsim: error: ") and "nope.yaml" in done.stderr
    assert "Traceback" not in done.stderr
