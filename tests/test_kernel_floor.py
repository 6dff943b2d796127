"""bench/kernel_floor.py: the kernels' own Python with a free kernel API. Its free context must
answer the queries from the real context, make every other call free (blocking ones included),
count exactly the calls a kernel makes, and leave the real run it precedes untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.formats import DataFormat
from ttsim.host import Program

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import kernel_floor  # noqa: E402

CORE = (0, 0)
CB_ID = 3
PAGE = 64


def _program(brisc) -> Program:
    program = Program("floor_test")
    program.create_circular_buffer([CORE], CBConfig(CB_ID, "cb", PAGE, 4, DataFormat.BFLOAT16))
    program.create_kernel("brisc", brisc, [CORE], Risc.BRISC, {"pages": 4}, {CORE: {"rounds": 5}})
    return program


def test_free_pass_counts_every_call_and_answers_queries_from_the_real_context():
    seen = []

    def brisc(ctx):
        pages = ctx.get_compile_time_arg_val("pages")
        for _ in range(ctx.get_arg_val("rounds")):
            yield from ctx.cb_reserve_back(CB_ID, pages)
            seen.append(ctx.get_write_ptr(CB_ID))
            ctx.noc_async_read(0, 0, PAGE)
            ctx.noc_async_read_barrier()
            ctx.cb_push_back(CB_ID, pages)

    device = Device(load_device("wormhole_b0"))
    calls = []
    kernel_floor._drive(_program(brisc), device, lambda *a, **k: calls.append(a) or ())
    assert len(calls) == 5 * 4  # reserve, read, barrier, push per round; queries are not counted
    assert calls[0] == (CB_ID, 4) and calls[1] == (0, 0, PAGE)
    address = seen[0]
    assert seen == [address] * 5 and address > 0  # the real CB's write pointer (nothing was pushed)
    assert not device.core(CORE).cbs  # the CBs the free pass allocated are freed again


def test_a_kernel_yielding_a_value_of_its_own_is_named():
    def brisc(ctx):
        yield 7

    with pytest.raises(kernel_floor.UnexpectedYield, match="kernel 'brisc' yielded 7"):
        kernel_floor._drive(_program(brisc), Device(load_device("wormhole_b0")))


def test_the_free_pass_leaves_the_real_run_at_its_golden_cycles():
    row = kernel_floor.measure(ROOT / "configs" / "mobilenetv2_op53.yaml", "depthwise")
    golden = json.loads((ROOT / "tests" / "golden" / "mobilenetv2_op53.json").read_text())
    want = golden["device_kernel_duration_cycles"]["depthwise"]
    assert {op["op_code"]: op["cycles"] for op in row["ops"]} == want
    assert row["sticks"] == 490 and row["api_calls"] > row["sticks"]
    assert 0 < row["kernel_floor_s"] < row["simulation_s"]


def test_a_bad_config_exits_2_with_ttsims_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("conv: [1, 2\n")
    for config in (bad, tmp_path / "missing.yaml"):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "kernel_floor.py"), str(config)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        assert str(config) in done.stderr and "Traceback" not in done.stderr
    assert "config file not found" in done.stderr
