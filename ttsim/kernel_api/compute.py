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

import sys
from collections import deque
from typing import Any, Callable, Mapping

import ml_dtypes
import numpy as np

from ttsim.cb import CircularBuffer
from ttsim.device.core import Risc, TensixCore
from ttsim.device.device import Device
from ttsim.errors import ConfigurationError
from ttsim.formats import (DataFormat, FACE_H, FACE_W, TILE_ELEMENTS, TILE_H, TILE_W, pack_tile,
                           tilize, unpack_tile, untilize, decode_row_major, encode_row_major)
from ttsim.kernel_api.base import KernelContext, KernelGen
from ttsim.kernel_api.compute_eltwise import EltwiseOps
from ttsim.numerics import ACTIVATIONS

FIDELITY_PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
DST_TILES = 16
BF16 = np.dtype(ml_dtypes.bfloat16)
"""bfloat16 as a numpy dtype: casting float32 to it rounds to nearest even, back is exact."""
DECODED_TILES_KEPT = 512
"""Decoded non-bfloat16 tiles a compute kernel keeps for reuse (see :class:`DecodedTiles`)."""


def _relu6_float32(x: np.ndarray) -> np.ndarray:
    """``ACTIVATIONS["relu6"]`` without the ``np.clip`` dispatch: the same clip ufunc call."""
    return x.clip(0.0, 6.0)


FLOAT32_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"relu6": _relu6_float32}
"""Activations whose float32 result is bit-identical to the reference's; others go through
:data:`ttsim.numerics.ACTIVATIONS` and are cast back to float32."""


def _reduce_columns(rows: np.ndarray, scalar: np.float32, pool: str) -> np.ndarray:
    """Column sums (``pool == "sum"``, float32, summed top row first) or maxima of ``rows``
    [32, 32 * n] (n tiles side by side), times ``scalar``; returns [n, 2, 16]: each tile's
    reduced row split in face order."""
    if pool == "sum":
        reduced = np.add.reduce(rows, axis=0, dtype=np.float32)
    else:
        reduced = rows.max(axis=0)
    return (reduced * scalar).reshape(-1, 2, FACE_W)


