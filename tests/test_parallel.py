"""tt-metal's parallel-config heuristics against a per-case table worked out by hand from
``determine_parallel_config`` (tt-metal ``ttnn/cpp/ttnn/operations/conv/conv2d/conv2d_utils.cpp``,
32-channel alignment)."""

from __future__ import annotations

import pytest

from ttsim.config import ConvSpec
from ttsim.programs.parallel import (
    determine_parallel_config,
    find_closest_largest_divisor_with_num_padding,
    find_closest_largest_divisor_with_num_padding_and_mult,
)
from ttsim.programs.sliding_window import ConvGeometry


def _geom(batch: int, h: int, w: int, c: int, layout: str) -> ConvGeometry:
    spec = ConvSpec(
        batch=batch,
        input_height=h,
        input_width=w,
        channels=c,
        kernel=(3, 3),
        stride=(1, 1),
        padding=(1, 1),
        dilation=(1, 1),
        bias=True,
        activation="relu6",
        dtype="bfloat16",
        weights_dtype="bfloat16",
        memory_layout=layout,
        math_fidelity="LoFi",
    )
    return ConvGeometry.from_spec(spec)


@pytest.mark.parametrize(
    ("shape", "layout", "cores", "c_per_core", "out_shard"),
    [
        ((10, 56, 56, 144), "height_sharded", (62, 1), 160, 512),
        ((10, 14, 14, 576), "block_sharded", (8, 6), 96, 256),
        ((10, 7, 7, 960), "block_sharded", (8, 8), 128, 64),
        ((10, 7, 7, 112), "height_sharded", (16, 1), 128, 32),
        ((10, 112, 112, 32), "height_sharded", (64, 1), 32, 1984),
        ((1, 80, 80, 320), "height_sharded", (50, 1), 320, 128),
        ((1, 40, 40, 640), "block_sharded", (8, 7), 96, 224),
    ],
)
def test_table_6_6(
    shape: tuple[int, int, int, int],
    layout: str,
    cores: tuple[int, int],
    c_per_core: int,
    out_shard: int,
) -> None:
    geom = _geom(*shape, layout)
    cfg = determine_parallel_config(geom, layout, 8, 8)
    assert (cfg.num_cores_nhw, cfg.num_cores_c) == cores
    assert cfg.channels_per_core == c_per_core
    assert cfg.channels_padded == c_per_core * cores[1]
    assert cfg.out_shard == out_shard
    assert cfg.in_shard == out_shard  # stride 1, pad 1: in_nhw == out_nhw
    assert cfg.num_cores == cores[0] * cores[1]
    assert len(set(cfg.cores())) == cfg.num_cores


def test_core_placement() -> None:
    hs = determine_parallel_config(_geom(10, 56, 56, 144, "height_sharded"), "height_sharded", 8, 8)
    assert hs.core_xy(0, 0) == (0, 0) and hs.core_xy(9, 0) == (1, 1) and hs.core_xy(61, 0) == (5, 7)
    with pytest.raises(ValueError):
        hs.core_xy(0, 1)
    bs = determine_parallel_config(_geom(1, 40, 40, 640, "block_sharded"), "block_sharded", 8, 8)
    assert bs.core_xy(3, 5) == (5, 3)
    assert bs.cores()[:8] == [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (0, 1)]
    ws = determine_parallel_config(_geom(1, 8, 8, 640, "width_sharded"), "width_sharded", 8, 8)
    assert (ws.num_cores_nhw, ws.num_cores_c, ws.channels_per_core) == (1, 20, 32)
    assert ws.out_shard == ws.in_shard == 64
    assert ws.core_xy(0, 10) == (2, 1)
    with pytest.raises(ValueError):
        ws.core_xy(1, 0)


def test_in_shard_follows_input_sticks() -> None:
    spec = _geom(1, 80, 80, 32, "height_sharded")
    cfg = determine_parallel_config(spec, "height_sharded", 8, 7)
    assert cfg.num_cores_nhw == 50 and cfg.in_shard == 128


def test_unknown_layout() -> None:
    with pytest.raises(ValueError):
        determine_parallel_config(_geom(1, 8, 8, 32, "height_sharded"), "diagonal", 8, 8)


@pytest.mark.parametrize(
    ("num", "start", "expected"),
    [
        (32, 8, 8),
        (32, 13, 11),
        (18, 8, 6),
        (20, 8, 7),
        (30, 8, 8),
        (1, 8, 1),
        (7, 7, 7),
        (5, 64, 5),
    ],
)
def test_divisor_with_num_padding(num: int, start: int, expected: int) -> None:
    assert find_closest_largest_divisor_with_num_padding(num, start) == expected


@pytest.mark.parametrize(
    ("num", "start", "mult", "expected"),
    [
        (980, 64, 1, 62),
        (200, 64, 1, 50),
        (16, 64, 1, 16),
        (62, 8, 1, 8),
        (1, 64, 1, 1),
        (10, 8, 2, 5),
    ],
)
def test_divisor_with_num_padding_and_mult(num: int, start: int, mult: int, expected: int) -> None:
    assert find_closest_largest_divisor_with_num_padding_and_mult(num, start, mult) == expected


def test_divisor_rejects_zero() -> None:
    with pytest.raises(ValueError):
        find_closest_largest_divisor_with_num_padding(0, 8)
