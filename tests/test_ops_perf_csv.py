"""The profiler CSV (``ttsim run --csv``): tt-metal's ops_perf_results format, checked against
tt-metal (tools/tracy/process_ops_logs.py OPS_CSV_HEADER, the profiler's first/last rules and the op
performance model of ttnn/core/operation.cpp) and against the raw kernel zones of the same run."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttsim.device.core import Risc
from ttsim.report.ops_perf_csv import ops_perf_csv
from ttsim.report.tt_metal_attributes import tt_metal_op_code
from ttsim.simulate import run

# tt-metal tools/tracy/process_ops_logs.py OPS_CSV_HEADER.
OPS_CSV_HEADER = [
    "OP CODE", "OP TYPE", "GLOBAL CALL COUNT", "DEVICE ID", "DEVICE ARCH", "ATTRIBUTES", "MATH FIDELITY",
    "CORE COUNT", "AVAILABLE WORKER CORE COUNT", "PARALLELIZATION STRATEGY", "HOST START TS", "HOST END TS",
    "HOST DURATION [ns]", "DEVICE FW START CYCLE", "DEVICE FW END CYCLE", "OP TO OP LATENCY [ns]",
    "OP TO OP LATENCY BR/NRISC START [ns]", "DEVICE FW DURATION [ns]", "DEVICE KERNEL DURATION [ns]",
    "DEVICE KERNEL DURATION DM START [ns]", "DEVICE KERNEL DURATION PER CORE MIN [ns]",
    "DEVICE KERNEL DURATION PER CORE MAX [ns]", "DEVICE KERNEL DURATION PER CORE AVG [ns]",
    "DEVICE KERNEL FIRST TO LAST START [ns]", "DEVICE BRISC KERNEL DURATION [ns]",
    "DEVICE NCRISC KERNEL DURATION [ns]", "DEVICE TRISC0 KERNEL DURATION [ns]",
    "DEVICE TRISC1 KERNEL DURATION [ns]", "DEVICE TRISC2 KERNEL DURATION [ns]",
    "DEVICE ERISC KERNEL DURATION [ns]", "DEVICE COMPUTE CB WAIT FRONT [ns]",
    "DEVICE COMPUTE CB RESERVE BACK [ns]", "DISPATCH TOTAL CQ CMD OP TIME [ns]",
    "DISPATCH GO SEND WAIT TIME [ns]", "INPUTS", "OUTPUTS", "METAL TRACE ID",
    "METAL TRACE REPLAY SESSION ID", "COMPUTE KERNEL SOURCE", "COMPUTE KERNEL HASH",
    "DATA MOVEMENT KERNEL SOURCE", "DATA MOVEMENT KERNEL HASH", "PROGRAM HASH", "PROGRAM CACHE HIT",
    "TENSIX DM 0/1 MAX KERNEL SIZE [B]", "TENSIX COMPUTE 0/1/2 MAX KERNEL SIZE [B]",
    "ACTIVE ETH DM 0/1 MAX KERNEL SIZE [B]", "IDLE ETH DM 0/1 MAX KERNEL SIZE [B]", "PM IDEAL [ns]",
    "PM COMPUTE [ns]", "PM BANDWIDTH [ns]", "PM REQ I BW", "PM REQ O BW", "PM FPU UTIL (%)", "NOC UTIL (%)",
    "MULTICAST NOC UTIL (%)", "DRAM BW UTIL (%)", "DRAM BW UTIL PER CTRL (%)", "ETH BW UTIL (%)",
    "NPE CONG IMPACT (%)",
]
TENSOR_FIELDS = ["W_PAD[LOGICAL]", "Z_PAD[LOGICAL]", "Y_PAD[LOGICAL]", "X_PAD[LOGICAL]", "LAYOUT", "DATATYPE",
                 "MEMORY"]
SHAPE_FIELDS = TENSOR_FIELDS[:4]

# Columns ttsim cannot know (host, dispatch, trace, hashes, kernel sizes, tt-npe): always empty.
UNKNOWABLE = [
    "PARALLELIZATION STRATEGY", "HOST START TS", "HOST END TS", "HOST DURATION [ns]", "OP TO OP LATENCY [ns]",
    "OP TO OP LATENCY BR/NRISC START [ns]", "DEVICE ERISC KERNEL DURATION [ns]",
    "DISPATCH TOTAL CQ CMD OP TIME [ns]", "DISPATCH GO SEND WAIT TIME [ns]", "METAL TRACE ID",
    "METAL TRACE REPLAY SESSION ID", "COMPUTE KERNEL HASH", "DATA MOVEMENT KERNEL HASH", "PROGRAM HASH",
    "PROGRAM CACHE HIT", "TENSIX DM 0 MAX KERNEL SIZE [B]", "TENSIX DM 1 MAX KERNEL SIZE [B]",
    "TENSIX COMPUTE 0 MAX KERNEL SIZE [B]", "TENSIX COMPUTE 1 MAX KERNEL SIZE [B]",
    "TENSIX COMPUTE 2 MAX KERNEL SIZE [B]", "ACTIVE ETH DM 0 MAX KERNEL SIZE [B]",
    "ACTIVE ETH DM 1 MAX KERNEL SIZE [B]", "IDLE ETH DM 0 MAX KERNEL SIZE [B]",
    "IDLE ETH DM 1 MAX KERNEL SIZE [B]", "NOC UTIL (%)", "MULTICAST NOC UTIL (%)", "DRAM BW UTIL (%)",
    "DRAM BW UTIL PER CTRL (%)", "ETH BW UTIL (%)", "NPE CONG IMPACT (%)",
]

RISCS = (Risc.BRISC, Risc.NCRISC, Risc.TRISC0, Risc.TRISC1, Risc.TRISC2)
FIDELITY = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
WH_GRID_CORES = 8 * 8          # TM tech_reports/GEMM_FLOPS: n150 compute_with_storage_grid_size
BH_GRID_CORES = 11 * 10        # TM BlackholeBringUpProgrammingGuide.md: p150, FW >= 19.5
FLOP_PER_CYCLE_PER_CORE = 4096  # TM conv2d/matmul create_op_performance_model (2048 MAC per cycle, LoFi)
PEAK_DRAM_GB_S = {"WORMHOLE_B0": 258.0, "BLACKHOLE": 512.0}  # TM ttnn/core/operation.cpp peak_dram_bw
CLOCK_MHZ = {"WORMHOLE_B0": 1000.0, "BLACKHOLE": 1350.0}    # profiler CHIP_FREQ[MHz]
ELEMENT_SIZE = {"BFLOAT16": 2, "BFLOAT8_B": 1}  # tt-metal element_size_bytes(): BFLOAT8_B is sizeof(std::byte)

BASE_CONV: dict[str, Any] = {
    "batch": 1, "input_height": 16, "input_width": 16, "channels": 64, "kernel": [3, 3], "stride": [1, 1],
    "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6", "dtype": "bfloat16",
    "weights_dtype": "bfloat16", "memory_layout": "height_sharded", "math_fidelity": "LoFi",
}
# A: height sharded, all bf16, bias; B: block sharded, bfp8, no bias, HiFi2, stride 2, batch 2.
CONFIG_A = {"name": "csv_a", "conv": dict(BASE_CONV)}
CONFIG_B = {"name": "csv_b", "conv": {**BASE_CONV, "batch": 2, "channels": 128, "stride": [2, 2], "bias": False,
                                      "dtype": "bfloat8_b", "weights_dtype": "bfloat8_b",
                                      "memory_layout": "block_sharded", "math_fidelity": "HiFi2",
                                      "activation": "silu"}}
CONFIGS = [CONFIG_A, CONFIG_B]
PROGRAM_ORDER = ("classic", "pool", "depthwise")  # --program all runs classic, pool, depthwise
CONV_OP_CODE = {"classic": "OptimizedConvNew", "pool": "Conv2dDepthwisePool", "depthwise": "Conv2dDepthwise"}
# the OP CODE tt-metal's profiler writes: the branch's depthwise factory belongs to Conv2dDeviceOperation
TT_METAL_CONV_OP_CODE = {"classic": "OptimizedConvNew", "pool": "Conv2dDeviceOperation",
                         "depthwise": "Conv2dDepthwise"}
HALO = "HaloDeviceOperation"
# (config index, program, halo or conv) of every CSV row, in run order
ROW_KEYS = [(c, p, kind) for c in range(len(CONFIGS)) for p in PROGRAM_ORDER for kind in ("halo", "conv")]


def expand_header(header: list[str], n_inputs: int, n_outputs: int) -> list[str]:
    """OPS_CSV_HEADER as a written CSV has it: INPUTS / OUTPUTS expanded in place per tensor, and
    'A 0/1 B' entries split into one column per index ('A 0 B', 'A 1 B')."""
    out: list[str] = []
    for name in header:
        if name == "INPUTS":
            out += [f"INPUT_{i}_{f}" for i in range(n_inputs) for f in TENSOR_FIELDS]
        elif name == "OUTPUTS":
            out += [f"OUTPUT_{i}_{f}" for i in range(n_outputs) for f in TENSOR_FIELDS]
        elif (m := re.search(r"\b(\d(?:/\d)+)\b", name)) is not None:
            out += [name[: m.start()] + index + name[m.end():] for index in m.group(1).split("/")]
        else:
            out.append(name)
    return out


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def out_hw(conv: dict[str, Any]) -> tuple[int, int]:
    return tuple(out_size(conv[f"input_{dim}"], conv["kernel"][i], conv["stride"][i], conv["padding"][i],
                          conv["dilation"][i]) for i, dim in enumerate(("height", "width")))


def ttsim_cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def parse(text: str) -> tuple[list[str], list[dict[str, str]], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, r)) for r in body], body


def cell_shape(row: dict[str, str], prefix: str) -> tuple[list[int], list[int]]:
    padded, logical = [], []
    for field in SHAPE_FIELDS:
        m = re.fullmatch(r"(\d+)\[(\d+)\]", row[f"{prefix}_{field}"])
        assert m is not None, (prefix, field, row[f"{prefix}_{field}"])
        padded.append(int(m.group(1)))
        logical.append(int(m.group(2)))
    return padded, logical


def tensors_of(row: dict[str, str]) -> list[str]:
    """The INPUT_i / OUTPUT_i prefixes that hold a tensor in this row."""
    prefixes = [k[: -len("_LAYOUT")] for k in row if re.fullmatch(r"(INPUT|OUTPUT)_\d+_LAYOUT", k)]
    return [p for p in prefixes if row[f"{p}_LAYOUT"]]


def span(zones) -> float:
    return max(z.end for z in zones) - min(z.start for z in zones) if zones else 0.0


# -- fixtures ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("csv")
    for config in CONFIGS:
        (folder / f"{config['name']}.yaml").write_text(yaml.safe_dump(config))
    return folder


def program_files(csv_path: Path) -> dict[str, str]:
    """The per-program CSVs ``--csv PATH`` writes when several programs run (and not PATH)."""
    assert not csv_path.exists()
    return {p: csv_path.with_name(f"{csv_path.stem}_{p}.csv").read_text() for p in PROGRAM_ORDER}


def in_run_order(files: dict[str, str], n_configs: int) -> str:
    """The per-program files joined back into one CSV in run order (config, program, op)."""
    parsed = {p: list(csv.reader(io.StringIO(text))) for p, text in files.items()}
    header = parsed[PROGRAM_ORDER[0]][0]
    assert all(rows[0] == header for rows in parsed.values())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for c in range(n_configs):
        for program in PROGRAM_ORDER:
            writer.writerows(parsed[program][1 + 2 * c: 3 + 2 * c])
    return out.getvalue()


@pytest.fixture(scope="module")
def cli_files(folder: Path):
    """``ttsim run A B --csv ops.csv --json``: one CSV per program, and the JSON report."""
    csv_path, json_path = folder / "ops.csv", folder / "report.json"
    done = ttsim_cli("run", *(folder / f"{c['name']}.yaml" for c in CONFIGS), "--csv", csv_path,
                     "--json", json_path)
    assert done.returncode == 0, done.stderr
    return program_files(csv_path), json.loads(json_path.read_text())


@pytest.fixture(scope="module")
def cli_run(cli_files):
    """The CLI's CSV rows in run order (as one table), and the JSON report."""
    files, report = cli_files
    return in_run_order(files, len(CONFIGS)), report


