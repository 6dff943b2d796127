"""Host-side tensor movement shared by the conv programs: sharded activations in L1, tiled
weights in DRAM, and reading a sharded output back (``ttnn.to_torch`` of a sharded tensor).
"""

from __future__ import annotations

import numpy as np

from ttsim.device.device import Device, L1Buffer
from ttsim.device.dram import InterleavedBuffer
from ttsim.formats import TILE_W as TILE
from ttsim.formats import (DataFormat, decode_row_major, encode_row_major, pack_tile, tile_size_bytes,
                           unpack_tile, untilize)
from ttsim.programs.parallel import ParallelConfig


def write_sharded_sticks(device: Device, pc: ParallelConfig, buffer: L1Buffer, sticks: np.ndarray,
                         shard_sticks: int) -> None:
    """Host write of row-major bf16 sticks [num_sticks, channels_padded] into their shards."""
    cpc = pc.channels_per_core
    for i in range(pc.num_cores_nhw):
        rows = sticks[i * shard_sticks : (i + 1) * shard_sticks]
        for j in range(pc.num_cores_c):
            xy = pc.core_xy(i, j)
            shard = np.zeros((shard_sticks, cpc), dtype=np.float32)
            shard[: rows.shape[0]] = rows[:, j * cpc : (j + 1) * cpc]
            device.core(xy).l1.write(buffer.address(xy), encode_row_major(shard, DataFormat.BFLOAT16))


def write_dram_tiles(device: Device, name: str, tiles: np.ndarray, fmt: DataFormat) -> InterleavedBuffer:
    """Host write of tiles (float32 [n, 1024], storage order) to an interleaved DRAM buffer."""
    return write_dram_pages(device, name, pack_tile(tiles, fmt).reshape(tiles.shape[0], tile_size_bytes(fmt)))


def write_dram_pages(device: Device, name: str, pages: np.ndarray) -> InterleavedBuffer:
    """Host write of encoded pages (uint8 [n, page bytes]) to an interleaved DRAM buffer."""
    buffer = device.dram.allocate_interleaved(name, pages.shape[1], pages.shape[0])
    device.dram.write_pages(buffer, pages)
    return buffer


def read_sharded_output(device: Device, pc: ParallelConfig, buffer: L1Buffer, out_nhw: int,
                        fmt: DataFormat, tiled: bool) -> np.ndarray:
    """Rebuild the [out_nhw, channels_padded] output from the L1 bytes of every shard."""
    cpc = pc.channels_per_core
    shard_sticks = pc.out_shard
    out = np.zeros((pc.num_cores_nhw * shard_sticks, pc.channels_padded), dtype=np.float32)
    for i in range(pc.num_cores_nhw):
        for j in range(pc.num_cores_c):
            xy = pc.core_xy(i, j)
            address = buffer.address(xy)
            if tiled:
                ntiles = shard_sticks * cpc // (TILE * TILE)
                raw = device.core(xy).l1.read(address, ntiles * tile_size_bytes(fmt))
                tiles = unpack_tile(raw.reshape(ntiles, -1), fmt)
                ct = cpc // TILE
                rows = [untilize(tiles[r * ct : (r + 1) * ct]) for r in range(shard_sticks // TILE)]
                shard = np.concatenate(rows, axis=0)
            else:
                raw = device.core(xy).l1.read(address, shard_sticks * cpc * 2)
                shard = decode_row_major(raw, DataFormat.BFLOAT16).reshape(shard_sticks, cpc)
            out[i * shard_sticks : (i + 1) * shard_sticks, j * cpc : (j + 1) * cpc] = shard
    return out[:out_nhw]
