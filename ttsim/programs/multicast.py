"""Who reads a weight tensor from DRAM and whom it multicasts it to (host side, both programs).

Height sharded: the first core sends to the bounding box of the grid; block sharded: the first
core of each column sends down its column; width sharded: every core reads its own slice.
"""

from __future__ import annotations

from ttsim.device.device import Device
from ttsim.programs.parallel import ParallelConfig


def weights_multicast_role(device: Device, pc: ParallelConfig, i: int, j: int) -> dict:
    """Runtime args of core (nhw index i, channel index j) for the weights handshake."""
    if pc.layout == "width_sharded":
        return {"is_sender": True, "num_receivers": 0}
    if pc.layout == "block_sharded":
        group = [pc.core_xy(r, j) for r in range(pc.num_cores_nhw)]
    else:
        group = pc.cores()
    sender, me = group[0], pc.core_xy(i, j)
    if me != sender:
        return {"is_sender": False, "sender_noc_xy": device.worker_core(sender)}
    receivers = len(group) - 1
    if receivers == 0:
        return {"is_sender": True, "num_receivers": 0}
    xs, ys = [x for x, _ in group], [y for _, y in group]
    lo, hi = device.worker_core((min(xs), min(ys))), device.worker_core((max(xs), max(ys)))
    in_box = [xy for xy in device.cores if min(xs) <= xy[0] <= max(xs) and min(ys) <= xy[1] <= max(ys)]
    return {"is_sender": True, "num_receivers": receivers, "mcast_rect": (*lo, *hi),
            "mcast_num_dests": len(in_box) - 1}
