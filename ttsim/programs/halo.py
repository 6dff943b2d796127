"""Host side of the halo op: padded input sticks per core, as its own device op (tt-metal
``ttnn/cpp/ttnn/operations/sliding_window/halo/device/untilize_with_halo_program_factory.cpp``).

Each conv core ends up with a row-major buffer of the padded image sticks its outputs touch;
the conv kernels then read only local L1. The op is reported as its own row, as tt-metal does
(``HaloDeviceOperation``).
"""

from __future__ import annotations

from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device, L1Buffer
from ttsim.formats import DataFormat
from ttsim.host import Program
from ttsim.kernels.halo import halo_gather
from ttsim.programs.parallel import ParallelConfig
from ttsim.programs.sliding_window import HaloCoreConfig

HALO_OP_CODE = "HaloDeviceOperation"
PAD_CB = 0


def build_halo_program(device: Device, pc: ParallelConfig, halo: list[HaloCoreConfig],
                       input_buffer: L1Buffer, stick_bytes: int) -> tuple[Program, L1Buffer]:
    """The halo program and the L1 buffer (same size on every core) it fills."""
    cores = pc.cores()
    halo_sticks = max(1, max(h.length for h in halo))
    halo_buffer = device.allocate_l1_buffer("halo_output", cores, halo_sticks * stick_bytes)
    program = Program(HALO_OP_CODE)
    program.create_circular_buffer(cores, CBConfig(PAD_CB, "pad_stick", stick_bytes, 1, DataFormat.BFLOAT16))
    sends: dict[tuple[int, int], list[tuple]] = {xy: [] for xy in cores}
    for c_index in range(pc.num_cores_c):
        for dst_index, config in enumerate(halo):
            dst_xy = pc.core_xy(dst_index, c_index)
            dst_noc = device.worker_core(dst_xy)
            for src_index, src_offset, dst_offset, length in config.copy_runs:
                src_xy = pc.core_xy(src_index, c_index)
                sends[src_xy].append((*dst_noc, halo_buffer.address(dst_xy), src_offset, dst_offset, length))
    runtime: dict[Risc, dict] = {Risc.BRISC: {}, Risc.NCRISC: {}}
    for xy in cores:
        nhw_index = _nhw_index(pc, xy)
        common = {"halo_addr": halo_buffer.address(xy), "input_addr": input_buffer.address(xy)}
        runtime[Risc.BRISC][xy] = {**common, "pad_runs": halo[nhw_index].pad_runs, "sends": sends[xy][0::2]}
        runtime[Risc.NCRISC][xy] = {**common, "pad_runs": (), "sends": sends[xy][1::2]}
    for risc, noc in ((Risc.BRISC, 0), (Risc.NCRISC, 1)):
        program.create_kernel("halo_gather", halo_gather, cores, risc,
                              {"stick_bytes": stick_bytes, "pad_cb": PAD_CB}, runtime[risc], noc=noc)
    return program, halo_buffer


def _nhw_index(pc: ParallelConfig, xy: tuple[int, int]) -> int:
    if pc.layout == "block_sharded":
        return xy[1]
    if pc.layout == "height_sharded":
        return xy[1] * pc.grid_x + xy[0]
    return 0
