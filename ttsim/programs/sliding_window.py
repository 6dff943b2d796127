"""Host-side sliding-window geometry shared by the conv programs (no timing here).

tt-metal flattens the NHWC activation to sticks (one pixel, all channels) and, before a conv or
pool runs, a separate halo op gives every core a buffer of *padded* input sticks: the rows of the
zero-padded image that its output range touches (tt-metal ``ttnn/cpp/ttnn/operations/sliding_window/halo/``). The conv/pool reader then
walks that buffer with per-output "top-left" indices (``generate_sliding_window_op_config``,
``ttnn/cpp/ttnn/operations/sliding_window/sliding_window.cpp``). This module computes both on the host:
:class:`ConvGeometry` for index arithmetic and :func:`build_halo_configs` for the per-core halo
buffers (pad runs, copy runs from the input shards, reader indices). All positions are in sticks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttsim.config import ConvSpec, conv_output_size


@dataclass(frozen=True)
class ConvGeometry:
    """Shape of a conv in pixels/sticks; 'padded' coordinates include the zero border."""

    batch: int
    in_h: int
    in_w: int
    channels: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    out_h: int
    out_w: int
    padded_h: int
    padded_w: int

    @classmethod
    def from_spec(cls, spec: ConvSpec) -> ConvGeometry:
        """Derive the geometry of a validated conv spec."""
        (kh, kw), (sh, sw) = spec.kernel, spec.stride
        (ph, pw), (dh, dw) = spec.padding, spec.dilation
        return cls(
            batch=spec.batch,
            in_h=spec.input_height,
            in_w=spec.input_width,
            channels=spec.channels,
            kh=kh,
            kw=kw,
            sh=sh,
            sw=sw,
            ph=ph,
            pw=pw,
            dh=dh,
            dw=dw,
            out_h=conv_output_size(spec.input_height, kh, sh, ph, dh),
            out_w=conv_output_size(spec.input_width, kw, sw, pw, dw),
            padded_h=spec.input_height + 2 * ph,
            padded_w=spec.input_width + 2 * pw,
        )

    @property
    def in_nhw(self) -> int:
        """Input sticks (N*H*W)."""
        return self.batch * self.in_h * self.in_w

    @property
    def out_nhw(self) -> int:
        """Output sticks (N*out_h*out_w)."""
        return self.batch * self.out_h * self.out_w

    @property
    def window_span(self) -> int:
        """Padded sticks from a window's top-left stick to its last (bottom-right) stick."""
        return (self.kh - 1) * self.dh * self.padded_w + (self.kw - 1) * self.dw

    def top_left(self, o: int) -> int:
        """Flattened padded-stick index of the top-left of output stick ``o``'s window."""
        n, r = divmod(o, self.out_h * self.out_w)
        oh, ow = divmod(r, self.out_w)
        return n * self.padded_h * self.padded_w + oh * self.sh * self.padded_w + ow * self.sw

    def top_lefts(self, start: int, stop: int) -> np.ndarray:
        """:meth:`top_left` of output sticks ``start..stop-1`` as an int64 array."""
        n, r = np.divmod(np.arange(start, stop, dtype=np.int64), self.out_h * self.out_w)
        oh, ow = np.divmod(r, self.out_w)
        return n * (self.padded_h * self.padded_w) + oh * (self.sh * self.padded_w) + ow * self.sw


