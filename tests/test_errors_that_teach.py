"""Errors that teach: what a kernel author sees when a what-if goes wrong.

Through the CLI (a subprocess, exit status 2, one message, no traceback, back within seconds):
an L1 overflow, and a CB too small for a request the program declares. Through the Python API:
a CB too small for a request only the kernel knows (caught when the kernel makes it), and a
deadlock. Each message must name where it happened and the numbers needed to fix it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.errors import CBRequestError, DeadlockError
from ttsim.formats import DataFormat
from ttsim.host import Program, run_program

ROOT = Path(__file__).resolve().parents[1]
OP53 = ROOT / "configs" / "mobilenetv2_op53.yaml"
FEW_SECONDS = 20.0  # a hang guard, loose enough for a loaded 2-core machine (speed targets live in bench/)
BUDGET = load_device("wormhole_b0").l1.usable_bytes


def ttsim_fails(*args: str | Path) -> str:
    """Run the CLI, check it failed cleanly and fast; returns stderr."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    elapsed = time.perf_counter() - start
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert done.stderr.startswith("ttsim: error: ")
    assert done.stdout == ""  # nothing is printed for a run that did not complete
    assert elapsed < FEW_SECONDS, elapsed
    return done.stderr


# -- L1 overflow ----------------------------------------------------------------------------------

def test_l1_overflow_of_the_first_cb() -> None:
    stderr = ttsim_fails("run", OP53, "--program", "pool", "--set", "pool.cb.in_cb.pages=2000")
    size = 2000 * 2048
    match = re.search(rf"L1 overflow on core \(0,0\): allocating 'in_cb' \({size:,} B\) needs ([\d,]+) B of the "
                      rf"([\d,]+) B usable budget \(([\d,]+) B over\)\. Allocations so far:", stderr)
    assert match, stderr
    needs, budget, over = (int(g.replace(",", "")) for g in match.groups())
    assert budget == BUDGET and needs - budget == over > 0
    assert needs >= size  # the CB alone does not fit
    # the allocation table: the tensors already on the core, with addresses and sizes
    table = stderr.split("Allocations so far:\n", 1)[1].splitlines()
    assert any(re.fullmatch(r"\s+buffer\s+halo_output\s+addr 0x[0-9a-f]{6}\s+[\d,]+ B", line) for line in table)
    assert any(re.fullmatch(r"\s+buffer\s+conv_output\s+addr 0x[0-9a-f]{6}\s+[\d,]+ B", line) for line in table)


def test_l1_overflow_lists_the_cbs_already_allocated() -> None:
    stderr = ttsim_fails("run", OP53, "--program", "pool", "--set", "pool.cb.pre_tilize_cb.pages=20000")
    assert f"allocating 'pre_tilize_cb' ({20000 * 256:,} B)" in stderr
    assert "B over)" in stderr
    table = stderr.split("Allocations so far:\n", 1)[1]
    listed = re.findall(r"^\s+cb\s+(\S+)\s+addr 0x([0-9a-f]{6})\s+([\d,]+) B$", table, flags=re.M)
    # every CB created before pre_tilize_cb that takes L1 of its own (the tensor-aliased out_cb and
    # in_reader_indices_cb do not), in address order, each page_size x pages bytes
    sizes = {"in_cb": 4 * 2048, "mul_cb": 4 * 2048, "weight_cb": 12 * 1088, "in_scalar_cb": 2 * 2048,
             "clear_value_cb": 2048, "bias_cb": 4 * 1088}
    assert [name for name, _, _ in listed] == list(sizes)
    assert [int(size.replace(",", "")) for _, _, size in listed] == list(sizes.values())
    addresses = [int(address, 16) for _, address, _ in listed]
    assert addresses == sorted(addresses)


# -- undersized CB known when the program is built ------------------------------------------------

