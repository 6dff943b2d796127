"""Golden cycle counts (tests/golden/*.json) and ``ttsim check``: the committed goldens cover every
config and program and match the simulator; a doctored golden is a Mismatch (exit 1) or, within
--tolerance, an ApproxMatch (exit 0); --update writes goldens; a missing golden folder exits 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttsim.simulate import run

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
CONFIG_FILES = sorted((REPO / "configs").glob("*.yaml"))
OPS = {"classic": {"HaloDeviceOperation", "OptimizedConvNew"},
       "pool": {"HaloDeviceOperation", "Conv2dDepthwisePool"},
       "depthwise": {"HaloDeviceOperation", "Conv2dDepthwise"}}

SMALL: dict[str, Any] = {
    "name": "golden_small",
    "conv": {"batch": 1, "input_height": 8, "input_width": 8, "channels": 32, "kernel": [3, 3], "stride": [1, 1],
             "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6", "dtype": "bfloat16",
             "weights_dtype": "bfloat16", "memory_layout": "height_sharded", "math_fidelity": "LoFi"},
}


def ttsim_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def check_rows(stdout: str) -> list[dict[str, str]]:
    """The rows of the check table: config, program, OP CODE, golden, simulated, delta, status."""
    rows = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 7 and cells[-1] in ("Match", "ApproxMatch", "Mismatch"):
            rows.append(dict(zip(("config", "program", "op", "golden", "simulated", "delta", "status"), cells)))
    return rows


# -- the committed goldens -------------------------------------------------------------------------------

def test_there_are_configs() -> None:
    assert len(CONFIG_FILES) >= 6


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.stem for p in CONFIG_FILES])
def test_golden_file_covers_the_config(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    golden_path = GOLDEN / f"{config['name']}.json"
    assert golden_path.exists(), f"no golden for {path.name}"
    doc = json.loads(golden_path.read_text())
    assert doc["schema_version"] == 1
    assert doc["config"] == config["name"]
    assert doc["device"] == config.get("device", "wormhole_b0")
    cycles = doc["device_kernel_duration_cycles"]
    assert {program: set(ops) for program, ops in cycles.items()} == OPS
    for ops in cycles.values():
        for value in ops.values():
            assert isinstance(value, int) and value > 0


def test_no_stray_golden_files() -> None:
    names = {yaml.safe_load(p.read_text())["name"] for p in CONFIG_FILES}
    assert {p.stem for p in GOLDEN.glob("*.json")} == names


@pytest.mark.slow
def test_check_all_configs_matches_the_goldens() -> None:
    done = ttsim_cli("check", cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = check_rows(done.stdout)
    names = {yaml.safe_load(p.read_text())["name"] for p in CONFIG_FILES}
    assert len(rows) == 2 * len(OPS) * len(names)
    assert {r["config"] for r in rows} == names
    assert all(r["status"] == "Match" for r in rows), [r for r in rows if r["status"] != "Match"]
    for row in rows:  # the table's golden column is the committed file's value
        golden = json.loads((GOLDEN / f"{row['config']}.json").read_text())["device_kernel_duration_cycles"]
        assert int(row["golden"].replace(",", "")) == golden[row["program"]][row["op"]]
        assert row["simulated"] == row["golden"]


# -- check against temporary goldens of a small config ------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict[str, dict[str, int]]]:
    folder = tmp_path_factory.mktemp("golden")
    path = folder / "golden_small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    cycles: dict[str, dict[str, int]] = {}
    for result in run(SMALL, program="all"):
        cycles.setdefault(result.program, {})[result.op_code] = result.device_kernel_duration_cycles
    assert {p: set(ops) for p, ops in cycles.items()} == OPS
    return path, cycles


def write_golden(folder: Path, cycles: dict[str, dict[str, int]]) -> Path:
    """A golden document as docs/outputs.md describes it."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"schema_version": 1, "config": SMALL["name"], "device": "wormhole_b0",
           "device_kernel_duration_cycles": cycles}
    (folder / f"{SMALL['name']}.json").write_text(json.dumps(doc, indent=2))
    return folder


def doctored(cycles: dict[str, dict[str, int]], factor: float) -> dict[str, dict[str, int]]:
    out = json.loads(json.dumps(cycles))
    out["pool"]["Conv2dDepthwisePool"] = round(out["pool"]["Conv2dDepthwisePool"] * factor)
    return out


