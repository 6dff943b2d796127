"""Values the compute API derives from tiles' L1 bytes, kept for reuse while those bytes are unchanged.

Kernels read the same weight and bias tiles for every output, and decoding a block-float tile,
broadcasting a bias row or preparing a matmul operand costs several times more than comparing
the tiles' bytes. So each such value is kept under a key naming where its tiles are (and what
was asked of them), together with the bytes it was computed from; a lookup passes the tiles'
current bytes and gets the value only when they are the same, so a tile rewritten in L1 is
computed again. The values are read-only, as several reads share them.

Some values are also kept process-wide by the bytes themselves (every core of a conv reads
the same weights): :data:`_SHARED_DECODED` here, the matmul's prepared weights in
ttsim/kernel_api/compute.py.
"""

from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from ttsim.formats import DataFormat, unpack_tile, unpack_tiles
from ttsim.fpu import srcb_part

DECODED_TILES_KEPT = 512
"""Decoded non-bfloat16 tiles a compute kernel keeps for reuse (see :class:`DecodedTiles`)."""
SHARED_DECODED_KEPT = 64
"""Decoded tiles kept by their bytes for every core of the process (see :data:`_SHARED_DECODED`)."""
_SHARED_DECODED: dict[tuple, np.ndarray] = {}
"""Decoded values of non-bfloat16 tiles by (format, shape, bytes), shared by every compute kernel
of the process: every core of a depthwise conv reads the same weight tiles, so each core's first
read of them would decode what another core already did. Keyed by everything the decode reads;
its values are read-only."""


def keep(entries: dict, capacity: int, key: Hashable, value: Any) -> Any:
    """Store ``value`` under ``key`` in ``entries``, emptying it first when it holds ``capacity``
    entries (the kernels' working sets are a few tiles read over and over: a full cache means
    the old ones are done with); returns ``value``."""
    if len(entries) >= capacity:
        entries.clear()
    entries[key] = value
    return value


class KeptByBytes:
    """At most ``capacity`` values by key, each valid while the bytes it was computed from are
    unchanged (see the module docstring).

    A key may hold the ``id`` of an object the value depends on (a column selection): the object
    is kept with the entry, so its id stays its own, and a lookup matches only that object.
    """

    __slots__ = ("capacity", "_entries")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[Hashable, tuple[bytes, Any, object]] = {}

    def get(self, key: Hashable, current: bytes, pinned: object = None) -> Any:
        """The value kept under ``key`` when it was computed from ``current`` (and ``pinned``), else None."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] == current and entry[2] is pinned:
            return entry[1]
        return None

    def put(self, key: Hashable, current: bytes, value: Any, pinned: object = None) -> Any:
        """Keep ``value``, computed from the bytes ``current`` (and ``pinned``), under ``key``;
        returns ``value``."""
        keep(self._entries, self.capacity, key, (current, value, pinned))
        return value


class KeptByContent:
    """At most ``capacity`` keys, each with the values computed from up to ``versions`` contents
    of its tiles (the weights CB of a conv holds each kernel row's weights in turn at the same
    addresses), each value valid while the tiles hold the content it was computed from.

    The content is kept as an array and compared element-wise with the tiles' current one, a view
    of L1 (a matmul run's tiles are several strided rows of it): no bytes object to copy the tiles
    into and, on a miss, to hash. A ``head`` (a few bytes of the content, say each tile's first
    64) picks the versions worth comparing: a different head is a different content."""

    __slots__ = ("capacity", "versions", "_entries")

    def __init__(self, capacity: int, versions: int) -> None:
        self.capacity = capacity
        self.versions = versions
        self._entries: dict[Hashable, list[tuple[Hashable, np.ndarray, Any]]] = {}

    def get(self, key: Hashable, current: np.ndarray, head: Hashable) -> Any:
        """The value kept under ``key`` for the content ``current`` (whose head is ``head``), else None."""
        for kept_head, kept, value in self._entries.get(key, ()):
            if kept_head == head and np.equal(kept, current).all():
                return value
        return None

    def put(self, key: Hashable, kept: np.ndarray, head: Hashable, value: Any) -> Any:
        """Keep ``value``, computed from the content ``kept`` (an array of its own, not a view of
        L1; ``head`` as for :meth:`get`), under ``key``, the newest of its versions (the oldest
        goes when it has ``versions``); returns ``value``."""
        versions = self._entries.get(key)
        if versions is None:
            keep(self._entries, self.capacity, key, [(head, kept, value)])
        else:
            versions.insert(0, (head, kept, value))
            del versions[self.versions :]
        return value


class DecodedTiles:
    """Decoded values of recently read tiles, by address, format and shape (a tile another core
    decoded from the same bytes is taken from :data:`_SHARED_DECODED`), with their SrcB parts.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries = KeptByBytes(capacity)
        self._parts: dict[int, tuple[np.ndarray, tuple[np.ndarray, ...]]] = {}
        """Per decoded values (by id, the values kept so the id stays theirs): their SrcB parts."""

    def srcb_parts(self, values: np.ndarray, phases: int) -> tuple[np.ndarray, ...] | None:
        """``srcb_part(values, p)`` for p < ``phases`` when ``values`` is read-only (decoded values
        this cache returned, unchanged while kept), computed once per values; else None (the
        caller computes them)."""
        if values.flags.writeable:
            return None
        entry = self._parts.get(id(values))
        if entry is not None and entry[0] is values and len(entry[1]) >= phases:
            return entry[1]
        parts = tuple(srcb_part(values, p) for p in range(phases))
        for part in parts:
            part.flags.writeable = False
        return keep(self._parts, self.capacity, id(values), (values, parts))[1]

    def values(self, address: int, raw: np.ndarray, fmt: DataFormat,
               columns: np.ndarray | None = None) -> np.ndarray:
        """Float32 values of the tiles whose bytes ``raw`` (one tile, or [n, tile bytes] for n
        consecutive tiles: [n, 1024] values) sit at ``address`` in format ``fmt``; with
        ``columns`` (storage-order positions, [n, 1024] tiles only) those elements of each tile,
        kept as such (pack_untilize_dest reads the same bias elements for every output row)."""
        key = (address, fmt, raw.shape, None if columns is None else id(columns))
        current = raw.tobytes()
        values = self._entries.get(key, current, columns)
        if values is not None:
            return values
        shared_key = (fmt, raw.shape, current)
        values = _SHARED_DECODED.get(shared_key)
        if values is None:
            values = unpack_tile(raw, fmt) if raw.ndim == 1 else unpack_tiles(raw, fmt)
            values.flags.writeable = False
            keep(_SHARED_DECODED, SHARED_DECODED_KEPT, shared_key, values)
        if columns is not None:
            values = values.take(columns, axis=1)
            values.flags.writeable = False
        return self._entries.put(key, current, values, columns)
