"""OP CODE and ATTRIBUTES cells of the profiler CSV, spelled as tt-metal writes them.

tt-metal's profiler (tools/tracy/process_ops_logs.py) writes an op's ATTRIBUTES cell as the
reflected attribute struct of its device operation, ``{'name': 'value'; ...}``, with every comma
of the values turned into ``;`` so the cell stays one CSV field. The spellings below are those of
ttnn's structs as they appear in tt-metal ops perf reports: ``SlidingWindowConfig(...)``
(ttnn/cpp/ttnn/operations/sliding_window/sliding_window.cpp, its fmt formatter),
``OptimizedConvBlockConfig`` / ``OptimizedConvParallelizationConfig``
(ttnn/cpp/ttnn/operations/conv/conv2d/device/conv2d_op.hpp) and ``MemoryConfig(...)``.

tt-perf-report (PyPI ``tt-perf-report``, tt_perf_report/perf_report.py) reads them back:
``analyze_conv`` takes ``window_hw=(kh;kw)``, ``act_block_h_ntiles=``,
``per_core_out_matrix_height_ntile=``, ``'enable_act_double_buffer': '...'`` and
``'enable_split_reader': '...'``; ``analyze_halo`` takes ``window_hw=``, ``stride_hw=``,
``padding=``, ``dilation_hw=`` and the first ``memory_layout=TensorMemoryLayout::...``.
Only values ttsim actually has are written; fields it cannot know are left out, not invented.
"""

from __future__ import annotations

from typing import Any

from ttsim.programs.parallel import TILE, ParallelConfig
from ttsim.programs.sliding_window import ConvGeometry

TT_METAL_OP_CODE = {
    "Conv2dDepthwisePool": "Conv2dDeviceOperation",
}
"""ttsim op code -> the OP CODE tt-metal's profiler writes for the same device op.

The feature branch's pool-based depthwise conv is a program factory of conv2d's device operation
(``Conv2dDeviceOperation::select_program_factory`` routes 2D depthwise convs to
``Conv2dDepthwiseProgramFactory``, branch ``depthwise_conv2d_optimized``, tt-metal issue #25523),
so the profiler names it after ``Conv2dDeviceOperation``. ``OptimizedConvNew`` (the measured
classic conv) and ``HaloDeviceOperation`` are already tt-metal's names; any other op code
(e.g. a program added later) is written as it is.
"""


def tt_metal_op_code(op_code: str) -> str:
    """The OP CODE cell for a ttsim op code (see :data:`TT_METAL_OP_CODE`)."""
    return TT_METAL_OP_CODE.get(op_code, op_code)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def core_range_set(cores: list[tuple[int, int]]) -> str:
    """``{[(x=0;y=0) - (x=7;y=6)]; [(x=0;y=7) - (x=5;y=7)]}``: the cores as row-wise ranges.

    Consecutive full rows of equal extent merge into one rectangle, as a CoreRangeSet prints.
    """
    rows: dict[int, list[int]] = {}
    for x, y in cores:
        rows.setdefault(y, []).append(x)
    spans = [(y, min(xs), max(xs)) for y, xs in sorted(rows.items())]
    ranges: list[list[int]] = []  # [x0, y0, x1, y1]
    for y, x0, x1 in spans:
        last = ranges[-1] if ranges else None
        if last and last[0] == x0 and last[2] == x1 and last[3] == y - 1:
            last[3] = y
        else:
            ranges.append([x0, y, x1, y])
    return "{" + "; ".join(f"[(x={a};y={b}) - (x={c};y={d})]" for a, b, c, d in ranges) + "}"


def _layout(memory_layout: str) -> str:
    return memory_layout.upper()


def sliding_window_config(geom: ConvGeometry, pc: ParallelConfig) -> str:
    """``SlidingWindowConfig(...)`` as ttnn prints it (commas written as ``;``)."""
    return (f"SlidingWindowConfig(batch_size={geom.batch}; input_hw=({geom.in_h};{geom.in_w}); "
            f"window_hw=({geom.kh};{geom.kw}); stride_hw=({geom.sh};{geom.sw}); "
            f"padding=(({geom.ph}; {geom.ph}); ({geom.pw}; {geom.pw})); output_padding = (0; 0); "
            f"dilation_hw=({geom.dh};{geom.dw}); num_cores_nhw={pc.num_cores_nhw}; "
            f"num_cores_c={pc.num_cores_c}; core_range_set_={core_range_set(pc.cores())})")


