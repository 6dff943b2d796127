"""Compute API additions: row-broadcast multiply, accumulation into DST, SFPU vector modes, SFPU
work issued from the pack thread and the packer's ReLU stage.

A mixin of :class:`ttsim.kernel_api.compute.ComputeContext` (it uses that class's thread clocks
and tile access), kept in its own module so that the element-wise additions a depthwise kernel
needs stay separate from the core compute API. Every call is named and ordered as in tt-metal:

* ``mul_tiles_bcast_rows(icb0, icb1, itile0, itile1, idst, bcast_row_idx)`` and
  ``mul_bcast_rows_init_short(icb0, icb1)`` (tenstorrent/tt-metal ``tt_metal/hw/inc/api/compute/bcast.h``);
  row ``bcast_row_idx`` of B is broadcast over all 32 rows (ISA ELWMUL ``BroadcastSrcBRow``:
  any 1x16 row of SrcB, tenstorrent/tt-isa-documentation ``WormholeB0/TensixTile/TensixCoprocessor/ELWMUL.md``);
* ELWMUL computes ``Dst += SrcA * SrcB`` (ELWMUL.md); on Wormhole / Blackhole accumulation is
  the default (``eltwise_binary.h``: "acc_to_dest is unused for WH/BH and accumulation is default
  behaviour"), so ``mul_tiles_bcast_rows`` accumulates, as ``mul_tiles`` does, at the kernel's
  math fidelity (:func:`ttsim.fpu.elwmul`; the packer zeroes the DST half it releases);
* SFPU ops with a ``VectorMode`` (tt-llk ``llk_math_eltwise_unary_sfpu_params.h``: R = faces 0-1,
  C = faces 0 and 2, RC = all four). A tile is 32 SFPU vector operations, 8 per face, and the
  cost is flat per vector operation: half a tile measured 1.98x faster than the whole tile
  (tenstorrent/tt-metal PR #50744), so the cost here is the tile's cost times faces / 4;
* ``silu_tile_pack`` / ``gelu_tile_pack`` (``compute_kernel_api.h``): the same SFPU code issued by
  the pack thread on the DST half it owns. The SFPU is one unit: work issued by math and by pack
  never overlaps (one SFPU clock), but SFPU work issued by pack lets the math thread run FPU work
  on the other DST half meanwhile (SFPU work from math serialises with FPU work, tt-metal #55759);
* ``pack_relu_config(config)`` (``compute_kernel_api.h``, tt-llk ``_llk_pack_relu_config_``):
  the packer's ReLU stage, bits 0-3 the mode (NO_RELU, ZERO_RELU, MIN_THRESHOLD_RELU,
  MAX_THRESHOLD_RELU), bits 16-31 the bfloat16 threshold; MAX_THRESHOLD_RELU clamps to
  [0, threshold] (relu6 with threshold 6), at no cost per datum
  (tt-isa-documentation ``WormholeB0/TensixTile/TensixCoprocessor/Packers/ReLU.md``).
"""

from __future__ import annotations

import enum
import functools
from typing import TYPE_CHECKING

import numpy as np

from ttsim.device.core import Risc
from ttsim.errors import ConfigurationError, KernelAPIError
from ttsim.formats import (FACE_H, FACE_W, TILE_ELEMENTS, DataFormat, bfloat16_bits,
                           bfloat16_to_float32, decode_row_major, pack_tile, tilize, untilize)
from ttsim.fpu import accumulate, column_sum_partials, elwmul, round_dst
from ttsim.numerics import ACTIVATIONS

if TYPE_CHECKING:
    from ttsim.kernel_api.compute import ComputeContext

FACE_ELEMENTS = FACE_H * FACE_W
ELEMENTWISE_ACTIVATIONS = frozenset({"identity", "relu", "relu6", "silu"})
"""SFPU activations whose value at each element does not depend on the other elements in the
same numpy call (gelu's ``erf`` series runs until every element converged), so several tiles,
or a tile's four faces, may be computed in one call (tested)."""