class DecodedTiles:
    """Decoded values of recently read tiles, reused only while their L1 bytes are unchanged.

    Decoding a block-float tile costs several times more than comparing its bytes, and kernels
    read the same weight and bias tiles for every output. Every lookup compares the tile's
    current bytes with the bytes that were decoded, so a tile rewritten in L1 is decoded again.
    Values are returned read-only, as they are shared between reads.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[tuple[int, DataFormat], tuple[bytes, np.ndarray]] = {}

    def values(self, address: int, raw: np.ndarray, fmt: DataFormat) -> np.ndarray:
        """Float32 values of the tile whose bytes ``raw`` sit at ``address`` in format ``fmt``."""
        key = (address, fmt)
        current = raw.tobytes()
        entry = self._entries.get(key)
        if entry is not None and entry[0] == current:
            return entry[1]
        values = unpack_tile(raw, fmt)
        values.flags.writeable = False
        if len(self._entries) >= self.capacity:
            self._entries.clear()
        self._entries[key] = (current, values)
        return values


class ComputeContext(EltwiseOps, KernelContext):
    """The API a compute kernel sees."""

    def __init__(self, device: Device, core: TensixCore, kernel_name: str,
                 compile_args: Mapping[str, Any], runtime_args: Mapping[str, Any],
                 math_fidelity: str = "HiFi4", fp32_dest_acc: bool = False) -> None:
        super().__init__(device, core, kernel_name, Risc.TRISC0, compile_args, runtime_args)
        c = self.spec.compute
        self._c = c
        self.math_fidelity = math_fidelity
        self._phases = FIDELITY_PHASES[math_fidelity]
        self._dst_bf16 = not fp32_dest_acc
        """DST holds bfloat16 (every write rounds to it) unless fp32 accumulation is on."""
        self._dst_limit = c.dst_tiles_per_half.value // (2 if fp32_dest_acc else 1)
        self.dst = np.zeros((DST_TILES, TILE_ELEMENTS), dtype=np.float32)
        self._dst_faces = self.dst.reshape(DST_TILES, 2, 2, FACE_H, FACE_W)
        """View of ``dst`` as [tile, face row, face column, row in face, column in face]."""
        self._dst_row0 = self._dst_faces[:, 0, :, 0, :]
        """View of row 0 of every DST tile, [tile, face column, column in face]."""
        self._dst_written: set[int] = set()
        self._l1 = core.l1.data
        self._decoded = DecodedTiles(DECODED_TILES_KEPT)
        self._srca = np.zeros((32, c.dst_tiles_per_half.value * 32), dtype=np.float32)
        """srcA as the tilizing unpacker fills it: 32 rows, tile t in columns [32t, 32t + 32)."""
        self._scalar = np.float32(1.0)
        self._srca_reductions: dict[str, np.ndarray] = {}
        """Per pool type, every srcA tile column-reduced and scaled; cleared when srcA changes."""
        start = self._t
        self._math_t = start
        self._pack_t = start
        self._commit_t = start
        self._released = deque([start, start], maxlen=2)
        self._src_banks = deque([start, start], maxlen=2)
        self._pack_position: dict[int, int] = {}
        self._busy_unpack = 0.0
        self._busy_math = 0.0
        self._busy_pack = 0.0
        self._last_busy: dict[Risc, list] = {}
        self._producer_risc = Risc.TRISC2
        self._consumer_risc = Risc.TRISC0
        self._init_costs = c.init_cycles.value
        self._handshake = c.tile_regs_handshake_cycles.value
        self._sfpu_costs = c.sfpu_tile_cycles.value
        self._mul_cycles = c.eltwise_mul_tile_cycles_per_phase.value * self._phases
        self._add_cycles = c.eltwise_add_tile_cycles.value
        self._datacopy_cycles = c.datacopy_tile_cycles.value
        self._reduce_cycles_per_phase = c.reduce_tile_cycles_per_phase.value
        self._unpack_overhead = c.unpack_tile_overhead_cycles.value
        self._unpack_rate = c.unpack_bytes_per_cycle.value
        self._unpack_two_operand_rate = c.unpack_two_operand_bytes_per_cycle.value
        self._pack_overhead = c.pack_tile_overhead_cycles.value
        self._pack_rate = c.pack_bytes_per_cycle.value

    def riscs(self) -> tuple[Risc, ...]:
        return (Risc.TRISC0, Risc.TRISC1, Risc.TRISC2)

    def _busy(self, risc: Risc, cycles: float) -> None:
        if risc is Risc.TRISC0:
            self._busy_unpack += cycles
        else:
            self._busy_pack += cycles

    @property
    def busy_cycles(self) -> dict[Risc, float]:
        """Cycles each compute thread spent working (not waiting)."""
        return {Risc.TRISC0: self._busy_unpack, Risc.TRISC1: self._busy_math,
                Risc.TRISC2: self._busy_pack}

    # -- thread clocks ---------------------------------------------------------------------------
    def _trace_busy(self, risc: Risc, start: float, cycles: float) -> None:
        """Record busy work for the timeline, named after the public API call doing it; back-to-back
        work of the same call on the same thread merges into one op group."""
        frame = sys._getframe(2)
        while frame.f_code.co_name.startswith("_"):
            frame = frame.f_back
        name = frame.f_code.co_name
        last = self._last_busy.get(risc)
        if last is not None and last[1] == name and abs(last[3] - start) < 1e-9:
            last[3] = start + cycles
            return
        event = [risc, name, start, start + cycles]
        self._last_busy[risc] = event
        self.trace.append(event)

    def _unpack(self, cycles: float) -> float:
        """Charge the unpack thread; returns when the unpacked operands are ready for math."""
        free = self._src_banks[0]
        if free > self._t:
            self._stall(Risc.TRISC0, "unpack_wait_math", self._t, free)
            self._t = free
        if self.trace is not None:
            self._trace_busy(Risc.TRISC0, self._t, cycles)
        self._t += cycles
        self._check_deadline(self._t)
        self._busy_unpack += cycles
        return self._t

    def _math(self, ready: float, cycles: float) -> None:
        """Charge math on operands unpacked at ``ready``; their source bank frees at its end."""
        if ready > self._math_t:
            self._stall(Risc.TRISC1, "math_wait_unpack", self._math_t, ready)
            self._math_t = ready
        if self.trace is not None:
            self._trace_busy(Risc.TRISC1, self._math_t, cycles)
        self._math_t += cycles
        self._busy_math += cycles
        self._src_banks.append(self._math_t)

    def _math_dst(self, cycles: float) -> None:
        """Charge math that only touches DST (no source operands), right after the last."""
        if self.trace is not None:
            self._trace_busy(Risc.TRISC1, self._math_t, cycles)
        self._math_t += cycles
        self._busy_math += cycles

    def _pack(self, cycles: float) -> None:
        if self.trace is not None:
            self._trace_busy(Risc.TRISC2, self._pack_t, cycles)
        self._pack_t += cycles
        self._busy_pack += cycles

    def _init(self, unpack: bool = False, math: bool = False, pack: bool = False) -> None:
        """Charge a reconfiguration to the threads it touches."""
        if unpack:
            if self.trace is not None:
                self._trace_busy(Risc.TRISC0, self._t, self._init_costs["unpack"])
            self._t += self._init_costs["unpack"]
            self._busy_unpack += self._init_costs["unpack"]
        if math:
            self._math_dst(self._init_costs["math"])
        if pack:
            self._pack(self._init_costs["pack"])

    def _unpack_cost(self, nbytes: int, ntiles: int = 1, two_operand: bool = False) -> float:
        """Unpack cycles for ``ntiles`` tiles of ``nbytes`` in all: each tile pays the per-tile
        overhead (its UNPACR and address update), the bytes stream at the unpacker rate."""
        rate = self._unpack_two_operand_rate if two_operand else self._unpack_rate
        return self._unpack_overhead * ntiles + nbytes / rate

    def _pack_cost(self, nbytes: int) -> float:
        return self._pack_overhead + nbytes / self._pack_rate

    # -- tile access -----------------------------------------------------------------------------
    def _read_tile(self, cb: CircularBuffer, index: int) -> np.ndarray:
        """Float32 values (storage order) of tile ``index`` at ``cb``'s front; treat as read-only."""
        address = cb.front_page_address(index)
        raw = self._l1[address : address + cb.tile_bytes]
        if cb.is_bf16:
            return raw.view(BF16).astype(np.float32)
        return self._decoded.values(address, raw, cb.data_format)

    def _first_value(self, cb: CircularBuffer) -> float:
        """Value 0 (storage order) of the front tile of ``cb``, decoding only that value."""
        if cb.is_bf16:
            address = cb.front_page_address(0)
            return float(self._l1[address : address + 2].view(BF16)[0])
        return float(self._read_tile(cb, 0)[0])

    def _write_values(self, address: int, values: np.ndarray, cb: CircularBuffer,
                      encode: Callable[[np.ndarray, DataFormat], np.ndarray]) -> None:
        """Store ``values`` (flattened in C order) at ``address`` in ``cb``'s format.

        bfloat16 is cast straight into L1 (the same round-to-nearest-even cast as ``encode``);
        other formats go through ``encode`` (:func:`pack_tile` or :func:`encode_row_major`).
        """
        if cb.is_bf16:
            self._l1[address : address + 2 * values.size].view(BF16).reshape(values.shape)[...] = values
        else:
            data = encode(values, cb.data_format)
            self._l1[address : address + data.size] = data

    def _dst_index_error(self, index: int) -> ConfigurationError:
        """The error for a DST index outside the half a kernel may use."""
        return ConfigurationError(
            f"{self.where}: DST index {index} outside the {self._dst_limit} tiles of a half")

    def _set_dst(self, index: int, values: np.ndarray, count: int = 1) -> None:
        """DST[index : index + count] = values ([count, 1024], or [1024] for one tile), rounded
        to the DST format."""
        last = index + count - 1
        if index < 0 or last >= self._dst_limit:
            raise self._dst_index_error(index if index < 0 else last)
        if count == 1:
            self.dst[index] = values.astype(BF16) if self._dst_bf16 else values
            self._dst_written.add(index)
            return
        self.dst[index : last + 1] = values.astype(BF16) if self._dst_bf16 else values
        self._dst_written.update(range(index, last + 1))

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
        if n <= 0 or n > cb.num_pages:
            cb.check_request(n, "cb_reserve_back", self.kernel_name)
        resume = self._pack_t + self._cb_check
        self._busy_pack += self._cb_check
        if cb.free_pages() < n:
            yield from self._sync_to(self._t)
        if cb.free_pages() < n:
            # the process (unpack's clock) blocks too: a modelling approximation, see docs
            start = self.env.now

            def detail() -> str:
                return f"cb_reserve_back({cb.describe()}, {n}): {cb.free_pages()} of {cb.num_pages} pages free"

            yield from self._block(cb.reserve_event(n), detail)
            cb.stats.producer.blocked_cycles += self.env.now - start
            reason = f"cb_reserve_back:{cb.name}"
            self._stall(Risc.TRISC0, reason, self._t, self.env.now)
            self._t = max(self._t, float(self.env.now))
            if self.env.now > resume:
                self._stall(Risc.TRISC2, reason, resume, self.env.now)
                resume = self.env.now + self._cb_poll
                self._busy_pack += self._cb_poll
        self._pack_t = resume

    def cb_push_back(self, cb_id: int, n: int) -> None:
        """PACK: publish ``n`` pages."""
        self._pack_t = self._push(cb_id, n, self._pack_t)
        self._pack_position[cb_id] = 0

    # -- DST handshakes --------------------------------------------------------------------------
    def tile_regs_acquire(self) -> None:
        """MATH: take a DST half (waits for pack to release it)."""
        released = self._released[0]
        if released > self._math_t:
            self._stall(Risc.TRISC1, "math_wait_pack", self._math_t, released)
            self._math_t = released
        self._math_dst(self._handshake)

    def tile_regs_commit(self) -> None:
        """MATH: hand the DST half to pack."""
        self._math_dst(self._handshake)
        self._commit_t = self._math_t

    def tile_regs_wait(self) -> None:
        """PACK: wait for math to commit."""
        if self._commit_t > self._pack_t:
            self._stall(Risc.TRISC2, "pack_wait_math", self._pack_t, self._commit_t)
            self._pack_t = self._commit_t
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
        cb0, cb1 = self.cb(icb0), self.cb(icb1)
        a = self._read_tile(cb0, i0)
        b = self._read_tile(cb1, i1)
        ready = self._unpack(self._unpack_cost(cb0.tile_bytes + cb1.tile_bytes, ntiles=2, two_operand=True))
        self._math(ready, math_cycles)
        self._set_dst(idst, op(a, b))

    def mul_tiles(self, icb0: int, icb1: int, i0: int, i1: int, idst: int) -> None:
        """DST[idst] = A * B, element-wise (FPU ELWMUL; cost scales with math fidelity); added to
        DST[idst] after ``mul_init(..., acc_to_dest=True)``."""
        self._binary(icb0, icb1, i0, i1, self._mul_cycles, self._accumulating(np.multiply, idst), idst)

    def add_tiles(self, icb0: int, icb1: int, i0: int, i1: int, idst: int) -> None:
        """DST[idst] = A + B (FPU ELWADD)."""
        self._binary(icb0, icb1, i0, i1, self._add_cycles, np.add, idst)

    def add_tiles_bcast_rows(self, icb0: int, icb1: int, i0: int, i1: int, idst: int) -> None:
        """DST[idst] = A + row 0 of B broadcast over all 32 rows (the conv bias add)."""
        def bcast_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            row = untilize(b[None, :])[0]
            return a + tilize(np.broadcast_to(row, (32, 32)).astype(np.float32))[0]
        self._binary(icb0, icb1, i0, i1, self._add_cycles, bcast_add, idst)

    def binary_dest_reuse_tiles(self, icb: int, itile: int, idst: int, op: str = "add") -> None:
        """DST[idst] = DST[idst] (op) CB tile (``binary_dest_reuse_tiles<.., DEST_TO_SRCA>``)."""
        cb = self.cb(icb)
        tile = self._read_tile(cb, itile)
        ready = self._unpack(self._unpack_cost(cb.tile_bytes))
        if op == "add":
            cycles, result = self._add_cycles, self.dst[idst] + tile
        elif op == "mul":
            cycles, result = self._mul_cycles, self.dst[idst] * tile
        else:
            raise ConfigurationError(f"{self.where}: binary_dest_reuse_tiles op {op!r}")
        self._math(ready, cycles + self._datacopy_cycles)
        self._set_dst(idst, result)

    def copy_tile(self, icb: int, itile: int, idst: int) -> None:
        """DST[idst] = tile ``itile`` of ``icb``."""
        cb = self.cb(icb)
        tile = self._read_tile(cb, itile)
        ready = self._unpack(self._unpack_cost(cb.tile_bytes))
        self._math(ready, self._datacopy_cycles)
        self._set_dst(idst, tile)

    def reduce_tile(self, icb: int, scalar_cb: int, itile: int, iscalar: int, idst: int,
                    pool: str = "sum") -> None:
        """REDUCE_COL of a tiled CB tile into row 0 of DST[idst], scaled by the scalar tile."""
        cb = self.cb(icb)
        tile = self._read_tile(cb, itile)
        scalar = self._read_tile(self.cb(scalar_cb), iscalar)[0]
        ready = self._unpack(self._unpack_cost(cb.tile_bytes))
        reduced = _reduce_columns(untilize(tile[None, :]), scalar, pool)[0]
        self._accumulate_row0(reduced, idst, pool, ready, 4)

    def _accumulate_row0(self, reduced: np.ndarray, idst: int, pool: str, ready: float,
                         num_faces: int) -> None:
        """Math of a column reduce: fold ``reduced`` ([2, 16], one tile row in face order) into
        row 0 of DST[idst] (add for sum, maximum for max)."""
        phases = self._phases if pool == "sum" else 1
        self._math(ready, self._reduce_cycles_per_phase * phases * num_faces / 4)
        if not 0 <= idst < self._dst_limit:
            raise self._dst_index_error(idst)
        current = self._dst_row0[idst]
        if pool == "max" and idst not in self._dst_written:
            current = np.full_like(current, -np.inf)  # GMPOOL reads a zeroed DST row as -inf
        row = current + reduced if pool == "sum" else np.maximum(current, reduced)
        self._dst_row0[idst] = row.astype(BF16) if self._dst_bf16 else row
        self._dst_written.add(idst)

    def unpack_tilizeA_B_block(self, icb: int, scalar_cb: int, ntiles: int, rows: int,
                               row_width: int, col_offset: int = 0, row_offset: int = 0,
                               num_faces: int = 4) -> None:
        """Tilize-on-unpack ``rows`` row-major rows of ``ntiles`` tiles into srcA, and load the
        scalar into srcB (the fused tilize + reduce of the pool kernels).

        The rows start ``row_offset`` rows into the CB's front page; each row is ``row_width``
        elements of the CB's format and the block starts ``col_offset`` elements into a row.
        """
        if not 0 < rows <= 32 or ntiles * 32 > self._srca.shape[1]:
            raise ConfigurationError(f"{self.where}: unpack_tilizeA_B_block of {rows} rows x {ntiles} tiles")
        cb = self.cb(icb)
        elem = 4 if cb.data_format is DataFormat.FLOAT32 else 2
        address = cb.front_page_address(0) + row_offset * row_width * elem
        raw = self._l1[address : address + rows * row_width * elem]
        values = raw.view(BF16) if cb.is_bf16 else decode_row_major(raw, cb.data_format)
        width = ntiles * 32
        block = values.reshape(rows, row_width)[:, col_offset : col_offset + width]
        self._srca[rows:, :width] = 0.0
        self._srca[:rows, :width] = block
        self._srca_reductions.clear()
        self._scalar = np.float32(self._first_value(self.cb(scalar_cb)))
        cost = self._c.unpack_tilize_tile_cycles.value * ntiles * rows / 32
        self._unpack(cost + self._c.unpack_tile_overhead_cycles.value)

    def reduce_tile_math(self, idst: int, num_faces: int = 4, pool: str = "sum") -> None:
        """Reduce srcA tile ``idst`` (from ``unpack_tilizeA_B_block``) into DST row 0."""
        reduced = self._srca_reductions.get(pool)
        if reduced is None:  # all srcA tiles at once: one numpy call per unpack, not per tile
            reduced = _reduce_columns(self._srca, self._scalar, pool)
            self._srca_reductions[pool] = reduced
        self._accumulate_row0(reduced[idst], idst, pool, self._t, num_faces)

    def matmul_block(self, in0_cb: int, in1_cb: int, in0_index: int, in1_index: int, idst: int,
                     transpose: bool, ct_dim: int, rt_dim: int, kt_dim: int) -> None:
        """One inner-k step of a subblock: DST[idst + h*ct + w] += A[in0 + h*kt] @ B[in1 + w]
        for h < rt_dim, w < ct_dim (16 cycles per tile-matmul at LoFi, x fidelity phases)."""
        cb0, cb1 = self.cb(in0_cb), self.cb(in1_cb)
        a_tiles = [self._read_tile(cb0, in0_index + h * kt_dim) for h in range(rt_dim)]
        b_tiles = [self._read_tile(cb1, in1_index + w) for w in range(ct_dim)]
        nbytes = rt_dim * cb0.tile_bytes + ct_dim * cb1.tile_bytes
        ready = self._unpack(self._unpack_cost(nbytes, ntiles=rt_dim + ct_dim, two_operand=True))
        cycles = self._c.matmul_tile_cycles_lofi.value * self._phases * rt_dim * ct_dim
        self._math(ready, cycles)
        b_rows = untilize(np.stack(b_tiles))  # [32, 32 * ct_dim]: the B tiles side by side
        if transpose:  # each 32 x 32 tile transposed in place
            b_rows = b_rows.reshape(TILE_H, ct_dim, TILE_W).transpose(2, 1, 0).reshape(TILE_H, -1)
        for h in range(rt_dim):
            products = tilize(untilize(a_tiles[h][None, :]) @ b_rows)  # [ct_dim, 1024]
            first = idst + h * ct_dim
            self._set_dst(first, self.dst[first : first + ct_dim] + products, ct_dim)

    # -- SFPU ------------------------------------------------------------------------------------
    def _sfpu_cost(self, name: str) -> float:
        try:
            return self._sfpu_costs[name]
        except KeyError:
            raise ConfigurationError(
                f"{self.where}: no SFPU cost for {name!r} in device {self.spec.name}") from None

    def sfpu_tile(self, name: str, idst: int) -> None:
        """Apply SFPU activation ``name`` (relu, relu6, silu, gelu, identity) to DST[idst]."""
        self._sfpu_on_math(self._sfpu_cost(name))
        fast = FLOAT32_ACTIVATIONS.get(name)
        if fast is not None:
            result = fast(self.dst[idst])
        else:
            func = ACTIVATIONS["none" if name == "identity" else name]
            result = func(self.dst[idst]).astype(np.float32, copy=False)
        self._set_dst(idst, result)

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
        cb = self.cb(ocb)
        values = self._relu_stage(np.maximum(self.dst[idst], 0.0) if relu else self.dst[idst])
        self._write_values(cb.back_page_address(out_index), values, cb, pack_tile)
        self._pack(self._pack_cost(cb.tile_bytes))

    def pack_untilize_dest(self, ocb: int, ntiles: int, rows: int, row_width: int,
                           col_offset: int = 0) -> None:
        """PACK the first ``rows`` rows of DST tiles 0..ntiles-1 as row-major rows into ``ocb``.

        Rows are ``row_width`` elements wide in the CB; this block lands ``col_offset`` elements
        into each row.
        """
        cb = self.cb(ocb)
        elem = 4 if cb.data_format is DataFormat.FLOAT32 else 2
        base = cb.back_page_address(0)
        for r in range(rows):
            address = base + (r * row_width + col_offset) * elem
            row = self._relu_stage(self._dst_faces[:ntiles, r // FACE_H, :, r % FACE_H, :])  # row r of each tile
            self._write_values(address, row, cb, encode_row_major)
        self._pack(self._c.pack_untilize_tile_cycles.value * ntiles * rows / 32)

    def tilize_block(self, icb: int, ntiles: int, ocb: int) -> None:
        """Tilize 32 row-major rows of ``ntiles`` tiles from ``icb``'s front into ``ocb``'s back
        (unpack-tilize, datacopy, pack; pipelined per tile)."""
        cb = self.cb(icb)
        elem = 4 if cb.data_format is DataFormat.FLOAT32 else 2
        width = ntiles * 32
        address = cb.front_page_address(0)
        raw = self._l1[address : address + 32 * width * elem]
        tiles = self._relu_stage(tilize(decode_row_major(raw, cb.data_format).reshape(32, width)))
        out_cb = self.cb(ocb)
        c = self._c
        packed = tiles if out_cb.is_bf16 else pack_tile(tiles, out_cb.data_format)  # one encode per block
        for i in range(ntiles):
            ready = self._unpack(c.unpack_tilize_tile_cycles.value)
            self._math(ready, c.datacopy_tile_cycles.value)
            if self._math_t > self._pack_t:
                self._stall(Risc.TRISC2, "pack_wait_math", self._pack_t, self._math_t)
                self._pack_t = self._math_t
            self._pack(c.pack_tilize_tile_cycles.value)
            position = self._pack_position.get(ocb, 0)
            self._pack_position[ocb] = position + 1
            address = out_cb.back_page_address(position)
            if out_cb.is_bf16:
                self._write_values(address, tiles[i], out_cb, pack_tile)
            else:
                self._l1[address : address + packed[i].size] = packed[i]

    fast_tilize_block = tilize_block

    # -- lifecycle -------------------------------------------------------------------------------
    def end_time(self) -> float:
        return max(self._t, self._math_t, self._pack_t)

    def zone_ends(self) -> dict[Risc, float]:
        return {Risc.TRISC0: self._t, Risc.TRISC1: self._math_t, Risc.TRISC2: self._pack_t}
