"""A whole device: the SimPy clock, the worker cores, the NoCs and DRAM.

It knows cores, memories and data movement; it knows nothing of kernels' purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

from heapq import heappop

import numpy as np
import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import URGENT, EventPriority

from ttsim.device.core import TensixCore
from ttsim.device.dram import Dram
from ttsim.device.l1 import L1Memory
from ttsim.device.noc import NocModel
from ttsim.device.spec import DeviceSpec
from ttsim.errors import ConfigurationError

XY = tuple[int, int]

SEMAPHORE_SLOT_BYTES = 16
MAX_SEMAPHORES = 16


@dataclass(frozen=True)
class L1Buffer:
    """A tensor buffer in L1 on a set of cores (a shard per core)."""

    name: str
    size_per_core: int
    addresses: dict[XY, int]

    def address(self, core: XY) -> int:
        return self.addresses[core]


class Environment(simpy.Environment):
    """SimPy's environment, remembering the schedule entry it is processing (:attr:`current`):
    the CBs compare their early waiters' sync points with it (ttsim/cb.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.current: tuple = (float("-inf"), URGENT, -1, None)
        """The (time, priority, id, event) entry being processed (before the first: one that
        sorts before every entry)."""

    def step(self) -> None:
        """:meth:`simpy.Environment.step` (its code and signals), recording :attr:`current`."""
        try:
            self.current = entry = heappop(self._queue)
        except IndexError:
            raise EmptySchedule from None
        self._now = entry[0]
        event = entry[3]
        callbacks, event.callbacks = event.callbacks, None
        try:
            for callback in callbacks:
                callback(event)
        except StopSimulation:
            event.callbacks = callbacks[callbacks.index(callback) + 1:]
            self.schedule(event, EventPriority(-1))
            raise
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc

    def step_forever(self) -> None:
        """``while True: self.step()`` with :meth:`step` inline, its code and its signals
        unchanged (one Python frame less per event: a run processes one event per CB publication
        and per blocked CB call; the host's kernel loop). Returns only by raising, as the loop
        does."""
        queue = self._queue
        while True:
            try:
                self.current = entry = heappop(queue)
            except IndexError:
                raise EmptySchedule from None
            self._now = entry[0]
            event = entry[3]
            callbacks, event.callbacks = event.callbacks, None
            try:
                for callback in callbacks:
                    callback(event)
            except StopSimulation:
                # as step does: keep the remaining callbacks and process the event first on resuming
                event.callbacks = callbacks[callbacks.index(callback) + 1:]
                self.schedule(event, EventPriority(-1))
                raise
            if not event._ok and not hasattr(event, "_defused"):
                # a failed event nobody handled (a kernel raised): crash with a copy, as step does
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc


class Device:
    """One chip: ``spec`` gives every constant; state is the L1/DRAM bytes and the clock."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.env = Environment()
        self.noc = NocModel(spec, lambda: self.env.now)
        self.dram = Dram(spec)
        grid_x, grid_y = spec.chip.compute_grid.value
        self.grid = (grid_x, grid_y)
        xs, ys = spec.chip.worker_noc_x.value, spec.chip.worker_noc_y.value
        l1 = spec.l1
        end = l1.size_bytes.value - l1.l1_small_bytes.value
        self.cores: dict[XY, TensixCore] = {}
        self.by_noc_xy: dict[XY, TensixCore] = {}
        for y in range(grid_y):
            for x in range(grid_x):
                name = f"({x},{y})"
                memory = L1Memory(name, l1.size_bytes.value, l1.unreserved_base_bytes.value, end,
                                  l1.alignment_bytes.value)
                core = TensixCore(self.env, (x, y), (xs[x], ys[y]), memory)
                self.cores[(x, y)] = core
                self.by_noc_xy[core.noc_xy] = core
        self.semaphore_base = l1.unreserved_base_bytes.value - SEMAPHORE_SLOT_BYTES * MAX_SEMAPHORES

    # -- addressing -----------------------------------------------------------------------
    def core(self, logical: XY) -> TensixCore:
        try:
            return self.cores[logical]
        except KeyError:
            raise ConfigurationError(
                f"core {logical} is outside the {self.grid[0]}x{self.grid[1]} compute grid of "
                f"{self.spec.name}") from None

    def worker_core(self, logical: XY) -> XY:
        """Physical NoC coordinates of a logical core (``worker_core_from_logical_core``)."""
        return self.core(logical).noc_xy

    def semaphore_address(self, semaphore_id: int) -> int:
        """L1 address of semaphore ``semaphore_id`` (in the kernel-config region, every core)."""
        return self.semaphore_base + SEMAPHORE_SLOT_BYTES * semaphore_id

    def memory_read(self, noc_xy: XY, address: int, size: int) -> np.ndarray:
        """Bytes at a NoC address (a core's L1 or a DRAM bank)."""
        core = self.by_noc_xy.get(noc_xy)
        if core is not None:
            return core.l1.read(address, size)
        return self.dram.by_xy[noc_xy].read(address, size)

    def memory_write(self, noc_xy: XY, address: int, payload: np.ndarray) -> None:
        core = self.by_noc_xy.get(noc_xy)
        if core is not None:
            core.l1.write(address, payload)
        else:
            self.dram.by_xy[noc_xy].write(address, payload)

    # -- allocation -----------------------------------------------------------------------
    def allocate_l1_buffer(self, name: str, cores: list[XY], size_per_core: int) -> L1Buffer:
        """A sharded L1 tensor buffer: ``size_per_core`` bytes on each of ``cores``."""
        addresses = {xy: self.core(xy).l1.allocate_buffer(name, size_per_core) for xy in cores}
        return L1Buffer(name, size_per_core, addresses)

    def allocate_l1_small_buffer(self, name: str, cores: list[XY], size_per_core: int) -> L1Buffer:
        """A sharded buffer in the ``L1_SMALL`` region (tt-metal places config tensors there)."""
        addresses = {xy: self.core(xy).l1.allocate_small(name, size_per_core) for xy in cores}
        return L1Buffer(name, size_per_core, addresses)

    def free_l1_buffer(self, buffer: L1Buffer) -> None:
        """Deallocate a sharded L1 buffer on every core that holds it."""
        for xy in buffer.addresses:
            self.core(xy).l1.free_buffer(buffer.name)

    def free_program_cbs(self) -> None:
        for core in self.cores.values():
            core.l1.free_cbs()
            core.cbs = {}