class VectorMode(enum.IntEnum):
    """Which faces of a DST tile an SFPU op works on (tt-llk ``VectorMode``)."""

    R = 1
    """Faces 0 and 1: the top 16 rows (a row vector lives in row 0)."""
    C = 2
    """Faces 0 and 2: the left 16 columns (a column vector lives in column 0)."""
    RC = 4
    """All four faces."""


VECTOR_MODE_FACES: dict[VectorMode, tuple[int, ...]] = {
    VectorMode.R: (0, 1), VectorMode.C: (0, 2), VectorMode.RC: (0, 1, 2, 3)}


class ReluType(enum.IntEnum):
    """The packer's ReLU modes (``STACC_RELU_ApplyRelu``, Packers/ReLU.md)."""

    NO_RELU = 0
    ZERO_RELU = 1
    MIN_THRESHOLD_RELU = 2
    MAX_THRESHOLD_RELU = 3


def relu_config(mode: ReluType, threshold: float = 0.0) -> int:
    """The ``pack_relu_config`` word: mode in bits 0-3, the bfloat16 threshold in bits 16-31."""
    bits = int(bfloat16_bits(np.array([threshold], dtype=np.float32))[0])
    return int(mode) | (bits << 16)


RELU_CONFIGS_KEPT = 256
"""Decoded ``pack_relu_config`` words kept (a kernel uses a few constant words, once per block)."""


@functools.lru_cache(maxsize=RELU_CONFIGS_KEPT)
def _relu_fields(config: int) -> tuple[ReluType | None, float, bool]:
    """A ``pack_relu_config`` word decoded: (its mode, None if bits 0-3 name no ReluType; the
    bfloat16 threshold in bits 16-31 as a float; whether that threshold's sign bit is set).
    Decoded once per word: the numpy decode costs microseconds and kernels reconfigure per block."""
    try:
        mode: ReluType | None = ReluType(config & 0xF)
    except ValueError:
        mode = None
    bits = np.array((config >> 16) & 0xFFFF, dtype=np.uint16)
    threshold = float(bfloat16_to_float32(np.asarray([bits], dtype=np.uint16))[0])
    return mode, threshold, bool(np.signbit(threshold))