@pytest.fixture(scope="module")
def results():
    """The same run in-process (for the raw kernel zones behind each row)."""
    return [r for config in CONFIGS for r in run(config, program="all")]


@pytest.fixture(scope="module")
def table(results):
    header, rows, raw = parse(ops_perf_csv(results))
    return header, rows, raw


# -- format ------------------------------------------------------------------------------------------

def test_cli_csv_is_the_in_process_csv(cli_files, results) -> None:
    files, _ = cli_files
    for program in PROGRAM_ORDER:
        assert files[program] == ops_perf_csv([r for r in results if r.program == program])
        calls = [r["GLOBAL CALL COUNT"] for r in parse(files[program])[1]]
        assert calls == [str(i) for i in range(1, len(calls) + 1)]  # each file counts its own ops


def test_header_is_tt_metal_ops_csv_header(cli_run) -> None:
    header, rows, raw = parse(cli_run[0])
    # config A has bias: the conv op reads its input, weights and bias; every op writes one tensor
    # then ttsim's roofline columns, where tt-metal's optional counter columns would follow
    assert header == expand_header(OPS_CSV_HEADER, 3, 1) + [
        "TTSIM ROOFLINE [ns]", "TTSIM ROOFLINE BOUND", "TTSIM % OF ROOFLINE"]
    assert len(header) == len(set(header))


