"""ttsim.limits: a conv against what the device preset says it can hold — the seed configs fit,
a conv exactly at a limit fits and one stick more does not, each message names the keys and the
limit, and the limits follow the preset (a smaller L1, grid or DRAM lowers them)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import ttsim
from ttsim.config import ConvSpec, load_config
from ttsim.device.spec import available_devices, load_device
from ttsim.errors import ConfigurationError, L1OverflowError
from ttsim.limits import check_conv_fits

ROOT = Path(__file__).resolve().parents[1]
WH = load_device("wormhole_b0")
GRID_L1 = 8 * 8 * WH.l1.usable_bytes  # 64 cores x 1,379,328 B

BASE = dict(batch=1, input_height=8, input_width=1, channels=8, kernel=[1, 1], stride=[1, 1],
            dilation=[1, 1], padding=[0, 0], bias=False, activation="none", dtype="bfloat16",
            weights_dtype="bfloat16", memory_layout="height_sharded", math_fidelity="LoFi")


def conv(**overrides) -> ConvSpec:
    return ConvSpec(**{**BASE, **overrides})


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_seed_configs_fit_every_device(config: Path, device: str) -> None:
    check_conv_fits(load_config(config).conv, load_device(device))


def test_input_exactly_at_the_grid_l1_fits_and_one_stick_more_does_not() -> None:
    sticks = GRID_L1 // 16  # 8 bfloat16 channels = one 16 B aligned stick
    check_conv_fits(conv(input_height=sticks), WH)
    with pytest.raises(ConfigurationError) as info:
        check_conv_fits(conv(input_height=sticks + 1), WH)
    assert str(info.value) == (
        f"conv: the input (batch 1 x input_height {sticks + 1} x input_width 1 x channels 8, bfloat16) "
        f"needs at least {(sticks + 1) * 16:,} B, more than the L1 of wormhole_b0 "
        f"(8x8 cores x 1,379,328 B of usable L1)")


def test_sticks_are_aligned_to_the_preset_l1_alignment() -> None:
    sticks = GRID_L1 // 16
    check_conv_fits(conv(input_height=sticks, channels=1), WH)  # 2 B of data, 16 B in L1
    with pytest.raises(ConfigurationError, match="the input"):
        check_conv_fits(conv(input_height=sticks + 1, channels=1), WH)


def test_output_grown_by_padding_names_padding_and_stride() -> None:
    with pytest.raises(ConfigurationError) as info:
        check_conv_fits(conv(input_height=1, input_width=1, padding=[3000, 3000]), WH)
    assert str(info.value).startswith("conv: the output (batch 1 x 6001 x 6001 x channels 8, bfloat16; from "
                                      "conv.padding [3000, 3000] and conv.stride [1, 1]) needs at least")


def test_channels_per_core_depend_on_the_layout() -> None:
    usable = WH.l1.usable_bytes
    per_core = usable // (32 * 2)  # channels whose 32-stick shard just fits one core (HS)
    per_core -= per_core % 8
    check_conv_fits(conv(channels=per_core, input_height=1), WH)
    with pytest.raises(ConfigurationError, match=r"conv.channels: .* channels \(height_sharded: at least"):
        check_conv_fits(conv(channels=per_core + 8, input_height=1), WH)
    # width sharding splits the channels over all 64 cores, block sharding over the 8 columns
    check_conv_fits(conv(channels=per_core * 8, input_height=1, memory_layout="block_sharded"), WH)
    with pytest.raises(ConfigurationError, match=r"\(block_sharded: at least"):
        check_conv_fits(conv(channels=(per_core + 8) * 8, input_height=1, memory_layout="block_sharded"), WH)
    check_conv_fits(conv(channels=(per_core + 8) * 8, input_height=1, memory_layout="width_sharded"), WH)


def test_halo_window_of_one_output_row_must_fit_a_core() -> None:
    with pytest.raises(ConfigurationError) as info:
        check_conv_fits(conv(input_height=300, input_width=300, kernel=[300, 1], channels=64), WH)
    assert str(info.value).startswith("conv.kernel: one output row reads 300 padded input rows (conv.kernel "
                                      "[300, 1], conv.dilation [1, 1]) of 300 sticks")


def test_limits_follow_the_preset() -> None:
    """The same conv against a preset with a smaller grid, L1 or DRAM: the limits come from it."""
    fits = conv(input_height=GRID_L1 // 16)
    small_grid = WH.model_copy(update={"chip": WH.chip.model_copy(update={
        "compute_grid": WH.chip.compute_grid.model_copy(update={"value": (4, 4)})})})
    with pytest.raises(ConfigurationError, match=r"\(4x4 cores x 1,379,328 B of usable L1\)"):
        check_conv_fits(fits, small_grid)
    tiny_dram = WH.model_copy(update={"dram": WH.dram.model_copy(update={
        "bank_size_bytes": WH.dram.bank_size_bytes.model_copy(update={"value": 1024})})})
    assert tiny_dram.dram.capacity_bytes == 12 * 1024
    check_conv_fits(conv(channels=6144), tiny_dram)  # 6144 x 1 x 1 x 2 B = 12 KiB: just fits
    with pytest.raises(ConfigurationError) as info:
        check_conv_fits(conv(channels=6152), tiny_dram)
    assert str(info.value) == ("conv: the weights (channels 6152 x kernel 1x1) need 12,304 B, more than the "
                               "12,288 B of DRAM of wormhole_b0")


def test_dram_capacity_is_the_boards() -> None:
    assert load_device("wormhole_b0").dram.capacity_bytes == 12 * 2**30  # n150: 12 GB GDDR6
    assert load_device("blackhole").dram.capacity_bytes == 32 * 2**30  # p150: 32 GB GDDR6


def test_the_device_override_is_what_is_checked() -> None:
    """A conv that fits blackhole's 11x10 grid but not wormhole's 8x8 one."""
    bh = load_device("blackhole")
    sticks = 11 * 10 * bh.l1.usable_bytes // 16
    config = {"name": "tall", "conv": {**BASE, "input_height": sticks}}
    check_conv_fits(load_config(config).conv, bh)
    with pytest.raises(ConfigurationError, match="more than the L1 of wormhole_b0"):
        ttsim.run(config, device="wormhole_b0")


def test_classic_refuses_an_oversized_weight_block_before_building_it() -> None:
    start = time.perf_counter()
    with pytest.raises(L1OverflowError) as info:
        ttsim.run({"name": "wide", "conv": {**BASE, "input_height": 7, "input_width": 7, "kernel": [3, 3],
                                            "padding": [1, 1], "channels": 2000}}, program="classic")
    assert time.perf_counter() - start < 15
    assert str(info.value).startswith("classic: one weight block (")
    assert "exceeds the 1,379,328 B usable L1 per core" in str(info.value)
