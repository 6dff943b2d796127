"""How the command line behaves for a user: ``--json -`` on stdout, fixed ``--program`` choices,
``--set`` typos answered with the closest key, ``check`` finding its configs and goldens from
anywhere, tables readable at 80 columns, ``-`` for RISCs that run nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from ttsim.cli import PROJECT_ROOT, _project_folders
from ttsim.errors import TtsimError
from ttsim.report.breakdown import breakdown_table
from ttsim.report.compare import Comparison, comparison_table
from ttsim.report.golden import compare_with_golden, golden_document
from ttsim.report.table import check_table, l1_table, results_roofline_table, results_table, risc_table
from ttsim.simulate import run

CONV: dict[str, Any] = {
    "batch": 1, "input_height": 8, "input_width": 8, "channels": 32, "kernel": [3, 3], "stride": [1, 1],
    "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6", "dtype": "bfloat16",
    "weights_dtype": "bfloat16", "memory_layout": "height_sharded", "math_fidelity": "LoFi",
}
SMALL = {"name": "manners_op_small", "conv": CONV}  # as long as the seed names (mobilenetv2_op14)


def ttsim_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("manners") / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


@pytest.fixture(scope="module")
def results():
    return run(SMALL, program="all")


def test_json_dash_writes_the_report_to_stdout_and_tables_to_stderr(config: Path) -> None:
    done = ttsim_cli("run", config, "--program", "pool", "--json", "-")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # stdout is the JSON alone
    assert [op["op_code"] for op in report["ops"]] == ["HaloDeviceOperation", "Conv2dDepthwisePool"]
    assert "DEVICE <RISC> KERNEL DURATION" in done.stderr
    assert not (config.parent / "-").exists()


def test_compare_json_dash(config: Path) -> None:
    done = ttsim_cli("compare", config, "--json", "-")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["ops"][0]["config"] == SMALL["name"]
    assert "speedup" in done.stderr


@pytest.mark.parametrize("key, suggestion", [
    ("conv.chanels=64", "did you mean 'conv.channels'?"),
    ("pool.cb.in_cb.pagez=4", "did you mean 'pool.cb.in_cb.pages'?"),
    ("clasic.split_reader=true", "did you mean 'classic'?"),
    ("conv.zzz=1", "(known keys of conv: batch, input_height"),
])
def test_set_typo_is_one_line_with_the_closest_key(config: Path, key: str, suggestion: str) -> None:
    done = ttsim_cli("run", config, "--set", key)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ttsim: error: "), done.stderr
    assert "unknown key '" in done.stderr
    assert suggestion in done.stderr, done.stderr


def test_program_is_a_fixed_choice(config: Path) -> None:
    done = ttsim_cli("run", config, "--program", "pol")
    assert done.returncode == 2
    assert done.stderr == "ttsim: error: unknown program 'pol'; available: classic, pool, depthwise, all\n"
    assert "[classic|pool|depthwise|all]" in ttsim_cli("run", "--help").stdout


def test_check_finds_the_checkout_from_anywhere(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert _project_folders(None, None) == (PROJECT_ROOT / "configs", PROJECT_ROOT / "tests" / "golden")
    assert sorted(p.stem for p in (PROJECT_ROOT / "configs").glob("*.yaml")) == \
        sorted(p.stem for p in (PROJECT_ROOT / "tests" / "golden").glob("*.json"))
    (tmp_path / "configs").mkdir()  # a project of one's own: its folders win
    assert _project_folders(None, None) == (Path("configs"), Path("tests") / "golden")
    with pytest.raises(TtsimError, match=r"no configs folder nowhere .*--configs DIR and --golden DIR"):
        _project_folders(Path("nowhere"), None)


def test_check_with_configs_and_golden_folders(config: Path, tmp_path: Path) -> None:
    configs = tmp_path / "my_configs"
    configs.mkdir()
    (configs / "small.yaml").write_text(config.read_text())
    goldens = tmp_path / "my_goldens"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = ttsim_cli("check", "--configs", configs, "--golden", goldens, "--update", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert (goldens / f"{SMALL['name']}.json").exists()
    again = ttsim_cli("check", "--configs", configs, "--golden", goldens, cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("Match") == 6  # halo and conv of classic, pool, depthwise
    missing = ttsim_cli("check", "--configs", configs, "--golden", tmp_path / "none", cwd=elsewhere)
    assert missing.returncode == 2 and "give --golden DIR" in missing.stderr


def render(table, width: int = 80) -> str:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))
    console.print(table)
    return console.export_text()


def test_tables_fit_80_columns_with_nothing_cut(results) -> None:
    conv = results[3]
    golden = golden_document(SMALL["name"], results)
    tables = [
        results_table(SMALL["name"], results), risc_table(results), breakdown_table(conv), l1_table(conv),
        results_roofline_table(results),
        comparison_table([Comparison(SMALL["name"], {"classic": results[1], "pool": conv}, 171009.0)]),
        check_table(compare_with_golden(SMALL["name"], results, golden["device_kernel_duration_cycles"], 0)),
    ]
    for table in tables:
        text = render(table)
        assert all(len(line) <= 80 for line in text.splitlines())
        assert "…" not in text, text  # nothing truncated with an ellipsis
    # numbers are never folded: every duration prints whole on one line
    compare_text = render(tables[5])
    for r in (results[1], conv):
        assert f"{r.device_kernel_duration_ns:,.0f}" in compare_text
    assert SMALL["name"] in compare_text  # a seed-length config name fits on its line
    check_text = render(tables[6])
    for r in results:
        assert f"{r.device_kernel_duration_cycles:,}" in check_text


def test_halo_rows_show_a_dash_for_riscs_that_ran_nothing(results) -> None:
    text = render(risc_table(results), width=120)
    halo_rows = [line for line in text.splitlines() if "HaloDeviceOperation" in line]
    conv_rows = [line for line in text.splitlines() if "Conv2dDepthwise" in line or "OptimizedConvNew" in line]
    assert len(halo_rows) == 3 and len(conv_rows) == 3  # classic, pool, depthwise
    for line in halo_rows:
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        assert cells[3:] == ["-", "-", "-"] and all(c[0].isdigit() for c in cells[1:3]), cells
    for line in conv_rows:
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        assert "-" not in cells[1:]