def test_roofline_columns_are_the_bound_and_its_fraction(cli_run) -> None:
    _, rows, _ = parse(cli_run[0])
    for row in rows:
        bound, duration = float(row["TTSIM ROOFLINE [ns]"]), float(row["DEVICE KERNEL DURATION [ns]"])
        assert 0 < bound <= duration
        assert float(row["TTSIM % OF ROOFLINE"]) == pytest.approx(100 * bound / duration, abs=0.1)
        assert row["TTSIM ROOFLINE BOUND"] in ("noc", "unpack", "fpu", "sfpu", "pack", "weights")


def test_header_expansion_reading() -> None:
    expanded = expand_header(OPS_CSV_HEADER, 1, 1)
    for name in ("TENSIX DM 0 MAX KERNEL SIZE [B]", "TENSIX DM 1 MAX KERNEL SIZE [B]",
                 "TENSIX COMPUTE 2 MAX KERNEL SIZE [B]", "IDLE ETH DM 1 MAX KERNEL SIZE [B]",
                 "INPUT_0_X_PAD[LOGICAL]", "OUTPUT_0_MEMORY"):
        assert name in expanded
    assert "TENSIX DM 0/1 MAX KERNEL SIZE [B]" not in expanded and "INPUTS" not in expanded
    # the op-to-op column keeps its 'BR/NRISC' (a slash between words, not indices)
    assert "OP TO OP LATENCY BR/NRISC START [ns]" in expanded


