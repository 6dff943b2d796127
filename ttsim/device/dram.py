"""DRAM: banks of real bytes and interleaved buffers.

Interleaved buffers place page ``i`` in bank ``i % num_banks`` at the same offset in every bank
(tt-metal's interleaved allocator), pages padded to the DRAM alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttsim.device.l1 import align_up
from ttsim.device.spec import DeviceSpec

XY = tuple[int, int]


class DramBank:
    """One DRAM bank's bytes, grown as buffers are allocated."""

    def __init__(self, index: int, noc_xy: XY) -> None:
        self.index = index
        self.noc_xy = noc_xy
        self.data = np.zeros(0, dtype=np.uint8)

    def ensure(self, size: int) -> None:
        if size > self.data.size:
            grown = np.zeros(size, dtype=np.uint8)
            grown[: self.data.size] = self.data
            self.data = grown

    def read(self, address: int, size: int) -> np.ndarray:
        return self.data[address : address + size]

    def write(self, address: int, payload: np.ndarray) -> None:
        self.data[address : address + payload.size] = payload


@dataclass(frozen=True)
class InterleavedBuffer:
    """A DRAM buffer of ``num_pages`` pages of ``page_size`` bytes, round-robin over banks."""

    name: str
    base_address: int
    page_size: int
    aligned_page_size: int
    num_pages: int
    num_banks: int

    def page_location(self, page_id: int) -> tuple[int, int]:
        """(bank index, address in that bank) of page ``page_id``."""
        bank = page_id % self.num_banks
        return bank, self.base_address + (page_id // self.num_banks) * self.aligned_page_size


class Dram:
    """All DRAM banks of a device and the interleaved allocator."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.alignment = spec.dram.read_alignment_bytes.value
        self.banks = [DramBank(i, tuple(xy)) for i, xy in enumerate(spec.dram.bank_noc_xy.value)]
        self.by_xy = {bank.noc_xy: bank for bank in self.banks}
        self._top = 0

    def allocate_interleaved(self, name: str, page_size: int, num_pages: int) -> InterleavedBuffer:
        aligned = align_up(page_size, self.alignment)
        pages_per_bank = -(-num_pages // len(self.banks))
        buffer = InterleavedBuffer(name, self._top, page_size, aligned, num_pages, len(self.banks))
        self._top += pages_per_bank * aligned
        for bank in self.banks:
            bank.ensure(self._top)
        return buffer

    def write_pages(self, buffer: InterleavedBuffer, pages: np.ndarray) -> None:
        """Host write of ``pages`` (uint8 [num_pages, page_size]) into the buffer.

        Bank ``b`` holds pages ``b, b + num_banks, ...`` one aligned page apart from the base
        address (:meth:`InterleavedBuffer.page_location`): one strided copy per bank.
        """
        pages = np.asarray(pages)
        aligned, size = buffer.aligned_page_size, buffer.page_size
        for index, bank in enumerate(self.banks[: buffer.num_pages]):
            held = pages[index : buffer.num_pages : buffer.num_banks]
            slots = bank.data[buffer.base_address : buffer.base_address + held.shape[0] * aligned]
            slots.reshape(held.shape[0], aligned)[:, :size] = held
