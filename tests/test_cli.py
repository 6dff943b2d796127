"""The ``ttsim`` command line, run as a subprocess: tables, the JSON report, and one clear
message with exit status 2 for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

RISCS = ("BRISC", "NCRISC", "TRISC0", "TRISC1", "TRISC2")
OP_KEYS = {"config", "op_code", "program", "device_kernel_duration_ns",
           "device_kernel_duration_cycles", "risc_duration_ns", "core_count", "pcc"}

SMALL_CONV: dict[str, Any] = {
    "batch": 1, "input_height": 8, "input_width": 8, "channels": 32, "kernel": [3, 3],
    "stride": [1, 1], "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6",
    "dtype": "bfloat16", "weights_dtype": "bfloat16", "memory_layout": "height_sharded",
    "math_fidelity": "LoFi",
}


def write_config(folder: Path, name: str, **conv_overrides: Any) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "conv": {**SMALL_CONV, **conv_overrides}}))
    return path


def ttsim_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}  # rich wraps tables to the terminal width
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def small(folder: Path) -> Path:
    return write_config(folder, "small")


@pytest.fixture(scope="module")
def good_run(folder: Path, small: Path):
    json_path = folder / "report.json"
    done = ttsim_cli("run", small, "--program", "pool", "--json", json_path)
    return done, json_path


def test_run_prints_the_table(good_run) -> None:
    done, json_path = good_run
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "OP CODE" in out and "DEVICE KERNEL" in out and "DURATION" in out
    assert "HaloDeviceOperation" in out and "Conv2dDepthwisePool" in out
    assert "small on wormhole_b0 @ 1000 MHz" in out
    for risc in RISCS:
        assert risc in out
    # the durations in the table are the ones in the report
    report = json.loads(json_path.read_text())
    for op in report["ops"]:
        assert f"{op['device_kernel_duration_cycles']:,}" in out
    assert done.stderr == ""


def test_json_report_schema(good_run) -> None:
    done, json_path = good_run
    assert done.returncode == 0, done.stderr
    report = json.loads(json_path.read_text())
    assert report["schema_version"] == 1
    assert report["device"] == "wormhole_b0" and report["clock_mhz"] == 1000
    halo, conv = report["ops"]
    assert [halo["op_code"], conv["op_code"]] == ["HaloDeviceOperation", "Conv2dDepthwisePool"]
    for op in (halo, conv):
        assert OP_KEYS <= set(op)
        assert op["config"] == "small" and op["program"] == "pool"
        assert isinstance(op["device_kernel_duration_cycles"], int)
        assert op["device_kernel_duration_cycles"] > 0
        assert op["device_kernel_duration_ns"] == op["device_kernel_duration_cycles"]  # 1000 MHz
        assert set(op["risc_duration_ns"]) == set(RISCS)
        assert all(0 <= v <= op["device_kernel_duration_ns"] for v in op["risc_duration_ns"].values())
        assert op["core_count"] == 2  # 64 sticks, 32 per core
    assert halo["pcc"] is None
    assert conv["pcc"] >= 0.999
    assert all(conv["risc_duration_ns"][r] > 0 for r in RISCS)
    assert halo["risc_duration_ns"]["BRISC"] > 0 and halo["risc_duration_ns"]["TRISC1"] == 0


def test_blackhole_device_reports_1350_mhz(folder: Path, small: Path) -> None:
    json_path = folder / "bh.json"
    done = ttsim_cli("run", small, "--program", "pool", "--device", "blackhole", "--json", json_path)
    assert done.returncode == 0, done.stderr
    assert "small on blackhole @ 1350 MHz" in done.stdout
    report = json.loads(json_path.read_text())
    assert report["device"] == "blackhole" and report["clock_mhz"] == 1350
    for op in report["ops"]:
        assert op["device_kernel_duration_ns"] == pytest.approx(
            op["device_kernel_duration_cycles"] / 1.35)


# -- bad inputs: exit 2, one clear message, no traceback ---------------------------------------

# (case id) -> (how to build the argv in a folder, substrings the message must contain)
def _bad_cases(folder: Path) -> dict[str, tuple[list, list[str]]]:
    unknown_key = folder / "unknown_key.yaml"
    unknown_key.write_text(yaml.safe_dump({"name": "u", "conv": {**SMALL_CONV, "groups": 4}}))
    bad_value = write_config(folder, "bad_value", activation="tanh")
    impossible = write_config(folder, "impossible", input_height=4, input_width=4, kernel=[7, 7],
                              padding=[1, 1])
    # one core holds all 16 sticks: conv_input 32 sticks and halo_output the 6 x 6 padded image,
    # 32 KiB per stick -> (32 + 36) * 32,768 - 1,379,328 usable = 848,896 B over
    overflow = write_config(folder, "overflow", input_height=4, input_width=4, channels=16384)
    small = write_config(folder, "small_bad_cases")
    return {
        "missing_file": (["run", folder / "nope.yaml"], ["nope.yaml", "config file not found"]),
        "unknown_key": (["run", unknown_key], ["unknown key 'conv.groups'"]),
        "bad_value": (["run", bad_value], ["conv.activation", "'tanh'"]),
        "impossible_shape": (["run", impossible],
                             ["conv.kernel", "dilated kernel height 7", "padded input height 6"]),
        "unknown_device": (["run", small, "--device", "grayskull"],
                           ["unknown device 'grayskull'", "blackhole", "wormhole_b0"]),
        "unknown_program": (["run", small, "--program", "matmul"],
                            ["unknown program 'matmul'", "pool"]),
        "l1_overflow": (["run", overflow, "--program", "pool"],
                        ["L1 overflow", "'halo_output'", "(848,896 B over)"]),
        "json_into_missing_folder": (["run", small, "--program", "pool", "--json",
                                      folder / "no_such_dir" / "out.json"],
                                     ["no_such_dir", "does not exist"]),
        "second_config_bad": (["run", small, folder / "nope2.yaml", "--program", "pool",
                               "--json", folder / "partial.json"], ["nope2.yaml"]),
    }


@pytest.fixture(scope="module")
def bad_runs(folder: Path) -> dict[str, tuple[subprocess.CompletedProcess, list[str]]]:
    cases = _bad_cases(folder)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(ttsim_cli, *argv, cwd=folder) for name, (argv, _) in cases.items()}
        return {name: (futures[name].result(), cases[name][1]) for name in cases}


@pytest.mark.parametrize("case", ["missing_file", "unknown_key", "bad_value", "impossible_shape",
                                  "unknown_device", "unknown_program", "l1_overflow",
                                  "json_into_missing_folder", "second_config_bad"])
def test_bad_input_exits_2_with_one_clear_message(bad_runs, case: str) -> None:
    done, needles = bad_runs[case]
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert done.stderr.startswith("ttsim: error: ")
    assert done.stderr.count("ttsim: error:") == 1
    for needle in needles:
        assert needle in done.stderr, (needle, done.stderr)


def test_failed_runs_write_no_json(bad_runs, folder: Path) -> None:
    assert bad_runs["json_into_missing_folder"][0].returncode == 2
    assert not (folder / "no_such_dir").exists()
    assert bad_runs["second_config_bad"][0].returncode == 2
    assert not (folder / "partial.json").exists()
    assert not list(folder.glob(".*.tmp"))  # no temporary file left behind


def test_missing_argument_is_a_usage_error(folder: Path) -> None:
    done = ttsim_cli("run", cwd=folder)
    assert done.returncode == 2
    assert "Missing argument" in done.stderr and "Traceback" not in done.stderr