def test_every_row_parses_with_as_many_cells_as_the_header(cli_run) -> None:
    header, rows, raw = parse(cli_run[0])
    assert len(raw) == len(ROW_KEYS)
    assert all(len(r) == len(header) for r in raw)


def test_one_row_per_device_op_in_run_order(cli_run) -> None:
    header, rows, _ = parse(cli_run[0])
    expected = [HALO if kind == "halo" else TT_METAL_CONV_OP_CODE[p] for _, p, kind in ROW_KEYS]
    assert [r["OP CODE"] for r in rows] == expected
    for row, (c, program, kind) in zip(rows, ROW_KEYS):
        assert row["OP TYPE"] == "tt_dnn_device"
        assert row["DEVICE ID"] == "0"
        assert row["DEVICE ARCH"] == "WORMHOLE_B0"
        assert row["AVAILABLE WORKER CORE COUNT"] == str(WH_GRID_CORES)
        if kind == "conv":
            assert f"window_hw=({CONFIGS[c]['conv']['kernel'][0]};{CONFIGS[c]['conv']['kernel'][1]})" \
                in row["ATTRIBUTES"]
            assert row["MATH FIDELITY"] == CONFIGS[c]["conv"]["math_fidelity"]
            assert row["COMPUTE KERNEL SOURCE"]
        else:
            assert row["MATH FIDELITY"] == ""
            assert row["COMPUTE KERNEL SOURCE"] == ""


