"""Compute kernel API (TRISC0 unpack, TRISC1 math, TRISC2 pack), acting on real tile bytes.

One kernel function runs once per core, as tt-metal compiles one source for the three
threads; each call charges the threads it runs on. The three threads keep their own clocks
and are coupled the way the hardware couples them:

* unpack -> math: math on a tile starts once its operands are unpacked; unpack may run at most
  two tiles ahead of math (two source-register banks);
* math -> pack: ``tile_regs_commit`` hands a DST half to pack; ``tile_regs_acquire`` waits
  until pack released the half used two acquires before (half-sync DST double buffering).

``cb_wait_front`` / ``cb_pop_front`` run on the unpack thread and ``cb_reserve_back`` /
``cb_push_back`` on the pack thread, as in tt-metal. The SimPy process follows the unpack
thread. Numerics: DST holds 16 tiles in hardware storage order (float32 values rounded to the
DST format, bfloat16 unless fp32 accumulation is on); packing rounds to the CB's format.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Mapping

import ml_dtypes
import numpy as np

from ttsim.device.core import Risc, TensixCore
from ttsim.device.device import Device
from ttsim.errors import ConfigurationError
from ttsim.formats import (DataFormat, TILE_ELEMENTS, pack_tile, tile_size_bytes, tilize,
                           unpack_tile, untilize, decode_row_major, encode_row_major)
from ttsim.kernel_api.base import KernelContext, KernelGen
from ttsim.numerics import ACTIVATIONS

FIDELITY_PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
DST_TILES = 16
# storage-order positions of row 0 of a tile (face 0 row 0, then face 1 row 0)
ROW0 = np.concatenate([np.arange(16), 256 + np.arange(16)])


class ComputeContext(KernelContext):
    """The API a compute kernel sees."""

    def __init__(self, device: Device, core: TensixCore, kernel_name: str,
                 compile_args: Mapping[str, Any], runtime_args: Mapping[str, Any],
                 math_fidelity: str = "HiFi4", fp32_dest_acc: bool = False) -> None:
        super().__init__(device, core, kernel_name, Risc.TRISC0, compile_args, runtime_args)
        c = self.spec.compute
        self._c = c
        self.math_fidelity = math_fidelity
        self._phases = FIDELITY_PHASES[math_fidelity]
        self._dst_format = DataFormat.FLOAT32 if fp32_dest_acc else DataFormat.BFLOAT16
        self._dst_limit = c.dst_tiles_per_half.value // (2 if fp32_dest_acc else 1)
        self.dst = np.zeros((DST_TILES, TILE_ELEMENTS), dtype=np.float32)
        self._dst_written: set[int] = set()
        self._srca = np.zeros((c.dst_tiles_per_half.value, 32, 32), dtype=np.float32)
        self._scalar = 1.0
        start = self._t
        self._math_t = start
        self._pack_t = start
        self._commit_t = start
        self._released = deque([start, start], maxlen=2)
        self._src_banks = deque([start, start], maxlen=2)
        self._pack_position: dict[int, int] = {}
        self.busy_cycles = {Risc.TRISC0: 0.0, Risc.TRISC1: 0.0, Risc.TRISC2: 0.0}
        self._init_costs = c.init_cycles.value
        self._handshake = c.tile_regs_handshake_cycles.value
        self._sfpu_costs = c.sfpu_tile_cycles.value

    # -- thread clocks ---------------------------------------------------------------------------
    def _unpack(self, cycles: float) -> float:
        """Charge the unpack thread; returns when the unpacked operands are ready for math."""
        start = max(self._t, self._src_banks[0])
        self._t = start + cycles
        self._check_deadline(self._t)
        self.busy_cycles[Risc.TRISC0] += cycles
        return self._t

    def _math(self, ready: float, cycles: float, uses_src: bool = True) -> None:
        start = max(self._math_t, ready)
        self._math_t = start + cycles
        self.busy_cycles[Risc.TRISC1] += cycles
        if uses_src:
            self._src_banks.append(self._math_t)

    def _pack(self, cycles: float) -> None:
        self._pack_t += cycles
        self.busy_cycles[Risc.TRISC2] += cycles

    def _init(self, unpack: bool = False, math: bool = False, pack: bool = False) -> None:
        """Charge a reconfiguration to the threads it touches."""
        if unpack:
            self._t += self._init_costs["unpack"]
            self.busy_cycles[Risc.TRISC0] += self._init_costs["unpack"]
        if math:
            self._math(self._math_t, self._init_costs["math"], uses_src=False)
        if pack:
            self._pack(self._init_costs["pack"])

    def _unpack_cost(self, nbytes: int, two_operand: bool = False) -> float:
        c = self._c
        rate = (c.unpack_two_operand_bytes_per_cycle if two_operand else c.unpack_bytes_per_cycle).value
        return c.unpack_tile_overhead_cycles.value + nbytes / rate

    def _pack_cost(self, nbytes: int) -> float:
        c = self._c
        return c.pack_tile_overhead_cycles.value + nbytes / c.pack_bytes_per_cycle.value

    # -- tile access -----------------------------------------------------------------------------
    def _page_address(self, cb_id: int, index: int, front: bool) -> int:
        cb = self.cb(cb_id)
        pointer = cb.fifo_rd_ptr if front else cb.fifo_wr_ptr
        offset = (pointer - cb.address + index * cb.page_size) % cb.config.total_size
        return cb.address + offset

    def _read_tile(self, cb_id: int, index: int) -> tuple[np.ndarray, int]:
        """Values (storage order) and byte size of tile ``index`` from the CB's front."""
        fmt = self.cb(cb_id).config.data_format
        size = tile_size_bytes(fmt)
        address = self._page_address(cb_id, index, front=True)
        return unpack_tile(self.core.l1.data[address : address + size], fmt), size

    def _set_dst(self, index: int, values: np.ndarray) -> None:
        if not 0 <= index < self._dst_limit:
            raise ConfigurationError(
                f"{self.where}: DST index {index} outside the {self._dst_limit} tiles of a half")
        if self._dst_format is DataFormat.BFLOAT16:
            values = values.astype(ml_dtypes.bfloat16).astype(np.float32)
        self.dst[index] = values
        self._dst_written.add(index)

    # -- circular buffers ------------------------------------------------------------------------
    def cb_wait_front(self, cb_id: int, n: int) -> KernelGen:
        """UNPACK: wait for ``n`` pages at the front of ``cb_id``."""
        self._t = yield from self._wait_front(cb_id, n, self._t)

    def cb_pop_front(self, cb_id: int, n: int) -> None:
        """UNPACK: free ``n`` pages."""
        self._t = self._pop(cb_id, n, self._t)

    def cb_reserve_back(self, cb_id: int, n: int) -> KernelGen:
        """PACK: wait for ``n`` free pages at the back of ``cb_id``."""
        cb = self.cb(cb_id)
        cb.check_request(n, "cb_reserve_back", self.kernel_name)
        cb.stats.producer.calls += 1
        resume = self._pack_t + self._cb_check
        if cb.free_pages() < n:
            yield from self._sync_to(self._t)
        if cb.free_pages() < n:
            cb.stats.producer.blocked_count += 1
            start = self.env.now
            def detail() -> str:
                return f"cb_reserve_back({cb.describe()}, {n}): {cb.free_pages()} of {cb.num_pages} pages free"

            yield from self._block(cb.reserve_event(n), f"cb_reserve_back:{cb.name}", detail)
            cb.stats.producer.blocked_cycles += self.env.now - start
            resume = max(resume, self.env.now + self._cb_poll)
            self._t = max(self._t, float(self.env.now))
        self._pack_t = resume

    def cb_push_back(self, cb_id: int, n: int) -> None:
        """PACK: publish ``n`` pages."""
        self._pack_t = self._push(cb_id, n, self._pack_t)
        self._pack_position[cb_id] = 0

    # -- DST handshakes --------------------------------------------------------------------------
    def tile_regs_acquire(self) -> None:
        """MATH: take a DST half (waits for pack to release it)."""
        self._math(self._released[0], self._handshake, uses_src=False)

    def tile_regs_commit(self) -> None:
        """MATH: hand the DST half to pack."""
        self._math(self._math_t, self._handshake, uses_src=False)
        self._commit_t = self._math_t

    def tile_regs_wait(self) -> None:
        """PACK: wait for math to commit."""
        self._pack_t = max(self._pack_t, self._commit_t)
        self._pack(self._handshake)

    def tile_regs_release(self) -> None:
        """PACK: give the DST half back to math (the packer zeroes the half it releases)."""
        self._pack(self._handshake)
        self.dst[: self._dst_limit] = 0.0
        self._dst_written.clear()
        self._released.append(self._pack_t)

    # -- inits and reconfiguration ---------------------------------------------------------------
    def compute_kernel_hw_startup(self, icb0: int, icb1: int, ocb: int) -> None:
        self._init(unpack=True, math=True, pack=True)

    def binary_op_init_common(self, icb0: int, icb1: int, ocb: int) -> None:
        self._init(unpack=True, math=True, pack=True)

    def mul_tiles_init(self, icb0: int, icb1: int) -> None:
        self._init(unpack=True, math=True)

    def add_tiles_init(self, icb0: int, icb1: int) -> None:
        self._init(unpack=True, math=True)

    def add_bcast_rows_init_short(self, icb0: int, icb1: int) -> None:
        self._init(unpack=True, math=True)

    def binary_dest_reuse_tiles_init(self, icb: int) -> None:
        self._init(unpack=True, math=True)

    def copy_tile_init(self, icb: int) -> None:
        self._init(unpack=True, math=True)

    def reduce_init(self, icb: int, scalar_cb: int, ocb: int) -> None:
        self._init(unpack=True, math=True, pack=True)

    def reduce_uninit(self) -> None:
        self._init(unpack=True)

    def unpack_tilizeA_B_init(self, icb: int, scalar_cb: int, ntiles: int, num_faces: int = 4,
                              face_r_dim: int = 16) -> None:
        self._init(unpack=True)

    def tilize_init(self, icb: int, block: int, ocb: int) -> None:
        self._init(unpack=True, math=True, pack=True)

    def tilize_uninit(self, icb: int, ocb: int) -> None:
        self._init(unpack=True, pack=True)

    def pack_untilize_dest_init(self, ocb: int, rows: int = 32, num_faces: int = 4) -> None:
        self._init(pack=True)

    def pack_untilize_uninit(self, ocb: int) -> None:
        self._init(pack=True)

    def reconfig_data_format(self, icb0: int, icb1: int) -> None:
        self._init(unpack=True)

    def pack_reconfig_data_format(self, ocb: int) -> None:
        self._init(pack=True)

    def mm_init(self, icb0: int, icb1: int, ocb: int) -> None:
        self._init(unpack=True, math=True, pack=True)

    def sfpu_init(self, name: str) -> None:
        """``<op>_tile_init`` of an SFPU activation (relu_tile_init, silu_tile_init, ...)."""
        self._sfpu_cost(name)
        self._init(math=True)

    # -- math ------------------------------------------------------------------------------------
    def _binary(self, icb0: int, icb1: int, i0: int, i1: int, math_cycles: float,
                op: Callable[[np.ndarray, np.ndarray], np.ndarray], idst: int) -> None:
        a, size_a = self._read_tile(icb0, i0)
        b, size_b = self._read_tile(icb1, i1)
        ready = self._unpack(self._unpack_cost(size_a + size_b, two_operand=True))
        self._math(ready, math_cycles)
        self._set_dst(idst, op(a, b))

    def mul_tiles(self, icb0: int, icb1: int, i0: int, i1: int, idst: int) -> None:
        """DST[idst] = A * B, element-wise (FPU ELWMUL; cost scales with math fidelity)."""
        cycles = self._c.eltwise_mul_tile_cycles_per_phase.value * self._phases
        self._binary(icb0, icb1, i0, i1, cycles, np.multiply, idst)

    def add_tiles(self, icb0: int, icb1: int, i0: int, i1: int, idst: int) -> None:
        """DST[idst] = A + B (FPU ELWADD)."""
        self._binary(icb0, icb1, i0, i1, self._c.eltwise_add_tile_cycles.value, np.add, idst)

    def add_tiles_bcast_rows(self, icb0: int, icb1: int, i0: int, i1: int, idst: int) -> None:
        """DST[idst] = A + row 0 of B broadcast over all 32 rows (the conv bias add)."""
        def bcast_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            row = untilize(b[None, :])[0]
            return a + tilize(np.broadcast_to(row, (32, 32)).astype(np.float32))[0]
        self._binary(icb0, icb1, i0, i1, self._c.eltwise_add_tile_cycles.value, bcast_add, idst)

    def binary_dest_reuse_tiles(self, icb: int, itile: int, idst: int, op: str = "add") -> None:
        """DST[idst] = DST[idst] (op) CB tile (``binary_dest_reuse_tiles<.., DEST_TO_SRCA>``)."""
        tile, size = self._read_tile(icb, itile)
        ready = self._unpack(self._unpack_cost(size))
        if op == "add":
            cycles, result = self._c.eltwise_add_tile_cycles.value, self.dst[idst] + tile
        elif op == "mul":
            cycles = self._c.eltwise_mul_tile_cycles_per_phase.value * self._phases
            result = self.dst[idst] * tile
        else:
            raise ConfigurationError(f"{self.where}: binary_dest_reuse_tiles op {op!r}")
        self._math(ready, cycles + self._c.datacopy_tile_cycles.value)
        self._set_dst(idst, result)

    def copy_tile(self, icb: int, itile: int, idst: int) -> None:
        """DST[idst] = tile ``itile`` of ``icb``."""
        tile, size = self._read_tile(icb, itile)
        ready = self._unpack(self._unpack_cost(size))
        self._math(ready, self._c.datacopy_tile_cycles.value)
        self._set_dst(idst, tile)

    def reduce_tile(self, icb: int, scalar_cb: int, itile: int, iscalar: int, idst: int,
                    pool: str = "sum") -> None:
        """REDUCE_COL of a tiled CB tile into row 0 of DST[idst], scaled by the scalar tile."""
        tile, size = self._read_tile(icb, itile)
        scalar = self._read_tile(scalar_cb, iscalar)[0][0]
        ready = self._unpack(self._unpack_cost(size))
        self._reduce_rows(untilize(tile[None, :]), scalar, idst, pool, ready, 4)

    def _reduce_rows(self, rows: np.ndarray, scalar: float, idst: int, pool: str, ready: float,
                     num_faces: int) -> None:
        phases = self._phases if pool == "sum" else 1
        cycles = self._c.reduce_tile_cycles_per_phase.value * phases * num_faces / 4
        self._math(ready, cycles)
        if not 0 <= idst < self._dst_limit:
            raise ConfigurationError(
                f"{self.where}: DST index {idst} outside the {self._dst_limit} tiles of a half")
        current = self.dst[idst, ROW0]
        if pool == "max" and idst not in self._dst_written:
            current = np.full_like(current, -np.inf)  # GMPOOL reads a zeroed DST row as -inf
        if pool == "sum":
            row = current + rows.sum(axis=0, dtype=np.float32) * np.float32(scalar)
        else:
            row = np.maximum(current, rows.max(axis=0) * np.float32(scalar))
        if self._dst_format is DataFormat.BFLOAT16:
            row = row.astype(ml_dtypes.bfloat16).astype(np.float32)
        self.dst[idst, ROW0] = row
        self._dst_written.add(idst)

    def unpack_tilizeA_B_block(self, icb: int, scalar_cb: int, ntiles: int, rows: int,
                               row_width: int, col_offset: int = 0, row_offset: int = 0,
                               num_faces: int = 4) -> None:
        """Tilize-on-unpack ``rows`` row-major rows of ``ntiles`` tiles into srcA, and load the
        scalar into srcB (the fused tilize + reduce of the pool kernels).

        The rows start ``row_offset`` rows into the CB's front page; each row is ``row_width``
        elements of the CB's format and the block starts ``col_offset`` elements into a row.
        """
        if not 0 < rows <= 32 or ntiles > self._srca.shape[0]:
            raise ConfigurationError(f"{self.where}: unpack_tilizeA_B_block of {rows} rows x {ntiles} tiles")
        cb = self.cb(icb)
        elem = 4 if cb.config.data_format is DataFormat.FLOAT32 else 2
        address = self._page_address(icb, 0, front=True) + row_offset * row_width * elem
        raw = self.core.l1.data[address : address + rows * row_width * elem]
        block = decode_row_major(raw, cb.config.data_format).reshape(rows, row_width)
        width = ntiles * 32
        self._srca[:ntiles] = 0.0
        self._srca[:ntiles, :rows, :] = block[:, col_offset : col_offset + width].reshape(rows, ntiles, 32).transpose(1, 0, 2)
        self._scalar = float(self._read_tile(scalar_cb, 0)[0][0])
        cost = self._c.unpack_tilize_tile_cycles.value * ntiles * rows / 32
        self._unpack(cost + self._c.unpack_tile_overhead_cycles.value)

    def reduce_tile_math(self, idst: int, num_faces: int = 4, pool: str = "sum") -> None:
        """Reduce srcA tile ``idst`` (from ``unpack_tilizeA_B_block``) into DST row 0."""
        self._reduce_rows(self._srca[idst], self._scalar, idst, pool, self._t, num_faces)

    def matmul_block(self, in0_cb: int, in1_cb: int, in0_index: int, in1_index: int, idst: int,
                     transpose: bool, ct_dim: int, rt_dim: int, kt_dim: int) -> None:
        """One inner-k step of a subblock: DST[idst + h*ct + w] += A[in0 + h*kt] @ B[in1 + w]
        for h < rt_dim, w < ct_dim (16 cycles per tile-matmul at LoFi, x fidelity phases)."""
        a_tiles = [self._read_tile(in0_cb, in0_index + h * kt_dim) for h in range(rt_dim)]
        b_tiles = [self._read_tile(in1_cb, in1_index + w) for w in range(ct_dim)]
        nbytes = sum(size for _, size in a_tiles) + sum(size for _, size in b_tiles)
        ready = self._unpack(self._unpack_cost(nbytes, two_operand=True))
        cycles = self._c.matmul_tile_cycles_lofi.value * self._phases * rt_dim * ct_dim
        self._math(ready, cycles)
        for h in range(rt_dim):
            a_h = untilize(a_tiles[h][0][None, :])
            for w in range(ct_dim):
                b_w = untilize(b_tiles[w][0][None, :])
                b_w = b_w.T if transpose else b_w
                index = idst + h * ct_dim + w
                self._set_dst(index, self.dst[index] + tilize(a_h @ b_w)[0])

    # -- SFPU ------------------------------------------------------------------------------------
    def _sfpu_cost(self, name: str) -> float:
        try:
            return self._sfpu_costs[name]
        except KeyError:
            raise ConfigurationError(
                f"{self.where}: no SFPU cost for {name!r} in device {self.spec.name}") from None

    def sfpu_tile(self, name: str, idst: int) -> None:
        """Apply SFPU activation ``name`` (relu, relu6, silu, gelu, identity) to DST[idst]."""
        self._math(self._math_t, self._sfpu_cost(name), uses_src=False)
        func = ACTIVATIONS["none" if name == "identity" else name]
        self._set_dst(idst, func(self.dst[idst]).astype(np.float32, copy=False))

    def relu_tile(self, idst: int) -> None:
        self.sfpu_tile("relu", idst)

    def relu_max_tile(self, idst: int, upper: float) -> None:
        """ReLU clamped above at ``upper`` (relu6 when upper == 6)."""
        if upper != 6.0:
            raise ConfigurationError(f"{self.where}: relu_max_tile only models upper=6")
        self.sfpu_tile("relu6", idst)

    def silu_tile(self, idst: int) -> None:
        self.sfpu_tile("silu", idst)

    def gelu_tile(self, idst: int) -> None:
        self.sfpu_tile("gelu", idst)

    # -- pack ------------------------------------------------------------------------------------
    def pack_tile(self, idst: int, ocb: int, out_index: int | None = None, relu: bool = False) -> None:
        """PACK DST[idst] into the next (or the given) tile slot at the back of ``ocb``.

        ``relu`` is the packer's PACK_RELU: negative values are written as zero at no cost.
        """
        if out_index is None:
            out_index = self._pack_position.get(ocb, 0)
            self._pack_position[ocb] = out_index + 1
        fmt = self.cb(ocb).config.data_format
        address = self._page_address(ocb, out_index, front=False)
        values = np.maximum(self.dst[idst], 0.0) if relu else self.dst[idst]
        data = pack_tile(values, fmt)
        self.core.l1.data[address : address + data.size] = data
        self._pack(self._pack_cost(data.size))

    def pack_untilize_dest(self, ocb: int, ntiles: int, rows: int, row_width: int,
                           col_offset: int = 0) -> None:
        """PACK the first ``rows`` rows of DST tiles 0..ntiles-1 as row-major rows into ``ocb``.

        Rows are ``row_width`` elements wide in the CB; this block lands ``col_offset`` elements
        into each row.
        """
        fmt = self.cb(ocb).config.data_format
        elem = 4 if fmt is DataFormat.FLOAT32 else 2
        block = untilize(self.dst[:ntiles])[:rows]
        base = self._page_address(ocb, 0, front=False)
        for r in range(rows):
            address = base + (r * row_width + col_offset) * elem
            data = encode_row_major(block[r], fmt)
            self.core.l1.data[address : address + data.size] = data
        self._pack(self._c.pack_untilize_tile_cycles.value * ntiles * rows / 32)

    def tilize_block(self, icb: int, ntiles: int, ocb: int) -> None:
        """Tilize 32 row-major rows of ``ntiles`` tiles from ``icb``'s front into ``ocb``'s back
        (unpack-tilize, datacopy, pack; pipelined per tile)."""
        cb = self.cb(icb)
        elem = 4 if cb.config.data_format is DataFormat.FLOAT32 else 2
        width = ntiles * 32
        address = self._page_address(icb, 0, front=True)
        raw = self.core.l1.data[address : address + 32 * width * elem]
        tiles = tilize(decode_row_major(raw, cb.config.data_format).reshape(32, width))
        fmt = self.cb(ocb).config.data_format
        c = self._c
        for i in range(ntiles):
            ready = self._unpack(c.unpack_tilize_tile_cycles.value)
            self._math(ready, c.datacopy_tile_cycles.value)
            self._pack_t = max(self._pack_t, self._math_t)
            self._pack(c.pack_tilize_tile_cycles.value)
            out = self._page_address(ocb, self._pack_position.get(ocb, 0), front=False)
            self._pack_position[ocb] = self._pack_position.get(ocb, 0) + 1
            data = pack_tile(tiles[i], fmt)
            self.core.l1.data[out : out + data.size] = data

    fast_tilize_block = tilize_block

    # -- lifecycle -------------------------------------------------------------------------------
    def end_time(self) -> float:
        return max(self._t, self._math_t, self._pack_t)

    def zone_ends(self) -> dict[Risc, float]:
        return {Risc.TRISC0: self._t, Risc.TRISC1: self._math_t, Risc.TRISC2: self._pack_t}
