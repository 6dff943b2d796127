"""The profiler CSV as tt-perf-report (PyPI ``tt-perf-report``) reads it: every op classified, the
conv rows' shape and FLOPs and the halo rows' window config parsed from ATTRIBUTES and the tensor
columns, one CSV per program so alternatives are not summed as one run.

Expected values are computed here from the conv's own parameters (tt-perf-report's conv model:
M x K x N = out NHW (padded) x Cin (padded) * kh * kw x weight columns (padded), FLOPs = 2MKN /
DEVICE KERNEL DURATION), not read back from ttsim.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from typing import Any

import pytest
import yaml

TT_PERF_REPORT = [sys.executable, "-c", "import sys; from tt_perf_report.perf_report import main; sys.exit(main())"]

BASE: dict[str, Any] = {
    "batch": 1, "input_height": 16, "input_width": 16, "channels": 64, "kernel": [3, 3], "stride": [1, 1],
    "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6", "dtype": "bfloat16",
    "weights_dtype": "bfloat16", "memory_layout": "height_sharded", "math_fidelity": "LoFi",
}
CASES = [
    {"name": "tpr_hs", "conv": BASE},
    {"name": "tpr_bs", "conv": {**BASE, "memory_layout": "block_sharded", "channels": 96, "stride": [2, 2],
                                "input_height": 20, "input_width": 12, "kernel": [3, 5], "padding": [1, 2],
                                "bias": False, "math_fidelity": "HiFi2"}},
]
CONV_OP_CODE = {"classic": "OptimizedConvNew", "pool": "Conv2dDeviceOperation"}


def round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@pytest.fixture(scope="module", params=CASES, ids=[c["name"] for c in CASES])
def reports(request, tmp_path_factory):
    """ttsim's per-program CSVs of one config and tt-perf-report's reading of each (stdout and --csv)."""
    case = request.param
    folder = tmp_path_factory.mktemp(case["name"])
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(case))
    done = subprocess.run([sys.executable, "-m", "ttsim.cli", "run", str(config), "--csv", str(folder / "ops.csv")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out: dict[str, tuple[list[dict[str, str]], str, list[dict[str, str]]]] = {}
    for program in CONV_OP_CODE:
        ours = folder / f"ops_{program}.csv"
        theirs = folder / f"report_{program}.csv"
        report = subprocess.run([*TT_PERF_REPORT, str(ours), "--no-color", "--no-summary", "--csv", str(theirs)],
                                capture_output=True, text=True, timeout=300)
        assert report.returncode == 0, report.stdout + report.stderr
        with ours.open() as f:
            rows = list(csv.DictReader(f))
        with theirs.open() as f:
            parsed = list(csv.DictReader(f))
        out[program] = rows, report.stdout, parsed
    return case["conv"], out


def test_every_op_is_classified(reports) -> None:
    _, out = reports
    for program, (_, stdout, parsed) in out.items():
        assert "Unclassified" not in stdout, stdout
        assert [r["Op Category"] for r in parsed] == ["DM", "Compute"], program


def test_one_model_run_per_file(reports) -> None:
    """Each file holds one program's halo and conv: tt-perf-report's total is that program's alone."""
    _, out = reports
    for program, (rows, stdout, parsed) in out.items():
        assert [r["OP CODE"] for r in rows] == ["HaloDeviceOperation", CONV_OP_CODE[program]]
        total_pct = sum(float(r["Total %"]) for r in parsed)
        assert total_pct == pytest.approx(100.0)
        for ours, theirs in zip(rows, parsed):
            assert float(theirs["Device Time"]) == pytest.approx(float(ours["DEVICE KERNEL DURATION [ns]"]) / 1000)


def test_conv_shape_flops_and_bound_analysis(reports) -> None:
    conv, out = reports
    (kh, kw), (sh, sw) = conv["kernel"], conv["stride"]
    out_nhw = conv["batch"] * out_size(conv["input_height"], kh, sh, conv["padding"][0], 1) \
        * out_size(conv["input_width"], kw, sw, conv["padding"][1], 1)
    for program, (rows, _, parsed) in out.items():
        ours, theirs = rows[1], parsed[1]
        m = int(ours["OUTPUT_0_Y_PAD[LOGICAL]"].split("[")[0])
        assert m >= out_nhw and m % 32 == 0 and int(ours["OUTPUT_0_Y_PAD[LOGICAL]"].split("[")[1][:-1]) == out_nhw
        k = int(ours["INPUT_0_X_PAD[LOGICAL]"].split("[")[0]) * kh * kw
        n = int(ours["INPUT_1_X_PAD[LOGICAL]"].split("[")[0])
        assert n == round_up(conv["channels"], 32)  # the dense weight columns / per-channel weights, padded
        assert theirs["OP Code"].startswith(f"{CONV_OP_CODE[program]} {m} x {k} x {n} [ABH=")
        duration_s = float(ours["DEVICE KERNEL DURATION [ns]"]) * 1e-9
        assert float(theirs["FLOPs"]) == pytest.approx(2 * m * k * n / duration_s / 1e12, rel=1e-9)
        assert float(theirs["FLOPs %"]) > 0
        # tt-perf-report's conv model is FLOPs only (its full roofline, Bound and DRAM, is for matmuls)
        assert theirs["Bound Analysis"] == "flops_only"
        assert theirs["Math Fidelity"].startswith(conv["math_fidelity"])


def test_conv_block_config(reports) -> None:
    """[ABH=<per-core output height>|<act block height>] in tiles; ADB / SR only when enabled."""
    conv, out = reports
    for program, (rows, _, parsed) in out.items():
        per_core_tiles = int(rows[1]["OUTPUT_0_Y_PAD[LOGICAL]"].split("[")[0]) // 32
        cores_nhw = int(rows[1]["CORE COUNT"]) if conv["memory_layout"] == "height_sharded" else None
        tag = parsed[1]["OP Code"].split("[ABH=")[1]
        abh, act = tag.rstrip("]").split("|")
        if cores_nhw is not None:
            assert int(abh) == per_core_tiles // cores_nhw
        assert act == "x" if program == "pool" else act.isdigit()  # the pool program has no act block
        assert "ADB" not in tag and "SR" not in tag  # the cases enable neither


def test_halo_window_config(reports) -> None:
    conv, out = reports
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv["kernel"], conv["stride"], conv["padding"], conv["dilation"]
    expected = (f"HaloDeviceOperation w=({kh},{kw}) s=({sh},{sw}) p=(({ph}, {ph}), ({pw}, {pw})) "
                f"d=({dh},{dw}) | {conv['memory_layout'].upper()}")
    for _, (_, _, parsed) in out.items():
        assert parsed[0]["OP Code"] == expected
        assert parsed[0]["Bound Analysis"] == "none"