def test_exact_golden_matches(small, tmp_path: Path) -> None:
    path, cycles = small
    done = ttsim_cli("check", path, "--golden", write_golden(tmp_path / "g", cycles))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = check_rows(done.stdout)
    assert [(r["program"], r["op"], r["status"]) for r in rows] == [
        ("classic", "HaloDeviceOperation", "Match"), ("classic", "OptimizedConvNew", "Match"),
        ("pool", "HaloDeviceOperation", "Match"), ("pool", "Conv2dDepthwisePool", "Match"),
        ("depthwise", "HaloDeviceOperation", "Match"), ("depthwise", "Conv2dDepthwise", "Match")]
    for r in rows:
        assert int(r["simulated"].replace(",", "")) == cycles[r["program"]][r["op"]]


def test_doctored_golden_is_a_mismatch(small, tmp_path: Path) -> None:
    path, cycles = small
    folder = write_golden(tmp_path / "g", doctored(cycles, 1.05))
    done = ttsim_cli("check", path, "--golden", folder)
    assert done.returncode == 1, done.stdout + done.stderr
    status = {(r["program"], r["op"]): r for r in check_rows(done.stdout)}
    assert status[("pool", "Conv2dDepthwisePool")]["status"] == "Mismatch"
    simulated = cycles["pool"]["Conv2dDepthwisePool"]
    golden = round(simulated * 1.05)
    assert status[("pool", "Conv2dDepthwisePool")]["delta"] == f"{(simulated - golden) / golden:+.2%}"  # ~ -4.76%
    assert [r["status"] for k, r in status.items() if k != ("pool", "Conv2dDepthwisePool")] == ["Match"] * 5
    # a tolerance below the difference is still a Mismatch
    done = ttsim_cli("check", path, "--golden", folder, "--tolerance", "4")
    assert done.returncode == 1
    assert "Mismatch" in {r["status"] for r in check_rows(done.stdout)}


def test_tolerance_turns_it_into_an_approx_match(small, tmp_path: Path) -> None:
    path, cycles = small
    folder = write_golden(tmp_path / "g", doctored(cycles, 1.05))
    done = ttsim_cli("check", path, "--golden", folder, "--tolerance", "6")
    assert done.returncode == 0, done.stdout + done.stderr
    status = {(r["program"], r["op"]): r["status"] for r in check_rows(done.stdout)}
    assert status.pop(("pool", "Conv2dDepthwisePool")) == "ApproxMatch"
    assert set(status.values()) == {"Match"}


def test_config_without_a_golden_is_a_mismatch(small, tmp_path: Path) -> None:
    path, _ = small
    (tmp_path / "empty").mkdir()
    done = ttsim_cli("check", path, "--golden", tmp_path / "empty")
    assert done.returncode == 1
    rows = check_rows(done.stdout)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"Mismatch"}
    assert {r["golden"] for r in rows} == {"-"}


def test_update_writes_the_goldens(small, tmp_path: Path) -> None:
    path, cycles = small
    folder = tmp_path / "new" / "golden"  # created by --update
    done = ttsim_cli("check", path, "--golden", folder, "--update")
    assert done.returncode == 0, done.stdout + done.stderr
    files = list(folder.iterdir())
    assert [f.name for f in files] == [f"{SMALL['name']}.json"]  # no temporary files left behind
    doc = json.loads(files[0].read_text())
    assert doc == {"schema_version": 1, "config": SMALL["name"], "device": "wormhole_b0",
                   "device_kernel_duration_cycles": cycles}
    again = ttsim_cli("check", path, "--golden", folder)
    assert again.returncode == 0
    assert {r["status"] for r in check_rows(again.stdout)} == {"Match"}


def test_update_overwrites_a_doctored_golden(small, tmp_path: Path) -> None:
    path, cycles = small
    folder = write_golden(tmp_path / "g", doctored(cycles, 2.0))
    assert ttsim_cli("check", path, "--golden", folder, "--update").returncode == 0
    assert json.loads((folder / f"{SMALL['name']}.json").read_text())["device_kernel_duration_cycles"] == cycles


@pytest.mark.parametrize("args, pattern", [
    (("--golden", "{tmp}/does_not_exist"), r"golden folder .*does_not_exist does not exist"),
    (("--golden", "{golden}", "--tolerance", "-1"), r"--tolerance must be >= 0"),
], ids=["missing-folder", "negative-tolerance"])
def test_bad_input_exits_2(small, tmp_path: Path, args, pattern: str) -> None:
    path, cycles = small
    golden = write_golden(tmp_path / "g", cycles)
    args = [a.format(tmp=tmp_path, golden=golden) for a in args]
    done = ttsim_cli("check", path, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ttsim: error:"), done.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "does_not_exist").exists()
