"""Block configuration of the classic sharded conv (``determine_per_core_conv_block_config`` and
friends in tt-metal's ``conv2d_utils.cpp`` / ``conv2d_op_program_factory_common.cpp``;
``get_noc_transfer_rate``, all in tt-metal ``ttnn/cpp/ttnn/operations/conv/conv2d/``).

Depthwise convs reach this program as grouped convs: the weights are expanded to a dense
block-diagonal [K = kh*kw*Cin, N = Cout] matrix, so the matmul is as large as a dense conv's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ttsim.errors import ConfigurationError
from ttsim.formats import TILE_W as TILE
from ttsim.programs.options import ClassicOptions
from ttsim.programs.parallel import ParallelConfig, find_closest_largest_divisor_with_num_padding
from ttsim.programs.sliding_window import ConvGeometry

CLASSIC_CHANNEL_ALIGN = 8
"""Input channel alignment for row-major input on HS/BS: 16 B of bfloat16 (``conv2d_utils.cpp``)."""

SUBBLOCK_CANDIDATES = ((2, 4), (4, 2), (1, 8), (8, 1), (1, 7), (7, 1), (2, 3), (3, 2), (1, 6),
                       (6, 1), (1, 5), (5, 1), (2, 2), (1, 4), (4, 1), (1, 3), (3, 1), (1, 2),
                       (2, 1), (1, 1))
"""``determine_largest_subblock_size`` tries these (h, w) in order."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _ceil_div(a, b) * b


def determine_largest_subblock_size(block_h: int, block_w: int, fp32_dest_acc: bool = False) -> tuple[int, int]:
    """The first candidate dividing both block dimensions; h > 1 needs w == block_w; h*w fits DST."""
    limit = 4 if fp32_dest_acc else 8
    for h, w in SUBBLOCK_CANDIDATES:
        if h * w > limit or block_h % h or block_w % w:
            continue
        if h > 1 and w != block_w:
            continue
        return h, w
    return 1, 1


def noc_transfer_rate_gbps(transfer_bytes: int, arch: str) -> float:
    """tt-metal's host estimate of NoC read rate by transfer size (``get_noc_transfer_rate``).

    A host heuristic used to choose the split reader, not part of ttsim's cost model.
    """
    low, high, flat_from = (0.868, 27.7, 1024) if arch == "wormhole_b0" else (0.671, 48.5, 2048)
    if transfer_bytes >= flat_from:
        return high
    return low + (high - low) * (transfer_bytes - 16) / (flat_from - 16)


@dataclass(frozen=True)
class ClassicOverrides:
    """Block-config overrides a config may set (``Conv2dConfig`` fields)."""

    act_block_h_override: int = 0
    enable_act_double_buffer: bool = False
    enable_weights_double_buffer: bool = False
    split_reader: bool | None = None
    out_subblock: tuple[int, int] | None = None
    full_inner_dim: bool = False

    @classmethod
    def from_options(cls, options: ClassicOptions) -> ClassicOverrides:
        """The block-config part of a config's ``classic:`` section."""
        return cls(options.act_block_h_override, options.enable_act_double_buffer,
                   options.enable_weights_double_buffer, options.split_reader, options.out_subblock,
                   options.full_inner_dim)


@dataclass(frozen=True)
class ClassicBlockConfig:
    """Everything the classic factory derives about blocks (in tiles unless noted)."""

    layout: str
    num_cores_c_out: int
    act_block_h_ntiles: int
    act_block_w_ntiles: int
    weight_block_w_ntiles: int
    out_subblock_h_ntiles: int
    out_subblock_w_ntiles: int
    num_blocks_act_h: int
    kh_blocks: int
    """Inner blocks per channel block: kh (one kernel row each), or 1 with ``full_inner_dim``."""
    kh: int
    conv_act_c_blocks: int
    split_reader: bool
    per_core_out_h_ntiles: int
    act_block_w_extra_align_bytes: int
    enable_act_double_buffer: bool
    enable_weights_double_buffer: bool

    @property
    def kernel_rows_per_block(self) -> int:
        """Kernel rows one inner (K) block holds: 1, or all kh with ``full_inner_dim``."""
        return self.kh // self.kh_blocks

    @property
    def in0_num_blocks_w(self) -> int:
        """Inner-K blocks per output block (channel blocks x kernel rows)."""
        return self.conv_act_c_blocks * self.kh_blocks

    @property
    def weight_block_h_ntiles(self) -> int:
        return self.act_block_w_ntiles

    @property
    def weight_block_num_tiles(self) -> int:
        return self.weight_block_w_ntiles * self.weight_block_h_ntiles

    @property
    def act_block_num_tiles(self) -> int:
        return self.act_block_h_ntiles * self.act_block_w_ntiles

    @property
    def k_ntiles(self) -> int:
        """Rows of the dense weight matrix, in tiles."""
        return self.in0_num_blocks_w * self.act_block_w_ntiles

    @property
    def tile_matmuls_per_core(self) -> int:
        return self.per_core_out_h_ntiles * self.weight_block_w_ntiles * self.k_ntiles

    @property
    def packer_untilize(self) -> bool:
        return self.weight_block_w_ntiles <= 8


