"""A Tensix core: its L1, its five RISCs, its circular buffers and its semaphores."""

from __future__ import annotations

from enum import Enum
from heapq import heappush
from typing import Any

import numpy as np
import simpy
from simpy.events import NORMAL

from ttsim.device.l1 import L1Memory

XY = tuple[int, int]


class Risc(str, Enum):
    """The five baby RISC-V cores of a Tensix tile (ISA-WH BabyRISCV/README.md)."""

    BRISC = "BRISC"
    NCRISC = "NCRISC"
    TRISC0 = "TRISC0"
    TRISC1 = "TRISC1"
    TRISC2 = "TRISC2"


SYNC_POINT = object()
"""The value an early waiter's event carries when the waiter is sent to its sync point (a CB's
waiters, ttsim/cb.py, and a semaphore's watchers here); a waiter woken by a publication or a
store gets None."""

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
        self._word_watchers: dict[int, list[tuple]] = {}
        """Per word address, the (wanted, event) of every kernel waiting on it, in registration
        order, or the (wanted, event, time, id) of an early watcher (then the only one; see
        :meth:`early_word_event`); ``wanted`` is the value, or ``-value - 1`` for at least it."""
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
            for entry in watchers:
                wanted = entry[0]
                if (wanted >= 0 and value == wanted) or (wanted < 0 and value >= -wanted - 1):
                    event = entry[1]
                    # an early watcher whose sync point is ahead is sent there, to look
                    if len(entry) == 4 and not (entry[2], NORMAL, entry[3]) < self.env.current:  # type: ignore
                        event._ok, event._value = True, SYNC_POINT
                        heappush(self.env._queue, (entry[2], NORMAL, entry[3], event))
                    else:
                        event.succeed()
                else:
                    still.append(entry)
            self._word_watchers[address] = still

    def add_word(self, address: int, increment: int) -> None:
        self.write_word(address, self.read_word(address) + increment)

    def word_event(self, address: int, value: int, at_least: bool = False) -> simpy.Event:
        """An event fired when the word at ``address`` becomes ``value`` (or >= it).

        An early watcher there (only ever alone) whose sync point has passed registered before
        this one: it stays, as a plain watcher; one whose sync point is still ahead would register
        after: it is sent to its sync point to do so (as ttsim/cb.py's ``enqueue``)."""
        event = self.env.event()
        key = -value - 1 if at_least else value
        watchers = self._word_watchers.setdefault(address, [])
        if watchers and len(watchers[0]) == 4:
            wanted, early, time, eid = watchers[0]
            if (time, NORMAL, eid) < self.env.current:  # type: ignore[attr-defined]
                watchers[0] = (wanted, early)
            else:
                del watchers[0]
                early._ok, early._value = True, SYNC_POINT
                heappush(self.env._queue, (time, NORMAL, eid, early))
        watchers.append((key, event))
        return event

    def early_word_event(self, address: int, value: int, at_least: bool, delay: float) -> simpy.Event | None:
        """The event of an *early watcher* (ttsim/cb.py's module docstring, for a semaphore): a
        kernel whose clock is ahead of SimPy's, which would let SimPy reach its time with a
        timeout ``delay`` cycles from now and then read the word, finds it not ``value`` (or below
        it) now and watches it from that sync point on instead, under the schedule key
        ``(now + delay, NORMAL, id)`` the timeout would have (that id taken now, as it would be).
        The semaphore calls store to the word through :meth:`write_word`: a store before the sync
        point that makes the word match (or another watcher registering) sends the kernel to its
        sync point, to read it there (its event's value :data:`SYNC_POINT`); if none did, the word
        there is the one read now and the kernel waits as it would have after reading it. (A
        plain L1 store or NoC write into a semaphore word wakes no watcher, early or plain: the
        kernel API's semaphore calls are the way to change one.) None (no early watcher) when
        others watch the word already: their order is the order they registered in."""
        watchers = self._word_watchers.setdefault(address, [])
        if watchers:
            return None
        env = self.env
        event = env.event()
        key = -value - 1 if at_least else value
        watchers.append((key, event, env._now + delay, next(env._eid)))  # type: ignore[attr-defined]
        return event

    def sync_points(self) -> list[float]:
        """The times of the sync points of this core's early semaphore watchers."""
        return [entry[2] for watchers in self._word_watchers.values() for entry in watchers
                if len(entry) == 4]
