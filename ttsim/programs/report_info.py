"""What the ops perf report says about the halo and conv ops besides their timing (attributes,
tensors, kernel sources, the performance model's FLOPs), for any registered program.

Programs contribute only their own tensors (their definition's ``report`` hook); everything
else is derived here from the config, the shards and the kernels the program created, so that no
program factory builds report strings.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ttsim.config import OpConfig
from ttsim.device.device import L1Buffer
from ttsim.formats import DataFormat, tile_size_bytes
from ttsim.host import Program
from ttsim.programs.parallel import ParallelConfig
from ttsim.programs.sliding_window import ConvGeometry
from ttsim.results import TensorDesc

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def kernel_sources(program: Program) -> dict[str, str]:
    """COMPUTE / DATA MOVEMENT KERNEL SOURCE: the files of the program's kernels in creation
    order ("; "-joined), relative to the folder holding the ttsim package when under it."""
    files: dict[str, list[str]] = {"compute": [], "data_movement": []}
    for kernel in program.kernels:
        path = Path(inspect.getsourcefile(kernel.function) or kernel.function.__module__).resolve()
        text = path.relative_to(_PACKAGE_ROOT).as_posix() if path.is_relative_to(_PACKAGE_ROOT) else str(path)
        group = files["compute" if kernel.risc == "compute" else "data_movement"]
        if text not in group:
            group.append(text)
    return {kind: "; ".join(paths) for kind, paths in files.items() if paths}


def _memory(layout: str) -> str:
    return f"DEV_0_L1_{layout.upper()}"


def halo_tensors(config: OpConfig, geom: ConvGeometry, pc: ParallelConfig,
                 halo_buffer: L1Buffer) -> tuple[TensorDesc, TensorDesc]:
    """The halo op's input (the sharded activation sticks) and output (the padded windows)."""
    memory = _memory(config.conv.memory_layout)
    in_rows = pc.in_shard * pc.num_cores_nhw
    activation = TensorDesc((1, 1, in_rows, pc.channels_padded), (1, 1, geom.in_nhw, geom.channels),
                            "ROW_MAJOR", "BFLOAT16", memory, in_rows * pc.channels_padded * 2)
    rows = halo_buffer.size_per_core // (pc.channels_per_core * 2) * pc.num_cores_nhw
    halo_out = TensorDesc((1, 1, rows, pc.channels_padded), (1, 1, rows, geom.channels), "ROW_MAJOR",
                          "BFLOAT16", memory, rows * pc.channels_padded * 2)
    return activation, halo_out


def halo_info(config: OpConfig, geom: ConvGeometry, pc: ParallelConfig, halo_buffer: L1Buffer,
              program: Program) -> dict[str, Any]:
    """Report metadata of the halo op."""
    activation, halo_out = halo_tensors(config, geom, pc, halo_buffer)
    sources = kernel_sources(program)
    return {"conv": config.conv, "geometry": geom, "parallel_config": pc,
            "halo_sticks_per_core": halo_buffer.size_per_core // (pc.channels_per_core * 2),
            "inputs": [activation], "outputs": [halo_out],
            "data_movement_kernel_source": sources.get("data_movement", "")}


def conv_info(config: OpConfig, program_name: str, geom: ConvGeometry, pc: ParallelConfig,
              out_pc: ParallelConfig, halo_buffer: L1Buffer, program: Program,
              program_inputs: list[TensorDesc], block_config: Any = None) -> dict[str, Any]:
    """Report metadata of the conv op: its inputs are the halo output and ``program_inputs``
    (the program's weights and bias, from its definition's ``report`` hook); the conv, geometry,
    shards and the program's block config (if it has one) are what the ATTRIBUTES cell is written
    from (``ttsim/report/tt_metal_attributes.py``)."""
    conv = config.conv
    _, halo_out = halo_tensors(config, geom, pc, halo_buffer)
    out_rows = out_pc.out_shard * out_pc.num_cores_nhw
    out_fmt = DataFormat(conv.dtype)
    output = TensorDesc((1, 1, out_rows, out_pc.channels_padded), (1, 1, geom.out_nhw, geom.channels),
                        "TILE" if conv.output_layout == "tile" else "ROW_MAJOR", out_fmt.value.upper(),
                        _memory(conv.memory_layout),
                        out_rows * out_pc.channels_padded * tile_size_bytes(out_fmt) // 1024)
    kh, kw = conv.kernel
    # the conv op's performance model counts the dense grouped matmul (Cin = C), whatever the program
    flops = geom.channels * kh * kw * 2 * geom.out_h * geom.out_w * geom.channels * geom.batch
    sources = kernel_sources(program)
    return {
        "conv": conv, "geometry": geom, "parallel_config": pc, "block_config": block_config,
        "program": program_name, "math_fidelity": conv.math_fidelity, "inputs": [halo_out, *program_inputs],
        "outputs": [output], "compute_kernel_source": sources.get("compute", ""),
        "data_movement_kernel_source": sources.get("data_movement", ""), "pm_flops": flops,
    }
