"""Host heuristics of the classic sharded conv (``ttsim.programs.conv_blocking``) against
tt-metal (``ttnn/cpp/ttnn/operations/conv/conv2d/conv2d_utils.cpp`` and
``conv2d_op_program_factory_common.cpp``): the subblock search, tt-metal's NoC rate model
(``get_noc_transfer_rate``), the per-case block configuration of the six seed ops (worked out by
hand from ``determine_per_core_conv_block_config``, typed in below), the split-reader choice and
the act_block_h override."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import NamedTuple

import pytest

from ttsim.config import load_config
from ttsim.programs.conv_blocking import (
    ClassicOverrides,
    determine_classic_block_config,
    determine_largest_subblock_size,
    noc_transfer_rate_gbps,
)
from ttsim.programs.parallel import determine_parallel_config
from ttsim.programs.sliding_window import ConvGeometry

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def seed_block(name: str, overrides: ClassicOverrides = ClassicOverrides()):
    """(geometry, parallel config, block config) of a seed op on the 8 x 8 n150 grid, align 8."""
    conv = load_config(CONFIGS / f"{name}.yaml").conv
    geom = ConvGeometry.from_spec(conv)
    pc = determine_parallel_config(geom, conv.memory_layout, 8, 8, channel_align=8)
    return geom, pc, determine_classic_block_config(geom, pc, "wormhole_b0", overrides)


# -- determine_largest_subblock_size ----------------------------------------------------------
# Worked by hand from the candidate order (2,4), (4,2), (1,8), (8,1), (1,7), (7,1), (2,3), (3,2),
# (1,6), (6,1), (1,5), (5,1), (2,2), (1,4), (4,1), (1,3), (3,1), (1,2), (2,1), (1,1): the first
# that divides both block dims, with h > 1 only if w == block_w, and h*w <= 8 (4 with fp32 dest).

@pytest.mark.parametrize(("block_h", "block_w", "expected"), [
    (8, 4, (2, 4)),    # the first candidate fits exactly
    (8, 2, (4, 2)),    # (2,4): 2 % 4; (4,2) has w == block_w
    (8, 8, (1, 8)),    # (2,4) and (4,2) divide but w != block_w
    (4, 8, (1, 8)),    # idem: without the h>1 rule this would be (2,4)
    (2, 16, (1, 8)),   # idem
    (16, 5, (1, 5)),   # MobileNetV2 op 14
    (4, 10, (1, 5)),   # YOLOv10x op 66: (2,5) is no candidate, (1,5) is
    (8, 3, (2, 3)),    # MobileNetV2 op 27
    (2, 4, (2, 4)),    # MobileNetV2 op 40
    (7, 3, (1, 3)),    # YOLOv10x op 79: 7 is prime, so h = 1
    (1, 4, (1, 4)),    # MobileNetV2 op 53
    (6, 6, (1, 6)),    # (2,3) and (3,2) divide but w != 6
    (6, 1, (6, 1)),    # (8,1) does not divide; (6,1) does and w == block_w
    (8, 1, (8, 1)),
    (3, 1, (3, 1)),
    (9, 7, (1, 7)),
    (5, 5, (1, 5)),
    (3, 3, (1, 3)),    # (3,1) comes after (1,3)
    (1, 1, (1, 1)),
    (13, 11, (1, 1)),  # nothing but (1,1) divides
])
def test_subblock_hand_cases(block_h: int, block_w: int, expected: tuple[int, int]) -> None:
    assert determine_largest_subblock_size(block_h, block_w) == expected


@pytest.mark.parametrize(("block_h", "block_w", "expected"), [
    (8, 4, (1, 4)),    # every h*w > 4 candidate skipped; (2,2) has w != 4; (1,4) fits
    (4, 2, (2, 2)),    # (2,2) has w == block_w
    (8, 2, (2, 2)),    # (4,2) is 8 > 4
    (8, 1, (4, 1)),    # (8,1) is 8 > 4
    (16, 5, (1, 1)),   # (1,5) is 5 > 4 and nothing smaller divides 5
    (3, 1, (3, 1)),
    (2, 3, (1, 3)),    # (2,3) is 6 > 4
])
def test_subblock_fp32_dest_limit_is_4(block_h: int, block_w: int, expected: tuple[int, int]) -> None:
    assert determine_largest_subblock_size(block_h, block_w, fp32_dest_acc=True) == expected


def test_subblock_invariants_over_all_small_blocks() -> None:
    for block_h, block_w, fp32 in itertools.product(range(1, 17), range(1, 17), (False, True)):
        h, w = determine_largest_subblock_size(block_h, block_w, fp32)
        assert block_h % h == 0 and block_w % w == 0
        assert h * w <= (4 if fp32 else 8)
        assert h == 1 or w == block_w, (block_h, block_w, h, w)


# -- noc_transfer_rate_gbps (tt-metal get_noc_transfer_rate) -----------------------------------

def test_noc_rate_wormhole_endpoints_and_flat_part() -> None:
    assert noc_transfer_rate_gbps(16, "wormhole_b0") == pytest.approx(0.868)
    assert noc_transfer_rate_gbps(1024, "wormhole_b0") == pytest.approx(27.7)
    for size in (1025, 2048, 8192, 1 << 20):
        assert noc_transfer_rate_gbps(size, "wormhole_b0") == pytest.approx(27.7)
    # linear in between: the midpoint of 16..1024 B gets the mean rate
    assert noc_transfer_rate_gbps(520, "wormhole_b0") == pytest.approx((0.868 + 27.7) / 2)


def test_noc_rate_blackhole_endpoints_and_flat_from_2048() -> None:
    assert noc_transfer_rate_gbps(16, "blackhole") == pytest.approx(0.671)
    assert noc_transfer_rate_gbps(2048, "blackhole") == pytest.approx(48.5)
    for size in (4096, 65536):
        assert noc_transfer_rate_gbps(size, "blackhole") == pytest.approx(48.5)
    # still rising at 1024 B (Wormhole is already flat there)
    assert 0.671 < noc_transfer_rate_gbps(1024, "blackhole") < 48.5
    assert noc_transfer_rate_gbps(1032, "blackhole") == pytest.approx((0.671 + 48.5) / 2)


@pytest.mark.parametrize("arch", ["wormhole_b0", "blackhole"])
def test_noc_rate_is_monotone(arch: str) -> None:
    rates = [noc_transfer_rate_gbps(size, arch) for size in range(16, 4097, 16)]
    assert all(a <= b for a, b in zip(rates, rates[1:]))
    assert rates[0] < rates[-1]


def test_noc_rate_calibration_point() -> None:
    """C = 144, kw = 3: 864 B per read gives about 23 GB/s, i.e. about 37 ns per stick-row read."""
    rate = noc_transfer_rate_gbps(2 * 144 * 3, "wormhole_b0")
    assert rate == pytest.approx(23.0, abs=0.6)
    assert 864 / rate == pytest.approx(37.0, abs=1.0)


# -- the per-case table, worked out by hand from determine_per_core_conv_block_config -----------

class Row(NamedTuple):
    layout: str
    cores_nhw: int
    cores_c_in: int
    cores_c_out: int
    out_h_tiles: int
    out_w_tiles: int
    c_per_core: int
    act_block_w_tiles: int
    in0_num_blocks_w: int
    weight_k_tiles: int
    subblock: tuple[int, int]
    tile_matmuls_per_core: int


TABLE_4_2 = {
    "mobilenetv2_op14": Row("height_sharded", 62, 1, 1, 16, 5, 144, 14, 3, 42, (1, 5), 3360),
    "mobilenetv2_op27": Row("block_sharded", 8, 8, 6, 8, 3, 72, 7, 24, 168, (2, 3), 4032),
    "mobilenetv2_op40": Row("block_sharded", 8, 8, 8, 2, 4, 120, 12, 24, 288, (2, 4), 2304),
    "mobilenetv2_op53": Row("height_sharded", 16, 1, 1, 1, 4, 112, 11, 3, 33, (1, 4), 132),
    "yolov10_op66": Row("height_sharded", 50, 1, 1, 4, 10, 320, 30, 3, 90, (1, 5), 3600),
    "yolov10_op79": Row("block_sharded", 8, 8, 7, 7, 3, 80, 8, 24, 192, (1, 3), 4032),
}


def test_table_covers_every_seed_config() -> None:
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(TABLE_4_2)


@pytest.mark.parametrize("name", sorted(TABLE_4_2))
def test_seed_block_config_reproduces_table_4_2(name: str) -> None:
    row = TABLE_4_2[name]
    geom, pc, block = seed_block(name)
    assert pc.layout == block.layout == row.layout
    assert (pc.num_cores_nhw, pc.num_cores_c, block.num_cores_c_out) == (
        row.cores_nhw, row.cores_c_in, row.cores_c_out)
    assert (block.per_core_out_h_ntiles, block.weight_block_w_ntiles) == (row.out_h_tiles, row.out_w_tiles)
    assert pc.channels_per_core == row.c_per_core
    assert block.act_block_w_ntiles == row.act_block_w_tiles
    assert block.in0_num_blocks_w == row.in0_num_blocks_w
    assert block.k_ntiles == row.weight_k_tiles
    assert (block.out_subblock_h_ntiles, block.out_subblock_w_ntiles) == row.subblock
    assert block.tile_matmuls_per_core == row.tile_matmuls_per_core
    # no override: one act block per core, the whole shard
    assert block.act_block_h_ntiles == block.per_core_out_h_ntiles == pc.out_shard // 32
    assert block.num_blocks_act_h == 1
    # derived quantities, from their definitions in determine_per_core_conv_block_config
    assert block.kh_blocks == geom.kh
    assert block.conv_act_c_blocks == (pc.num_cores_c if row.layout == "block_sharded" else 1)
    assert block.weight_block_h_ntiles == block.act_block_w_ntiles
    assert block.weight_block_num_tiles == row.act_block_w_tiles * row.out_w_tiles
    c_kw = row.c_per_core * geom.kw
    assert block.act_block_w_extra_align_bytes == (-(-c_kw // 32) * 32 - c_kw) * 2
    assert block.packer_untilize == (row.out_w_tiles <= 8)
    # the output channels fit the output grid, and not one output core too many
    assert row.cores_c_out * row.out_w_tiles * 32 >= geom.channels
    assert (row.cores_c_out - 1) * row.out_w_tiles * 32 < geom.channels


# -- split reader (tt-metal conv2d_op_program_factory_common.cpp) ------------------------------

def doc_rate(transfer_bytes: int, arch: str) -> float:
    """tt-metal's rate model, typed in from ``get_noc_transfer_rate`` (linear from 16 B, then flat)."""
    lo, hi, flat = (0.868, 27.7, 1024) if arch == "wormhole_b0" else (0.671, 48.5, 2048)
    return hi if transfer_bytes >= flat else lo + (hi - lo) * (transfer_bytes - 16) / (flat - 16)