def test_device_kernel_duration_equals_the_json_report(cli_run) -> None:
    text, report = cli_run
    _, rows, _ = parse(text)
    assert len(report["ops"]) == len(rows)
    for row, op in zip(rows, report["ops"]):
        assert row["OP CODE"] == tt_metal_op_code(op["op_code"])
        assert float(row["DEVICE KERNEL DURATION [ns]"]) == pytest.approx(op["device_kernel_duration_ns"], abs=0.5)
        for risc in RISCS:
            cell = row[f"DEVICE {risc.value} KERNEL DURATION [ns]"]
            assert float(cell or 0) == pytest.approx(op["risc_duration_ns"][risc.value], abs=0.5)


def test_unknowable_columns_are_empty(cli_run) -> None:
    _, rows, _ = parse(cli_run[0])
    for row in rows:
        assert {name: row[name] for name in UNKNOWABLE} == {name: "" for name in UNKNOWABLE}


# -- durations against the kernel zones (TM tools/tracy/device_post_proc_config.py) -------------------------

def test_durations_follow_the_first_last_rules(table, results) -> None:
    _, rows, _ = table
    for row, result in zip(rows, results):
        zones = result.profile.zones
        ns = 1000.0 / result.profile.clock_mhz
        assert float(row["DEVICE KERNEL DURATION [ns]"]) == pytest.approx(span(zones) * ns, abs=1)
        per_core: dict = {}
        for z in zones:
            per_core.setdefault(z.core, []).append(z)
        core_spans = [span(zs) for zs in per_core.values()]
        assert row["CORE COUNT"] == str(len(per_core))
        assert float(row["DEVICE KERNEL DURATION PER CORE MIN [ns]"]) == pytest.approx(min(core_spans) * ns, abs=1)
        assert float(row["DEVICE KERNEL DURATION PER CORE MAX [ns]"]) == pytest.approx(max(core_spans) * ns, abs=1)
        assert float(row["DEVICE KERNEL DURATION PER CORE AVG [ns]"]) == pytest.approx(
            sum(core_spans) / len(core_spans) * ns, abs=1)
        starts = [z.start for z in zones]
        assert float(row["DEVICE KERNEL FIRST TO LAST START [ns]"]) == pytest.approx(
            (max(starts) - min(starts)) * ns, abs=1)
        dm = [z for z in zones if z.risc in (Risc.BRISC, Risc.NCRISC)]
        assert float(row["DEVICE KERNEL DURATION DM START [ns]"]) == pytest.approx(
            (max(z.end for z in zones) - min(z.start for z in dm)) * ns, abs=1)


