"""``timing_only`` runs (``ttsim.run(..., timing_only=True)``, ``--timing-only``): the same
profile as a run with numerics, cycle for cycle and zone for zone, with no output, reference or
PCC, every report saying so; and the start-up a command pays (``import ttsim``, ``--help``,
timing-only runs never import ml_dtypes or the simulator stack they do not need)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import ttsim
from ttsim.programs import registry
from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.errors import TtsimError
from ttsim.formats import DataFormat
from ttsim.host import Program, run_program

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
CONFIG_FILES = sorted((REPO / "configs").glob("*.yaml"))

SMALL: dict[str, Any] = {
    "name": "timing_small",
    "conv": {"batch": 1, "input_height": 12, "input_width": 12, "channels": 64, "kernel": [3, 3],
             "stride": [1, 1], "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6",
             "dtype": "bfloat16", "weights_dtype": "bfloat16", "memory_layout": "height_sharded",
             "math_fidelity": "HiFi4"},
}
BLOCK_SHARDED = {**SMALL, "name": "timing_block",
                 "conv": {**SMALL["conv"], "channels": 96, "memory_layout": "block_sharded",
                          "dtype": "bfloat8_b", "weights_dtype": "bfloat8_b", "activation": "relu",
                          "math_fidelity": "LoFi"}}


def _profile_view(result: ttsim.OpResult) -> dict[str, Any]:
    """Everything the profiler recorded of one op, as comparable plain data."""
    p = result.profile
    return {"zones": [(z.core, z.risc, z.kernel, z.start, z.end) for z in p.zones],
            "busy": p.busy, "blocked": p.blocked, "cbs": p.cbs, "l1": p.l1_used_bytes,
            "cycles": result.device_kernel_duration_cycles}


@pytest.mark.parametrize("config", [SMALL, BLOCK_SHARDED], ids=["height-sharded", "block-sharded"])
@pytest.mark.parametrize("program", ["pool", "classic"])
def test_timing_only_profiles_equal_a_run_with_numerics(config: dict, program: str) -> None:
    full = ttsim.run(config, program=program)
    timing = ttsim.run(config, program=program, timing_only=True)
    assert [r.op_code for r in timing] == [r.op_code for r in full]
    for a, b in zip(full, timing):
        assert _profile_view(b) == _profile_view(a)
    conv_full, conv_timing = full[-1], timing[-1]
    assert conv_full.pcc is not None and conv_full.pcc > 0.99 and conv_full.output is not None
    assert conv_timing.pcc is None and conv_timing.output is None
    assert all(r.timing_only for r in timing) and not any(r.timing_only for r in full)


@pytest.mark.parametrize("config", [SMALL, BLOCK_SHARDED], ids=["height-sharded", "block-sharded"])
@pytest.mark.parametrize("options", [{}, {"srcb_reuse": True}, {"packer_relu": False}],
                         ids=["standard", "srcb-reuse", "sfpu-relu"])
def test_depthwise_timing_only_profiles_equal_a_run_with_numerics(config: dict, options: dict) -> None:
    """The depthwise program's variants (the custom LLK mul_tiles_srcb_held among them) under
    timing_only: no tile values are read, the profile is the one a run with numerics records."""
    config = {**config, "depthwise": options}
    full = ttsim.run(config, program="depthwise")
    timing = ttsim.run(config, program="depthwise", timing_only=True)
    for a, b in zip(full, timing, strict=True):
        assert _profile_view(b) == _profile_view(a)
    assert full[-1].pcc is not None and full[-1].pcc > 0.99 and timing[-1].pcc is None


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.stem for p in CONFIG_FILES])
def test_timing_only_seed_ops_match_the_goldens(path: Path) -> None:
    name = yaml.safe_load(path.read_text())["name"]
    golden = json.loads((GOLDEN / f"{name}.json").read_text())["device_kernel_duration_cycles"]
    got: dict[str, dict[str, int]] = {}
    for result in ttsim.run(path, program="all", timing_only=True):
        got.setdefault(result.program, {})[result.op_code] = result.device_kernel_duration_cycles
    assert got == golden


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=REPO)


def test_import_ttsim_loads_nothing_heavy() -> None:
    """``import ttsim`` defers the simulator: no numpy, SimPy, pydantic or ml_dtypes until used."""
    done = _python("import sys, ttsim\n"
                   "print(sorted(m for m in ('numpy', 'simpy', 'pydantic', 'ml_dtypes', 'rich', 'yaml')"
                   " if m in sys.modules))\n"
                   "assert callable(ttsim.run) and ttsim.OpResult.__name__ == 'OpResult'")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_help_loads_no_simulator() -> None:
    done = _python("import sys\nfrom ttsim.cli import main\nsys.argv = ['ttsim', '--help']\n"
                   "try:\n    main()\nexcept SystemExit:\n    pass\n"
                   "print(sorted(m for m in ('numpy', 'simpy', 'pydantic', 'ml_dtypes') if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_an_op_config_run_on_the_command_line_loads_no_suite_machinery() -> None:
    """``ttsim run CONFIG`` (and ``compare``) on an op config import neither the suite / uncertainty
    commands (rich progress, plots) nor another program's builder."""
    for command in (["run", "--program", "depthwise"], ["compare"]):
        done = _python("import sys\nfrom ttsim.cli import main\n"
                       f"sys.argv = ['ttsim', {command[0]!r}, 'configs/mobilenetv2_op53.yaml', "
                       f"*{command[1:]!r}, '--timing-only', '--jobs', '1']\n"
                       "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
                       "print(sorted(m for m in ('ttsim.suite_cli', 'ttsim.uncertainty', 'ttsim.report.plot',\n"
                       "                         'ttsim.sweep', 'ttsim.report.suite', 'rich.progress',\n"
                       "                         'ttsim.programs.classic_conv') if m in sys.modules))")
        assert done.returncode == 0, done.stderr
        # compare draws a progress bar over its configs and compares against classic
        expected = "[]" if command[0] == "run" else "['rich.progress', 'ttsim.programs.classic_conv']"
        assert done.stdout.strip().splitlines()[-1] == expected, command