def doc_split_reader(geom: ConvGeometry, out_h_tiles: int, layout: str, act_block_h: int) -> bool:
    row_bytes = 2 * geom.channels * geom.kw
    act_cost = out_h_tiles * 32 * row_bytes / doc_rate(row_bytes, "wormhole_b0")
    weights_cost = geom.channels * geom.channels * geom.kw / 16
    return layout == "height_sharded" and act_block_h > 1 and act_cost > weights_cost


@pytest.mark.parametrize(("name", "expected"), [
    ("mobilenetv2_op14", True),    # 10x56x56x144 HS: 16 tile rows of 864 B reads outweigh the weights
    ("yolov10_op66", False),       # 1x80x80x320 HS: 320^2 weights outweigh 4 tile rows of reads
    ("mobilenetv2_op53", False),   # 10x7x7x112 HS: act_block_h = 1
    ("mobilenetv2_op27", False),   # block sharded: never
    ("mobilenetv2_op40", False),
    ("yolov10_op79", False),
])
def test_split_reader_heuristic_with_default_overrides(name: str, expected: bool) -> None:
    geom, pc, block = seed_block(name, ClassicOverrides())
    assert block.split_reader is expected
    assert doc_split_reader(geom, block.per_core_out_h_ntiles, pc.layout, block.act_block_h_ntiles) is expected


