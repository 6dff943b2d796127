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
DST format, bfloat16 unless fp32 accumulation is on); packing rounds to the CB's format. FPU
multiplies (ELWMUL, MVMUL, GAPOOL) follow the ISA's functional model in :mod:`ttsim.fpu`: they
accumulate into DST, see only their fidelity phase's operand bits, and round DST after every
accumulation.

Signatures follow tenstorrent/tt-metal ``tt_metal/include/compute_kernel_api/*.h`` (each call
names its header); C++ template arguments are keyword arguments.
"""

from __future__ import annotations

import functools
import sys
from heapq import heappush
from typing import Any, Callable, Mapping

import numpy as np
from simpy.events import NORMAL

from ttsim.cb import SYNC_POINT, CircularBuffer, enqueue
from ttsim.device.core import Risc, TensixCore
from ttsim.device.device import Device
from ttsim.errors import ConfigurationError, KernelAPIError
from ttsim.formats import (DataFormat, FACE_H, FACE_W, TILE_ELEMENTS, TILE_W, bfloat16_dtype,
                           pack_bfloat16_tiles, pack_tile, tilize, unpack_tiles, untilize,
                           decode_row_major, encode_row_major)
from ttsim.fpu import (FIDELITY_PHASES, accumulate, all_finite, column_sum_from_zero, column_sum_partials,
                       dense_mvmul_plan, elwmul, mvmul_accumulate, mvmul_plan, srca_part, srcb_lofi_bits,
                       srcb_part)
from ttsim.kernel_api.base import KernelContext, KernelGen
from ttsim.kernel_api.compute_eltwise import ELEMENTWISE_ACTIVATIONS, EltwiseOps, ReluType, row_broadcast
from ttsim.kernel_api.tile_cache import DECODED_TILES_KEPT, DecodedTiles, KeptByBytes, KeptByContent
from ttsim.numerics import ACTIVATIONS
from ttsim.sim_events import scheduled_timeout, waiter_event

DST_TILES = 16
BROADCASTS_KEPT = 64
"""Runs of row-broadcast bias tiles a compute kernel keeps for reuse (see
:meth:`ComputeContext._broadcast_rows`)."""
IN0_RUNS_KEPT = 8
"""Prepared in0 operands of matmul runs (a subblock row's inner-k steps, used by the subblocks
of the row one after another) a compute kernel keeps for reuse."""
IN1_RUNS_KEPT = 64
"""Prepared in1 operands of matmul runs (the weights of a subblock column's inner-k steps, read
again for every output block) a compute kernel keeps for reuse."""
RUN_VERSIONS_KEPT = 4
"""Contents of the same tiles a compute kernel keeps a prepared in1 operand for (a conv's weights
CB holds each kernel row's weights in turn at the same addresses; in0's activations keep one)."""
SHARED_IN1_RUNS_KEPT = 32
"""Prepared in1 operands of one shape kept for every core of the process (see
:data:`_SHARED_IN1_RUNS`; op27, op40 and op79 classic fill all 32 with one conv's weights)."""
SHARED_IN1_SHAPES_KEPT = 4
"""Operand shapes :data:`_SHARED_IN1_RUNS` keeps at once: a process runs one conv at a time, so
the shapes of earlier layers go (at most 4 x 32 operands, ~0.65 MB each on op14, in memory)."""
_SHARED_IN1_RUNS = KeptByContent(SHARED_IN1_SHAPES_KEPT, SHARED_IN1_RUNS_KEPT)
"""Prepared in1 operands of matmul runs by (role, format, tiles' shape, fidelity phases) and the
tiles' content, shared by every compute kernel of the process: a height-sharded conv sends every
core the same weights, so each core's first run over a weight block would prepare what another
core already did. Keyed by everything :meth:`ComputeContext._run_blocks` reads, so a hit is the
operand it would return; its values are read-only."""


def _bf16_finite(tiles: np.ndarray) -> bool:
    """Whether every bfloat16 value of ``tiles`` (their bytes in 8-byte words, any shape whose last
    axis is contiguous) is finite: its exponent is not all ones."""
    bits = np.bitwise_and(tiles.view(np.uint16), np.uint16(0x7FFF))
    return bool(np.maximum.reduce(bits, axis=None) < 0x7F80)


_HIGH_HALF = 1 if sys.byteorder == "little" else 0
"""Which uint16 of a float32's two holds its sign, exponent and top 7 mantissa bits."""


def _bf16_bits_of_bf16_values(values: np.ndarray) -> np.ndarray:
    """The bfloat16 bit patterns of float32 ``values`` that are bfloat16 values (a bfloat16 DST's:
    every store into it is rounded to bfloat16), a strided uint16 view: each value's high half,
    which is what the round-to-nearest-even cast gives for such a value (its low half is zero;
    a NaN from the cast is quiet already), without the cast's per-element rounding
    (tests/test_compute_ops.py checks every bit pattern DST's rounding gives)."""
    return values.view(np.uint16)[..., _HIGH_HALF::2]


def _consecutive_tiles(l1: np.ndarray, tiles: list[tuple[int, CircularBuffer]]) -> np.ndarray | None:
    """The bytes (a view of ``l1``) of the CB tiles at (address, CB) ``tiles`` when they are
    consecutive tiles of the first one's CB, else None (tuples compare their CBs by identity
    first, then ==, which CircularBuffer leaves to identity)."""
    first, cb = tiles[0]
    size = cb.tile_bytes
    n = len(tiles)
    if n > 1 and tiles != [(a, cb) for a in range(first, first + n * size, size)]:
        return None
    return l1[first : first + n * size]


try:  # the clip ufunc that np.clip and ndarray.clip end in (numpy 2: numpy._core; 1.26: numpy.core)
    from numpy._core.umath import clip as _clip_ufunc
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core.umath import clip as _clip_ufunc


def _relu6_float32(x: np.ndarray) -> np.ndarray:
    """``ACTIVATIONS["relu6"]`` without the ``np.clip`` dispatch and ``ndarray.clip``'s Python
    wrapper (numpy's ``_methods._clip``, several microseconds a call): the clip ufunc they call,
    with the same arguments (tests/test_vectorised_numerics.py)."""
    return _clip_ufunc(x, 0.0, 6.0)


def _silu_float32(x: np.ndarray) -> np.ndarray:
    """``ACTIVATIONS["silu"]`` (``x * 0.5 * (1.0 + tanh(0.5 * x))``) on float32 ``x``: the same
    float32 operations with ``x * 0.5`` taken once (``0.5 * x`` is the same product) and the
    last two in place, in the same operand order (a NaN keeps the payload of the first), three
    numpy calls fewer (tests/test_vectorised_numerics.py)."""
    half = x * 0.5
    result = np.tanh(half)
    result += 1.0
    return np.multiply(half, result, out=result)


FLOAT32_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"relu6": _relu6_float32,
                                                                       "silu": _silu_float32}
"""Activations whose float32 result is bit-identical to the reference's; others go through
:data:`ttsim.numerics.ACTIVATIONS` and are cast back to float32."""
BFLOAT16_CLOSED_ACTIVATIONS = frozenset({"identity", "relu", "relu6"})
"""SFPU activations whose every value is its input or a bfloat16 constant (0, 6): on bfloat16
values (a bfloat16 DST holds nothing else) the result is bfloat16 already, and rounding it to
the DST format leaves its bits as they are (tested on every bfloat16 bit pattern)."""

BFLOAT16_VALUED_FORMATS = frozenset({DataFormat.BFLOAT8_B})
"""CB formats whose every decoded value is a bfloat16 value other than NaN (bfloat8_b: at most 7
significant bits, at or above 2^-133, or infinity past float32's range), which rounding to
bfloat16 leaves bit for bit as it is (tested on every exponent and code byte): a copy from such
a CB into a bfloat16 DST needs no rounding. (bfloat16 itself is not here: the rounding makes
a NaN the quiet NaN of its sign.)"""


def _reduce_columns(rows: np.ndarray, scalar: np.float32, pool: str, phases: int,
                    zero_from: int | None = None) -> np.ndarray:
    """Column reduce of ``rows`` [32, 32 * n] (n tiles side by side) by ``scalar``, per
    accumulation into DST: returns [k, n, 2, 16] (each tile's reduced row split in face order).

    ``sum`` is GAPOOL (:func:`ttsim.fpu.column_sum_partials`, rows ``zero_from``.. known zero):
    k = 2 * ``phases`` partial sums of 16 rows, added to DST in order. ``max`` is GMPOOL (no
    multiplier, k = 1): the column maxima times ``scalar``.
    """
    if pool == "sum":
        reduced = column_sum_partials(rows, scalar, phases, zero_from)
    else:
        reduced = rows.max(axis=0, keepdims=True) * scalar
    return reduced.reshape(reduced.shape[0], -1, 2, FACE_W)


@functools.lru_cache(maxsize=None)
def _row_columns(rows: int) -> np.ndarray:
    """Storage-order positions of rows 0 .. ``rows`` - 1 of a tile, row by row, each row's 32
    values in column order (face column 0, then 1)."""
    columns = [(r // FACE_H) * 2 * FACE_H * FACE_W + face * FACE_H * FACE_W + (r % FACE_H) * FACE_W + c
               for r in range(rows) for face in (0, 1) for c in range(FACE_W)]
    array = np.array(columns, dtype=np.intp)
    array.flags.writeable = False
    return array


class ComputeContext(EltwiseOps, KernelContext):
    """The API a compute kernel sees."""

    __slots__ = (
        "_acc_to_dest", "_add_cycles", "_bf16", "_broadcasts", "_busy_math", "_c", "_commit_t",
        "_datacopy_cycles", "_decoded", "_dst", "_dst_bf16", "_dst_committed", "_dst_limit", "_dst_math",
        "_dst_pack", "_dst_stored", "_dst_written", "_faces", "_front_region", "_handshake", "_in0_runs", "_in1_runs",
        "_init_costs", "_init_math", "_init_pack", "_l1", "_l1_bytes", "_last_busy", "_math_stalls", "_math_t",
        "_matmul_costs", "_mul_cycles", "_pack_costs", "_pack_overhead", "_pack_position", "_pack_rate",
        "_pack_stalls", "_pack_t", "_pack_untilize_cycles", "_pending", "_phases", "_reduce_costs",
        "_reduce_cycles_per_phase", "_released", "_released_last", "_relu_mode", "_relu_threshold", "_row0",
        "_scalar", "_scalar_bits", "_sfpu_costs", "_sfpu_free", "_src_bank_free", "_src_bank_last", "_srca",
        "_srca_reductions", "_srca_tiles", "_srca_zero", "_srca_zero_rows", "_srcb_held", "_tile_costs", "_tilize_row_tiles",
        "_unpack_overhead", "_unpack_rate", "_unpack_stalls", "_unpack_tilize_cycles",
        "_unpack_two_operand_rate", "math_fidelity", "numerics")
    """The compute state in slots, :class:`KernelContext`'s (25 attributes) in the instance dict:
    an instance dict of more than 30 attributes is a plain dict, on which CPython 3.11 specializes
    no method lookup, and a kernel calls a method of this class some 40 times per pool output
    stick. Kept within the 30, the dict keeps its shared keys and ``ctx.call()`` its fast path."""

    def __init__(self, device: Device, core: TensixCore, kernel_name: str,
                 compile_args: Mapping[str, Any], runtime_args: Mapping[str, Any],
                 math_fidelity: str = "HiFi4", fp32_dest_acc: bool = False, numerics: bool = True) -> None:
        super().__init__(device, core, kernel_name, Risc.TRISC0, compile_args, runtime_args)
        self._relu_mode = ReluType.NO_RELU
        self._relu_threshold = 0.0
        self._sfpu_free = 0.0
        self._srcb_held = None
        self.numerics = numerics
        """False in ``timing_only`` runs: every call charges its cycles and checks its arguments
        as usual, but no tile value is read, computed or written (DST and the CB bytes the
        compute kernel would write stay as they are). No cost depends on a value."""
        self._bf16 = bfloat16_dtype() if numerics else None
        """bfloat16 as a numpy dtype (casting float32 to it rounds to nearest even); imported
        only when numerics run."""
        c = self.spec.compute
        self._c = c
        self.math_fidelity = math_fidelity
        self._phases = FIDELITY_PHASES[math_fidelity]
        self._dst_bf16 = not fp32_dest_acc
        """DST holds bfloat16 (every write rounds to it) unless fp32 accumulation is on."""
        self._dst_limit = c.dst_tiles_per_half.value // (2 if fp32_dest_acc else 1)
        self._dst = np.zeros((DST_TILES, TILE_ELEMENTS), dtype=np.float32)
        """DST values, without the pending element-wise ops (:attr:`dst` applies them first)."""
        self._faces = self._dst.reshape(DST_TILES, 2, 2, FACE_H, FACE_W)
        self._row0 = self._faces[:, 0, :, 0, :]
        self._pending: list[tuple] = []
        """Element-wise tile ops called but not yet computed, in call order (see :meth:`_flush`)."""
        self._dst_stored = False
        """Whether DST's storage may have been written since the last ``tile_regs_release``: set
        wherever it is written or handed out (:attr:`dst`, :attr:`_dst_faces`, :attr:`_dst_row0`,
        :meth:`_flush`, which alone calls the ops' writers :meth:`_compute` and :meth:`_matmul_run`
        into DST itself; nothing else writes :attr:`_dst`). A release with it unset has nothing
        to zero (a pool channel block's ops are all pending, computed on a copy of the rows
        packed, and dropped)."""
        self._dst_written: set[int] = set()
        self._l1 = core.l1.data
        self._l1_bytes = memoryview(self._l1)
        """L1 as a memoryview: a byte read without creating a numpy scalar."""
        self._decoded = DecodedTiles(DECODED_TILES_KEPT)
        self._broadcasts = KeptByBytes(BROADCASTS_KEPT)
        """Per run of broadcast CB tiles (their addresses and formats, the columns' id): their rows
        broadcast (see :meth:`_broadcast_rows`)."""
        self._in0_runs = KeptByContent(IN0_RUNS_KEPT, 1)
        """Per (role, format, where a matmul run's tiles are): the tiles' operand blocks."""
        self._in1_runs = KeptByContent(IN1_RUNS_KEPT, RUN_VERSIONS_KEPT)
        """As :attr:`_in0_runs`, for the in1 operands."""
        self._matmul_costs: dict[tuple, tuple[float, float]] = {}
        """Per (in0 CB, in1 CB, rt_dim, ct_dim): a matmul_block step's unpack and math cycles."""
        self._tile_costs: dict[tuple, tuple[float, ...]] = {}
        """Per (call, CBs, variant) of a per-tile call (``mul_tiles``, ``binary_dest_reuse_tiles``):
        the cycles it charges its threads, in thread order (unpack, math), computed once by the
        call's formula."""
        self._reduce_costs: dict[int, float] = {}
        """As :attr:`_tile_costs` for ``reduce_tile_math``'s math, per num_faces (a key without a
        tuple to build and hash: five calls per pool output stick)."""
        self._pack_costs: dict[CircularBuffer, float] = {}
        """As :attr:`_tile_costs` for a ``pack_tile``, per CB."""
        self._srca = np.zeros((32, c.dst_tiles_per_half.value * 32), dtype=np.float32)
        """srcA as the tilizing unpacker fills it: 32 rows, tile t in columns [32t, 32t + 32)."""
        self._scalar = np.float32(1.0)
        self._scalar_bits: int | None = None
        """The bfloat16 bits ``_scalar`` was read from (None: read otherwise), so a tilize whose
        scalar has the same bits keeps it (two byte reads instead of a decode)."""
        self._srca_zero = (0, self._srca.shape[1])
        """(r, w): srcA rows r.. of columns ..w are zero (the last tilize's rows past its valid
        ones; at first all of srcA), for the reduces (:meth:`_srca_window`)."""
        self._srca_zero_rows = [0] * c.dst_tiles_per_half.value
        """Per srcA tile: its rows from this one on are zero (at first all), so a tilize zeroes the
        rows past its valid ones only in tiles where some are not (a pool stick's narrower last
        channel block leaves the wider first block's zero rows as they are)."""
        self._srca_reductions: dict[str, np.ndarray] = {}
        """Every srcA tile column-reduced: per pool type ("sum", "max") the accumulations into DST,
        and ("from_zero") the sum's result on a zero DST row; cleared when srcA changes."""
        self._acc_to_dest = False
        """Set by ``add_tiles_init(..., acc_to_dest=True)``: ELWADD adds to DST, not assigns."""
        self._tilize_row_tiles = 1
        """Row width of the tilize-on-unpack source in tiles (``unpack_tilizeA_B_init``'s block)."""
        self._front_region: dict[int, tuple[int, int]] = {}
        """Per CB, the L1 range [start, end) of the pages the last ``cb_wait_front`` waited for."""
        start = self._t
        self._math_t = start
        self._pack_t = start
        self._commit_t = start
        self._released = start
        self._released_last = start
        """When pack released the DST half used two acquires ago (the half the next acquire takes)
        and the one of the last release: half-sync DST double buffering."""
        self._dst_math = False
        """True between tile_regs_acquire and tile_regs_commit: math owns a DST half."""
        self._dst_committed = 0
        """DST halves math committed that pack has not yet taken with tile_regs_wait."""
        self._dst_pack = False
        """True between tile_regs_wait and tile_regs_release: pack owns a DST half."""
        self._src_bank_free = start
        self._src_bank_last = start
        """When math finished with the source bank the next unpack fills (the one used two tile
        ops ago) and with the other one (the last op's): two source-register banks. Two
        attributes rather than a two-slot deque: a plain load and store per tile op."""
        self._pack_position: dict[int, int] = {}
        self._busy_math = 0.0
        """Busy cycles of math; unpack's and pack's are :attr:`_busy_consumer` and
        :attr:`_busy_producer` (unpack consumes the CBs and pack produces them, see
        :class:`KernelContext`), to which the CB calls add their overhead."""
        self._unpack_stalls = self.stalls[Risc.TRISC0]
        self._math_stalls = self.stalls[Risc.TRISC1]
        self._pack_stalls = self.stalls[Risc.TRISC2]
        """The stall tables of unpack, math and pack (``stalls``), for the per-tile waits."""
        self._last_busy: dict[Risc, list] = {}
        self._producer_risc = Risc.TRISC2
        self._consumer_risc = Risc.TRISC0
        self._init_costs = c.init_cycles.value
        costs = self._init_costs
        self._init_unpack, self._init_math, self._init_pack = costs["unpack"], costs["math"], costs["pack"]
        """The reconfiguration cost of each thread (``_init``'s hot path reads them)."""
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
        self._unpack_tilize_cycles = c.unpack_tilize_tile_cycles.value
        self._pack_untilize_cycles = c.pack_untilize_tile_cycles.value
        self._srca_tiles = c.dst_tiles_per_half.value
        """Tiles srcA holds side by side (``unpack_tilizeA_B_block``'s widest block)."""

    def riscs(self) -> tuple[Risc, ...]:
        return (Risc.TRISC0, Risc.TRISC1, Risc.TRISC2)

    # -- DST values and the pending element-wise ops -----------------------------------------------
    @property
    def dst(self) -> np.ndarray:
        """DST values [16, 1024] (storage order), every op called so far applied."""
        if self._pending:
            self._flush()
        self._dst_stored = True
        return self._dst

    @property
    def _dst_faces(self) -> np.ndarray:
        """View of :attr:`dst` as [tile, face row, face column, row in face, column in face]."""
        if self._pending:
            self._flush()
        self._dst_stored = True
        return self._faces

    @property
    def _dst_row0(self) -> np.ndarray:
        """View of row 0 of every DST tile, [tile, face column, column in face]."""
        if self._pending:
            self._flush()
        self._dst_stored = True
        return self._row0

    def _defer(self, op: tuple, idst: int, *tiles: tuple[int, CircularBuffer]) -> None:
        """Queue element-wise op ``op`` on DST[idst] with the CB tiles at ``tiles`` ((address,
        CB) pairs, read when the op is computed) and mark DST[idst] written.

        The values are computed by :meth:`_flush`, several tiles per numpy call, before anything
        reads DST (:attr:`dst`) and before this kernel yields, pops, pushes or writes L1, so the
        tiles' bytes are still those of the call: the same values as computing at once."""
        self._pending.append((op, idst, tiles))
        self._dst_written.add(idst)

    def _flush(self) -> None:
        """Compute the pending ops into DST (see :meth:`_evaluate`)."""
        pending, self._pending = self._pending, []
        self._dst_stored = True
        self._evaluate(pending, self._dst, None)

    def _evaluate(self, pending: list[tuple], dst: np.ndarray, columns: np.ndarray | None) -> None:
        """Compute the ops ``pending`` in call order into ``dst``: DST itself (``columns`` None),
        or a copy of the elements ``columns`` (storage-order positions, row 0's 32 first) of DST
        tiles 0 .. n - 1, [n, len(columns)] (every tile the ops touch), when every op is
        element-wise (no matmul step). Each run of consecutive equal element-wise ops on distinct DST tiles is computed at once (a tile's
        values are those of computing it alone), each run of ``matmul_block`` steps into the same
        DST tiles too (:meth:`_matmul_run`).

        A run's DST tiles are a slice when they are consecutive (the kernels' loops over DST tiles),
        found while the run is scanned; the set of tiles seen is built only for a run that goes on
        past them."""
        start, count = 0, len(pending)
        while start < count:
            entry = pending[start]
            op = entry[0]
            end = start + 1
            if op[0] == "matmul":  # a run of steps into the same DST tiles
                while end < count and pending[end][0] == op:
                    end += 1
                self._matmul_run(op, pending[start:end])
                start = end
                continue
            first = last = entry[1]
            while end < count and pending[end][1] == last + 1 and pending[end][0] == op:
                last += 1
                end += 1
            rows: slice | list[int] = slice(first, last + 1)
            if end < count and pending[end][0] == op:  # the run may go on with other tiles
                seen = set(range(first, last + 1))
                while end < count and pending[end][0] == op and pending[end][1] not in seen:
                    seen.add(pending[end][1])
                    end += 1
                if end - start > last + 1 - first:
                    rows = [e[1] for e in pending[start:end]]
            self._compute(op, pending[start:end], rows, dst, columns)
            start = end

    def _tile_values(self, tiles: list[tuple[int, CircularBuffer]],
                     columns: np.ndarray | None = None) -> np.ndarray:
        """Float32 values [n, 1024] of the CB tiles at (address, CB) ``tiles``; with ``columns``
        (storage-order positions) only those elements of each tile, [n, len(columns)]."""
        raw = _consecutive_tiles(self._l1, tiles)
        if raw is not None:
            first, cb = tiles[0]
            n = len(tiles)
            if cb.is_bf16:
                values = raw.view(self._bf16).reshape(n, TILE_ELEMENTS)
                if columns is not None:  # the elements, then their cast: the same values
                    values = values.take(columns, axis=1)
                return values.astype(np.float32)
            return self._decoded.values(first, raw.reshape(n, cb.tile_bytes), cb.data_format, columns)
        values = np.concatenate([self._read_at(a, c)[None] for a, c in tiles])
        return values if columns is None else values.take(columns, axis=1)

    def _read_at(self, address: int, cb: CircularBuffer) -> np.ndarray:
        """Float32 values (storage order) of the tile of ``cb`` at ``address``; read-only."""
        raw = self._l1[address : address + cb.tile_bytes]
        if cb.is_bf16:
            return raw.view(self._bf16).astype(np.float32)
        return self._decoded.values(address, raw, cb.data_format)

    def _broadcast_rows(self, tiles: list[tuple[int, CircularBuffer]], columns: np.ndarray | None) -> np.ndarray:
        """Row 0 of each CB tile at (address, CB) ``tiles`` broadcast over all 32 rows, float32
        [n, 1024] in storage order (with ``columns``: those elements, [n, len(columns)]); read-only.

        The conv's bias add broadcasts the same bias tiles for every subblock of every block, so
        the broadcast of a run of tiles is kept while their L1 bytes are unchanged (compared on
        every lookup, as :class:`DecodedTiles` does): a hit costs a byte comparison instead of a
        decode and a broadcast per tile. The values are the tiles' own (moved, not computed)."""
        l1 = self._l1
        current = b"".join(l1[a : a + cb.tile_bytes].tobytes() for a, cb in tiles)
        key = (tuple((a, cb.data_format) for a, cb in tiles), None if columns is None else id(columns))
        values = self._broadcasts.get(key, current, columns)
        if values is not None:
            return values
        values = np.stack([row_broadcast(self._read_at(a, cb), 0) for a, cb in tiles])
        if columns is not None:
            values = values.take(columns, axis=1)
        values.flags.writeable = False
        return self._broadcasts.put(key, current, values, columns)

    def _pending_elementwise_top(self, start: int, end: int) -> int:
        """The DST tiles the pending ops write (1 + the highest index) when every one is
        element-wise and none reads a CB tile that overlaps the L1 range [start, end) (so writing
        it leaves their operands as they were called); else 0. One pass over the ops: those that
        read no CB tile (a reduce's row, an SFPU op; a matmul step always reads two) only count."""
        top = 0
        for op, idst, tiles in self._pending:
            if idst >= top:
                top = idst + 1
            if tiles:
                if op[0] == "matmul":
                    return 0
                for address, cb in tiles:
                    if address < end and start < address + cb.tile_bytes:
                        return 0
        return top

    def _compute(self, op: tuple, entries: list[tuple], rows: slice | list[int], dst: np.ndarray,
                 columns: np.ndarray | None) -> None:
        """dst[i] = ``op`` for every (op, i, tiles) of ``entries`` (distinct i, ``rows`` in order:
        a slice when consecutive), rounded to the DST format; ``dst`` and ``columns`` as
        :meth:`_evaluate`'s (the CB tiles' values are restricted to ``columns`` too)."""
        kind = op[0]
        if kind == "row0":  # row 0 = the tile's column sums (reduce_tile_math on a zero row), as is
            sums = op[2][rows]
            if columns is None:
                self._row0[rows] = sums
            else:  # columns begin with row 0's (see _evaluate)
                dst[rows, :TILE_W] = sums.reshape(-1, TILE_W)
            return
        if kind == "sfpu":
            fast = FLOAT32_ACTIVATIONS.get(op[1])
            if fast is not None:
                result = fast(dst[rows])
            else:
                func = ACTIVATIONS["none" if op[1] == "identity" else op[1]]
                result = func(dst[rows]).astype(np.float32, copy=False)
            if self._dst_bf16 and op[1] in BFLOAT16_CLOSED_ACTIVATIONS:  # DST holds bfloat16 values
                dst[rows] = result
                return
        else:
            if kind == "copy" and columns is None and entries[0][2][0][1].is_bf16:
                raw = _consecutive_tiles(self._l1, [e[2][0] for e in entries])
                bf16 = None if raw is None else raw.view(self._bf16).reshape(len(entries), TILE_ELEMENTS)
                if bf16 is not None and (not self._dst_bf16 or _bf16_finite(bf16)):
                    # bfloat16 values, widened as they are stored; rounding them to a bfloat16 DST
                    # leaves every one but a NaN as it is (none here: an inf or NaN takes the cast)
                    dst[rows] = bf16
                    return
            a = self._tile_values([e[2][0] for e in entries], columns)
            if kind == "copy":
                if all(e[2][0][1].data_format in BFLOAT16_VALUED_FORMATS for e in entries):
                    dst[rows] = a  # bfloat16 values already: rounding them leaves their bits as they are
                    return
                result = a
            elif kind == "add_bcast_rows":  # A + row 0 of B broadcast over the rows
                result = a + self._broadcast_rows([e[2][1] for e in entries], columns)
            elif kind == "add_dest":  # DST + the CB tile
                result = dst[rows] + a
            elif kind == "mul_dest":  # DST (srcA) * the CB tile (srcB)
                result = elwmul(None, dst[rows], a, self._phases, self._dst_bf16, round_last=False,
                                srcb_parts=self._decoded.srcb_parts(a, self._phases))
            else:  # "mul": DST (zero unless written before) += A * B
                b = self._tile_values([e[2][1] for e in entries], columns)
                acc = dst[rows] if op[1] else None
                result = elwmul(acc, a, b, self._phases, self._dst_bf16, round_last=False,
                                srcb_parts=self._decoded.srcb_parts(b, self._phases))
        dst[rows] = result.astype(self._bf16) if self._dst_bf16 else result

    @property
    def busy_cycles(self) -> dict[Risc, float]:
        """Cycles each compute thread spent working (not waiting)."""
        return {Risc.TRISC0: self._busy_consumer, Risc.TRISC1: self._busy_math,
                Risc.TRISC2: self._busy_producer}

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
        free = self._src_bank_free
        if self.trace is not None:
            if free > self._t:
                self._stall(Risc.TRISC0, "unpack_wait_math", self._t, free)
                self._t = free
            self._trace_busy(Risc.TRISC0, self._t, cycles)
        elif free > self._t:  # _stall, inline (the hot path: up to once per tile)
            self._unpack_stalls["unpack_wait_math"] += free - self._t
            self._t = free
        t = self._t = self._t + cycles
        if t > self.deadline:
            self._check_deadline(t)
        self._busy_consumer += cycles
        return t

    def _math(self, ready: float, cycles: float) -> None:
        """Charge math on operands unpacked at ``ready``; their source bank frees at its end."""
        math_t = self._math_t
        if self.trace is not None:
            if ready > math_t:
                self._stall(Risc.TRISC1, "math_wait_unpack", math_t, ready)
                math_t = ready
            self._trace_busy(Risc.TRISC1, math_t, cycles)
        elif ready > math_t:  # _stall, inline (the hot path: once per tile)
            self._math_stalls["math_wait_unpack"] += ready - math_t
            math_t = ready
        math_t += cycles
        self._math_t = math_t
        self._busy_math += cycles
        self._src_bank_free, self._src_bank_last = self._src_bank_last, math_t

    def _unpack_math(self, unpack: float, math: float) -> None:
        """``_math(_unpack(unpack), math)`` in one call: unpack a tile op's operands, then its
        math on them (the per-tile hot path: both helpers' sums inline, in their order)."""
        if self.trace is not None:
            self._math(self._unpack(unpack), math)
            return
        t = self._t
        free = self._src_bank_free
        if free > t:
            self._unpack_stalls["unpack_wait_math"] += free - t
            t = free
        t += unpack
        self._t = t
        if t > self.deadline:
            self._check_deadline(t)
        self._busy_consumer += unpack
        math_t = self._math_t
        if t > math_t:
            self._math_stalls["math_wait_unpack"] += t - math_t
            math_t = t
        math_t += math
        self._math_t = math_t
        self._busy_math += math
        self._src_bank_free, self._src_bank_last = self._src_bank_last, math_t

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
        self._busy_producer += cycles

    def _init(self, unpack: bool = False, math: bool = False, pack: bool = False) -> None:
        """Charge a reconfiguration to the threads it touches."""
        if self.trace is None:  # hot path (several inits per output stick): the same sums inline
            if unpack:
                self._t += self._init_unpack
                self._busy_consumer += self._init_unpack
            if math:
                self._math_t += self._init_math
                self._busy_math += self._init_math
            if pack:
                self._pack_t += self._init_pack
                self._busy_producer += self._init_pack
            return
        if unpack:
            if self.trace is not None:
                self._trace_busy(Risc.TRISC0, self._t, self._init_costs["unpack"])
            self._t += self._init_costs["unpack"]
            self._busy_consumer += self._init_costs["unpack"]
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
        return self._read_at(cb.front_page_address(index), cb)

    def _first_value(self, cb: CircularBuffer) -> float:
        """Value 0 (storage order) of the front tile of ``cb``, decoding only that value."""
        if cb.is_bf16:
            address = cb.front_page_address(0)
            return float(self._l1[address : address + 2].view(self._bf16)[0])
        return float(self._read_tile(cb, 0)[0])

    def _write_values(self, address: int, values: np.ndarray, cb: CircularBuffer,
                      encode: Callable[[np.ndarray, DataFormat], np.ndarray]) -> None:
        """Store ``values`` (flattened in C order) at ``address`` in ``cb``'s format.

        bfloat16 is cast straight into L1 (the same round-to-nearest-even cast as ``encode``);
        other formats go through ``encode`` (:func:`pack_tile` or :func:`encode_row_major`).
        """
        if self._pending:  # L1 changes: the pending ops read the bytes of their call
            self._flush()
        if cb.is_bf16:
            target = self._l1[address : address + 2 * values.size].view(self._bf16)
            if values.ndim != 1:  # one tile's values (pack_tile, the hot path) need no reshape
                target = target.reshape(values.shape)
            target[...] = values
        else:
            data = encode(values, cb.data_format)
            self._l1[address : address + data.size] = data

    def _dst_index_error(self, index: int) -> ConfigurationError:
        """The error for a DST index outside the half a kernel may use."""
        return ConfigurationError(
            f"{self.where}: DST index {index} outside the {self._dst_limit} tiles of a half")

    def _set_dst(self, index: int, values: np.ndarray | None, count: int = 1) -> None:
        """DST[index : index + count] = values ([count, 1024], or [1024] for one tile), rounded
        to the DST format; ``values`` is None when numerics are off (only the checks run)."""
        if not self._dst_math:
            raise self._dst_outside_error()
        last = index + count - 1
        if index < 0 or last >= self._dst_limit:
            raise self._dst_index_error(index if index < 0 else last)
        if values is None:
            return
        if count == 1:
            self.dst[index] = values.astype(self._bf16) if self._dst_bf16 else values
            self._dst_written.add(index)
            return
        self.dst[index : last + 1] = values.astype(self._bf16) if self._dst_bf16 else values
        self._dst_written.update(range(index, last + 1))

    # -- circular buffers ------------------------------------------------------------------------
    def cb_wait_front(self, cb_id: int, n: int) -> KernelGen:
        """UNPACK: wait for ``n`` pages at the front of ``cb_id`` (run with ``yield from``).

        The pages' L1 region is recorded now: only this kernel's pops move the read pointer, so
        it is where the pages will be when the wait returns."""
        if self._pending:  # other kernels run while this one waits
            self._flush()
        if self._unrun is not None:  # a previous blocking call never ran
            raise self._unrun_error(self._describe_call("cb_wait_front", cb_id, n))
        self._unrun = ("cb_wait_front", cb_id, n)
        if self.numerics:  # only the numerics of unpack_tilizeA_B_block read it
            cb = self.cb(cb_id)
            self._front_region[cb_id] = (cb.fifo_rd_ptr, cb.fifo_rd_ptr + n * cb.page_size)
        return self._wait_front(cb_id, n)

    def cb_pop_front(self, cb_id: int, n: int) -> None:
        """UNPACK: free ``n`` pages: :meth:`KernelContext.cb_pop_front` (its code, in its order)
        after the pending ops are computed, in one frame (twice per pool output stick)."""
        if self._pending:  # the producer may overwrite them
            self._flush()
        try:
            cb = self._cbs[cb_id]
        except KeyError:
            raise self._no_cb_error(cb_id) from None
        if n <= 0 or n > cb.num_pages:
            cb.check_request(n, "cb_pop_front", self.kernel_name)
        if self._unrun is not None:
            raise self._unrun_error(f"cb_pop_front({cb.describe()}, {n})")
        if n > cb.waited:
            raise self._unwaited_pop_error(cb, cb_id, n)
        cb.waited -= n
        if n > cb._visible_pushed - cb._popped_by_consumer and n > cb.available_pages():
            raise cb.overpop_error(n)
        cb._popped_by_consumer += n
        rd_ptr = cb.fifo_rd_ptr + n * cb.page_size
        cb.fifo_rd_ptr = rd_ptr if rd_ptr < cb.limit else rd_ptr - cb.total_size
        t = self._t + self._cb_update
        self._busy_consumer += self._cb_update
        if t > self.deadline:
            self._check_deadline(t)
        env = self.env
        now = env._now
        if t <= now:
            cb.publish_pop(n)
        elif cb._back_waiters or cb.trace is not None:
            scheduled_timeout(env, t - now, n, [cb.pop_callback])
        else:
            heappush(cb._unscheduled_pops, (now + (t - now), NORMAL, next(env._eid), n, t - now))
        self._t = t

    def cb_reserve_back(self, cb_id: int, n: int) -> KernelGen:
        """PACK: wait for ``n`` free pages at the back of ``cb_id`` (run with ``yield from``)."""
        if self._pending:  # other kernels run while this one waits
            self._flush()
        if self._unrun is not None:  # a previous blocking call never ran
            raise self._unrun_error(self._describe_call("cb_reserve_back", cb_id, n))
        self._unrun = ("cb_reserve_back", cb_id, n)
        return self._cb_reserve_back(cb_id, n)

    def _cb_reserve_back(self, cb_id: int, n: int) -> KernelGen:
        """The generator ``cb_reserve_back`` returns: pack checks for ``n`` free pages from its
        clock ``_pack_t``; when they are missing the kernel's process (whose SimPy time is
        unpack's clock ``_t``) lets SimPy reach ``_t``, looks again and blocks, all three threads
        with it (a modelling approximation, see docs). Alone on its side of the CB and ahead of
        SimPy, it waits as an early waiter from its sync point ``_t`` on, as
        :meth:`KernelContext._reserve` does (ttsim/cb.py)."""
        self._unrun = None
        try:
            cb = self._cbs[cb_id]
        except KeyError:
            raise self._no_cb_error(cb_id) from None
        if n <= 0 or n > cb.num_pages:
            cb.check_request(n, "cb_reserve_back", self.kernel_name)
        resume = self._pack_t + self._cb_check
        self._busy_producer += self._cb_check
        # free space only grows while the producer waits (free_pages() inline: the hot path; the
        # method applies the unscheduled pops SimPy has passed, ttsim/cb.py, when its head has:
        # that test inline too, as a pack thread ahead of SimPy mostly finds it has not)
        if (cb.num_pages - (cb._pushed_by_producer - cb._visible_popped) >= n
                or cb._unscheduled_pops and cb._unscheduled_pops[0] < self.env.current
                and cb.free_pages() >= n):
            self._pack_t = resume
            return
        # _sync_to(self._t) and _block, inline as in KernelContext._reserve (one generator level
        # less; an early waiter when nobody else waits)
        t = self._t
        if t > self.deadline:
            self._check_deadline(t)
        env = self.env
        now = env._now
        waiters = cb._back_waiters
        woken = False
        if t > now:
            if waiters or cb._unscheduled_pops:
                # others wait for space (sync to t, then queue behind them), or pops are made and
                # not yet published: the look at t likely finds the pages they free, and an early
                # waiter would only be sent there (by those pops, scheduled for it)
                yield scheduled_timeout(env, t - now)
            else:  # wait as an early waiter from the sync point on (ttsim/cb.py): no timeout
                event = waiter_event(env)  # (no pops are pending: none to schedule for it)
                start = now + (t - now)  # the sync point: SimPy's clock when that timeout fires
                waiters.append((n, event, start, next(env._eid)))
                self.blocked_on = functools.partial(cb.reserve_detail, n)
                woken = (yield event) is not SYNC_POINT  # else: at the sync point, looking
                self.blocked_on = None
        if not woken:
            free = cb.num_pages - (cb._pushed_by_producer - cb._visible_popped)
            pops = cb._unscheduled_pops
            if free < n and pops and pops[0] < env.current:  # free_pages(), inline: the look
                cb.apply_unscheduled()  # at the sync point (9,016 on op79 classic) finds them passed
                free = cb.num_pages - (cb._pushed_by_producer - cb._visible_popped)
            if free >= n:
                self._pack_t = resume
                return
            start = env._now  # env.now without the property call (once per blocked reserve)
            self.blocked_on = functools.partial(cb.reserve_detail, n)
            event = waiter_event(env)  # cb.reserve_event(n) without env.event()'s frames
            if cb._unscheduled_pops:  # (none passed: applied above) a producer waits for them
                cb.schedule_unscheduled(False)
            enqueue(env, waiters, n, event)
            yield event
            self.blocked_on = None
        now = env._now
        cb.stats.producer.blocked_cycles += now - start
        reason = cb.reserve_back_stall
        self._stall(Risc.TRISC0, reason, self._t, now)
        self._t = max(self._t, float(now))
        if now > resume:
            self._stall(Risc.TRISC2, reason, resume, now)
            resume = now + self._cb_poll
            self._busy_producer += self._cb_poll
        self._pack_t = resume

    def cb_push_back(self, cb_id: int, n: int) -> None:
        """PACK: publish ``n`` pages: :meth:`KernelContext.cb_push_back` (its code, in its order)
        on the pack thread's clock ``_pack_t``, in one frame (twice per pool output stick)."""
        if self._pending:
            self._flush()
        try:
            cb = self._cbs[cb_id]
        except KeyError:
            raise self._no_cb_error(cb_id) from None
        if n <= 0 or n > cb.num_pages:
            cb.check_request(n, "cb_push_back", self.kernel_name)
        if self._unrun is not None:
            raise self._unrun_error(f"cb_push_back({cb.describe()}, {n})")
        if n > cb.num_pages - (cb._pushed_by_producer - cb._visible_popped) and n > cb.free_pages():
            raise self._overpush_error(cb, cb_id, n)
        cb._pushed_by_producer += n
        wr_ptr = cb.fifo_wr_ptr + n * cb.page_size
        cb.fifo_wr_ptr = wr_ptr if wr_ptr < cb.limit else wr_ptr - cb.total_size
        t = self._pack_t + self._cb_update
        self._busy_producer += self._cb_update
        if t > self.deadline:
            self._check_deadline(t)
        env = self.env
        now = env._now
        if t <= now:
            cb.publish_push(n)
        elif cb._front_waiters or cb.trace is not None:
            scheduled_timeout(env, t - now, n, [cb.push_callback])
        else:
            heappush(cb._unscheduled_pushes, (now + (t - now), NORMAL, next(env._eid), n, t - now))
        self._pack_t = t
        self._pack_position[cb_id] = 0

    # -- DST handshakes --------------------------------------------------------------------------
    # Each call checks the handshake state as the hardware semaphores enforce it: out of order,
    # math and pack would share a DST half (corrupt results) or pack would wait forever.
    def _thread(self, risc: Risc) -> str:
        return f"kernel '{self.kernel_name}' on core {self.core.name} {risc.value}"

    def _dst_outside_error(self) -> KernelAPIError:
        """The error for a math op writing DST outside acquire/commit. Error path only, so it may
        walk the stack: the op named is the outermost call of this context the kernel made."""
        frame, call = sys._getframe(1), "a math op"
        while frame is not None and frame.f_locals.get("self") is self:
            if not frame.f_code.co_name.startswith("_"):
                call = frame.f_code.co_name
            frame = frame.f_back
        return KernelAPIError(
            f"{self._thread(Risc.TRISC1)}: {call} writes DST outside "
            "tile_regs_acquire()/tile_regs_commit(): call ctx.tile_regs_acquire() before the math ops "
            "(on hardware math would write a DST half the packer owns)")

    def _pack_outside_error(self, call: str, ocb: int) -> KernelAPIError:
        """The error for pack op ``call`` into ``ocb`` reading DST outside wait/release."""
        return KernelAPIError(
            f"{self._thread(Risc.TRISC2)}: {call} into {self.cb(ocb).describe()} reads DST outside "
            "tile_regs_wait()/tile_regs_release(): call ctx.tile_regs_wait() after tile_regs_commit() "
            "and before packing (on hardware pack would read a DST half math is still writing)")

    def tile_regs_acquire(self) -> None:
        """MATH: take a DST half (waits for pack to release it)."""
        self._dst_math = True
        released = self._released
        if released > self._math_t:
            self._stall(Risc.TRISC1, "math_wait_pack", self._math_t, released)
            self._math_t = released
        if self.trace is None:  # _math_dst, inline (every DST acquire)
            cycles = self._handshake
            self._math_t += cycles
            self._busy_math += cycles
        else:
            self._math_dst(self._handshake)

    def tile_regs_commit(self) -> None:
        """MATH: hand the DST half to pack."""
        if not self._dst_math:
            raise KernelAPIError(
                f"{self._thread(Risc.TRISC1)}: tile_regs_commit() without tile_regs_acquire(): "
                "call ctx.tile_regs_acquire() before the math ops")
        self._dst_math = False
        self._dst_committed += 1
        if self.trace is None:  # _math_dst, inline (every DST commit)
            cycles = self._handshake
            self._math_t += cycles
            self._busy_math += cycles
        else:
            self._math_dst(self._handshake)
        self._commit_t = self._math_t

    def tile_regs_wait(self) -> None:
        """PACK: wait for math to commit."""
        if not self._dst_committed:
            raise KernelAPIError(
                f"{self._thread(Risc.TRISC2)}: tile_regs_wait() with no DST half committed: call "
                "ctx.tile_regs_commit() after the math ops (on hardware pack would wait forever)")
        self._dst_committed -= 1
        self._dst_pack = True
        commit_t = self._commit_t
        if commit_t > self._pack_t:
            if self.trace is None:  # _stall, inline (every DST wait on math)
                self._pack_stalls["pack_wait_math"] += commit_t - self._pack_t
            else:
                self._stall(Risc.TRISC2, "pack_wait_math", self._pack_t, commit_t)
            self._pack_t = commit_t
        if self.trace is None:  # _pack, inline (every DST wait)
            cycles = self._handshake
            self._pack_t += cycles
            self._busy_producer += cycles
        else:
            self._pack(self._handshake)

    def tile_regs_release(self) -> None:
        """PACK: give the DST half back to math (the packer zeroes the half it releases)."""
        if not self._dst_pack:
            missing = "tile_regs_wait()" if self._dst_committed else "tile_regs_commit()"
            raise KernelAPIError(
                f"{self._thread(Risc.TRISC2)}: tile_regs_release() without {missing}: on hardware "
                "pack would free a DST half math never handed over; the order is tile_regs_acquire(), "
                "math, tile_regs_commit(), tile_regs_wait(), pack, tile_regs_release()")
        self._dst_pack = False
        if self.trace is None:  # _pack, inline (every DST release)
            cycles = self._handshake
            self._pack_t += cycles
            self._busy_producer += cycles
        else:
            self._pack(self._handshake)
        if self.numerics:
            self._pending.clear()  # their results would be zeroed now
            written = self._dst_written
            if written:  # every DST write marks its tile: the others are zero already
                if self._dst_stored:  # else DST's storage is as the last release left it: zero
                    self._dst[min(written) : max(written) + 1] = 0.0
                written.clear()
            self._dst_stored = False
        self._released, self._released_last = self._released_last, self._pack_t

    # -- inits and reconfiguration ---------------------------------------------------------------
    # Signatures follow tenstorrent/tt-metal tt_metal/include/compute_kernel_api/*.h (named per
    # call); each init charges the preset's reconfiguration cost to the threads it touches.
    def compute_kernel_hw_startup(self, icb0: int, icb1: int, ocb: int) -> None:
        """``compute_kernel_hw_startup`` (compute_kernel_api/compute_kernel_hw_startup.h)."""
        self._init(unpack=True, math=True, pack=True)

    def binary_op_init_common(self, icb0: int, icb1: int, ocb: int) -> None:
        """``binary_op_init_common`` (compute_kernel_api/eltwise_binary.h)."""
        self._init(unpack=True, math=True, pack=True)

    def mul_tiles_init(self, icb0: int, icb1: int) -> None:
        """``mul_tiles_init(icb0, icb1)`` (compute_kernel_api/eltwise_binary.h)."""
        self._acc_to_dest = False
        if self.trace is None:  # _init(unpack=True, math=True), inline: once per pool stick batch
            cycles = self._init_unpack
            self._t += cycles
            self._busy_consumer += cycles
            cycles = self._init_math
            self._math_t += cycles
            self._busy_math += cycles
        else:
            self._init(unpack=True, math=True)

    def add_tiles_init(self, icb0: int, icb1: int, acc_to_dest: bool = False) -> None:
        """``add_tiles_init(icb0, icb1, acc_to_dest)`` (compute_kernel_api/eltwise_binary.h):
        with ``acc_to_dest`` the following ``add_tiles`` compute DST = A + B + DST."""
        self._acc_to_dest = bool(acc_to_dest)
        self._init(unpack=True, math=True)

    def add_bcast_rows_init_short(self, icb0: int, icb1: int) -> None:
        """``add_bcast_rows_init_short(icb0, icb1)`` (compute_kernel_api/bcast.h)."""
        self._init(unpack=True, math=True)

    def binary_dest_reuse_tiles_init(self, icb0: int) -> None:
        """``binary_dest_reuse_tiles_init(icb0)`` (compute_kernel_api/eltwise_binary.h)."""
        if self.trace is None:  # _init(unpack=True, math=True), inline: per pool channel block
            cycles = self._init_unpack
            self._t += cycles
            self._busy_consumer += cycles
            cycles = self._init_math
            self._math_t += cycles
            self._busy_math += cycles
        else:
            self._init(unpack=True, math=True)

    def copy_tile_init(self, cbid: int) -> None:
        """``copy_tile_init(cbid)`` (compute_kernel_api/tile_move_copy.h)."""
        self._init(unpack=True, math=True)

    def reduce_init(self, icb: int, icb_scaler: int, ocb: int) -> None:
        """``reduce_init(icb, icb_scaler, ocb)`` (compute_kernel_api/reduce.h)."""
        if self.trace is None:  # _init(unpack=True, math=True, pack=True), inline: once per pool stick batch
            cycles = self._init_unpack
            self._t += cycles
            self._busy_consumer += cycles
            cycles = self._init_math
            self._math_t += cycles
            self._busy_math += cycles
            cycles = self._init_pack
            self._pack_t += cycles
            self._busy_producer += cycles
        else:
            self._init(unpack=True, math=True, pack=True)

    def reduce_uninit(self) -> None:
        """``reduce_uninit()`` (compute_kernel_api/reduce.h)."""
        if self.trace is None:  # _init(unpack=True), inline: once per pool stick
            cycles = self._init_unpack
            self._t += cycles
            self._busy_consumer += cycles
        else:
            self._init(unpack=True)

    def unpack_tilizeA_B_init(self, icb0: int, icb1: int, block: int, num_faces: int = 4,
                              face_r_dim: int = 16) -> None:
        """Configure tilize-on-unpack of ``icb0`` into srcA (and ``icb1``'s scalar into srcB): the
        source rows are ``block`` tiles (``block * 32`` elements) wide.

        The tt-metal pool kernel calls the LLK form ``llk_unpack_tilizeA_B_init(icb0, icb1, block,
        num_faces, face_r_dim, 1)`` (tt-metal ``compute_pool_2d.cpp``; tt-llk
        ``llk_unpack_tilize.h``), whose block sets the unpacker's row stride.
        """
        if block <= 0:
            raise ConfigurationError(f"{self.where}: unpack_tilizeA_B_init with block {block}")
        self._tilize_row_tiles = block
        if self.trace is None:  # _init(unpack=True), inline: once per pool stick batch
            cycles = self._init_unpack
            self._t += cycles
            self._busy_consumer += cycles
        else:
            self._init(unpack=True)

    def tilize_init(self, icb: int, block: int, ocb: int) -> None:
        """``tilize_init(icb, block, ocb)`` (compute_kernel_api/tilize.h)."""
        self._init(unpack=True, math=True, pack=True)

    def fast_tilize_init(self, icb: int, full_dim: int, ocb: int) -> None:
        """``fast_tilize_init(icb, full_dim, ocb)`` (compute_kernel_api/tilize.h); the preset has
        one reconfiguration cost, so it costs what ``tilize_init`` costs."""
        self._init(unpack=True, math=True, pack=True)

    fast_tilize_init_with_dt = fast_tilize_init
    """``fast_tilize_init_with_dt(icb, full_dim, ocb)``: the data-format reconfiguration is part
    of the same (single) reconfiguration cost."""

    def tilize_uninit(self, icb: int, ocb: int) -> None:
        """``tilize_uninit(icb, ocb)`` (compute_kernel_api/tilize.h)."""
        self._init(unpack=True, pack=True)

    fast_tilize_uninit = tilize_uninit
    """``fast_tilize_uninit(icb, ocb)`` (compute_kernel_api/tilize.h)."""

    def pack_untilize_dest_init(self, ocb: int, face_r_dim: int = 16, num_faces: int = 4) -> None:
        """``pack_untilize_dest_init<block_ct_dim>(ocb, face_r_dim, num_faces)``
        (compute_kernel_api/pack_untilize.h)."""
        if self.trace is None:  # _init(pack=True), inline: once per pool stick batch
            cycles = self._init_pack
            self._pack_t += cycles
            self._busy_producer += cycles
        else:
            self._init(pack=True)

    def pack_untilize_uninit(self, ocb: int) -> None:
        """``pack_untilize_uninit(ocb)`` (compute_kernel_api/pack_untilize.h)."""
        if self.trace is None:  # _init(pack=True), inline: once per pool stick
            cycles = self._init_pack
            self._pack_t += cycles
            self._busy_producer += cycles
        else:
            self._init(pack=True)

    def reconfig_data_format(self, srca_new_operand: int, srcb_new_operand: int) -> None:
        """``reconfig_data_format(srca_new_operand, srcb_new_operand)``
        (compute_kernel_api/reconfig_data_format.h)."""
        if self.trace is None:  # _init(unpack=True), inline: twice per pool stick batch
            cycles = self._init_unpack
            self._t += cycles
            self._busy_consumer += cycles
        else:
            self._init(unpack=True)

    def pack_reconfig_data_format(self, new_cb_id: int) -> None:
        """``pack_reconfig_data_format(new_cb_id)`` (compute_kernel_api/pack.h)."""
        if self.trace is None:  # _init(pack=True), inline: twice per pool stick batch
            cycles = self._init_pack
            self._pack_t += cycles
            self._busy_producer += cycles
        else:
            self._init(pack=True)

    def mm_init(self, in0_cb_id: int, in1_cb_id: int, out_cb_id: int) -> None:
        """``mm_init(in0_cb_id, in1_cb_id, out_cb_id)`` (compute_kernel_api/matmul.h)."""
        self._init(unpack=True, math=True, pack=True)

    def sfpu_init(self, name: str) -> None:
        """``<op>_tile_init`` of an SFPU activation (relu_tile_init, silu_tile_init, ...)."""
        self._sfpu_cost(name)  # raises if the device has no cost for this activation
        if self.trace is None:  # _init(math=True), inline: per pool channel block
            cycles = self._init_math
            self._math_t += cycles
            self._busy_math += cycles
        else:
            self._init(math=True)

    # -- math ------------------------------------------------------------------------------------
    def _dst_tile(self, index: int) -> np.ndarray:
        """DST tile ``index`` (a view), after checking it lies in the half a kernel may use."""
        if not 0 <= index < self._dst_limit:
            raise self._dst_index_error(index)
        return self.dst[index]

    def _unpack_two(self, icb0: int, icb1: int, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Unpack tile ``i0`` of ``icb0`` into srcA and ``i1`` of ``icb1`` into srcB; returns both
        tiles' values and when they are ready for math."""
        cb0, cb1 = self.cb(icb0), self.cb(icb1)
        a = b = None
        if self.numerics:
            a = self._read_tile(cb0, i0)
            b = self._read_tile(cb1, i1)
        ready = self._unpack(self._unpack_cost(cb0.tile_bytes + cb1.tile_bytes, ntiles=2, two_operand=True))
        return a, b, ready

    def mul_tiles(self, icb0: int, icb1: int, itile0: int, itile1: int, idst: int) -> None:
        """``mul_tiles`` (compute_kernel_api/eltwise_binary.h): ELWMUL, DST[idst] += A * B with
        A (``icb0``) in srcA and B (``icb1``) in srcB, at this kernel's math fidelity
        (:func:`ttsim.fpu.elwmul`). DST is zero after ``tile_regs_acquire`` (the packer cleared
        it), so this is A * B unless the kernel already wrote DST[idst]."""
        try:
            cb0, cb1 = self._cbs[icb0], self._cbs[icb1]
        except KeyError:
            raise self._no_cb_error(icb0, icb1) from None
        key = ("mul_tiles", cb0, cb1)
        costs = self._tile_costs.get(key)
        if costs is None:  # hot path (every window page of a pool stick): the costs once per CB pair
            costs = self._tile_costs[key] = (
                self._unpack_cost(cb0.tile_bytes + cb1.tile_bytes, ntiles=2, two_operand=True), self._mul_cycles)
        self._unpack_math(costs[0], costs[1])
        if not self._dst_math:  # _set_dst's checks, inline
            raise self._dst_outside_error()
        if not 0 <= idst < self._dst_limit:
            raise self._dst_index_error(idst)
        if self.numerics:  # DST zero unless written since the packer cleared it
            self._defer(("mul", idst in self._dst_written), idst, (cb0.front_page_address(itile0), cb0),
                        (cb1.front_page_address(itile1), cb1))

    def add_tiles(self, icb0: int, icb1: int, itile0: int, itile1: int, idst: int) -> None:
        """``add_tiles`` (compute_kernel_api/eltwise_binary.h): ELWADD, DST[idst] = A + B, or
        A + B + DST[idst] after ``add_tiles_init(..., acc_to_dest=True)``; one rounding of DST."""
        a, b, ready = self._unpack_two(icb0, icb1, itile0, itile1)
        self._math(ready, self._add_cycles)
        result = None
        if self.numerics:
            result = a + b
            if self._acc_to_dest:
                result = result + self._dst_tile(idst)
        self._set_dst(idst, result)

    def add_tiles_bcast_rows(self, icb0: int, icb1: int, itile0: int, itile1: int, idst: int) -> None:
        """``add_tiles_bcast_rows`` (compute_kernel_api/bcast.h): DST[idst] = A + row 0 of B
        broadcast over all 32 rows (the conv bias add).

        Deferred (see :meth:`_defer`): a subblock's adds are computed together, the partials
        decoded in one go and each run's broadcast bias taken from :meth:`_broadcast_rows`."""
        cb0, cb1 = self.cb(icb0), self.cb(icb1)
        ready = self._unpack(self._unpack_cost(cb0.tile_bytes + cb1.tile_bytes, ntiles=2, two_operand=True))
        self._math(ready, self._add_cycles)
        self._set_dst(idst, None)  # the checks
        if self.numerics:
            self._defer(("add_bcast_rows",), idst, (cb0.front_page_address(itile0), cb0),
                        (cb1.front_page_address(itile1), cb1))

    def binary_dest_reuse_tiles(self, in_cb_id: int, in_tile_index: int, dst_tile_index: int,
                                op: str = "add") -> None:
        """``binary_dest_reuse_tiles<op, DEST_TO_SRCA>(in_cb_id, in_tile_index, dst_tile_index)``
        (compute_kernel_api/eltwise_binary.h): DST[idst] moves to srcA, the CB tile is unpacked to
        srcB, and DST[idst] = srcA (op) srcB (``mul`` at this kernel's fidelity)."""
        try:
            cb = self._cbs[in_cb_id]
        except KeyError:
            raise self._no_cb_error(in_cb_id) from None
        if not 0 <= dst_tile_index < self._dst_limit:
            raise self._dst_index_error(dst_tile_index)
        key = ("binary_dest_reuse_tiles", cb, op)
        costs = self._tile_costs.get(key)
        if costs is None:  # hot path (every tile of a pool stick with bias): the costs once per CB and op
            if op not in ("add", "mul"):
                raise ConfigurationError(f"{self.where}: binary_dest_reuse_tiles op {op!r}")
            cycles = self._add_cycles if op == "add" else self._mul_cycles
            costs = self._tile_costs[key] = (self._unpack_cost(cb.tile_bytes), cycles + self._datacopy_cycles)
        self._unpack_math(costs[0], costs[1])
        if not self._dst_math:  # _set_dst's check (the index was checked above)
            raise self._dst_outside_error()
        if self.numerics:  # _defer, inline (every tile of a pool stick with bias)
            self._pending.append((("add_dest",) if op == "add" else ("mul_dest",), dst_tile_index,
                                  ((cb.front_page_address(in_tile_index), cb),)))
            self._dst_written.add(dst_tile_index)

    def _copy_one(self, cb: CircularBuffer, itile: int, idst: int) -> None:
        """Unpack tile ``itile`` of ``cb`` and copy it into DST[idst] (datacopy A2D)."""
        ready = self._unpack(self._unpack_cost(cb.tile_bytes))
        self._math(ready, self._datacopy_cycles)
        self._set_dst(idst, None)  # the checks
        if self.numerics:
            self._defer(("copy",), idst, (cb.front_page_address(itile), cb))

    def copy_tile(self, in_cb_id: int, in_tile_index: int, dst_tile_index: int) -> None:
        """``copy_tile`` (compute_kernel_api/tile_move_copy.h): DST[idst] = the CB tile."""
        self._copy_one(self.cb(in_cb_id), in_tile_index, dst_tile_index)

    def copy_block_matmul_partials(self, in_cb_id: int, start_in_tile_index: int,
                                   start_dst_tile_index: int, ntiles: int) -> None:
        """``copy_block_matmul_partials`` (compute_kernel_api/tile_move_copy.h): ``ntiles``
        consecutive CB tiles into consecutive DST tiles, each costing what ``copy_tile`` costs."""
        cb = self.cb(in_cb_id)
        for i in range(ntiles):
            self._copy_one(cb, start_in_tile_index + i, start_dst_tile_index + i)

    def reduce_tile(self, icb: int, icb_scaler: int, itile: int, itile_scaler: int, idst: int,
                    pool: str = "sum") -> None:
        """``reduce_tile<pool, REDUCE_COL>`` (compute_kernel_api/reduce.h): column reduce of a
        tiled CB tile into row 0 of DST[idst], scaled by the scaler tile's first value."""
        cb = self.cb(icb)
        reduced = None
        if self.numerics:
            tile = self._read_tile(cb, itile)
            scalar = self._read_tile(self.cb(icb_scaler), itile_scaler)[0]
            reduced = _reduce_columns(untilize(tile[None, :]), scalar, pool, self._phases)[:, 0]
        ready = self._unpack(self._unpack_cost(cb.tile_bytes))
        self._accumulate_row0(reduced, None, idst, pool, ready, 4)

    def _accumulate_row0(self, reduced: np.ndarray | None, from_zero: np.ndarray | None, idst: int,
                         pool: str, ready: float, num_faces: int) -> None:
        """Math of a column reduce: fold ``reduced`` ([k, 2, 16]: k accumulations of one tile
        row in face order) into row 0 of DST[idst], rounding DST after each (sum), or take the
        maximum (max). ``from_zero`` (optional) is the sum's result on a zero row (DST[idst] not
        written since the packer cleared it). ``reduced`` is None when numerics are off."""
        if not self._dst_math:
            raise self._dst_outside_error()
        phases = self._phases if pool == "sum" else 1
        self._math(ready, self._reduce_cycles_per_phase * phases * num_faces / 4)
        if not 0 <= idst < self._dst_limit:
            raise self._dst_index_error(idst)
        if reduced is None:
            return
        current = self._dst_row0[idst]
        if pool == "sum":
            if from_zero is not None and idst not in self._dst_written:
                self._dst_row0[idst] = from_zero
                self._dst_written.add(idst)
                return
            row = accumulate(current, reduced, self._dst_bf16)
            self._dst_row0[idst] = row.astype(self._bf16) if self._dst_bf16 else row
        else:
            if idst not in self._dst_written:
                current = np.full_like(current, -np.inf)  # GMPOOL reads a zeroed DST row as -inf
            row = np.maximum(current, reduced[0])
            self._dst_row0[idst] = row.astype(self._bf16) if self._dst_bf16 else row
        self._dst_written.add(idst)

    def unpack_tilizeA_B_block(self, icb0: int, icb1: int, block: int, tile_idx_b: int,
                               num_faces: int = 4, face_r_dim: int = 16) -> None:
        """``unpack_tilizeA_B_block(icb0, icb1, block, tile_idx_b, num_faces, face_r_dim)``
        (compute_kernel_api/tilize.h): tilize-on-unpack ``block`` tiles of row-major rows from
        ``icb0``'s read pointer into srcA, and load the scalar (tile ``tile_idx_b`` of ``icb1``)
        into srcB (the fused tilize + reduce of the pool kernels).

        Geometry: a tile has ``face_r_dim`` rows (``num_faces`` <= 2: the top faces only) or
        ``2 * face_r_dim`` rows (4 faces); rows are ``unpack_tilizeA_B_init``'s block tiles wide;
        tile t is columns [32t, 32t + 32) of them. Rows past the pages the last ``cb_wait_front``
        on ``icb0`` waited for read as zero; srcA rows past the tile's rows are zero.
        """
        if not 1 <= face_r_dim <= FACE_H or num_faces not in (1, 2, 4):
            raise ConfigurationError(
                f"{self.where}: unpack_tilizeA_B_block with num_faces {num_faces}, face_r_dim {face_r_dim}")
        if not 0 < block <= self._tilize_row_tiles or block > self._srca_tiles:
            raise ConfigurationError(
                f"{self.where}: unpack_tilizeA_B_block of {block} tiles from rows "
                f"{self._tilize_row_tiles} tiles wide (unpack_tilizeA_B_init's block)")
        rows = face_r_dim * (2 if num_faces == 4 else 1)
        if self.numerics:
            self._tilize_into_srca(icb0, icb1, block, tile_idx_b, rows)
        cost = self._unpack_tilize_cycles * block * rows / 32
        self._unpack(cost + self._unpack_overhead)

    def _tilize_into_srca(self, icb0: int, icb1: int, block: int, tile_idx_b: int, rows: int) -> None:
        """The numerics of ``unpack_tilizeA_B_block``: srcA's ``rows`` rows of ``block`` tiles and
        srcB's scalar."""
        cb = self.cb(icb0)
        elem = 4 if cb.data_format is DataFormat.FLOAT32 else 2
        row_width = self._tilize_row_tiles * TILE_W
        address = cb.fifo_rd_ptr
        region = self._front_region.get(icb0)
        end = region[1] if region is not None and region[0] <= address < region[1] else address
        width = block * TILE_W
        row_bytes = row_width * elem
        # rows whose `width` elements all lie before the end of the waited pages
        valid = max(0, min(rows, (end - address - width * elem) // row_bytes + 1))
        zero_rows = self._srca_zero_rows
        nonzero_to = max(zero_rows[:block])
        if nonzero_to > valid:  # else rows valid.. of these tiles are zero already
            self._srca[valid:nonzero_to, :width] = 0.0
        zero_rows[:block] = [valid] * block  # only this call writes srcA: its rows ..valid, columns ..width
        self._srca_zero = (valid, width)
        if valid and cb.is_bf16:  # the rows' first `width` elements in place (all before `end`)
            self._srca[:valid, :width] = np.ndarray((valid, width), self._bf16, self._l1, address, (row_bytes, elem))
        elif valid:
            nbytes = min(valid * row_bytes, end - address)  # the last row may end at `end`
            values = decode_row_major(self._l1[address : address + nbytes], cb.data_format)
            if nbytes < valid * row_bytes:
                values = np.concatenate((values, np.zeros(valid * row_width - values.size, values.dtype)))
            self._srca[:valid, :width] = values.reshape(valid, row_width)[:, :width]
        self._srca_reductions.clear()
        scalar_cb = self.cb(icb1)
        if tile_idx_b == 0 and scalar_cb.is_bf16:  # the pool kernels' scalar: the same bits every time
            at = scalar_cb.front_page_address(0)
            bits = self._l1_bytes[at] | self._l1_bytes[at + 1] << 8
            if bits != self._scalar_bits:
                self._scalar = np.float32(self._first_value(scalar_cb))
                self._scalar_bits = bits
            return
        self._scalar = np.float32(self._read_tile(scalar_cb, tile_idx_b)[0] if tile_idx_b
                                  else self._first_value(scalar_cb))
        self._scalar_bits = None

    def reduce_tile_math(self, idst: int, num_faces: int = 4, pool: str = "sum") -> None:
        """``reduce_tile_math(idst, num_faces)`` (compute_kernel_api/reduce.h): reduce srcA tile
        ``idst`` (from ``unpack_tilizeA_B_block``) into row 0 of DST[idst]."""
        if pool == "sum" and self._dst_math and 0 <= idst < self._dst_limit and idst not in self._dst_written:
            # hot path (every tile of a pool stick): _accumulate_row0's sum into a zero row, inline,
            # its cycles by _accumulate_row0's formula once per num_faces
            cycles = self._reduce_costs.get(num_faces)
            if cycles is None:
                cycles = self._reduce_costs[num_faces] = self._reduce_cycles_per_phase * self._phases * num_faces / 4
            if self.trace is None:  # _math(self._t, cycles), inline
                ready, math_t = self._t, self._math_t
                if ready > math_t:
                    self._math_stalls["math_wait_unpack"] += ready - math_t
                    math_t = ready
                math_t += cycles
                self._math_t = math_t
                self._busy_math += cycles
                self._src_bank_free, self._src_bank_last = self._src_bank_last, math_t
            else:
                self._math(self._t, cycles)
            if self.numerics:  # deferred (see _defer): the row written with the run of tiles it is in
                sums = self._srca_reductions.get("from_zero")
                if sums is None or idst >= len(sums):
                    sums = self._srca_sums_from_zero(idst)
                self._pending.append((("row0", id(sums), sums), idst, ()))
                self._dst_written.add(idst)
            return
        if not self.numerics:
            self._accumulate_row0(None, None, idst, pool, self._t, num_faces)
            return
        fresh = pool == "sum" and idst not in self._dst_written
        from_zero = self._srca_sums_from_zero(idst)[idst] if fresh else None
        self._accumulate_row0(self._srca_reduction(pool, idst)[:, idst], from_zero, idst, pool, self._t,
                              num_faces)

    def _srca_window(self, pool: str, idst: int) -> tuple[int | None, int]:
        """(rows known zero from, columns) of srcA a reduce of tile ``idst`` reads: a sum reads
        the tiles the last tilize wrote (those before ``idst`` too), their rows past its valid ones
        known zero (:attr:`_srca_zero`; a 3x3 window sums one 16-row group of two, exact as
        :func:`ttsim.fpu.column_sum_partials` and :func:`ttsim.fpu.accumulate_from_zero` say); a
        tile past them, and a max, read all of srcA (no rows known zero)."""
        zero_from, width = self._srca_zero
        if pool != "sum" or idst >= width // TILE_W:
            return None, self._srca.shape[1]
        return zero_from, width

    def _srca_reduction(self, pool: str, idst: int) -> np.ndarray:
        """srcA tiles column-reduced (:func:`_reduce_columns`, [k, tiles, 2, 16]; the columns
        :meth:`_srca_window` says), computed once per unpack for tile ``idst`` and its
        neighbours: a few numpy calls per unpack, not per tile."""
        cached = self._srca_reductions.get(pool)
        if cached is not None and idst < cached.shape[1]:
            return cached
        zero_from, width = self._srca_window(pool, idst)
        cached = _reduce_columns(self._srca[:, :width], self._scalar, pool, self._phases, zero_from)
        self._srca_reductions[pool] = cached
        return cached

    def _srca_sums_from_zero(self, idst: int) -> np.ndarray:
        """The column sums of srcA tiles (as :meth:`_srca_reduction`'s) added to a zero DST row,
        [tiles, 2, 16] in the DST format (:func:`ttsim.fpu.column_sum_from_zero`), once per
        unpack for tile ``idst`` and its neighbours."""
        cached = self._srca_reductions.get("from_zero")
        if cached is not None and idst < len(cached):
            return cached
        zero_from, width = self._srca_window("sum", idst)
        row = column_sum_from_zero(self._srca[:, :width], self._scalar, self._phases, self._dst_bf16,
                                   zero_from)
        cached = self._srca_reductions["from_zero"] = row.reshape(-1, 2, FACE_W)
        return cached

    def matmul_block(self, in0_cb_id: int, in1_cb_id: int, in0_tile_index: int, in1_tile_index: int,
                     idst: int, transpose: bool, ct_dim: int, rt_dim: int, kt_dim: int) -> None:
        """``matmul_block`` (compute_kernel_api/matmul.h), one inner-k step of a subblock:
        DST[idst + h*ct + w] += A[in0 + h*kt] @ B[in1 + w] for h < rt_dim, w < ct_dim.

        A (in0) feeds srcB and B (in1) srcA: MVMUL computes Dst += SrcB @ SrcA
        (:func:`ttsim.fpu.mvmul`, at this kernel's fidelity, DST rounded after each 16-deep
        step). 16 cycles per tile-matmul at LoFi, times the fidelity phases.
        """
        cb0, cb1 = self.cb(in0_cb_id), self.cb(in1_cb_id)
        shape = (cb0, cb1, rt_dim, ct_dim)
        costs = self._matmul_costs.get(shape)
        if costs is None:  # hot path (every inner-k step): the costs of a step shape once
            nbytes = rt_dim * cb0.tile_bytes + ct_dim * cb1.tile_bytes
            costs = self._matmul_costs[shape] = (
                self._unpack_cost(nbytes, ntiles=rt_dim + ct_dim, two_operand=True),
                self._c.matmul_tile_cycles_lofi.value * self._phases * rt_dim * ct_dim)
        self._unpack_math(costs[0], costs[1])
        count = rt_dim * ct_dim
        if idst < 0 or idst + count > self._dst_limit:
            raise self._dst_index_error(idst if idst < 0 else idst + count - 1)
        if not self.numerics:
            self._set_dst(idst, None, count)
            return
        if not self._dst_math:
            raise self._dst_outside_error()
        # deferred (see _defer): where the tiles are now, their bytes read when the run of inner-k
        # steps into the same DST tiles is computed at once (_matmul_run), before L1 changes. The
        # common case, no wrap: the first tile's address (in0's rows follow kt_dim pages apart,
        # in1's tiles one page apart); else every tile's address
        page = cb0.page_size
        in0 = cb0.fifo_rd_ptr + in0_tile_index * page
        if not (cb0.address <= in0 and in0 + ((rt_dim - 1) * kt_dim + 1) * page <= cb0.limit):
            in0 = [cb0.front_page_address(in0_tile_index + h * kt_dim) for h in range(rt_dim)]
        page = cb1.page_size
        in1 = cb1.fifo_rd_ptr + in1_tile_index * page
        if not (cb1.address <= in1 and in1 + ct_dim * page <= cb1.limit):
            in1 = [cb1.front_page_address(in1_tile_index + w) for w in range(ct_dim)]
        tiles = range(idst, idst + count)
        fresh = self._dst_written.isdisjoint(tiles)  # DST zero: start from the first
        op = ("matmul", idst, rt_dim, ct_dim, in0_cb_id, in1_cb_id, bool(transpose), kt_dim)
        self._pending.append((op, idst, (in0, in1, fresh)))
        self._dst_written.update(tiles)

    def _matmul_run(self, op: tuple, entries: list[tuple]) -> None:
        """Compute consecutive deferred ``matmul_block`` steps ``entries`` into the same DST tiles
        (``op``: ("matmul", idst, rt, ct, in0 CB, in1 CB, transpose, kt)) in call order: every
        step's MVMUL sums in one product, added to DST one accumulation after another, DST rounded
        after each (as step by step; tests/test_vectorised_numerics.py), products of all-zero in1
        faces skipped where that is exact (:class:`ttsim.fpu.MvmulPlan`).

        When every in1 face is zero and in0 is bfloat16 and finite, no product is computed and
        DST only has its -0 made +0 (what :func:`ttsim.fpu.mvmul_accumulate` does then): in0's
        operand blocks are not prepared (the block-sharded conv's cores see mostly such runs)."""
        _, idst, rt_dim, ct_dim, in0_cb_id, in1_cb_id, transpose, kt_dim = op
        count = rt_dim * ct_dim
        cb0, cb1 = self.cb(in0_cb_id), self.cb(in1_cb_id)
        b, plan = self._run_operand(self._in1_runs, cb1, [e[2][1] for e in entries], ct_dim,
                                    cb1.page_size, "in1_t" if transpose else "in1")
        in0 = [e[2][0] for e in entries]
        fresh = entries[0][2][2]
        if not plan.ranks and cb0.is_bf16 and _bf16_finite(self._run_view(in0, rt_dim, kt_dim * cb0.page_size,
                                                                          cb0.tile_bytes)[0]):
            tiles = self._faces[idst : idst + count]
            if fresh:
                tiles[...] = 0.0
            else:
                tiles += np.float32(0.0)
            return
        a, finite = self._run_operand(self._in0_runs, cb0, in0, rt_dim, kt_dim * cb0.page_size, "in0")
        if not finite:  # inf * 0 is NaN: no product may be skipped
            plan = dense_mvmul_plan(*b.shape[:2])
        tiles = self._faces[idst : idst + count].reshape(rt_dim, ct_dim, 2, 2, FACE_H, FACE_W)
        # DST by output face (w, face column) x rows (h, face row, row) x 16 columns
        if fresh:
            acc = np.zeros((ct_dim * 2, rt_dim * TILE_W, FACE_W), dtype=np.float32)
        else:
            acc = np.ascontiguousarray(tiles.transpose(1, 3, 0, 2, 4, 5)).reshape(ct_dim * 2, -1, FACE_W)
        mvmul_accumulate(acc, a, b, plan, self._dst_bf16, fresh)
        tiles[...] = acc.reshape(ct_dim, 2, rt_dim, 2, FACE_H, FACE_W).transpose(2, 0, 3, 1, 4, 5)

    def _run_view(self, steps: list, per_step: int, tile_stride: int, size: int) -> tuple[np.ndarray, tuple]:
        """The ``size``-byte tiles of a run of matmul steps, [steps, per_step, size / 8] uint64 (one
        operand's entries of :meth:`matmul_block`, ``steps``: each step's first tile address, its
        others ``tile_stride`` bytes apart, or its tiles' addresses), and the key naming where they
        are. Equally spaced steps (the common case) give a strided view of L1, no copy; others a
        new array, one slice per tile."""
        first = steps[0]
        n = len(steps)
        if type(first) is int and (n == 1 or type(steps[1]) is int):
            stride = steps[1] - first if n > 1 else 0
            if (n == 1 or stride > 0 and steps == list(range(first, first + n * stride, stride))) \
                    and not (first | stride | tile_stride | size) % 8:
                view = np.ndarray((n, per_step, size // 8), np.uint64, self._l1, first, (stride, tile_stride, 8))
                return view, (first, stride, n, per_step, tile_stride)
        addresses = [address for step in steps for address in
                     (step if type(step) is not int else range(step, step + per_step * tile_stride, tile_stride))]
        l1 = self._l1
        tiles = np.concatenate([l1[address : address + size] for address in addresses])
        return tiles.view(np.uint64 if size % 8 == 0 else np.uint8).reshape(n, per_step, -1), tuple(addresses)

    def _run_operand(self, cache: KeptByContent, cb: CircularBuffer, steps: list, per_step: int,
                     tile_stride: int, role: str) -> tuple:
        """MVMUL operand blocks of a run of matmul steps, their tiles as :meth:`_run_view` says
        (see :meth:`_run_blocks`).

        Kept in ``cache`` while the tiles' L1 bytes are unchanged: a subblock row's in0 run serves
        every subblock of the row, an in1 run (the weights) every output block; an in1 run another
        core prepared from the same bytes is taken from :data:`_SHARED_IN1_RUNS`. All the run's
        tiles are read, compared and decoded in one go."""
        current, where = self._run_view(steps, per_step, tile_stride, cb.tile_bytes)
        key = (role, cb.data_format, where)
        head = current[:, :, :8].tobytes()  # each tile's first 64 bytes: a bfloat8_b tile's exponents
        prepared = cache.get(key, current, head)
        if prepared is not None:
            return prepared
        kept = np.array(current)
        kept.flags.writeable = False
        raw = kept.view(np.uint8).reshape(-1)
        n = len(steps)
        if role == "in0":  # activations: each core's own, no other core prepares them
            prepared = self._run_blocks(raw, cb, n, per_step, role)
        else:
            shared_key = (role, cb.data_format, kept.shape, self._phases)
            prepared = _SHARED_IN1_RUNS.get(shared_key, kept, head)
            if prepared is None:
                prepared = _SHARED_IN1_RUNS.put(shared_key, kept, head, self._run_blocks(raw, cb, n, per_step, role))
        return cache.put(key, kept, head, prepared)

    def _run_blocks(self, raw: np.ndarray, cb: CircularBuffer, steps: int, per_step: int, role: str) -> tuple:
        """MVMUL operands of ``steps`` x ``per_step`` tiles whose bytes are ``raw``: every fidelity
        phase's operand bits (:func:`ttsim.fpu.srcb_part` for ``in0``, :func:`ttsim.fpu.srca_part`
        for ``in1``; ``in1_t``: each in1 tile transposed) in float64, one block per accumulation
        into DST (step, then phase, then the tile's two 16-deep K slices, as :func:`ttsim.fpu.mvmul`
        orders them), for :func:`ttsim.fpu.mvmul_accumulate`.

        Returns ``(blocks [S, rt * 32, 16], finite)`` for in0 (rows: tile, face row, row; K; and
        whether every value is finite) and ``(blocks [S, ct * 2, 16, 16], plan)`` for in1 (output
        faces: tile, face column; K; columns; and its :func:`ttsim.fpu.mvmul_plan`); read-only."""
        n = steps * per_step
        phases = self._phases
        if role == "in0" and phases == 1 and cb.is_bf16:  # the conv's activations at LoFi
            # the SrcB part on the bit patterns, widened straight to float64 in block order:
            # (step, tile, face row, face column, row, column) -> (step, face column, tile, ...)
            bits = srcb_lofi_bits(raw.view(np.uint16)).reshape(steps, per_step, 2, 2, FACE_H, FACE_W)
            blocks = np.ascontiguousarray(bits.transpose(0, 3, 1, 2, 4, 5).view(self._bf16), dtype=np.float64)
            blocks.flags.writeable = False
            return blocks.reshape(steps * 2, per_step * TILE_W, FACE_W), all_finite(blocks)
        if cb.is_bf16:
            values = raw.view(self._bf16).astype(np.float32).reshape(n, TILE_ELEMENTS)
        else:
            values = unpack_tiles(raw.reshape(n, cb.tile_bytes), cb.data_format)
        part = srcb_part if role == "in0" else srca_part
        parts = (part(values, 0)[None] if phases == 1 else np.stack([part(values, p) for p in range(phases)]))
        parts = parts.reshape(phases, steps, per_step, 2, 2, FACE_H, FACE_W)
        # axes of parts: (phase, step, tile, face row, face column, row in face, column in face)
        accumulations = steps * phases * 2
        if role == "in0":  # K is the column: K slice = face column
            order = (1, 0, 4, 2, 3, 5, 6)
        elif role == "in1":  # K is the row: K slice = face row
            order = (1, 0, 3, 2, 4, 5, 6)
        else:  # transposed: K is the column (K slice = face column), output columns the rows
            order = (1, 0, 4, 2, 3, 6, 5)
        blocks = np.ascontiguousarray(parts.transpose(order), dtype=np.float64)
        blocks.flags.writeable = False
        if role == "in0":  # a fidelity part is finite where the value is
            return blocks.reshape(accumulations, per_step * TILE_W, FACE_W), all_finite(blocks)
        blocks = blocks.reshape(accumulations, per_step * 2, FACE_H, FACE_W)
        return blocks, mvmul_plan(blocks)

    # -- SFPU ------------------------------------------------------------------------------------
    def _sfpu_cost(self, name: str) -> float:
        cost = self._sfpu_costs.get(name)
        if cost is None:
            raise ConfigurationError(f"{self.where}: no SFPU cost for {name!r} in device {self.spec.name}")
        return cost

    def sfpu_tile(self, name: str, idst: int) -> None:
        """Apply SFPU activation ``name`` (relu, relu6, silu, gelu, identity) to DST[idst]."""
        cost = self._sfpu_costs.get(name)
        if cost is None:
            cost = self._sfpu_cost(name)  # raises: no cost for this activation
        math_t = self._math_t
        if self.trace is None and self._sfpu_free <= math_t:  # _sfpu_on_math, inline (every tile)
            math_t += cost
            self._math_t = self._sfpu_free = math_t
            self._busy_math += cost
        else:
            self._sfpu_on_math(cost)
        if not self.numerics or name in ELEMENTWISE_ACTIVATIONS:
            if not self._dst_math:  # _set_dst's checks, inline (the hot path: every tile of a pool stick)
                raise self._dst_outside_error()
            if not 0 <= idst < self._dst_limit:
                raise self._dst_index_error(idst)
            if self.numerics:  # _defer, inline (every tile of a pool stick)
                self._pending.append((("sfpu", name), idst, ()))
                self._dst_written.add(idst)
            return
        fast = FLOAT32_ACTIVATIONS.get(name)
        if fast is not None:
            result = fast(self.dst[idst])
        else:
            func = ACTIVATIONS["none" if name == "identity" else name]
            result = func(self.dst[idst]).astype(np.float32, copy=False)
        self._set_dst(idst, result)

    def relu_tile(self, idst: int) -> None:
        """``relu_tile(idst)`` (compute_kernel_api/eltwise_unary/relu.h)."""
        self.sfpu_tile("relu", idst)

    def relu_max_tile(self, idst: int, upper: float) -> None:
        """ReLU clamped above at ``upper`` (relu6 when upper == 6)."""
        if upper != 6.0:
            raise ConfigurationError(f"{self.where}: relu_max_tile only models upper=6")
        self.sfpu_tile("relu6", idst)

    def silu_tile(self, idst: int) -> None:
        """``silu_tile(idst)`` (compute_kernel_api/eltwise_unary/activations.h)."""
        self.sfpu_tile("silu", idst)

    def gelu_tile(self, idst: int) -> None:
        """``gelu_tile(idst)`` (compute_kernel_api/eltwise_unary/gelu.h)."""
        self.sfpu_tile("gelu", idst)

    # -- pack ------------------------------------------------------------------------------------
    def _pack_one(self, ifrom_dst: int, icb: int, output_tile_index: int | None, call: str,
                  numerics: bool = True) -> None:
        """Pack DST[ifrom_dst] into the next (or the given) tile slot at the back of ``icb``
        (``call``: the API call the kernel made, named if DST is not the packer's); with
        ``numerics`` false only the slot and the cycles (the caller wrote the bytes)."""
        if not self._dst_pack:
            raise self._pack_outside_error(call, icb)
        if output_tile_index is None:
            output_tile_index = self._pack_position.get(icb, 0)
            self._pack_position[icb] = output_tile_index + 1
        try:
            cb = self._cbs[icb]
        except KeyError:
            raise self._no_cb_error(icb) from None
        if self.numerics and numerics:
            if self._dst_bf16 and cb.is_bf16 and self._relu_mode is ReluType.NO_RELU:
                # hot path (a pool stick's products): bfloat16 values into bfloat16, their bits
                values = _bf16_bits_of_bf16_values(self.dst[ifrom_dst])  # flushes pending ops
                address = cb.back_page_address(output_tile_index)
                self._l1[address : address + 2 * TILE_ELEMENTS].view(np.uint16)[...] = values
            else:
                values = self._relu_stage(self.dst[ifrom_dst])
                self._write_values(cb.back_page_address(output_tile_index), values, cb, pack_tile)
        cycles = self._pack_costs.get(cb)
        if cycles is None:  # hot path (every packed tile): the cost once per CB
            cycles = self._pack_costs[cb] = self._pack_cost(cb.tile_bytes)
        if self.trace is None:  # _pack, inline
            self._pack_t += cycles
            self._busy_producer += cycles
        else:
            self._pack(cycles)

    def pack_tile(self, ifrom_dst: int, icb: int, output_tile_index: int | None = None) -> None:
        """``pack_tile(ifrom_dst, icb[, output_tile_index])`` (compute_kernel_api/pack.h): DST
        tile into the next tile slot at the back of ``icb`` (or slot ``output_tile_index``, as
        ``pack_tile<true>`` does), through the packer's ReLU stage (``pack_relu_config``)."""
        self._pack_one(ifrom_dst, icb, output_tile_index, "pack_tile")

    def pack_tile_block(self, ifrom_dst: int, icb: int, ntiles: int) -> None:
        """``pack_tile_block(ifrom_dst, icb, ntiles)`` (compute_kernel_api/pack.h): DST tiles
        ``ifrom_dst`` .. ``ifrom_dst + ntiles - 1`` into the next slots, each costing a pack_tile.

        The tiles are encoded together (one call for the block: the same values as one by one) and
        written with one copy when their pages follow each other in L1."""
        batch = self.numerics and self._dst_pack and ntiles > 1 and 0 <= ifrom_dst <= DST_TILES - ntiles
        if batch:
            cb = self.cb(icb)
            start = self._pack_position.get(icb, 0)
            values = self._relu_stage(self.dst[ifrom_dst : ifrom_dst + ntiles])
            packed = (values.astype(self._bf16).view(np.uint8) if cb.is_bf16
                      else pack_tile(values, cb.data_format))
            size = packed.shape[1]
            first = cb.back_page_address(start)
            if size == cb.page_size and first + ntiles * size <= cb.limit:  # consecutive pages: one write
                self._l1[first : first + ntiles * size] = packed.reshape(-1)
            else:
                for i in range(ntiles):
                    address = cb.back_page_address(start + i)
                    self._l1[address : address + size] = packed[i]
        for i in range(ntiles):
            self._pack_one(ifrom_dst + i, icb, None, "pack_tile_block", numerics=not batch)

    def pack_untilize_dest(self, ocb: int, block_rt_dim: int = 1, block_c_index: int = 0,
                           face_r_dim: int = 16, num_faces: int = 4, *, block_ct_dim: int,
                           row_width: int, col_offset: int = 0) -> None:
        """``pack_untilize_dest<block_ct_dim>(ocb, block_rt_dim, block_c_index, face_r_dim,
        num_faces)`` (compute_kernel_api/pack_untilize.h): pack the first ``face_r_dim`` rows of
        DST tiles 0 .. block_ct_dim - 1 (the template argument, keyword here) as row-major rows.

        The CB rows are ``row_width`` elements wide and this block lands ``col_offset`` elements
        into each (tt-metal gives each block its own pages instead; keyword-only here).
        """
        if not self._dst_pack:
            raise self._pack_outside_error("pack_untilize_dest", ocb)
        if block_rt_dim != 1 or block_c_index != 0:
            raise ConfigurationError(
                f"{self.where}: pack_untilize_dest with block_rt_dim {block_rt_dim}, block_c_index "
                f"{block_c_index} (only one tile row at block 0 is modelled)")
        try:
            cb = self._cbs[ocb]
        except KeyError:
            raise self._no_cb_error(ocb) from None
        ntiles, rows = block_ct_dim, face_r_dim * (2 if num_faces == 4 else 1)
        if self.numerics:
            elem = 4 if cb.data_format is DataFormat.FLOAT32 else 2
            base = cb.back_page_address(0)
            first = base + col_offset * elem
            last = base + ((rows - 1) * row_width + col_offset + ntiles * TILE_W) * elem
            top = self._pending_elementwise_top(first, last) if self._pending and ntiles <= DST_TILES else 0
            if top:
                # only these rows leave DST before the release zeroes it: the pending ops on them
                # alone (element-wise: the same values), kept pending should DST be read again
                columns = _row_columns(rows)
                top = max(ntiles, top)  # the DST tiles read
                work = (self._dst[:top].take(columns, axis=1) if self._dst_stored  # else DST is zero
                        else np.zeros((top, columns.size), dtype=np.float32))
                self._evaluate(self._pending, work, columns)
                tiles = work[:ntiles]  # [tile][row, face column, column]
                values = (tiles.reshape(1, -1) if rows == 1 else
                          tiles.reshape(ntiles, rows, TILE_W).transpose(1, 0, 2).reshape(rows, -1))
            else:
                values = self._dst_faces[:ntiles].transpose(1, 3, 0, 2, 4).reshape(
                    2 * FACE_H, -1)[:rows]  # [row][tile, face column, column]
            values = self._relu_stage(values)
            size = ntiles * TILE_W * elem
            for r in range(rows):
                address = base + (r * row_width + col_offset) * elem
                if cb.is_bf16:
                    self._l1[address : address + size].view(self._bf16)[...] = values[r]
                else:
                    self._l1[address : address + size] = encode_row_major(values[r], cb.data_format)
        cycles = self._pack_untilize_cycles * ntiles * rows / 32
        if self.trace is None:  # _pack, inline (every pool channel block)
            self._pack_t += cycles
            self._busy_producer += cycles
        else:
            self._pack(cycles)

    def tilize_block(self, icb: int, block: int, ocb: int) -> None:
        """``tilize_block(icb, block, ocb)`` (compute_kernel_api/tilize.h): tilize 32 row-major
        rows of ``block`` tiles from ``icb``'s front into ``ocb``'s back (unpack-tilize,
        datacopy, pack; pipelined per tile)."""
        cb = self.cb(icb)
        out_cb = self.cb(ocb)
        c = self._c
        if self._pending:  # L1 changes: the pending ops read the bytes of their call
            self._flush()
        packed = None
        if self.numerics:
            elem = 4 if cb.data_format is DataFormat.FLOAT32 else 2
            width = block * 32
            address = cb.front_page_address(0)
            raw = self._l1[address : address + 32 * width * elem]
            if cb.is_bf16 and self._relu_mode is ReluType.NO_RELU:
                # bfloat16 rows: tilize their bit patterns and encode those (the same bytes)
                packed = pack_bfloat16_tiles(tilize(raw.view(np.uint16).reshape(32, width)), out_cb.data_format)
            else:
                tiles = self._relu_stage(tilize(decode_row_major(raw, cb.data_format).reshape(32, width)))
                if not out_cb.is_bf16:
                    packed = pack_tile(tiles, out_cb.data_format)  # one encode per block
        written = False
        if packed is not None and packed.shape[1] == out_cb.page_size:
            first = out_cb.back_page_address(self._pack_position.get(ocb, 0))
            if first + packed.size <= out_cb.limit:  # the block's pages follow each other: one write
                self._l1[first : first + packed.size] = packed.reshape(-1)
                written = True
        for i in range(block):
            ready = self._unpack(c.unpack_tilize_tile_cycles.value)
            self._math(ready, c.datacopy_tile_cycles.value)
            if self._math_t > self._pack_t:
                self._stall(Risc.TRISC2, "pack_wait_math", self._pack_t, self._math_t)
                self._pack_t = self._math_t
            self._pack(c.pack_tilize_tile_cycles.value)
            position = self._pack_position.get(ocb, 0)
            self._pack_position[ocb] = position + 1
            if not self.numerics or written:
                continue
            address = out_cb.back_page_address(position)
            if packed is not None:
                self._l1[address : address + packed[i].size] = packed[i]
            elif out_cb.is_bf16:
                self._write_values(address, tiles[i], out_cb, pack_tile)

    fast_tilize_block = tilize_block
    """``fast_tilize_block(icb, block, ocb)`` (compute_kernel_api/tilize.h), costed as
    ``tilize_block``."""

    # -- lifecycle -------------------------------------------------------------------------------
    def end_time(self) -> float:
        return max(self._t, self._math_t, self._pack_t)

    def zone_ends(self) -> dict[Risc, float]:
        return {Risc.TRISC0: self._t, Risc.TRISC1: self._math_t, Risc.TRISC2: self._pack_t}