def test_per_risc_columns_are_the_risc_spans(table, results) -> None:
    _, rows, _ = table
    for row, result, (_, _, kind) in zip(rows, results, ROW_KEYS):
        profile = result.profile
        ns = 1000.0 / profile.clock_mhz
        for risc in RISCS:
            cell = row[f"DEVICE {risc.value} KERNEL DURATION [ns]"]
            risc_zones = [z for z in profile.zones if z.risc == risc]
            if not risc_zones:
                assert cell == "", (row["OP CODE"], risc)
                continue
            assert float(cell) == pytest.approx(span(risc_zones) * ns, abs=1)
            assert float(cell) == pytest.approx(profile.to_ns(profile.risc_duration_cycles[risc]), abs=0.5)
        if kind == "halo":  # the halo op is data movement only: no TRISC ran anything
            assert [row[f"DEVICE {r} KERNEL DURATION [ns]"] for r in ("TRISC0", "TRISC1", "TRISC2")] == [""] * 3
            assert row["DEVICE BRISC KERNEL DURATION [ns]"] != ""


def test_per_core_ordering_and_launch_skew_identity(cli_run) -> None:
    _, rows, _ = parse(cli_run[0])
    for row in rows:
        total = float(row["DEVICE KERNEL DURATION [ns]"])
        lo = float(row["DEVICE KERNEL DURATION PER CORE MIN [ns]"])
        avg = float(row["DEVICE KERNEL DURATION PER CORE AVG [ns]"])
        hi = float(row["DEVICE KERNEL DURATION PER CORE MAX [ns]"])
        skew = float(row["DEVICE KERNEL FIRST TO LAST START [ns]"])
        assert 0 < lo <= avg <= hi <= total
        assert total <= hi + skew + 1  # TM #20681 (+1: each cell is rounded to the ns)
        for risc in RISCS:
            cell = row[f"DEVICE {risc.value} KERNEL DURATION [ns]"]
            assert cell == "" or 0 < float(cell) <= total
        fw = float(row["DEVICE FW DURATION [ns]"])
        assert fw >= total
        assert float(row["DEVICE FW END CYCLE"]) - float(row["DEVICE FW START CYCLE"]) >= total - 1


def test_compute_cb_wait_columns_average_the_compute_cores(table, results) -> None:
    _, rows, _ = table
    for row, result, (_, _, kind) in zip(rows, results, ROW_KEYS):
        profile = result.profile
        if kind == "halo":
            assert row["DEVICE COMPUTE CB WAIT FRONT [ns]"] == row["DEVICE COMPUTE CB RESERVE BACK [ns]"] == ""
            continue
        waits = [sum(c for r, c in profile.blocked[(z.core, z.risc)].items() if r.startswith("cb_wait_front:"))
                 for z in profile.zones if z.risc is Risc.TRISC0]
        reserves = [sum(c for r, c in profile.blocked[(z.core, z.risc)].items()
                        if r.startswith("cb_reserve_back:"))
                    for z in profile.zones if z.risc is Risc.TRISC2]
        ns = 1000.0 / profile.clock_mhz
        assert float(row["DEVICE COMPUTE CB WAIT FRONT [ns]"]) == pytest.approx(sum(waits) / len(waits) * ns, abs=1)
        assert float(row["DEVICE COMPUTE CB RESERVE BACK [ns]"]) == pytest.approx(
            sum(reserves) / len(reserves) * ns, abs=1)


# -- tensors -------------------------------------------------------------------------------------------

