"""tt-metal's host heuristics for splitting a depthwise conv over the core grid.

Faithful ports of ``conv2d_utils.cpp`` (tt-metal ``ttnn/cpp/ttnn/operations/conv/conv2d/``) with the depthwise branch's 32-channel
(tile) alignment and no overrides: how many cores share the NHW (stick) dimension and the channel
dimension, and how many sticks and channels each core holds. Coordinates are logical worker-grid
coordinates (x = column, y = row).
"""

from __future__ import annotations

from dataclasses import dataclass

from ttsim.formats import TILE_W as TILE  # tiles are square; shards and channel slices are whole tiles
from ttsim.programs.sliding_window import ConvGeometry

LAYOUTS = ("height_sharded", "block_sharded", "width_sharded")
"""Memory layouts, spelled as in :class:`ttsim.config.ConvSpec`."""


def _ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for positive ints, exactly."""
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    """Smallest multiple of b that is >= a."""
    return _ceil_div(a, b) * b


def _check_positive(**values: int) -> None:
    """Reject non-positive arguments, which would make the divisor searches divide by zero."""
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def find_closest_largest_divisor_with_num_padding(num: int, start: int) -> int:
    """Largest d <= start whose padding d*ceil(num/d) - num is below one share, ceil(num/d).

    d need not divide num; the search walks down from ``start`` and stops at 1 at the latest.
    """
    _check_positive(num=num, start=start)
    divisor = start
    while _round_up(num, divisor) - num >= _ceil_div(num, divisor):
        divisor -= 1
    return divisor


def find_closest_largest_divisor_with_num_padding_and_mult(num: int, start: int, mult: int) -> int:
    """As :func:`find_closest_largest_divisor_with_num_padding`, with num padded to d*mult.

    Port of the current tt-metal version: padded = round_up(num, d*mult), and the search stops
    at the first d with padded - num < padded / d (each core's share, a multiple of ``mult``),
    or at d = 1. With ``mult`` = 1 (no act_block_h override) it equals the function above.
    """
    _check_positive(num=num, start=start, mult=mult)
    divisor = start
    padded = _round_up(num, divisor * mult)
    while padded - num >= padded // divisor and divisor > 1:
        divisor -= 1
        padded = _round_up(num, divisor * mult)
    return divisor


@dataclass(frozen=True)
class ParallelConfig:
    """How a conv is split over the core grid; sticks and channels per core are tile multiples."""

    layout: str
    """One of :data:`LAYOUTS`."""
    grid_x: int
    """Device compute-grid columns (cores)."""
    grid_y: int
    """Device compute-grid rows (cores)."""
    num_cores_nhw: int
    """Cores splitting the stick (N*H*W) dimension."""
    num_cores_c: int
    """Cores splitting the channel dimension."""
    out_shard: int
    """Output sticks per core (multiple of 32)."""
    in_shard: int
    """Input sticks per core (multiple of 32)."""
    channels_padded: int
    """Channels over all channel shards (channels_per_core * num_cores_c)."""
    channels_per_core: int
    """Channels per core (a multiple of the channel alignment)."""

    @property
    def num_cores(self) -> int:
        """Cores that hold a shard."""
        return self.num_cores_nhw * self.num_cores_c

    def core_xy(self, nhw_index: int, c_index: int) -> tuple[int, int]:
        """Logical (x, y) of the core holding NHW shard ``nhw_index`` and channel shard ``c_index``.

        HS and WS lay their shards row-major over the grid; BS (ROW_MAJOR orientation) puts
        channel shards along x and NHW shards along y.
        """
        if not (0 <= nhw_index < self.num_cores_nhw and 0 <= c_index < self.num_cores_c):
            raise ValueError(
                f"shard ({nhw_index}, {c_index}) outside "
                f"{self.num_cores_nhw} x {self.num_cores_c} cores"
            )
        if self.layout == "block_sharded":
            return c_index, nhw_index
        k = nhw_index if self.layout == "height_sharded" else c_index
        return k % self.grid_x, k // self.grid_x

    def cores(self) -> list[tuple[int, int]]:
        """(x, y) of every core, NHW index major, then channel index."""
        return [
            self.core_xy(i, j) for i in range(self.num_cores_nhw) for j in range(self.num_cores_c)
        ]


def determine_parallel_config(
    geom: ConvGeometry, layout: str, grid_x: int, grid_y: int, channel_align: int = TILE
) -> ParallelConfig:
    """tt-metal's ``determine_parallel_config``.

    ``channel_align`` is the input-channel alignment: 32 (a tile) for the depthwise branch,
    8 (16 B of bfloat16) for the classic conv with row-major input.
    """
    _check_positive(grid_x=grid_x, grid_y=grid_y)
    out_ntiles = _ceil_div(geom.out_nhw, TILE)
    c_units = _ceil_div(geom.channels, channel_align)
    if layout == "height_sharded":
        num_nhw = find_closest_largest_divisor_with_num_padding_and_mult(
            out_ntiles, grid_x * grid_y, 1
        )
        num_c = 1
    elif layout == "block_sharded":
        num_nhw = find_closest_largest_divisor_with_num_padding_and_mult(out_ntiles, grid_y, 1)
        num_c = find_closest_largest_divisor_with_num_padding(c_units, grid_x)
    elif layout == "width_sharded":
        num_nhw = 1
        num_c = find_closest_largest_divisor_with_num_padding(c_units, grid_x * grid_y)
    else:
        raise ValueError(f"unknown memory layout {layout!r}; expected one of {LAYOUTS}")
    channels_per_core = channel_align * _ceil_div(c_units, num_c)
    return ParallelConfig(
        layout=layout,
        grid_x=grid_x,
        grid_y=grid_y,
        num_cores_nhw=num_nhw,
        num_cores_c=num_c,
        out_shard=_round_up(geom.out_nhw, num_nhw * TILE) // num_nhw,
        in_shard=_round_up(geom.in_nhw, num_nhw * TILE) // num_nhw,
        channels_padded=channels_per_core * num_c,
        channels_per_core=channels_per_core,
    )
