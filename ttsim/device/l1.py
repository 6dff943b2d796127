"""L1 SRAM of one Tensix core: real bytes at real addresses, and its allocator.

Circular buffers are placed bottom-up from the first unreserved address (as tt-metal places
CB configs); tensor buffers are placed top-down from the end of the usable region (as
tt-metal's L1 banked allocator does). The two meet in the middle; an allocation that would
cross the other side raises :class:`~ttsim.errors.L1OverflowError` listing every allocation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttsim.errors import L1OverflowError


@dataclass(frozen=True)
class Allocation:
    """One named region of L1 (bytes [address, address + size))."""

    name: str
    address: int
    size: int
    kind: str  # "cb" or "buffer"


def align_up(value: int, alignment: int) -> int:
    """Round ``value`` up to a multiple of ``alignment``."""
    return -(-value // alignment) * alignment


class L1Memory:
    """The byte array of one core's L1 plus a two-ended bump allocator."""

    def __init__(self, core_name: str, size: int, base: int, end: int, alignment: int) -> None:
        """L1 of ``size`` bytes; CBs and buffers live in [base, end), ``L1_SMALL`` in [end, size)."""
        self.core_name = core_name
        self.data = np.zeros(size, dtype=np.uint8)
        self.base = base
        self.end = end
        self.alignment = alignment
        self._cb_top = base
        self._buffer_bottom = end
        self._small_top = end
        self.allocations: list[Allocation] = []

    @property
    def budget_bytes(self) -> int:
        """Usable bytes for CBs and L1 buffers."""
        return self.end - self.base

    @property
    def used_bytes(self) -> int:
        """Bytes of the usable budget held by CBs and buffers (L1_SMALL not included)."""
        return sum(a.size for a in self.allocations if a.kind != "small")

    def allocate_cb(self, name: str, size: int) -> int:
        """Place a circular buffer bottom-up; return its address."""
        address = align_up(self._cb_top, self.alignment)
        self._check(name, address, size)
        self._cb_top = address + size
        self.allocations.append(Allocation(name, address, size, "cb"))
        return address

    def allocate_buffer(self, name: str, size: int) -> int:
        """Place a tensor buffer top-down in the highest gap that fits; return its address."""
        top = self.end
        for other in sorted((a for a in self.allocations if a.kind == "buffer"),
                            key=lambda a: a.address, reverse=True):
            if (top - size) // self.alignment * self.alignment >= other.address + other.size:
                break
            top = other.address
        address = (top - size) // self.alignment * self.alignment
        if address < self._cb_top:
            self._overflow(name, size, self._cb_top - address)
        self._buffer_bottom = min(self._buffer_bottom, address)
        self.allocations.append(Allocation(name, address, size, "buffer"))
        return address

    def allocate_small(self, name: str, size: int) -> int:
        """Place a buffer in the ``L1_SMALL`` region (config tensors such as reader indices)."""
        address = align_up(self._small_top, self.alignment)
        if address + size > self.data.size:
            raise L1OverflowError(
                f"L1_SMALL overflow on core {self.core_name}: {name!r} ({size:,} B) does not fit in "
                f"the {self.data.size - self.end:,} B L1_SMALL region")
        self._small_top = address + size
        self.allocations.append(Allocation(name, address, size, "small"))
        return address

    def free_buffer(self, name: str) -> None:
        """Release a tensor buffer (its space can hold later buffers)."""
        self.allocations = [a for a in self.allocations if not (a.kind in ("buffer", "small") and a.name == name)]
        self._small_top = max((a.address + a.size for a in self.allocations if a.kind == "small"),
                              default=self.end)
        self._buffer_bottom = min((a.address for a in self.allocations if a.kind == "buffer"),
                                  default=self.end)

    def free_cbs(self) -> None:
        """Release every CB (at the end of a program); buffers stay."""
        self.allocations = [a for a in self.allocations if a.kind != "cb"]
        self._cb_top = self.base

    def _check(self, name: str, address: int, size: int) -> None:
        if address + size > self._buffer_bottom:
            self._overflow(name, size, address + size - self._buffer_bottom)

    def _overflow(self, name: str, size: int, over: int) -> None:
        table = "\n".join(
            f"  {a.kind:6} {a.name:32} addr 0x{a.address:06x} {a.size:>9,} B"
            for a in sorted(self.allocations, key=lambda a: a.address)
        )
        raise L1OverflowError(
            f"L1 overflow on core {self.core_name}: allocating {name!r} ({size:,} B) needs "
            f"{self.budget_bytes + over:,} B of the {self.budget_bytes:,} B usable budget "
            f"({over:,} B over). Allocations so far:\n{table or '  (none)'}"
        )

    def read(self, address: int, size: int) -> np.ndarray:
        """A view of ``size`` bytes at ``address`` (no copy)."""
        return self.data[address : address + size]

    def write(self, address: int, payload: np.ndarray) -> None:
        """Store bytes at ``address``."""
        self.data[address : address + payload.size] = payload