def test_undersized_cb_known_at_build_time(tmp_path: Path) -> None:
    channels, kh, kw = 128, 3, 3
    window_pages = -(-kh * kw * channels // 1024)  # the flattened window, in 1024-element pages
    assert window_pages == 2
    config = tmp_path / "wide.yaml"
    config.write_text(yaml.safe_dump({"name": "wide", "conv": {
        "batch": 1, "input_height": 8, "input_width": 8, "channels": channels, "kernel": [kh, kw],
        "stride": [1, 1], "dilation": [1, 1], "padding": [1, 1], "bias": False, "activation": "none",
        "dtype": "bfloat16", "weights_dtype": "bfloat16", "memory_layout": "height_sharded",
        "math_fidelity": "HiFi4"}}))
    stderr = ttsim_fails("run", config, "--program", "pool", "--set", "pool.cb.in_cb.pages=1")
    assert (f"kernel 'reader_pool_2d' will call cb_reserve_back(CB 0 'in_cb', {window_pages}) on core (0,0)"
            in stderr)
    assert f"but the CB holds 1 pages of 2048 B: it needs at least {window_pages} pages" in stderr


def test_undersized_classic_weights_known_at_build_time() -> None:
    block_tiles = -(-112 * 3 // 32) * -(-112 // 32)  # act block width x weight block width, in tiles
    stderr = ttsim_fails("run", OP53, "--program", "classic", "--set",
                         f"classic.cb.WEIGHTS.pages={block_tiles - 1}")
    assert (f"kernel 'conv_weights_mcast' will call cb_reserve_back(CB 0 'WEIGHTS', {block_tiles}) on core "
            "(0,0) (and 15 more cores)" in stderr)
    assert f"the CB holds {block_tiles - 1} pages of 1088 B" in stderr


# -- undersized CB only known when the kernel asks ------------------------------------------------

CB_ACT = 3


def _greedy_program(declare: bool, asked: int = 3) -> tuple[Program, list]:
    """A reader that asks a 2-page CB for ``asked`` pages at once, and a compute kernel eating them."""
    program = Program("greedy_op")
    cores = [(0, 0), (3, 2)]
    program.create_circular_buffer(cores, CBConfig(CB_ACT, "act_cb", 2048, 2, DataFormat.BFLOAT16))
    started: list = []

    def greedy_reader(ctx):
        started.append(ctx.core.logical)
        yield from ctx.cb_reserve_back(CB_ACT, 1)
        ctx.cb_push_back(CB_ACT, 1)
        yield from ctx.cb_reserve_back(CB_ACT, asked)
        ctx.cb_push_back(CB_ACT, asked)

    def eater(ctx):
        yield from ctx.cb_wait_front(CB_ACT, 1)
        ctx.cb_pop_front(CB_ACT, 1)
        yield from ctx.cb_wait_front(CB_ACT, asked)
        ctx.cb_pop_front(CB_ACT, asked)

    program.create_kernel("greedy_reader", greedy_reader, cores, Risc.BRISC, {})
    program.create_kernel("eater", eater, cores, "compute", {})
    if declare:
        program.declare_cb_request("greedy_reader", CB_ACT, asked, "cb_reserve_back")
    return program, started


def _device() -> Device:
    return Device(load_device("wormhole_b0"))


def test_request_larger_than_the_cb_fails_when_the_kernel_makes_it() -> None:
    program, started = _greedy_program(declare=False)
    with pytest.raises(CBRequestError) as info:
        run_program(_device(), program, max_cycles=1_000_000)
    assert started  # the kernels ran: nothing knew the request before
    assert str(info.value) == ("kernel 'greedy_reader' on core (0,0): cb_reserve_back(CB 3 'act_cb', 3) asks "
                               "for 3 pages but the CB holds 2 pages of 2048 B")


def test_wait_front_larger_than_the_cb_names_the_consumer() -> None:
    program = Program("greedy_wait")
    program.create_circular_buffer([(1, 1)], CBConfig(7, "partials", 1088, 4, DataFormat.BFLOAT8_B))

    def consumer(ctx):
        yield from ctx.cb_wait_front(7, 5)

    program.create_kernel("matmul_partials_eater", consumer, [(1, 1)], "compute", {})
    with pytest.raises(CBRequestError) as info:
        run_program(_device(), program, max_cycles=1_000_000)
    assert str(info.value) == ("kernel 'matmul_partials_eater' on core (1,1): cb_wait_front(CB 7 'partials', 5) "
                               "asks for 5 pages but the CB holds 4 pages of 1088 B")


def test_declared_request_fails_before_anything_runs() -> None:
    program, started = _greedy_program(declare=True)
    device = _device()
    with pytest.raises(CBRequestError) as info:
        run_program(device, program, max_cycles=1_000_000)
    assert started == [] and device.env.now == 0
    assert str(info.value) == ("kernel 'greedy_reader' will call cb_reserve_back(CB 3 'act_cb', 3) on core (0,0) "
                               "(and 1 more cores) but the CB holds 2 pages of 2048 B: it needs at least 3 pages")


def test_request_that_fits_runs() -> None:
    """Control: the same program asking for exactly the CB's 2 pages completes."""
    for declare in (False, True):
        program, started = _greedy_program(declare=declare, asked=2)
        profile = run_program(_device(), program, max_cycles=1_000_000)
        assert sorted(started) == [(0, 0), (3, 2)]
        assert profile.device_kernel_duration_cycles > 0


# -- deadlock -------------------------------------------------------------------------------------

def _stuck_program() -> Program:
    """Reader fills in_cb; compute waits first for a scalar nobody pushes; writer waits for output.
    A fourth kernel on another core finishes and must not be reported."""
    program = Program("stuck_op")
    cores = [(0, 0), (1, 0)]
    program.create_circular_buffer(cores, CBConfig(0, "in_cb", 2048, 2, DataFormat.BFLOAT16))
    program.create_circular_buffer(cores, CBConfig(1, "scalar_cb", 2048, 1, DataFormat.BFLOAT16))
    program.create_circular_buffer(cores, CBConfig(16, "out_cb", 2048, 2, DataFormat.BFLOAT16))
    program.create_circular_buffer([(5, 5)], CBConfig(0, "other_cb", 2048, 2, DataFormat.BFLOAT16))

    def reader(ctx):
        for _ in range(4):
            yield from ctx.cb_reserve_back(0, 1)
            ctx.cb_push_back(0, 1)

    def compute(ctx):
        yield from ctx.cb_wait_front(1, 1)
        yield from ctx.cb_wait_front(0, 1)

    def writer(ctx):
        yield from ctx.cb_wait_front(16, 1)

    def finisher(ctx):
        yield from ctx.cb_reserve_back(0, 2)
        ctx.cb_push_back(0, 2)

    program.create_kernel("reader", reader, cores, Risc.BRISC, {})
    program.create_kernel("compute", compute, cores, "compute", {})
    program.create_kernel("writer", writer, cores, Risc.NCRISC, {})
    program.create_kernel("finisher", finisher, [(5, 5)], Risc.BRISC, {})
    return program


def test_deadlock_names_every_blocked_kernel_and_the_cb_occupancy() -> None:
    start = time.perf_counter()
    with pytest.raises(DeadlockError) as info:
        run_program(_device(), _stuck_program(), max_cycles=10_000_000)
    assert time.perf_counter() - start < FEW_SECONDS
    lines = str(info.value).splitlines()
    assert re.fullmatch(r"deadlock in stuck_op at cycle [\d,]+: kernels still blocked:", lines[0])
    blocked = [line.strip() for line in lines[1:] if line.startswith("  kernel ")]
    expected = []
    for core in ("(0,0)", "(1,0)"):
        expected += [
            f"kernel 'reader' on core {core} BRISC: waiting in cb_reserve_back(CB 0 'in_cb', 1): 0 of 2 pages free",
            f"kernel 'compute' on core {core} TRISC0: waiting in cb_wait_front(CB 1 'scalar_cb', 1): "
            "0 of 1 pages available",
            f"kernel 'writer' on core {core} NCRISC: waiting in cb_wait_front(CB 16 'out_cb', 1): "
            "0 of 2 pages available",
        ]
    assert sorted(blocked) == sorted(expected)
    assert "CB occupancy on those cores (pages pushed and not popped / pages):" in lines
    occupancy = [line.strip() for line in lines if line.startswith("  core ")]
    assert occupancy == ["core (0,0): 0:in_cb 2/2, 1:scalar_cb 0/1, 16:out_cb 0/2",
                         "core (1,0): 0:in_cb 2/2, 1:scalar_cb 0/1, 16:out_cb 0/2"]
    assert "finisher" not in str(info.value) and "(5,5)" not in str(info.value)