def test_tensor_cells(cli_run) -> None:
    header, rows, _ = parse(cli_run[0])
    for row, (c, program, kind) in zip(rows, ROW_KEYS):
        conv = CONFIGS[c]["conv"]
        prefixes = tensors_of(row)
        inputs = [p for p in prefixes if p.startswith("INPUT")]
        outputs = [p for p in prefixes if p.startswith("OUTPUT")]
        if kind == "halo":
            assert (len(inputs), len(outputs)) == (1, 1)
        else:  # activation, weights and (with bias) bias
            assert (len(inputs), len(outputs)) == (3 if conv["bias"] else 2, 1)
        for p in prefixes:
            cell_shape(row, p)  # every shape cell is padded[logical]
            assert row[f"{p}_LAYOUT"] in ("TILE", "ROW_MAJOR")
            assert row[f"{p}_DATATYPE"] in ("BFLOAT16", "BFLOAT8_B")
            assert re.fullmatch(r"DEV_\d+_(L1|DRAM)_(INTERLEAVED|HEIGHT_SHARDED|BLOCK_SHARDED|WIDTH_SHARDED)",
                                row[f"{p}_MEMORY"])
        absent = [f"INPUT_{i}_{f}" for i in range(len(inputs), 3) for f in TENSOR_FIELDS]
        assert all(row[name] == "" for name in absent)
        sharding = "DEV_0_L1_" + conv["memory_layout"].upper()
        n, c_ = conv["batch"], conv["channels"]
        if kind == "halo":  # the conv's input activation: N*H*W sticks of C channels, bf16 row major
            assert cell_shape(row, "INPUT_0")[1] == [1, 1, n * conv["input_height"] * conv["input_width"], c_]
            assert (row["INPUT_0_LAYOUT"], row["INPUT_0_DATATYPE"], row["INPUT_0_MEMORY"]) == (
                "ROW_MAJOR", "BFLOAT16", sharding)
        else:
            oh, ow = out_hw(conv)
            assert cell_shape(row, "OUTPUT_0")[1] == [1, 1, n * oh * ow, c_]
            assert (row["OUTPUT_0_LAYOUT"], row["OUTPUT_0_DATATYPE"], row["OUTPUT_0_MEMORY"]) == (
                "TILE", conv["dtype"].upper(), sharding)
            assert row["INPUT_1_MEMORY"] == "DEV_0_DRAM_INTERLEAVED"
            assert row["INPUT_1_DATATYPE"] == conv["weights_dtype"].upper()
            assert row["INPUT_0_MEMORY"] == sharding


def _row_params():
    params = []
    for i, (c, program, kind) in enumerate(ROW_KEYS):
        params.append(pytest.param(i, id=f"{CONFIGS[c]['name']}-{program}-{kind}"))
    return params


@pytest.mark.parametrize("index", _row_params())
def test_padded_shape_holds_the_logical_shape(cli_run, index: int) -> None:
    _, rows, _ = parse(cli_run[0])
    row = rows[index]
    for p in tensors_of(row):
        padded, logical = cell_shape(row, p)
        assert all(pd >= lg >= 1 for pd, lg in zip(padded, logical)), (p, padded, logical)
        if row[f"{p}_LAYOUT"] == "TILE":
            assert padded[2] % 32 == 0 and padded[3] % 32 == 0, (p, padded)


# -- performance model (TM ttnn/core/operation.cpp) ------------------------------------------------------

def conv_pm_compute_ns(conv: dict[str, Any], grid_cores: int, clock_mhz: float) -> int:
    """conv2d's create_op_performance_model: the dense matmul count with K = Cin*kh*kw, Cout = C."""
    oh, ow = out_hw(conv)
    c = conv["channels"]
    kh, kw = conv["kernel"]
    flops = c * kh * kw * 2 * oh * ow * c * conv["batch"]
    cycles = math.ceil(flops / (grid_cores * FLOP_PER_CYCLE_PER_CORE) * FIDELITY[conv["math_fidelity"]])
    return math.ceil(cycles / (clock_mhz / 1000.0))