def row_broadcast(tile: np.ndarray, row: int) -> np.ndarray:
    """Row ``row`` of a tile (storage order) broadcast over all 32 rows, in storage order."""
    base = (row // FACE_H) * 2 * FACE_ELEMENTS + (row % FACE_H) * FACE_W
    out = np.empty((2, 2, FACE_H, FACE_W), dtype=np.float32)
    out[:, 0] = tile[base : base + FACE_W]
    out[:, 1] = tile[base + FACE_ELEMENTS : base + FACE_ELEMENTS + FACE_W]
    return out.reshape(TILE_ELEMENTS)


class EltwiseOps:
    """Mixin of ComputeContext: the calls listed in the module docstring."""

    # state of these calls, slots of ComputeContext (set in its __init__)
    _relu_mode: ReluType
    """The packer's ReLU mode (``pack_relu_config``; NO_RELU at first)."""
    _relu_threshold: float
    """The packer's ReLU threshold (0 at first)."""
    _sfpu_free: float
    """Cycle at which the (single) SFPU finishes the work issued so far by math or pack."""
    _srcb_held: np.ndarray | None
    """SrcB rows ([64, 16] values) the custom LLK ``mul_tiles_srcb_held`` loaded last."""

    # -- binary ops accumulating into DST --------------------------------------------------------
    def mul_bcast_rows_init_short(self: ComputeContext, icb0: int, icb1: int) -> None:
        """Reconfigure unpack (row broadcast of B) and math (ELWMUL) for ``mul_tiles_bcast_rows``."""
        self._init(unpack=True, math=True)

    def mul_tiles_bcast_rows(self: ComputeContext, icb0: int, icb1: int, itile0: int, itile1: int,
                             idst: int, bcast_row_idx: int = 0) -> None:
        """DST[idst] += A * (row ``bcast_row_idx`` of B broadcast over all rows).

        Unpack reads both whole tiles (the row-broadcast unpack of B still reads its faces,
        tenstorrent/tt-llk ``llk_unpack_AB.h``); math is one ELWMUL pass per fidelity phase.
        """
        if not 0 <= bcast_row_idx < 32:
            raise ConfigurationError(f"{self.where}: bcast_row_idx {bcast_row_idx} outside 0..31")
        a, b, ready = self._unpack_two(icb0, icb1, itile0, itile1)
        self._math(ready, self._mul_cycles)
        if not self.numerics:  # --timing-only: only the DST checks
            self._set_dst(idst, None)
            return
        self._mul_into_dst(idst, a, row_broadcast(b, bcast_row_idx))

    def _mul_into_dst(self: ComputeContext, idst: int, a: np.ndarray, b: np.ndarray) -> None:
        """DST[idst] += A * B as ELWMUL computes it at this kernel's fidelity (a DST tile not
        written since the packer cleared it counts as zero)."""
        dst = self._dst_tile(idst) if idst in self._dst_written else None
        self._set_dst(idst, elwmul(dst, a, b, self._phases, self._dst_bf16, round_last=False))

    # -- SFPU ------------------------------------------------------------------------------------
    def _sfpu_on_math(self: ComputeContext, cycles: float) -> None:
        """Charge SFPU work issued by the math thread (waits for SFPU work issued by pack)."""
        if self._sfpu_free > self._math_t:
            self._stall(Risc.TRISC1, "math_wait_sfpu", self._math_t, self._sfpu_free)
            self._math_t = self._sfpu_free
        if self.trace is None:  # _math_dst, inline (the hot path: every SFPU tile)
            self._math_t += cycles
            self._busy_math += cycles
        else:
            self._math_dst(cycles)
        self._sfpu_free = self._math_t

    def _sfpu_values(self: ComputeContext, name: str, idst: int, vector_mode: VectorMode,
                     pack_call: str | None = None) -> None:
        """Apply activation ``name`` to the faces ``vector_mode`` selects of DST[idst]; issued by
        math, or by pack when ``pack_call`` names the pack-thread call (DST must be pack's)."""
        if not 0 <= idst < self._dst_limit:
            raise self._dst_index_error(idst)
        if pack_call is not None and not self._dst_pack:
            raise KernelAPIError(
                f"{self._thread(Risc.TRISC2)}: {pack_call} on DST outside tile_regs_wait()/"
                "tile_regs_release(): call ctx.tile_regs_wait() first (on hardware the pack thread "
                "would run the SFPU on a DST half math is still writing)")
        if not self.numerics:  # timing only: the checks, no tile values
            if pack_call is None:
                self._set_dst(idst, None)
            return
        func = ACTIVATIONS["none" if name == "identity" else name]
        if vector_mode == VectorMode.RC and name in ELEMENTWISE_ACTIVATIONS:  # every face: one call
            values = func(self.dst[idst]).astype(np.float32, copy=False)
        else:
            faces = self.dst[idst].reshape(4, FACE_ELEMENTS).copy()
            for face in VECTOR_MODE_FACES[VectorMode(vector_mode)]:
                faces[face] = func(faces[face]).astype(np.float32, copy=False)
            values = faces.reshape(TILE_ELEMENTS)
        if pack_call is None:
            self._set_dst(idst, values)
            return
        self.dst[idst] = values.astype(self._bf16) if self._dst_bf16 else values
        self._dst_written.add(idst)  # tile_regs_release zeroes the DST tiles written

    def _sfpu_cycles(self: ComputeContext, name: str, vector_mode: VectorMode) -> float:
        """The tile's SFPU cost scaled by the faces done (cost flat per vector op, PR #50744)."""
        return self._sfpu_cost(name) * len(VECTOR_MODE_FACES[VectorMode(vector_mode)]) / 4

    def sfpu_tile_vector(self: ComputeContext, name: str, idst: int,
                         vector_mode: VectorMode = VectorMode.RC) -> None:
        """MATH: SFPU activation ``name`` on the faces of DST[idst] that ``vector_mode`` selects
        (``_llk_math_eltwise_unary_sfpu_params_(..., vector_mode)``)."""
        self._sfpu_on_math(self._sfpu_cycles(name, vector_mode))
        self._sfpu_values(name, idst, vector_mode)

    def sfpu_tile_init_pack(self: ComputeContext, name: str) -> None:
        """PACK: ``<op>_tile_init_pack`` (SFPU configuration written by the pack thread)."""
        self._sfpu_cost(name)
        self._pack(self._init_costs["math"])

    def sfpu_tile_pack(self: ComputeContext, name: str, idst: int,
                       vector_mode: VectorMode = VectorMode.RC) -> None:
        """PACK: SFPU activation ``name`` on DST[idst], issued by the pack thread after
        ``tile_regs_wait`` (``silu_tile_pack``); the SFPU is shared with the math thread."""
        start = max(self._pack_t, self._sfpu_free)
        if start > self._pack_t:
            self._stall(Risc.TRISC2, "pack_wait_sfpu", self._pack_t, start)
            self._pack_t = start
        self._pack(self._sfpu_cycles(name, vector_mode))
        self._sfpu_free = self._pack_t
        self._sfpu_values(name, idst, vector_mode, pack_call=f"{name}_tile_pack")

    def silu_tile_init_pack(self: ComputeContext) -> None:
        self.sfpu_tile_init_pack("silu")

    def silu_tile_pack(self: ComputeContext, idst: int) -> None:
        self.sfpu_tile_pack("silu", idst)

    def gelu_tile_init_pack(self: ComputeContext) -> None:
        self.sfpu_tile_init_pack("gelu")

    def gelu_tile_pack(self: ComputeContext, idst: int) -> None:
        self.sfpu_tile_pack("gelu", idst)

    # -- packer ReLU -----------------------------------------------------------------------------
    def pack_relu_config(self: ComputeContext, config: int) -> None:
        """``pack_relu_config(config)`` (tt_metal/include/compute_kernel_api.h; the LLK is
        ``llk_pack_relu_config``): the packer's ReLU stage for every following pack, from a
        ``relu_config`` word: bits 0-3 the mode (0 off, 1 ZERO_RELU, 2 MIN_THRESHOLD_RELU,
        3 MAX_THRESHOLD_RELU), bits 16-31 the bfloat16 threshold.

        Not charged: a packer configuration-register write, which the preset does not cost.
        """
        mode, threshold, negative = _relu_fields(config)
        if mode is None:
            raise ConfigurationError(
                f"{self.where}: pack_relu_config({config}): mode {config & 0xF} in bits 0-3 is not a "
                f"ReluType (0 NO_RELU, 1 ZERO_RELU, 2 MIN_THRESHOLD_RELU, 3 MAX_THRESHOLD_RELU)")
        if negative and mode in (ReluType.MIN_THRESHOLD_RELU, ReluType.MAX_THRESHOLD_RELU):
            raise ConfigurationError(
                f"{self.where}: pack_relu_config threshold {threshold} must be >= +0 "
                f"(a negative threshold is undefined, Packers/ReLU.md)")
        self._relu_mode = mode
        self._relu_threshold = threshold

    def _relu_stage(self, values: np.ndarray) -> np.ndarray:
        """The packer's ReLU stage on datums leaving DST (Packers/ReLU.md functional model)."""
        mode = self._relu_mode
        if mode is ReluType.NO_RELU:
            return values
        if mode is ReluType.ZERO_RELU:
            return np.where(values <= 0, np.float32(0), values)
        threshold = np.float32(self._relu_threshold)
        if mode is ReluType.MIN_THRESHOLD_RELU:
            return np.where(values <= threshold, np.float32(0), values)
        return np.where(values <= 0, np.float32(0), np.minimum(values, threshold))

    # -- custom LLK: multiply and reduce in one pass (marked, not in tt-metal) --------------------
    def mul_reduce_tile_math(self: ComputeContext, weight_cb: int, itile: int, idst: int) -> None:
        """CUSTOM LLK (no tt-metal equivalent): multiply srcA tile ``idst`` (tilized by
        ``unpack_tilizeA_B_block``) element-wise by tile ``itile`` of ``weight_cb`` and column-sum
        the products into row 0 of DST[idst].

        Derived from the ISA: the weight tile is unpacked into SrcB (its bytes at the unpacker
        rate), ELWMUL writes SrcA * SrcB into DST (one pass per fidelity phase, ELWMUL.md), MOVD2A
        moves the products back into SrcA (a datacopy, MOVD2A.md) and the column reduce folds them
        into row 0, as ``reduce_tile_math`` does; the products never leave the core's registers
        (no pack to a CB and tilize-unpack back, the branch's mul_cb round trip)."""
        cb = self.cb(weight_cb)
        ready = self._unpack(self._unpack_cost(cb.tile_bytes))
        c = self._c
        math = (self._mul_cycles + self._datacopy_cycles
                + c.reduce_tile_cycles_per_phase.value * self._phases)
        self._math(ready, math)
        if not self._dst_math:
            raise self._dst_outside_error()
        if not 0 <= idst < self._dst_limit:
            raise self._dst_index_error(idst)
        if not self.numerics:  # --timing-only: only the checks
            self._dst_written.add(idst)
            return
        weights = self._read_tile(cb, itile)
        block = self._srca[:, idst * 32 : (idst + 1) * 32]
        products = elwmul(None, block, untilize(weights[None, :]), self._phases, self._dst_bf16)
        # GAPOOL on the products at the kernel's fidelity, as reduce_tile_math folds a CB tile
        partials = column_sum_partials(products, self._scalar, self._phases).reshape(-1, 2, FACE_W)
        current = self._dst_row0[idst] if idst in self._dst_written else np.zeros((2, FACE_W), np.float32)
        row = accumulate(current, partials, self._dst_bf16)
        self._dst_row0[idst] = row.astype(self._bf16) if self._dst_bf16 else row
        self._dst_written.add(idst)

    # -- custom LLK: weights held in SrcB, the row chosen by the SrcB row counter (not in tt-metal) --
    def mul_tiles_srcb_held(self: ComputeContext, icb0: int, icb1: int, itile0: int, itile1: int,
                            idst: int, reload_srcb: bool, srcb_row_start: int = 0,
                            srcb_period_rows: int = 64) -> None:
        """CUSTOM LLK (no tt-metal equivalent): DST[idst] += A * B like ``mul_tiles`` after
        ``mul_tiles_init``, where B is tile ``itile1`` of ``icb1`` unpacked into SrcB only when
        ``reload_srcb``; otherwise the SrcB rows already held are reused and only A is unpacked.

        For the depthwise program's row-major window pages: a tap's weights repeat with a period
        of ``srcb_period_rows`` = C_core / 16 face rows, so one SrcB bank (64 rows of 16) holding
        the tap's first page serves every page of the block: row r of page p is held row
        ``(srcb_row_start + r) mod srcb_period_rows`` with ``srcb_row_start = 64 p mod period``,
        i.e. each 8x16 ELWMUL block starts its SrcB row counter at its own phase of the period
        (ELWMUL reads SrcB rows from the RWC, ELWMUL.md): one SETRWC per block, charged as
        ``compute.srcb_row_select_cycles_per_tile``. The host checks period + 8 <= 64 (C_core <= 896)."""
        cb0, cb1 = self.cb(icb0), self.cb(icb1)
        if reload_srcb:
            cost = self._unpack_cost(cb0.tile_bytes + cb1.tile_bytes, ntiles=2, two_operand=True)
        else:
            cost = self._unpack_cost(cb0.tile_bytes)
        ready = self._unpack(cost)
        self._math(ready, self._mul_cycles + self._c.srcb_row_select_cycles_per_tile.value)
        if not self.numerics:  # --timing-only: only the DST checks
            self._set_dst(idst, None)
            return
        if reload_srcb:
            self._srcb_held = self._read_tile(cb1, itile1).reshape(-1, FACE_W)
        rows = (srcb_row_start + np.arange(TILE_ELEMENTS // FACE_W)) % srcb_period_rows
        self._mul_into_dst(idst, self._read_tile(cb0, itile0), self._srcb_held[rows].reshape(TILE_ELEMENTS))

    # -- custom composition: tilize with a tile added (standard LLKs, not one tt-metal compute call) --
    def tilize_add_block(self: ComputeContext, icb: int, icb_b: int, block: int, itile_b: int, ocb: int,
                         nblocks: int = 1) -> None:
        """CUSTOM (standard LLKs in a combination tt-metal's compute API has no call for): tilize
        ``nblocks`` consecutive blocks of 32 row-major rows of ``block`` tiles from ``icb``'s front,
        add tile ``itile_b + t`` of ``icb_b`` to tile t of every block and pack tile t of block k
        into slot ``k * block + t`` at ``ocb``'s back.

        UNPACK per tile ``llk_unpack_tilizeA_B`` (A tilized into SrcA, tile t of block k addressed
        as tile ``32 * block * k + t`` of the rows; the B tile into SrcB with ``reload_srcB`` only
        for the first block: tile column by tile column, every block adds the same bias tile;
        tenstorrent/tt-metal ``tt_metal/hw/ckernels/wormhole_b0/metal/llk_api/llk_unpack_tilize_api.h``),
        MATH ``ELWADD`` (DST = SrcA + SrcB, ``llk_math_eltwise_binary``) instead of the datacopy of
        ``tilize_block``, PACK through the ReLU stage into the tile's slot (``pack_tile<true>``).
        The depthwise program adds its bias here (row-broadcast bias tiles) instead of a DST pass.

        Cost per tile: the tilize unpack (``unpack_tilize_tile_cycles``), plus for a reloaded B
        tile one more unpacked tile (overhead and bytes at the unpacker rate: the two unpacks
        are not assumed to overlap), ELWADD (``eltwise_add_tile_cycles``), the tilize pack."""
        cb, cb_b, out_cb = self.cb(icb), self.cb(icb_b), self.cb(ocb)
        c = self._c
        if self.numerics:
            elem = 4 if cb.data_format is DataFormat.FLOAT32 else 2
            width = block * 32
            address = cb.front_page_address(0)
            raw = self._l1[address : address + nblocks * 32 * width * elem]
            rows = decode_row_major(raw, cb.data_format).reshape(nblocks, 32, width)
            bias = np.stack([self._read_tile(cb_b, itile_b + t) for t in range(block)])
            tiles = np.stack([tilize(rows[k]) for k in range(nblocks)]) + bias  # [nblocks, block, 1024]
            tiles = self._relu_stage(round_dst(tiles, self._dst_bf16).astype(np.float32)).reshape(-1, TILE_ELEMENTS)
            packed = tiles if out_cb.is_bf16 else pack_tile(tiles, out_cb.data_format)
        base = self._pack_position.get(ocb, 0)
        for t in range(block):
            for k in range(nblocks):
                cost = c.unpack_tilize_tile_cycles.value + (self._unpack_cost(cb_b.tile_bytes) if k == 0 else 0)
                ready = self._unpack(cost)
                self._math(ready, c.eltwise_add_tile_cycles.value)
                if self._math_t > self._pack_t:
                    self._stall(Risc.TRISC2, "pack_wait_math", self._pack_t, self._math_t)
                    self._pack_t = self._math_t
                self._pack(c.pack_tilize_tile_cycles.value)
                if not self.numerics:
                    continue
                slot = k * block + t
                address = out_cb.back_page_address(base + slot)
                if out_cb.is_bf16:
                    self._write_values(address, tiles[slot], out_cb, pack_tile)
                else:
                    self._l1[address : address + packed[slot].size] = packed[slot]
        self._pack_position[ocb] = base + nblocks * block