def output_channel_split(channels: int, layout: str, grid_x: int) -> tuple[int, int]:
    """(cores splitting output channels, output tiles per core)."""
    out_ntiles = _ceil_div(channels, TILE)
    if layout == "height_sharded":
        return 1, out_ntiles
    cores = find_closest_largest_divisor_with_num_padding(out_ntiles, grid_x)
    return cores, _ceil_div(out_ntiles, cores)


def determine_classic_block_config(geom: ConvGeometry, pc: ParallelConfig, arch: str,
                                   overrides: ClassicOverrides = ClassicOverrides()) -> ClassicBlockConfig:
    """``determine_per_core_conv_block_config`` plus the factory's derived quantities."""
    per_core_h = pc.out_shard // TILE
    act_block_h = per_core_h
    if overrides.act_block_h_override:
        wanted = max(1, overrides.act_block_h_override // TILE)
        act_block_h = max(d for d in range(1, per_core_h + 1) if per_core_h % d == 0 and d <= wanted)
    c_in = pc.channels_per_core
    full_inner = overrides.full_inner_dim and pc.layout == "block_sharded"
    rows_per_block = geom.kh if full_inner else 1  # kernel rows in one inner (K) block
    act_block_w = _round_up(c_in * geom.kw * rows_per_block, TILE) // TILE
    num_cores_c_out, weight_block_w = output_channel_split(geom.channels, pc.layout, pc.grid_x)
    sub_h, sub_w = determine_largest_subblock_size(act_block_h, weight_block_w)
    if overrides.out_subblock is not None:
        sub_h, sub_w = overrides.out_subblock
        if act_block_h % sub_h or weight_block_w % sub_w or sub_h * sub_w > 8 or (sub_h > 1 and sub_w != weight_block_w):
            raise ConfigurationError(
                f"classic.out_subblock: [{sub_h}, {sub_w}] does not tile the {act_block_h} x {weight_block_w}-tile "
                "output block (it must divide it, hold at most 8 tiles, and span the whole width when h > 1)")
    conv_act_c_blocks = pc.num_cores_c if pc.layout == "block_sharded" else 1
    if overrides.split_reader is None:
        row_bytes = 2 * geom.channels * geom.kw
        act_cost = per_core_h * TILE * row_bytes / noc_transfer_rate_gbps(row_bytes, arch)
        dram_speed = 16 if arch == "wormhole_b0" else 32
        weights_cost = geom.channels * geom.channels * geom.kw / dram_speed
        split = pc.layout == "height_sharded" and act_block_h > 1 and act_cost > weights_cost
    else:
        split = overrides.split_reader and pc.layout == "height_sharded" and act_block_h > 1
    return ClassicBlockConfig(
        layout=pc.layout,
        num_cores_c_out=num_cores_c_out,
        act_block_h_ntiles=act_block_h,
        act_block_w_ntiles=act_block_w,
        weight_block_w_ntiles=weight_block_w,
        out_subblock_h_ntiles=sub_h,
        out_subblock_w_ntiles=sub_w,
        num_blocks_act_h=per_core_h // act_block_h,
        kh_blocks=geom.kh // rows_per_block,
        kh=geom.kh,
        conv_act_c_blocks=conv_act_c_blocks,
        split_reader=split,
        per_core_out_h_ntiles=per_core_h,
        act_block_w_extra_align_bytes=(act_block_w * TILE - c_in * geom.kw * rows_per_block) * 2,
        enable_act_double_buffer=overrides.enable_act_double_buffer,
        enable_weights_double_buffer=overrides.enable_weights_double_buffer,
    )
