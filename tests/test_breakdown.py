"""Stall breakdown: for every (core, RISC) busy + blocked = its kernel zone, reasons from the fixed
vocabulary (docs/outputs.md), streaming CBs balanced at the end of an op, stall time equal to the
delay of a slow producer, and the ``ttsim run --breakdown`` tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.formats import DataFormat
from ttsim.host import Program, run_program
from ttsim.report.breakdown import STALL_REASONS, breakdown, is_stall_reason
from ttsim.report.ops_perf_csv import ops_perf_csv
from ttsim.simulate import OpResult, run

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-6  # cycles

CONV: dict[str, Any] = {
    "batch": 1, "input_height": 16, "input_width": 16, "channels": 64, "kernel": [3, 3], "stride": [1, 1],
    "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6", "dtype": "bfloat16",
    "weights_dtype": "bfloat16", "memory_layout": "height_sharded", "math_fidelity": "LoFi",
}
CONFIGS = {
    "hs": {"name": "hs", "conv": CONV},
    "bs": {"name": "bs", "conv": {**CONV, "memory_layout": "block_sharded", "channels": 128, "bias": False,
                                  "dtype": "bfloat8_b", "weights_dtype": "bfloat8_b", "math_fidelity": "HiFi4",
                                  "activation": "silu"},
           "classic": {"enable_act_double_buffer": True, "enable_weights_double_buffer": True}},
    # several act blocks per core: the classic program buffers all the weights
    "hs_act_blocks": {"name": "hs_act_blocks", "conv": {**CONV, "channels": 32, "input_height": 64,
                                                        "input_width": 64},
                      "classic": {"act_block_h_override": 32}},
    "hs_split_reader": {"name": "hs_split_reader", "conv": {**CONV, "channels": 32, "input_height": 64,
                                                            "input_width": 64, "batch": 2},
                        "classic": {"split_reader": True}},
    "seed_op53": REPO / "configs" / "mobilenetv2_op53.yaml",
}
CASES = [
    pytest.param("hs", None, id="hs"),
    pytest.param("bs", None, id="bs"),
    pytest.param("hs", "blackhole", id="hs-blackhole"),
    pytest.param("bs", "blackhole", id="bs-blackhole"),
    pytest.param("hs_act_blocks", None, id="hs-act-blocks"),
    pytest.param("hs_split_reader", None, id="hs-split-reader"),
    pytest.param("seed_op53", None, id="seed-mobilenetv2_op53"),
    pytest.param(REPO / "configs" / "mobilenetv2_op27.yaml", None, id="seed-mobilenetv2_op27-bs",
                 marks=pytest.mark.slow),
]

# Which RISC may block for which reason (docs/outputs.md, stall vocabulary table)
DM_REASONS = ("noc_read_barrier", "noc_write_barrier", "semaphore_wait")
ALLOWED = {
    Risc.BRISC: (True, True, DM_REASONS),
    Risc.NCRISC: (True, True, DM_REASONS),
    Risc.TRISC0: (True, True, ("unpack_wait_math",)),  # cb_reserve_back: pack's wait holds unpack too
    Risc.TRISC1: (False, False, ("math_wait_unpack", "math_wait_pack")),
    Risc.TRISC2: (False, True, ("pack_wait_math",)),
}
STREAMING = {
    "pool": ("in_cb", "mul_cb", "pre_tilize_cb", "out_cb"),
    "classic": ("ACT", "ACT_SECOND_READER", "ACT_TILIZED", "MATMUL_PARTIALS", "WEIGHTS", "ACT_ROW_MAJOR_BFLOAT16"),
    "depthwise": ("win_cb0", "win_cb1", "rm_cb"),  # its out_cb is the output shard, packed in place
}
MUST_STREAM = {"pool": ("in_cb", "mul_cb", "out_cb"), "classic": ("ACT", "ACT_TILIZED", "MATMUL_PARTIALS"),
               "depthwise": ("win_cb0",)}

_cache: dict[tuple, list[OpResult]] = {}


def results_for(config, device) -> list[OpResult]:
    key = (str(config), device)
    if key not in _cache:
        source = CONFIGS.get(config, config) if isinstance(config, str) else config
        _cache[key] = run(source, program="all", device=device)
    return _cache[key]


# -- invariants on real programs ------------------------------------------------------------------------

@pytest.mark.parametrize("config, device", CASES)
def test_busy_plus_blocked_is_the_kernel_zone(config, device) -> None:
    for result in results_for(config, device):
        profile = result.profile
        zones = {(z.core, z.risc): z for z in profile.zones}
        assert len(zones) == len(profile.zones)
        assert set(profile.busy) == set(zones) == set(profile.blocked)
        cbs_on = defaultdict(set)
        for record in profile.cbs:
            cbs_on[record.core].add(record.name)
        for key, zone in zones.items():
            busy, stalls = profile.busy[key], profile.blocked[key]
            duration = zone.end - zone.start
            assert busy >= -TOL and all(c >= 0 for c in stalls.values()), (result.op_code, key, busy, stalls)
            assert busy + sum(stalls.values()) == pytest.approx(duration, abs=TOL), (result.op_code, key)
            assert busy <= duration + TOL
            can_wait, can_reserve, others = ALLOWED[zone.risc]
            for reason in stalls:
                assert is_stall_reason(reason), reason
                if ":" in reason:
                    call, cb = reason.split(":", 1)
                    assert cb in cbs_on[zone.core], (reason, zone.core)
                    assert (call == "cb_wait_front" and can_wait) or (call == "cb_reserve_back" and can_reserve), \
                        (zone.risc, reason)
                else:
                    assert reason in others, (zone.risc, reason)


@pytest.mark.parametrize("config, device", CASES)
def test_breakdown_rows(config, device) -> None:
    for result in results_for(config, device):
        rows = breakdown(result)
        groups = defaultdict(list)
        for zone in result.profile.zones:
            groups[(zone.kernel, zone.risc)].append(zone)
        assert {(r.kernel, r.risc) for r in rows} == set(groups)
        for row in rows:
            zones = groups[(row.kernel, row.risc)]
            assert row.cores == len(zones)
            assert row.duration == pytest.approx(sum(z.end - z.start for z in zones) / len(zones), abs=TOL)
            assert row.busy + sum(row.stalls.values()) == pytest.approx(row.duration, abs=TOL)
            assert 0.0 <= row.utilisation <= 1.0 + 1e-12
            assert all(c >= 0 for c in row.stalls.values())
            assert all(is_stall_reason(r) for r in row.stalls)


@pytest.mark.parametrize("config, device", CASES)
def test_streaming_cbs_balance(config, device) -> None:
    """Every page pushed into a streaming CB is popped by the end: bytes produced = consumed."""
    for result in results_for(config, device):
        if result.op_code == "HaloDeviceOperation":
            continue
        names = set(STREAMING[result.program])
        if result.program == "classic":
            block = result.details["block_config"]
            if block.layout == "height_sharded" and block.num_blocks_act_h > 1:
                names.discard("WEIGHTS")  # fully buffered: read once, re-pushed for each act block
        present = {r.name for r in result.profile.cbs}
        assert set(MUST_STREAM[result.program]) <= present
        streamed = defaultdict(int)
        for record in result.profile.cbs:
            if record.name not in names:
                continue
            produced = record.pages_pushed * record.page_size
            consumed = record.pages_popped * record.page_size
            assert produced == consumed, (result.program, record.name, record.core, record.pages_pushed,
                                          record.pages_popped)
            assert record.max_occupancy <= record.num_pages
            streamed[record.name] += produced
        # (a BS core whose input channels have no output column streams only its act CBs)
        assert all(streamed[name] > 0 for name in MUST_STREAM[result.program]), dict(streamed)


def test_the_configs_cover_the_cb_variants() -> None:
    """The parametrised configs exercise what the streaming list distinguishes."""
    classic = {name: next(r for r in results_for(name, None) if r.program == "classic" and r.op_code != "HaloDeviceOperation")
               for name in ("hs", "bs", "hs_act_blocks", "hs_split_reader")}
    names = {k: {c.name for c in r.profile.cbs} for k, r in classic.items()}
    assert "ACT_ROW_MAJOR_BFLOAT16" in names["bs"]
    assert "ACT_SECOND_READER" in names["hs_split_reader"]
    assert classic["hs_act_blocks"].details["block_config"].num_blocks_act_h > 1
    assert classic["hs"].details["block_config"].num_blocks_act_h == 1


# -- a slow producer, hand-built -------------------------------------------------------------------------

CORE = (0, 0)
CB_ID = 5
CB_NAME = "slow_cb"


def _device(name: str = "wormhole_b0") -> Device:
    return Device(load_device(name))


def _burn(ctx, words: int) -> None:
    """``words`` 32-bit RISC stores to scratch L1 (risc.l1_store_cycles each)."""
    ctx.l1_store(ctx.core.l1.base + 8192, np.zeros(words, dtype=np.uint32))


def _slow_producer_program(words: int, pages: int, consumer_risc) -> Program:
    def producer(ctx):
        for _ in range(pages):
            _burn(ctx, words)
            yield from ctx.cb_reserve_back(CB_ID, 1)
            ctx.cb_push_back(CB_ID, 1)

    def consumer(ctx):
        for _ in range(pages):
            yield from ctx.cb_wait_front(CB_ID, 1)
            ctx.cb_pop_front(CB_ID, 1)

    program = Program("slow_producer")
    program.create_circular_buffer([CORE], CBConfig(CB_ID, CB_NAME, 2048, 4, DataFormat.BFLOAT16))
    program.create_kernel("producer", producer, [CORE], Risc.BRISC, {})
    program.create_kernel("consumer", consumer, [CORE], consumer_risc, {})
    return program


def _wait(words: int, pages: int, consumer_risc, device: str = "wormhole_b0"):
    dev = _device(device)
    profile = run_program(dev, _slow_producer_program(words, pages, consumer_risc))
    risc = Risc.TRISC0 if consumer_risc == "compute" else consumer_risc
    return dev, profile, profile.blocked[(CORE, risc)].get(f"cb_wait_front:{CB_NAME}", 0.0)


@pytest.mark.parametrize("consumer_risc", [Risc.NCRISC, "compute"], ids=["ncrisc", "compute"])
@pytest.mark.parametrize("device", ["wormhole_b0", "blackhole"])
def test_wait_front_stall_equals_the_producer_delay(consumer_risc, device: str) -> None:
    words = 2000
    dev, profile, stalled = _wait(words, 1, consumer_risc, device)
    delay = words * dev.spec.risc.l1_store_cycles.value
    # the consumer blocks from its first check until the page is published: the producer's delay
    # plus its own (tens of cycles) cb_reserve_back / cb_push_back overheads
    assert delay <= stalled <= delay + 60
    # and the stall grows exactly with the delay
    _, _, stalled_2 = _wait(2 * words, 1, consumer_risc, device)
    assert stalled_2 - stalled == pytest.approx(delay, abs=TOL)
    # it is the only stall of the consumer, and busy + blocked = zone holds for a hand-built program
    zones = {(z.core, z.risc): z for z in profile.zones}
    for key, zone in zones.items():
        assert profile.busy[key] + sum(profile.blocked[key].values()) == pytest.approx(zone.end - zone.start, abs=TOL)
    risc = Risc.TRISC0 if consumer_risc == "compute" else consumer_risc
    assert set(profile.blocked[(CORE, risc)]) == {f"cb_wait_front:{CB_NAME}"}


def test_wait_front_stall_accumulates_over_pages() -> None:
    words, pages = 400, 6
    dev, profile, stalled = _wait(words, pages, Risc.NCRISC)
    delay = words * dev.spec.risc.l1_store_cycles.value
    # per page: the producer's delay, give or take a few tens of cycles of CB call overheads
    assert pages * (delay - 60) <= stalled <= pages * (delay + 60)
    record = profile.cbs[0]
    assert record.consumer_blocked_cycles == pytest.approx(stalled)
    assert record.producer_blocked_cycles == 0
    assert (record.pages_pushed, record.pages_popped) == (pages, pages)


def test_compute_cb_wait_front_reaches_the_reports() -> None:
    """A compute kernel waiting on the slow producer: the stall shows as TRISC0's
    cb_wait_front:<cb> in the breakdown and as DEVICE COMPUTE CB WAIT FRONT in the CSV."""
    words = 3000
    dev, profile, stalled = _wait(words, 1, "compute")
    delay = words * dev.spec.risc.l1_store_cycles.value
    result = OpResult("hand_built", "test", "wormhole_b0", profile)
    rows = {(r.kernel, r.risc): r for r in breakdown(result)}
    trisc0 = rows[("consumer", Risc.TRISC0)]
    assert trisc0.stalls[f"cb_wait_front:{CB_NAME}"] == pytest.approx(stalled)
    assert delay <= trisc0.stalls[f"cb_wait_front:{CB_NAME}"] <= delay + 60
    assert trisc0.utilisation < 0.05
    wait, reserve = profile.compute_cb_wait_cycles()
    assert wait == pytest.approx(stalled) and reserve == 0
    text = ops_perf_csv([result])
    header, row = [line.split(",") for line in text.strip().splitlines()]
    cells = dict(zip(header, row))
    assert float(cells["DEVICE COMPUTE CB WAIT FRONT [ns]"]) == pytest.approx(stalled, abs=1)  # 1 cycle = 1 ns on WH
    assert float(cells["DEVICE COMPUTE CB RESERVE BACK [ns]"]) == 0


def test_no_wait_when_the_producer_is_ahead() -> None:
    """Consumer delayed instead: the pages are there, so cb_wait_front never blocks."""
    def producer(ctx):
        yield from ctx.cb_reserve_back(CB_ID, 2)
        ctx.cb_push_back(CB_ID, 2)

    def consumer(ctx):
        _burn(ctx, 500)
        yield from ctx.cb_wait_front(CB_ID, 2)
        ctx.cb_pop_front(CB_ID, 2)

    program = Program("fast_producer")
    program.create_circular_buffer([CORE], CBConfig(CB_ID, CB_NAME, 2048, 4, DataFormat.BFLOAT16))
    program.create_kernel("producer", producer, [CORE], Risc.BRISC, {})
    program.create_kernel("consumer", consumer, [CORE], Risc.NCRISC, {})
    profile = run_program(_device(), program)
    assert profile.blocked[(CORE, Risc.NCRISC)] == {}
    assert profile.blocked[(CORE, Risc.BRISC)] == {}


def test_vocabulary() -> None:
    for reason in STALL_REASONS:
        assert is_stall_reason(reason)
    assert is_stall_reason("cb_wait_front:in_cb") and is_stall_reason("cb_reserve_back:ACT")
    for name in ("cb_wait_front:", "cb_wait_front", "mul_tiles", "tile_regs_wait", "busy", ""):
        assert not is_stall_reason(name)


# -- the command line --------------------------------------------------------------------------------------

def test_cli_breakdown_prints_a_table_per_op(tmp_path: Path) -> None:
    path = tmp_path / "bd.yaml"
    path.write_text(yaml.safe_dump(CONFIGS["hs"]))
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "ttsim.cli", "run", path, "--breakdown"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    titles = re.findall(r"^hs (\w+) \((\w+)\): where the time goes", out, flags=re.M)
    assert titles == [("HaloDeviceOperation", "classic"), ("OptimizedConvNew", "classic"),
                      ("HaloDeviceOperation", "pool"), ("Conv2dDepthwisePool", "pool"),
                      ("HaloDeviceOperation", "depthwise"), ("Conv2dDepthwise", "depthwise")]
    header_lines = [line for line in out.splitlines() if "kernel" in line and "RISC" in line and "util" in line]
    assert len(header_lines) == 6
    for line in header_lines:
        cells = [c.strip() for c in re.split(r"[┃│]", line) if c.strip()]
        assert cells == ["kernel", "RISC", "cores", "duration", "busy", "util", "blocked on (largest first)"]
    # data rows: duration >= busy, util = busy / duration (averages over cores, in ns)
    rows = 0
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 7 and cells[1] in ("BRISC", "NCRISC", "TRISC0", "TRISC1", "TRISC2"):
            duration, busy = (float(c.replace(",", "")) for c in cells[3:5])
            util = float(cells[5].rstrip("%"))
            assert busy <= duration + 1
            assert util == pytest.approx(100 * busy / duration, abs=1.0)
            rows += 1
    assert rows == 3 * (2 + 5)  # per program, halo: BRISC, NCRISC; conv: two DM kernels and three TRISCs
    plain = subprocess.run([sys.executable, "-m", "ttsim.cli", "run", path], capture_output=True, text=True,
                           timeout=300, env=env)
    assert plain.returncode == 0 and "where the time goes" not in plain.stdout