def test_split_reader_needs_more_than_one_tile_row() -> None:
    """op 53 has act_block_h = 1: forcing the split reader on leaves it off."""
    _, _, block = seed_block("mobilenetv2_op53", ClassicOverrides(split_reader=True))
    assert block.act_block_h_ntiles == 1 and block.split_reader is False


@pytest.mark.parametrize(("name", "forced", "expected"), [
    ("mobilenetv2_op14", False, False),  # the seed config's own setting
    ("yolov10_op66", True, True),
    ("yolov10_op79", True, False),       # block sharded: HS only
])
def test_split_reader_override(name: str, forced: bool, expected: bool) -> None:
    _, _, block = seed_block(name, ClassicOverrides(split_reader=forced))
    assert block.split_reader is expected


def test_split_reader_heuristic_on_synthetic_shapes() -> None:
    """The decision follows tt-metal's act/weights cost comparison on both sides of the break-even
    channel count."""
    decisions = []
    for channels in (16, 64, 144, 256, 512, 640, 1024):
        spec = load_config(CONFIGS / "mobilenetv2_op14.yaml").conv.model_copy(update={"channels": channels})
        geom = ConvGeometry.from_spec(spec)
        pc = determine_parallel_config(geom, "height_sharded", 8, 8, channel_align=8)
        block = determine_classic_block_config(geom, pc, "wormhole_b0")
        expected = doc_split_reader(geom, block.per_core_out_h_ntiles, pc.layout, block.act_block_h_ntiles)
        assert block.split_reader is expected, channels
        decisions.append(expected)
    assert True in decisions and False in decisions  # the sweep crosses the break-even point