@dataclass(frozen=True, eq=False)
class HaloCoreConfig:
    """One core's halo buffer: which padded sticks it holds and how the halo op fills them.

    Offsets and lengths are in sticks. ``eq=False`` because the numpy field has no scalar
    equality; ``reader_indices`` is made read-only to keep the config immutable.
    """

    start: int
    """First padded stick index held (the top-left of the core's first output)."""
    length: int
    """Sticks held (0 for a core without outputs)."""
    pad_runs: tuple[tuple[int, int], ...]
    """(dst_offset, length) runs of zero padding sticks."""
    copy_runs: tuple[tuple[int, int, int, int], ...]
    """(src_nhw_core, src_offset, dst_offset, length): input sticks copied from the input shard
    of core ``src_nhw_core`` at ``src_offset`` to this buffer at ``dst_offset``."""
    reader_indices: np.ndarray
    """uint32 per real output stick: its window top-left as an offset into this buffer."""
    num_outputs: int
    """Real output sticks of this core (the last core(s) may hold fewer than a shard, or 0)."""


def build_halo_configs(
    geom: ConvGeometry, out_shard: int, in_shard: int, num_cores_nhw: int
) -> list[HaloCoreConfig]:
    """Per-core halo configs for ``num_cores_nhw`` cores along NHW.

    Core i owns outputs [i*out_shard, min((i+1)*out_shard, out_nhw)) and input sticks
    [i*in_shard, (i+1)*in_shard). Its buffer covers the padded sticks from the top-left of its
    first output to the last stick of its last output's window, inclusive. Runs are maximal.
    """
    if out_shard < 1 or in_shard < 1 or num_cores_nhw < 1:
        raise ValueError("shard sizes and core count must be >= 1")
    if out_shard * num_cores_nhw < geom.out_nhw or in_shard * num_cores_nhw < geom.in_nhw:
        raise ValueError(
            f"{num_cores_nhw} cores x shards (out {out_shard}, in {in_shard}) do not cover "
            f"{geom.out_nhw} output / {geom.in_nhw} input sticks"
        )
    configs = []
    for core in range(num_cores_nhw):
        first = min(core * out_shard, geom.out_nhw)
        stop = min(first + out_shard, geom.out_nhw)
        configs.append(_core_config(geom, first, stop, in_shard))
    return configs


def _core_config(geom: ConvGeometry, first: int, stop: int, in_shard: int) -> HaloCoreConfig:
    """Halo config of the core owning output sticks [first, stop)."""
    if stop <= first:
        empty = np.zeros(0, dtype=np.uint32)
        empty.setflags(write=False)
        return HaloCoreConfig(0, 0, (), (), empty, 0)
    tops = geom.top_lefts(first, stop)
    start = int(tops[0])
    length = int(tops[-1]) + geom.window_span + 1 - start

    sticks = np.arange(start, start + length, dtype=np.int64)
    n, r = np.divmod(sticks, geom.padded_h * geom.padded_w)
    y, x = np.divmod(r, geom.padded_w)
    h, w = y - geom.ph, x - geom.pw
    real = (h >= 0) & (h < geom.in_h) & (w >= 0) & (w < geom.in_w)
    g = n * (geom.in_h * geom.in_w) + h * geom.in_w + w
    src_core, src_off = np.divmod(g, in_shard)

    # A run breaks where padding/real flips, or a real stick does not continue its predecessor
    # (non-consecutive input stick, or the next input shard).
    breaks = np.ones(length, dtype=bool)
    breaks[1:] = (real[1:] != real[:-1]) | (
        real[1:] & ((g[1:] != g[:-1] + 1) | (src_core[1:] != src_core[:-1]))
    )
    run_starts = np.flatnonzero(breaks)
    run_lengths = np.diff(np.append(run_starts, length))
    pad_runs, copy_runs = [], []
    for dst, size in zip(run_starts.tolist(), run_lengths.tolist()):
        if real[dst]:
            copy_runs.append((int(src_core[dst]), int(src_off[dst]), dst, size))
        else:
            pad_runs.append((dst, size))

    reader_indices = (tops - start).astype(np.uint32)
    reader_indices.setflags(write=False)
    return HaloCoreConfig(
        start=start,
        length=length,
        pad_runs=tuple(pad_runs),
        copy_runs=tuple(copy_runs),
        reader_indices=reader_indices,
        num_outputs=stop - first,
    )
