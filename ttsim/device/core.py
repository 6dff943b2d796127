"""A Tensix core: its L1, its five RISCs, its circular buffers and its semaphores."""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np
import simpy

from ttsim.device.l1 import L1Memory

XY = tuple[int, int]


class Risc(str, Enum):
    """The five baby RISC-V cores of a Tensix tile (ISA-WH BabyRISCV/README.md)."""

    BRISC = "BRISC"
    NCRISC = "NCRISC"
    TRISC0 = "TRISC0"
    TRISC1 = "TRISC1"
    TRISC2 = "TRISC2"


DATA_MOVEMENT_RISCS = (Risc.BRISC, Risc.NCRISC)
COMPUTE_RISCS = (Risc.TRISC0, Risc.TRISC1, Risc.TRISC2)


class TensixCore:
    """One worker core, addressed by logical (grid) and physical (NoC) coordinates."""

    def __init__(self, env: simpy.Environment, logical: XY, noc_xy: XY, l1: L1Memory) -> None:
        self.env = env
        self.logical = logical
        self.noc_xy = noc_xy
        self.l1 = l1
        self.cbs: dict[int, Any] = {}
        """The circular buffers the launcher placed on this core, by CB index (``ttsim.cb``
        objects: the device only holds them, so it imports nothing above itself)."""
        self._word_watchers: dict[int, list[tuple[int, simpy.Event]]] = {}
        whole_words = l1.data.size // 4
        self._words = memoryview(l1.data)[: whole_words * 4].cast("I")
        """L1 as native 32-bit words: a word-aligned semaphore is one item (no numpy views)."""
        self._word_count = whole_words

    @property
    def name(self) -> str:
        return f"({self.logical[0]},{self.logical[1]})"

    # -- 32-bit L1 words (semaphores) ------------------------------------------------------
    def read_word(self, address: int) -> int:
        if address & 3 == 0 and 0 <= address >> 2 < self._word_count:  # aligned (every semaphore)
            return self._words[address >> 2]
        return int(self.l1.data[address : address + 4].view(np.uint32)[0])

    def write_word(self, address: int, value: int) -> None:
        """Store a word and wake kernels waiting for that value (semaphore semantics)."""
        if address & 3 == 0 and 0 <= address >> 2 < self._word_count:  # aligned (every semaphore)
            self._words[address >> 2] = value & 0xFFFFFFFF
        else:
            self.l1.data[address : address + 4].view(np.uint32)[0] = value & 0xFFFFFFFF
        watchers = self._word_watchers.get(address)
        if watchers:
            still = []
            for wanted, event in watchers:
                if (wanted >= 0 and value == wanted) or (wanted < 0 and value >= -wanted - 1):
                    event.succeed()
                else:
                    still.append((wanted, event))
            self._word_watchers[address] = still

    def add_word(self, address: int, increment: int) -> None:
        self.write_word(address, self.read_word(address) + increment)

    def word_event(self, address: int, value: int, at_least: bool = False) -> simpy.Event:
        """An event fired when the word at ``address`` becomes ``value`` (or >= it)."""
        event = self.env.event()
        key = -value - 1 if at_least else value
        self._word_watchers.setdefault(address, []).append((key, event))
        return event