def tensor_ns(row: dict[str, str], prefix: str, arch: str) -> float:
    """OpPerformanceModelGeneral's per-tensor time: DRAM bytes / peak (GB = 2^30 B); L1 1 ns."""
    if "_DRAM_" not in row[f"{prefix}_MEMORY"]:
        return 1.0
    padded, _ = cell_shape(row, prefix)
    nbytes = math.prod(padded) * ELEMENT_SIZE[row[f"{prefix}_DATATYPE"]]
    return nbytes / PEAK_DRAM_GB_S[arch] / 2**30 * 1e9


def test_pm_compute(cli_run) -> None:
    _, rows, _ = parse(cli_run[0])
    for row, (c, program, kind) in zip(rows, ROW_KEYS):
        if kind == "halo":
            assert row["PM COMPUTE [ns]"] == "1"
        else:  # the same dense count for both programs
            assert int(row["PM COMPUTE [ns]"]) == conv_pm_compute_ns(CONFIGS[c]["conv"], WH_GRID_CORES, 1000.0)


def test_pm_bandwidth_ideal_and_fpu_util(cli_run) -> None:
    text, report = cli_run
    _, rows, _ = parse(text)
    for row, op, (c, program, kind) in zip(rows, report["ops"], ROW_KEYS):
        worst = max(tensor_ns(row, p, "WORMHOLE_B0") for p in tensors_of(row))
        bandwidth = int(row["PM BANDWIDTH [ns]"])
        if CONFIGS[c]["conv"]["weights_dtype"] == "bfloat16":
            # tt-metal stores the max in an int (truncation); ttsim may round up: within 1 ns
            assert max(1, math.floor(worst)) <= bandwidth <= max(1, math.ceil(worst)), (row["OP CODE"], worst)
        else:
            assert bandwidth >= 1
        if kind == "halo":  # L1 in, L1 out
            assert bandwidth == 1
        compute = int(row["PM COMPUTE [ns]"])
        assert int(row["PM IDEAL [ns]"]) == max(compute, bandwidth)
        assert float(row["PM FPU UTIL (%)"]) == pytest.approx(100.0 * compute / op["device_kernel_duration_ns"],
                                                              rel=1e-3, abs=1e-3)


def test_pm_bandwidth_is_exactly_tt_metal(cli_run) -> None:
    _, rows, _ = parse(cli_run[0])
    for row in rows:
        expected = 1  # ideal_bandwidth_ns starts at 1 and is an int
        for p in tensors_of(row):
            t = tensor_ns(row, p, "WORMHOLE_B0")
            if t > expected:
                expected = int(t)
        assert int(row["PM BANDWIDTH [ns]"]) == expected, (row["OP CODE"], tensors_of(row))


# -- Blackhole -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def blackhole_rows(folder: Path):
    csv_path = folder / "bh.csv"
    done = ttsim_cli("run", folder / "csv_a.yaml", "--device", "blackhole", "--csv", csv_path)
    assert done.returncode == 0, done.stderr
    return parse(in_run_order(program_files(csv_path), 1))[1]


def test_blackhole_arch_clock_and_pm(blackhole_rows) -> None:
    assert len(blackhole_rows) == 2 * len(PROGRAM_ORDER)
    for row, (c, program, kind) in zip(blackhole_rows, ROW_KEYS):
        assert row["DEVICE ARCH"] == "BLACKHOLE"
        assert row["AVAILABLE WORKER CORE COUNT"] == str(BH_GRID_CORES)
        if kind == "conv":
            assert int(row["PM COMPUTE [ns]"]) == conv_pm_compute_ns(CONFIGS[c]["conv"], BH_GRID_CORES, 1350.0)
        # ns at 1350 MHz: FW cycles span / 1.35 >= kernel ns
        fw_cycles = float(row["DEVICE FW END CYCLE"]) - float(row["DEVICE FW START CYCLE"])
        assert fw_cycles / (CLOCK_MHZ["BLACKHOLE"] / 1000) >= float(row["DEVICE KERNEL DURATION [ns]"]) - 1