@pytest.mark.parametrize("activation", ["relu6", "silu"])  # silu: the SFPU from the pack thread too
def test_timing_only_run_never_imports_ml_dtypes(activation: str) -> None:
    config = {**SMALL, "conv": {**SMALL["conv"], "activation": activation}}
    done = _python(f"import sys, ttsim\nr = ttsim.run({config!r}, program='all', timing_only=True)\n"
                   "print('ml_dtypes' in sys.modules, r[-1].device_kernel_duration_cycles > 0)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


# -- every output says it ----------------------------------------------------------------------------

def ttsim_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


@pytest.fixture()
def small_config(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


def test_run_timing_only_says_so_in_the_table_json_and_csv(small_config: Path, tmp_path: Path) -> None:
    done = ttsim_cli("run", small_config, "--timing-only", "--json", "r.json", "--csv", "r.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # tables wrap long titles
    assert "timing only: no numerics, PCC not computed" in text
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["timing_only"] is True
    assert [op["timing_only"] for op in doc["ops"]] == [True] * (2 * len(registry.names()))
    assert all(op["pcc"] is None for op in doc["ops"])
    rows = [row for program in registry.names()  # one CSV per program
            for row in csv.DictReader(io.StringIO((tmp_path / f"r_{program}.csv").read_text()))]
    assert len(rows) == 2 * len(registry.names()) and all("'ttsim_timing_only': 'true'}" in row["ATTRIBUTES"] for row in rows)
    # the same cycles as the run with numerics, whose reports say numerics ran
    full = ttsim_cli("run", small_config, "--json", "f.json", "--csv", "f.csv", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    assert "timing only" not in full.stdout
    full_doc = json.loads((tmp_path / "f.json").read_text())
    assert full_doc["timing_only"] is False and not any(op["timing_only"] for op in full_doc["ops"])
    assert [op["device_kernel_duration_cycles"] for op in full_doc["ops"]] == \
           [op["device_kernel_duration_cycles"] for op in doc["ops"]]
    assert not any("ttsim_timing_only" in row["ATTRIBUTES"] for program in ("classic", "pool")
                   for row in csv.DictReader(io.StringIO((tmp_path / f"f_{program}.csv").read_text())))


def test_compare_timing_only_says_so(small_config: Path, tmp_path: Path) -> None:
    done = ttsim_cli("compare", small_config, "--timing-only", "--json", "c.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "timing only: no numerics, PCC not computed" in " ".join(done.stdout.split())
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["timing_only"] is True


def test_sweep_timing_only_says_so_in_the_csv(small_config: Path, tmp_path: Path) -> None:
    done = ttsim_cli("sweep", small_config, "--param", "conv.channels=32,64", "--timing-only",
                     "--workers", "1", "--out", "s.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert all(r["pcc"] == "not computed (timing only)" for r in rows)
    assert "timing only: no numerics, PCC not computed" in " ".join(done.stdout.split())
    # the same sweep with numerics does not resume from the timing-only rows: it runs its points
    again = ttsim_cli("sweep", small_config, "--param", "conv.channels=32,64", "--workers", "1", "--out", "s.csv",
                      cwd=tmp_path)
    assert again.returncode == 0, again.stderr + again.stdout
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert len(rows) == 4 and len({r["point_id"] for r in rows}) == 4
    numerics = [r for r in rows if r["pcc"] != "not computed (timing only)"]
    assert len(numerics) == 2 and all(float(r["pcc"]) > 0.99 for r in numerics)
    by_channels = {}
    for r in rows:  # the same cycles either way
        by_channels.setdefault(r["conv.channels"], set()).add(r["device_kernel_duration_cycles"])
    assert all(len(cycles) == 1 for cycles in by_channels.values())


# -- the checks run without numerics too -------------------------------------------------------------

def _compute_error(body, numerics: bool) -> str:
    """The error a compute kernel running ``body(ctx)`` (after one input tile arrived and an
    output page was reserved) raises, with or without numerics."""
    def feeder(ctx):
        yield from ctx.cb_reserve_back(0, 1)
        ctx.cb_push_back(0, 1)

    def compute(ctx):
        yield from ctx.cb_wait_front(0, 1)
        yield from ctx.cb_reserve_back(16, 1)
        body(ctx)

    program = Program("checks_op")
    for index, name in ((0, "in_cb"), (16, "out_cb")):
        program.create_circular_buffer([(0, 0)], CBConfig(index, name, 2048, 2, DataFormat.BFLOAT16))
    program.create_kernel("feeder", feeder, [(0, 0)], Risc.BRISC, {})
    program.create_kernel("compute", compute, [(0, 0)], "compute", {})
    with pytest.raises(TtsimError) as info:
        run_program(Device(load_device("wormhole_b0")), program, max_cycles=1_000_000, numerics=numerics)
    return f"{type(info.value).__name__}: {info.value}"


def _math_outside_acquire(ctx):
    ctx.mul_tiles(0, 0, 0, 0, 0)


def _dst_index_past_the_half(ctx):
    ctx.tile_regs_acquire()
    ctx.copy_tile(0, 0, 9)


def _unknown_dest_reuse_op(ctx):
    ctx.tile_regs_acquire()
    ctx.binary_dest_reuse_tiles(0, 0, 0, op="div")


def _pack_before_wait(ctx):
    ctx.tile_regs_acquire()
    ctx.copy_tile(0, 0, 0)
    ctx.tile_regs_commit()
    ctx.pack_tile(0, 16)


def _matmul_past_the_half(ctx):
    ctx.tile_regs_acquire()
    ctx.matmul_block(0, 0, 0, 0, 6, False, 2, 2, 1)


@pytest.mark.parametrize("body", [_math_outside_acquire, _dst_index_past_the_half, _unknown_dest_reuse_op,
                                  _pack_before_wait, _matmul_past_the_half])
def test_timing_only_catches_what_a_run_with_numerics_catches(body) -> None:
    with_numerics = _compute_error(body, numerics=True)
    assert _compute_error(body, numerics=False) == with_numerics
    assert "compute" in with_numerics


def test_a_timing_only_result_carries_no_inputs() -> None:
    """Timing-only runs move zero inputs (nothing drawn or encoded): the result says so with
    ``inputs`` None, like ``output`` and ``pcc``, and its cycles are the numerics run's."""
    timed = ttsim.run(SMALL, program="classic", timing_only=True)[1]
    full = ttsim.run(SMALL, program="classic")[1]
    assert (timed.inputs, timed.output, timed.pcc) == (None, None, None)
    assert full.inputs is not None and full.inputs["input"].any()
    assert timed.device_kernel_duration_cycles == full.device_kernel_duration_cycles