# -- act_block_h_override -----------------------------------------------------------------------

@pytest.mark.parametrize(("name", "override_sticks", "expected_h"), [
    ("mobilenetv2_op14", 32, 1),        # 16 tile rows per core
    ("mobilenetv2_op14", 64, 2),
    ("mobilenetv2_op14", 96, 2),        # 3 does not divide 16
    ("mobilenetv2_op14", 128, 4),
    ("mobilenetv2_op14", 160, 4),       # 5 does not divide 16
    ("mobilenetv2_op14", 224, 4),       # 7 does not divide 16
    ("mobilenetv2_op14", 256, 8),
    ("mobilenetv2_op14", 512, 16),
    ("mobilenetv2_op14", 4096, 16),     # above the shard: the whole shard
    ("yolov10_op66", 96, 2),            # 4 tile rows
    ("yolov10_op66", 128, 4),
    ("yolov10_op79", 64, 1),            # 7 tile rows (prime)
    ("yolov10_op79", 224, 7),
    ("mobilenetv2_op27", 192, 4),       # 8 tile rows
])
def test_act_block_h_override_takes_largest_divisor_not_above(name: str, override_sticks: int,
                                                              expected_h: int) -> None:
    _, pc, block = seed_block(name, ClassicOverrides(act_block_h_override=override_sticks))
    per_core_h = pc.out_shard // 32
    assert block.per_core_out_h_ntiles == per_core_h
    assert block.act_block_h_ntiles == expected_h
    assert block.num_blocks_act_h * expected_h == per_core_h
    # the subblock follows the new block height
    assert (block.out_subblock_h_ntiles, block.out_subblock_w_ntiles) == determine_largest_subblock_size(
        expected_h, block.weight_block_w_ntiles)
    # the override changes the block height only
    _, _, plain = seed_block(name)
    assert block.act_block_w_ntiles == plain.act_block_w_ntiles
    assert block.weight_block_w_ntiles == plain.weight_block_w_ntiles
    assert block.k_ntiles == plain.k_ntiles
    assert block.tile_matmuls_per_core == plain.tile_matmuls_per_core


def test_double_buffer_overrides_are_carried() -> None:
    _, _, block = seed_block("mobilenetv2_op27", ClassicOverrides(enable_act_double_buffer=True,
                                                                  enable_weights_double_buffer=True))
    assert block.enable_act_double_buffer and block.enable_weights_double_buffer
    _, _, plain = seed_block("mobilenetv2_op27")
    assert not plain.enable_act_double_buffer and not plain.enable_weights_double_buffer