def memory_config(memory_layout: str, pc: ParallelConfig, shard_height: int) -> str:
    """``MemoryConfig(...)`` of an L1-sharded tensor: layout, buffer type, shard grid and shape."""
    return (f"MemoryConfig(memory_layout=TensorMemoryLayout::{_layout(memory_layout)};"
            f"buffer_type=BufferType::L1;shard_spec=ShardSpec(grid={core_range_set(pc.cores())};"
            f"shape={{{shard_height}; {pc.channels_per_core}}}))")


def _cell(attributes: dict[str, str]) -> str:
    return "{" + "; ".join(f"'{key}': '{value}'" for key, value in attributes.items()) + "}"


def halo_attributes(info: dict[str, Any]) -> str:
    """ATTRIBUTES of ``HaloDeviceOperation`` (its ``config_``, output memory config, parallel config)."""
    conv, geom, pc = info["conv"], info["geometry"], info["parallel_config"]
    return _cell({
        "config_": sliding_window_config(geom, pc),
        "is_out_tiled_": "false",  # ttsim's conv input is row-major sticks
        "max_out_nsticks_per_core_": str(info["halo_sticks_per_core"]),
        "output_memory_config_": memory_config(conv.memory_layout, pc, info["halo_sticks_per_core"]),
        "pad_val_": "0",
        "parallel_config_": (f"ParallelConfig(grid={core_range_set(pc.cores())}; "
                             f"shard_scheme={_layout(conv.memory_layout)}; shard_orientation=ROW_MAJOR)"),
    })


def conv_attributes(info: dict[str, Any]) -> str:
    """ATTRIBUTES of the conv op (``OptimizedConvNew`` / ``Conv2dDeviceOperation``).

    The block config and the double-buffer / split-reader switches are the classic program's
    (``ClassicBlockConfig``); the pool program has no conv blocking, so ``block_config`` is left
    out and the switches are false (its reader and writer are one kernel each).
    """
    conv, geom, pc, block = info["conv"], info["geometry"], info["parallel_config"], info.get("block_config")
    out_h_ntiles = pc.out_shard // TILE
    out_w_ntiles = pc.channels_per_core // TILE if block is None else block.weight_block_w_ntiles
    attributes: dict[str, str] = {}
    if block is not None:
        attributes["block_config"] = (
            f"OptimizedConvBlockConfig(act_block_h_ntiles={block.act_block_h_ntiles};"
            f"act_block_w_ntiles={block.act_block_w_ntiles};out_subblock_h_ntiles={block.out_subblock_h_ntiles};"
            f"out_subblock_w_ntiles={block.out_subblock_w_ntiles})")
    attributes.update({
        "activation": conv.activation,
        "dtype": f"DataType::{conv.dtype.upper()}",
        "enable_act_double_buffer": _bool(block is not None and block.enable_act_double_buffer),
        "enable_split_reader": _bool(block is not None and block.split_reader),
        "enable_weights_double_buffer": _bool(block is not None and block.enable_weights_double_buffer),
        "groups": str(geom.channels),
        "has_bias": _bool(conv.bias),
        "input_tensor_shape": f"{{{geom.batch}; {geom.in_h}; {geom.in_w}; {geom.channels}}}",
        "memory_config": memory_config(conv.memory_layout, pc, pc.out_shard),
        "output_channels": str(geom.channels),
        "parallelization_config": (
            f"OptimizedConvParallelizationConfig(grid_size=(x={pc.grid_x};y={pc.grid_y});"
            f"num_cores_nhw={pc.num_cores_nhw};num_cores_c={pc.num_cores_c};"
            f"per_core_out_matrix_height_ntile={out_h_ntiles};per_core_out_matrix_width_ntile={out_w_ntiles})"),
        "sliding_window_config": sliding_window_config(geom, pc),
        "untilize_out": _bool(conv.output_layout != "tile"),
    })
    return _cell(attributes)
