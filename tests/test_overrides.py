"""What-if overrides: ``--set`` dotted keys, per-program CB page counts, ``core_grid``, the
classic block-config overrides, and the ``--l1`` CB table.

Every override goes through the same validation as the file; every CB override is checked
against the CB table and L1 use the simulation reports, and against an independent computation
(page size x pages, block arithmetic) where one exists.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttsim.config import load_config
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.errors import CBRequestError, ConfigurationError
from ttsim.simulate import OpResult, run

ROOT = Path(__file__).resolve().parents[1]
OP53 = ROOT / "configs" / "mobilenetv2_op53.yaml"
"""10 x 7 x 7 x 112, 3x3, height-sharded on 16 cores: both programs run in ~0.1 s."""

POOL_CBS = ["in_cb", "mul_cb", "weight_cb", "out_cb", "in_scalar_cb", "clear_value_cb", "bias_cb",
            "in_reader_indices_cb", "pre_tilize_cb", "raw_in_cb"]
CLASSIC_CBS = ["WEIGHTS", "MATMUL_PARTIALS", "ACT", "ACT_TILIZED", "BIAS", "OUT", "READER_INDICES",
               "L1_ARRAY", "ACT_SHARDED"]


def conv_op(overrides: list[str] | None = None, program: str = "pool",
            source: Path | dict = OP53) -> OpResult:
    """The conv op (not the halo op) of one program run with ``--set`` style overrides."""
    results = run(load_config(source, overrides or []), program=program)
    assert [r.program for r in results] == [program, program]
    return results[-1]


def cb_pages(result: OpResult) -> dict[str, int]:
    return {spec.config.name: spec.config.num_pages for spec in result.details["cb_table"]}


def cb_pages_sizes(result: OpResult) -> dict[str, tuple[int, int]]:
    return {spec.config.name: (spec.config.page_size, spec.config.num_pages)
            for spec in result.details["cb_table"]}


def stall_sum(result: OpResult, reason: str) -> float:
    """Cycles every RISC of every core spent blocked for ``reason``."""
    return sum(stalls.get(reason, 0.0) for stalls in result.profile.blocked.values())


def without_label(message: str) -> list[str]:
    """The lines of a ConfigurationError without the leading '<file>: ' label."""
    return [line.split(": ", 1)[1] for line in message.splitlines()]


@pytest.fixture(scope="module")
def pool_default() -> OpResult:
    return conv_op()


@pytest.fixture(scope="module")
def classic_default() -> OpResult:
    return conv_op(program="classic")


# -- --set changes the config ---------------------------------------------------------------------

def _set_by_hand(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


@pytest.mark.parametrize("override, key, value", [
    ("conv.channels=64", "conv.channels", 64),
    ("conv.kernel=[5,5]", "conv.kernel", [5, 5]),
    ("pool.cb.in_cb.pages=4", "pool.cb.in_cb.pages", 4),
    ("classic.act_block_h_override=32", "classic.act_block_h_override", 32),
    ("classic.out_subblock=[1, 2]", "classic.out_subblock", [1, 2]),
    ("pool.core_grid=[2,2]", "pool.core_grid", [2, 2]),
])
def test_set_changes_exactly_that_key(override: str, key: str, value: Any) -> None:
    raw = yaml.safe_load(OP53.read_text())
    base = load_config(OP53)
    changed = load_config(OP53, [override])
    expected = load_config(_set_by_hand(raw, key, value))  # the same edit made in the mapping
    assert changed == expected
    assert changed != base  # the override really is a change from the file


def test_set_values_as_the_config_sees_them() -> None:
    config = load_config(OP53, ["conv.channels=64", "conv.kernel=[5,5]", "pool.cb.in_cb.pages=4",
                                "classic.act_block_h_override=32"])
    assert config.conv.channels == 64
    assert config.conv.kernel == (5, 5)
    assert config.pool.cb["in_cb"].pages == 4
    assert config.classic.cb == {}  # a pool CB override does not leak into the classic program
    assert config.classic.act_block_h_override == 32
    assert config.conv.stride == (1, 1)  # untouched keys keep the file's values


def test_later_set_of_the_same_key_wins() -> None:
    assert load_config(OP53, ["conv.channels=64", "conv.channels=96"]).conv.channels == 96


@pytest.mark.parametrize("key, value, expected", [
    ("conv.chanels", "3", "unknown key 'conv.chanels'"),
    ("conv.channels", "abc", "conv.channels: Input should be a valid integer (got 'abc')"),
    ("conv.channels", "0", "conv.channels: Input should be greater than or equal to 1 (got 0)"),
    ("conv.kernel", "[5,5,5]", "conv.kernel: expected a list of 2 values [height, width] (got [5, 5, 5])"),
    ("pool.cb.in_cb.pages", "0", "pool.cb.in_cb.pages: Input should be greater than or equal to 1 (got 0)"),
    ("pool.core_grid", "[2,0]", "pool.core_grid[1]: Input should be greater than or equal to 1 (got 0)"),
    ("classic.act_block_h_override", "33", "classic.act_block_h_override: act_block_h_override must be a "
                                           "multiple of 32, got 33"),
    ("pool.act_block_h_override", "32", "unknown key 'pool.act_block_h_override'"),
])
def test_set_is_validated_like_the_file(tmp_path: Path, key: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as from_set:
        load_config(OP53, [f"{key}={value}"])
    assert str(from_set.value).startswith(f"{OP53}: ")
    assert expected in str(from_set.value)
    # the same value written in the file gives the same message
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(_set_by_hand(yaml.safe_load(OP53.read_text()), key, yaml.safe_load(value))))
    with pytest.raises(ConfigurationError) as from_file:
        load_config(edited)
    assert without_label(str(from_set.value)) == without_label(str(from_file.value))


@pytest.mark.parametrize("override, expected", [
    ("conv.channels", "--set 'conv.channels': expected KEY=VALUE with a dotted KEY"),
    ("=3", "--set '=3': expected KEY=VALUE with a dotted KEY"),
    ("conv..channels=3", "--set 'conv..channels=3': expected KEY=VALUE with a dotted KEY"),
    ("conv.kernel=[5,", "--set conv.kernel: line 1, column 4: YAML syntax error"),
    ("conv.channels.x=3", "--set conv.channels.x: 'conv.channels' is not a mapping"),
])
def test_malformed_set_is_rejected(override: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(OP53, [override])
    assert f"{OP53}: {expected}" in str(info.value)


def ttsim_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.parametrize("override, expected", [
    ("conv.chanels=3", "unknown key 'conv.chanels'"),
    ("conv.channels", "--set 'conv.channels': expected KEY=VALUE"),
    ("pool.cb.nope.pages=2", "pool.cb: no CB named nope in this program"),
])
def test_cli_set_errors_exit_2_with_one_message(override: str, expected: str) -> None:
    done = ttsim_cli("run", OP53, "--program", "pool", "--set", override)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("ttsim: error: ")
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# -- CB page overrides: the CB table, L1 and the timing -------------------------------------------

def test_in_cb_pages_change_the_cb_table_and_l1(pool_default: OpResult) -> None:
    changed = conv_op(["pool.cb.in_cb.pages=6"])
    before, after = cb_pages_sizes(pool_default), cb_pages_sizes(changed)
    assert list(before) == list(after) == POOL_CBS
    page_size, default_pages = before["in_cb"]
    assert default_pages == 4 and after["in_cb"] == (page_size, 6)
    assert {k: v for k, v in after.items() if k != "in_cb"} == {k: v for k, v in before.items() if k != "in_cb"}
    extra = (6 - default_pages) * page_size
    assert changed.profile.l1_used_bytes == pool_default.profile.l1_used_bytes + extra
    # in_cb is the first CB: every later CB of its own L1 moves up by the extra bytes; CBs that
    # alias a tensor buffer stay at the tensor's address
    old = {r.name: r for r in pool_default.profile.cbs if r.core == (0, 0)}
    new = {r.name: r for r in changed.profile.cbs if r.core == (0, 0)}
    assert new["in_cb"].address == old["in_cb"].address
    for name in POOL_CBS[1:]:
        shift = 0 if old[name].globally_allocated else extra
        assert new[name].address == old[name].address + shift, name
    assert changed.pcc > 0.999


def test_more_in_cb_pages_let_the_reader_block_less() -> None:
    """With more pages in flight the reader waits less for the compute kernel to free in_cb."""
    blocked = {}
    for pages in (2, 4, 8):
        result = conv_op([f"pool.cb.in_cb.pages={pages}"])
        assert cb_pages(result)["in_cb"] == pages
        assert result.pcc > 0.999
        blocked[pages] = stall_sum(result, "cb_reserve_back:in_cb")
        in_cb = [r for r in result.profile.cbs if r.name == "in_cb"]
        assert all(r.max_occupancy <= pages for r in in_cb)
    assert blocked[2] > blocked[4] > blocked[8] > 0


def test_weights_pages_override_equals_weights_double_buffering(classic_default: OpResult) -> None:
    """WEIGHTS holds one weight block (11 x 4 tiles) by default; two blocks let the weights reader
    fetch the next block while compute uses the current one, so the op gets faster."""
    default = cb_pages_sizes(classic_default)
    page_size, pages = default["WEIGHTS"]
    act_block_w = -(-112 * 3 // 32)  # C * kw, in tiles
    weight_block_w = -(-112 // 32)
    assert pages == act_block_w * weight_block_w == 44
    by_override = conv_op([f"classic.cb.WEIGHTS.pages={2 * pages}"], program="classic")
    by_option = conv_op(["classic.enable_weights_double_buffer=true"], program="classic")
    assert cb_pages_sizes(by_override) == cb_pages_sizes(by_option) == {**default, "WEIGHTS": (page_size, 88)}
    assert by_override.profile.l1_used_bytes == classic_default.profile.l1_used_bytes + pages * page_size
    assert by_override.device_kernel_duration_cycles == by_option.device_kernel_duration_cycles
    assert by_override.device_kernel_duration_cycles < classic_default.device_kernel_duration_cycles
    assert by_override.pcc > 0.999


def test_act_double_buffer_lets_the_act_reader_block_less() -> None:
    """Four act blocks per core (act_block_h 1 tile of 4): with two ACT blocks the activation
    reader fills the next while compute uses the current, so it waits less for free pages."""
    base = ["classic.core_grid=[2,2]", "classic.act_block_h_override=32"]
    single = conv_op(base, program="classic")
    double = conv_op([*base, "classic.enable_act_double_buffer=true"], program="classic")
    by_pages = conv_op([*base, f"classic.cb.ACT.pages={2 * cb_pages(single)['ACT']}"], program="classic")
    assert single.details["block_config"].num_blocks_act_h == 4
    assert cb_pages(double)["ACT"] == 2 * cb_pages(single)["ACT"] == cb_pages(by_pages)["ACT"]
    assert stall_sum(double, "cb_reserve_back:ACT") < stall_sum(single, "cb_reserve_back:ACT")
    assert stall_sum(by_pages, "cb_reserve_back:ACT") == stall_sum(double, "cb_reserve_back:ACT")
    assert double.device_kernel_duration_cycles <= single.device_kernel_duration_cycles
    assert double.pcc > 0.999


def test_weights_override_keeps_fully_buffered_numerics_right() -> None:
    base = ["classic.core_grid=[2,2]", "classic.act_block_h_override=32"]
    default = conv_op(base, program="classic")
    weights = cb_pages(default)["WEIGHTS"]  # kh blocks: weights read once, re-pushed per act block
    assert weights == 3 * 44
    changed = conv_op([*base, f"classic.cb.WEIGHTS.pages={2 * 44}"], program="classic")
    assert changed.pcc > 0.999  # either right, or the override should have been rejected


def test_in_cb_pages_not_a_multiple_of_the_window_is_rejected_or_right() -> None:
    try:
        result = conv_op(["pool.cb.in_cb.pages=3"])
    except (ConfigurationError, CBRequestError):
        return
    assert result.pcc > 0.999


# -- tensor-aliased and unknown CBs ---------------------------------------------------------------

@pytest.mark.parametrize("program, name, buffer", [
    ("pool", "raw_in_cb", "halo_output"),
    ("pool", "out_cb", "conv_output"),
    ("pool", "in_reader_indices_cb", "reader_indices"),
    ("classic", "OUT", "conv_output"),
    ("classic", "MATMUL_PARTIALS", "conv_output"),
    ("classic", "ACT_SHARDED", "halo_output"),
])
def test_tensor_aliased_cb_cannot_be_resized(program: str, name: str, buffer: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        conv_op([f"{program}.cb.{name}.pages=2"], program=program)
    assert str(info.value) == (f"{program}.cb.{name}: CB '{name}' aliases the tensor buffer '{buffer}'; its "
                               "size is the tensor's and cannot be overridden")


@pytest.mark.parametrize("program, unknown", [
    ("pool", ["nope"]),
    ("pool", ["zzz", "WEIGHTS"]),  # a classic CB name is unknown to the pool program
    ("classic", ["in_cb"]),
])
def test_unknown_cb_name_lists_the_programs_cbs(program: str, unknown: list[str], pool_default: OpResult,
                                                classic_default: OpResult) -> None:
    default = pool_default if program == "pool" else classic_default
    names = [spec.config.name for spec in default.details["cb_table"]]
    assert names == (POOL_CBS if program == "pool" else CLASSIC_CBS)
    with pytest.raises(ConfigurationError) as info:
        conv_op([f"{program}.cb.{name}.pages=2" for name in unknown], program=program)
    assert str(info.value) == (f"{program}.cb: no CB named {', '.join(sorted(unknown))} in this program; "
                               f"its CBs are {', '.join(names)}")


def test_cb_override_of_the_other_program_is_ignored(pool_default: OpResult) -> None:
    """classic.cb.* does not touch the pool program (and the reverse)."""
    result = conv_op(["classic.cb.WEIGHTS.pages=88"])
    assert cb_pages_sizes(result) == cb_pages_sizes(pool_default)
    assert result.device_kernel_duration_cycles == pool_default.device_kernel_duration_cycles


# -- core_grid ------------------------------------------------------------------------------------

@pytest.mark.parametrize("program, grid", [("pool", (2, 2)), ("pool", (3, 1)), ("classic", (4, 2))])
def test_core_grid_limits_the_cores(program: str, grid: tuple[int, int], pool_default: OpResult) -> None:
    assert pool_default.profile.core_count == 16  # without the limit more cores are used
    results = run(load_config(OP53, [f"{program}.core_grid=[{grid[0]},{grid[1]}]"]), program=program)
    for result in results:  # the halo op runs on the same cores
        assert 1 <= result.profile.core_count <= grid[0] * grid[1]
        used = {zone.core for zone in result.profile.zones}
        assert all(x < grid[0] and y < grid[1] for x, y in used), used
    conv = results[-1]
    assert all(x < grid[0] and y < grid[1] for x, y in (r.core for r in conv.profile.cbs))
    assert conv.pcc > 0.999


@pytest.mark.parametrize("program", ["pool", "classic"])
def test_core_grid_larger_than_the_device_is_rejected(program: str) -> None:
    gx, gy = Device(load_device("wormhole_b0")).grid
    with pytest.raises(ConfigurationError) as info:
        conv_op([f"{program}.core_grid=[{gx},{gy + 1}]"], program=program)
    assert str(info.value) == (f"{program}.core_grid: [{gx}, {gy + 1}] exceeds the {gx}x{gy} compute grid "
                               "of wormhole_b0")
    conv_op([f"{program}.core_grid=[{gx},{gy}]"], program=program)  # the whole grid is fine


# -- classic block config -------------------------------------------------------------------------

def test_out_subblock_is_applied(classic_default: OpResult) -> None:
    block = classic_default.details["block_config"]
    assert (block.out_subblock_h_ntiles, block.out_subblock_w_ntiles) == (1, 4)  # the heuristic's
    result = conv_op(["classic.out_subblock=[1,2]"], program="classic")
    block = result.details["block_config"]
    assert (block.out_subblock_h_ntiles, block.out_subblock_w_ntiles) == (1, 2)
    assert result.pcc > 0.999
    assert result.device_kernel_duration_cycles != classic_default.device_kernel_duration_cycles


@pytest.mark.parametrize("subblock", [[1, 3], [2, 4], [1, 8]])
def test_invalid_out_subblock_is_rejected(subblock: list[int]) -> None:
    # the output block is 1 x 4 tiles: 1 tile of 32 rows per core, 112 channels -> 4 tiles
    with pytest.raises(ConfigurationError) as info:
        conv_op([f"classic.out_subblock=[{subblock[0]},{subblock[1]}]"], program="classic")
    message = str(info.value)
    assert message.startswith(f"classic.out_subblock: [{subblock[0]}, {subblock[1]}] does not tile the "
                              "1 x 4-tile output block")


def test_act_block_h_override_splits_the_shard_into_act_blocks() -> None:
    grid = "classic.core_grid=[4,2]"  # 8 cores: 490 pixels -> 64 rows = 2 tiles per core
    whole = conv_op([grid], program="classic")
    split = conv_op([grid, "classic.act_block_h_override=32"], program="classic")
    b0, b1 = whole.details["block_config"], split.details["block_config"]
    assert b0.per_core_out_h_ntiles == b1.per_core_out_h_ntiles == 2
    assert (b0.act_block_h_ntiles, b0.num_blocks_act_h) == (2, 1)
    assert (b1.act_block_h_ntiles, b1.num_blocks_act_h) == (1, 2)
    act_w = b0.act_block_w_ntiles
    assert cb_pages(whole)["ACT"] == 2 * act_w and cb_pages(split)["ACT"] == act_w
    assert split.pcc > 0.999


# -- ttsim run --l1 -------------------------------------------------------------------------------

def _table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines()
            if line.startswith("│")]


def test_run_l1_prints_the_cb_table_and_the_budget() -> None:
    override = "pool.cb.in_cb.pages=6"
    done = ttsim_cli("run", OP53, "--program", "pool", "--set", override, "--l1")
    assert done.returncode == 0, done.stderr
    conv = conv_op([override])
    profile = conv.profile
    flat = " ".join(done.stdout.split())  # rich may wrap the title
    assert (f"mobilenetv2_op53 Conv2dDepthwisePool (pool): circular buffers per core; L1 budget "
            f"{profile.l1_budget_bytes:,} B, peak use {profile.l1_used_bytes:,} B") in flat
    assert profile.l1_budget_bytes == load_device("wormhole_b0").l1.usable_bytes

    rows = _table_rows(done.stdout)
    by_name = {row[2]: row for row in rows if len(row) == 7 and row[2]}
    records = [r for r in profile.cbs if r.core == (0, 0)]
    assert len(records) == len(POOL_CBS)
    total = 0
    for r in records:
        label = r.name + (" (tensor)" if r.globally_allocated else "")
        row = by_name[label]
        assert row[1:] == [str(r.index), label, f"0x{r.address:06x}", f"{r.page_size:,}", str(r.num_pages),
                           f"{r.page_size * r.num_pages:,}"]
        total += 0 if r.globally_allocated else r.page_size * r.num_pages
    assert by_name["in_cb"][5:] == ["6", f"{6 * 2048:,}"]
    assert by_name["CB total (tensor-aliased CBs not counted)"][-1] == f"{total:,}"
    # one group of identical tables: every one of the 16 cores
    assert any(row[0] == "16: (0, 0)..(7, 1)" for row in rows)


# -- act_block_w: full inner dimension (block sharded) ---------------------------------------------

def test_full_inner_dim_widens_the_act_block_and_keeps_numerics() -> None:
    """classic.full_inner_dim puts the whole kh x kw window of a channel slice in one inner block:
    act_block_w = round_up(C_core * kw * kh, 32) tiles and one inner block per channel slice."""
    conv = {"batch": 1, "input_height": 16, "input_width": 16, "channels": 96, "kernel": [3, 3],
            "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "bias": True, "activation": "relu6",
            "dtype": "bfloat16", "weights_dtype": "bfloat16", "memory_layout": "block_sharded",
            "math_fidelity": "LoFi", "output_layout": "tile"}
    results = {}
    for full in (False, True):
        op = run({"name": "fid", "conv": conv, "classic": {"full_inner_dim": full}}, program="classic")[1]
        results[full] = op
        assert op.pcc > 0.999
    per_row, whole = results[False].details["block_config"], results[True].details["block_config"]
    c_core = results[True].details["parallel_config"].channels_per_core
    assert whole.act_block_w_ntiles == -(-c_core * 3 * 3 // 32)
    assert per_row.act_block_w_ntiles == -(-c_core * 3 // 32)
    assert whole.in0_num_blocks_w == per_row.in0_num_blocks_w // 3
    assert whole.k_ntiles * 32 >= c_core * 9 * whole.conv_act_c_blocks
