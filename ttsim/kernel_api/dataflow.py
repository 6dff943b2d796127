"""Data-movement kernel API (BRISC / NCRISC): NoC reads, writes, multicast, semaphores, CBs.

Bytes move at issue time (the source is stable by protocol: a kernel only reads data another
kernel has published); the NoC model returns when they land, and the barrier advances the
kernel's clock to the last landing. Costs come from the device description only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Mapping, NamedTuple

import numpy as np
import simpy

from ttsim.device.core import SYNC_POINT, Risc, TensixCore
from ttsim.device.device import Device
from ttsim.device.dram import InterleavedBuffer
from ttsim.device.noc import RoutePlan
from ttsim.errors import ConfigurationError
from ttsim.kernel_api.base import KernelContext, KernelGen
from ttsim.sim_events import scheduled_timeout


XY = tuple[int, int]


class NocAddr(NamedTuple):
    """A 64-bit NoC address: physical (x, y) and a local address there."""

    x: int
    y: int
    addr: int


_new_tuple = tuple.__new__
"""What a NamedTuple's generated ``__new__`` calls with its fields as one tuple."""


class McastAddr(NamedTuple):
    """A multicast destination: a rectangle of physical coordinates and a local address."""

    x_start: int
    y_start: int
    x_end: int
    y_end: int
    addr: int


@dataclass(frozen=True)
class TensorAccessor:
    """Address generator of an interleaved DRAM buffer (tt-metal's ``TensorAccessor``)."""

    buffer: InterleavedBuffer
    bank_noc_xy: tuple[tuple[int, int], ...]

    def get_noc_addr(self, page_id: int, offset: int = 0) -> NocAddr:
        bank, address = self.buffer.page_location(page_id)
        x, y = self.bank_noc_xy[bank]
        return NocAddr(x, y, address + offset)


class _McastDests(NamedTuple):
    """The worker cores of a multicast rectangle, in NoC coordinate order: the cores, their L1
    bytes (memoryviews) and their coordinates (the NoC model's key for the route)."""

    cores: list[TensixCore]
    l1: list[memoryview]
    noc_xy: tuple[XY, ...]


def _land_word(event: simpy.Timeout) -> None:
    """Callback of the timeout that lands a semaphore multicast: its value is (core, address,
    word) and the word is stored then (as the kernel's store would be)."""
    core, address, value = event._value
    core.write_word(address, value)


def _land_increment(event: simpy.Timeout) -> None:
    """Callback of the timeout that lands a semaphore increment: its value is (core, address,
    increment)."""
    core, address, increment = event._value
    core.add_word(address, increment)


class DataflowContext(KernelContext):
    """The API a reader or writer kernel sees."""

    __slots__ = (
        "_atomic_issue", "_barrier_poll", "_cores_by_xy", "_dests", "_dram_by_xy", "_l1_bytes",
        "_l1_data", "_max_burst", "_mcast_cache", "_noc", "_page_address", "_read_issue",
        "_read_state_issue", "_reads_land", "_sem_poll", "_sources", "_state_end", "_state_l1",
        "_state_plan", "_state_reads", "_state_size", "_state_src", "_store", "_write_issue",
        "_writes_land", "noc_index")
    """The data-movement state in slots, :class:`KernelContext`'s in the instance dict, as
    :class:`~ttsim.kernel_api.compute.ComputeContext` does: together they would pass the 30
    attributes past which CPython 3.11 makes the dict a plain one and specializes no method call
    on the context."""

    def __init__(self, device: Device, core: TensixCore, kernel_name: str, risc: Risc,
                 compile_args: Mapping[str, Any], runtime_args: Mapping[str, Any], noc: int) -> None:
        super().__init__(device, core, kernel_name, risc, compile_args, runtime_args)
        self.noc_index = noc
        noc_spec = self.spec.noc
        self._read_issue = noc_spec.read_issue_cycles.value
        self._read_state_issue = noc_spec.read_with_state_issue_cycles.value
        self._page_address = noc_spec.interleaved_page_address_cycles.value
        self._write_issue = noc_spec.write_issue_cycles.value
        self._atomic_issue = noc_spec.atomic_issue_cycles.value
        self._barrier_poll = noc_spec.barrier_poll_cycles.value
        self._sem_poll = self.spec.risc.semaphore_poll_cycles.value
        self._store = self.spec.risc.l1_store_cycles.value
        self._max_burst = noc_spec.max_burst_bytes.value
        self._reads_land = 0.0
        self._writes_land = 0.0
        self._state_src: tuple[int, int] | None = None
        self._state_size = 0
        self._state_plan: RoutePlan | None = None
        """The NoC plan of a read from the preloaded source node."""
        self._state_l1: memoryview | None = None
        """The L1 bytes of the preloaded source node (None for a DRAM bank)."""
        self._state_reads: list[float] | None = None
        """Issue times of the ``*_with_state`` reads not booked on the NoC yet (None before
        ``*_set_state``): :meth:`_book_state_reads` books them before this kernel books anything
        else, reads its landings or lets another kernel run."""
        self._state_end: float | None = None
        """The end of the last ``*_with_state`` read booked, when it ended last on every port of
        its path (what :meth:`NocModel.read_planned_many` returned second, passed to its next
        call)."""
        self._noc = device.noc
        self._l1_data = core.l1.data
        """This core's L1 bytes (a fixed array: reads land in it)."""
        self._l1_bytes = memoryview(self._l1_data)
        """The same bytes as a memoryview: a slice copy through it (a memmove, so overlapping
        ranges copy as numpy copies them) costs a fraction of numpy's slice assignment."""
        self._cores_by_xy = device.by_noc_xy
        self._dram_by_xy = device.dram.by_xy
        """The DRAM banks by node (their bytes may be reallocated as buffers are added: read
        through the bank each time)."""
        self._sources: dict[tuple[int, int], tuple[memoryview | None, RoutePlan]] = {}
        """Per source node this kernel read from: its L1 bytes (None for a DRAM bank) and the NoC
        plan of a read from it (this kernel's NoC and core are fixed)."""
        self._dests: dict[tuple[int, int], tuple[memoryview | None, tuple[int, int]]] = {}
        """Per destination node this kernel wrote to: its L1 bytes (None for a DRAM bank) and its
        coordinates as one tuple."""
        self._mcast_cache: dict[tuple[int, int, int, int, bool], _McastDests] = {}
        """Per rectangle (and loopback flag) this kernel multicast to: its worker cores."""

    # -- circular buffers ---------------------------------------------------------------------
    def cb_reserve_back(self, cb_id: int, n: int) -> KernelGen:
        """Block until ``n`` pages are free at the back of ``cb_id`` (run with ``yield from``)."""
        if self._unrun is not None:  # a previous blocking call never ran
            raise self._unrun_error(self._describe_call("cb_reserve_back", cb_id, n))
        self._unrun = ("cb_reserve_back", cb_id, n)
        if self._state_reads:
            self._book_state_reads()
        return self._reserve(cb_id, n)

    def cb_wait_front(self, cb_id: int, n: int) -> KernelGen:
        """Block until ``n`` pages are at the front of ``cb_id`` (run with ``yield from``)."""
        if self._unrun is not None:  # a previous blocking call never ran
            raise self._unrun_error(self._describe_call("cb_wait_front", cb_id, n))
        self._unrun = ("cb_wait_front", cb_id, n)
        if self._state_reads:
            self._book_state_reads()
        return self._wait_front(cb_id, n)

    # -- addresses ------------------------------------------------------------------------------
    def get_noc_addr(self, *args: int) -> NocAddr:
        """``get_noc_addr(addr)``: ``addr`` in this core's own L1; ``get_noc_addr(x, y, addr)``:
        ``addr`` at physical NoC node (x, y). Both overloads of tenstorrent/tt-metal
        ``tt_metal/hw/inc/dataflow_api.h`` (its trailing ``noc`` argument is the kernel's NoC)."""
        if len(args) == 1:  # (NocAddr's own __new__ without its Python frame: once per read)
            return _new_tuple(NocAddr, (*self.core.noc_xy, args[0]))
        if len(args) == 3:
            return NocAddr(*args)
        raise ConfigurationError(
            f"{self.where}: get_noc_addr takes (addr) or (x, y, addr), got {len(args)} arguments")

    def get_noc_multicast_addr(self, x_start: int, y_start: int, x_end: int, y_end: int,
                               addr: int) -> McastAddr:
        return McastAddr(x_start, y_start, x_end, y_end, addr)

    def get_semaphore(self, semaphore_id: int) -> int:
        return self.device.semaphore_address(semaphore_id)

    # -- reads ----------------------------------------------------------------------------------
    def _read(self, src_xy: tuple[int, int], src_addr: int, dst_l1: int, size: int) -> None:
        """Move ``size`` bytes from ``src_addr`` at node ``src_xy`` into this core's L1 now and
        book the NoC read issued at the local clock (:meth:`noc_async_read` has a copy of it
        inline for its one-burst case)."""
        if self._state_reads:
            self._book_state_reads()
        t = self._t
        if t > self.deadline:
            self._check_deadline(t)
        source, plan = self._sources.get(src_xy) or self._add_source(src_xy)
        if source is not None:
            self._copy(source, src_addr, dst_l1, size)
        else:  # a DRAM bank
            self.core.l1.write(dst_l1, self.device.memory_read(src_xy, src_addr, size))
        land = self._noc.read_planned(plan, size, t)
        if land > self._reads_land:
            self._reads_land = land

    def _add_source(self, src_xy: tuple[int, int]) -> tuple[memoryview | None, RoutePlan]:
        """The :attr:`_sources` entry of node ``src_xy``, made on the first read from it."""
        core = self._cores_by_xy.get(src_xy)
        entry = (None if core is None else memoryview(core.l1.data),
                 self._noc.read_plan(self.noc_index, self.core.noc_xy, src_xy))
        self._sources[src_xy] = entry
        return entry

    def _copy(self, source: memoryview, src_addr: int, dst_l1: int, size: int) -> None:
        """Copy ``size`` bytes at ``src_addr`` of a core's L1 into this core's L1 at ``dst_l1``
        (``source[src_addr:][:size]`` lands at ``dst_l1``, as numpy's slice assignment places it:
        a range that runs past either end takes numpy's own path, with its result or error)."""
        try:
            self._l1_bytes[dst_l1 : dst_l1 + size] = source[src_addr : src_addr + size]
        except ValueError:  # the two slices differ in length (a range past the end of L1)
            payload = np.asarray(source)[src_addr : src_addr + size]
            self._l1_data[dst_l1 : dst_l1 + payload.size] = payload

    def noc_async_read(self, src: NocAddr, dst_l1: int, size: int) -> None:
        """Start a read of ``size`` bytes from ``src`` into this core's L1 at ``dst_l1``."""
        if size <= 0:
            raise ConfigurationError(f"{self.where}: noc_async_read of {size} bytes")
        if size <= self._max_burst:  # one burst (the common case): _read inline, the loop's one step
            if self._state_reads:
                self._book_state_reads()
            t = self._t = self._t + self._read_issue
            if t > self.deadline:
                self._check_deadline(t)
            src_xy = src[:2]
            source, plan = self._sources.get(src_xy) or self._add_source(src_xy)
            if source is not None:  # a core's L1 (_copy inline)
                try:
                    self._l1_bytes[dst_l1 : dst_l1 + size] = source[src.addr : src.addr + size]
                except ValueError:
                    self._copy(source, src.addr, dst_l1, size)
            else:  # a DRAM bank (Device.memory_read and L1Memory.write inline)
                payload = self._dram_by_xy[src_xy].data[src.addr : src.addr + size]
                self._l1_data[dst_l1 : dst_l1 + payload.size] = payload
            land = self._noc.read_planned(plan, size, t)
            if land > self._reads_land:
                self._reads_land = land
            return
        offset = 0
        while offset < size:
            chunk = min(self._max_burst, size - offset)
            self._t += self._read_issue
            self._read((src.x, src.y), src.addr + offset, dst_l1 + offset, chunk)
            offset += chunk

    def noc_async_read_one_packet_set_state(self, src: NocAddr, size: int) -> None:
        """Preload the command buffer with the source node and size (``*_set_state``)."""
        if not 0 < size <= self._max_burst:
            raise ConfigurationError(
                f"{self.where}: one-packet read of {size} B exceeds NOC_MAX_BURST_SIZE {self._max_burst}")
        if self._state_reads:
            self._book_state_reads()
        self._t += self._read_issue
        self._state_src = (src.x, src.y)
        self._state_size = size
        self._state_l1, self._state_plan = self._sources.get(self._state_src) or self._add_source(self._state_src)
        self._state_reads = []
        self._state_end = None

    def noc_async_read_one_packet_with_state(self, src_local_addr: int, dst_l1: int) -> None:
        """A read that reuses the preloaded node and size; only addresses are written.

        The bytes move now (:meth:`_read`); the NoC booking waits in :attr:`_state_reads` until
        the kernel's next NoC call, barrier, blocking call or end, so a run of reads is booked
        at once (:meth:`NocModel.read_planned_many`), in the same order: no other kernel runs
        and this one books nothing else in between.
        """
        reads = self._state_reads
        if reads is None:
            raise ConfigurationError(f"{self.where}: *_with_state read before *_set_state")
        t = self._t + self._read_state_issue
        self._t = t
        if t > self.deadline:
            self._check_deadline(t)
        source = self._state_l1
        if source is not None:  # a core's L1, as in _read (_copy inline)
            size = self._state_size
            try:
                self._l1_bytes[dst_l1 : dst_l1 + size] = source[src_local_addr : src_local_addr + size]
            except ValueError:
                self._copy(source, src_local_addr, dst_l1, size)
        else:  # a DRAM bank
            self.core.l1.write(dst_l1, self.device.memory_read(self._state_src, src_local_addr,
                                                               self._state_size))
        reads.append(t)

    def _book_state_reads(self) -> None:
        """Book the ``*_with_state`` reads issued since the last booking (:attr:`_state_reads`)."""
        reads = self._state_reads
        land, self._state_end = self._noc.read_planned_many(self._state_plan, self._state_size, reads,
                                                            self._state_end)
        reads.clear()
        if land > self._reads_land:
            self._reads_land = land

    def noc_async_read_tile(self, page_id: int, accessor: TensorAccessor, dst_l1: int) -> None:
        """Read one page of an interleaved buffer (bank and address generation, then the read)."""
        self._t += self._page_address
        self.noc_async_read(accessor.get_noc_addr(page_id), dst_l1, accessor.buffer.page_size)

    def noc_async_read_barrier(self) -> None:
        """Wait until every read this RISC issued has landed."""
        if self._unrun is not None:
            raise self._unrun_error("noc_async_read_barrier()")
        reads = self._state_reads
        if reads:  # _book_state_reads, inline (a reader's barrier follows its reads: once per window)
            land, self._state_end = self._noc.read_planned_many(self._state_plan, self._state_size, reads,
                                                                self._state_end)
            reads.clear()
            if land > self._reads_land:
                self._reads_land = land
        t = self._t + self._barrier_poll
        land = self._reads_land
        if land > t:
            if self.trace is None:  # _stall, inline
                self.stalls[self.risc]["noc_read_barrier"] += land - t
            else:
                self._stall(self.risc, "noc_read_barrier", t, land)
            t = land
        self._t = t

    # -- writes ---------------------------------------------------------------------------------
    def noc_async_write(self, src_l1: int, dst: NocAddr, size: int) -> None:
        """Start a write of ``size`` bytes from this core's L1 to ``dst``."""
        if self._state_reads:
            self._book_state_reads()
        target, dst_xy = self._dests.get(dst[:2]) or self._add_dest(dst[:2])
        noc, index, src_xy = self._noc, self.noc_index, self.core.noc_xy
        offset = 0
        while offset < size:
            chunk = min(self._max_burst, size - offset)
            t = self._t = self._t + self._write_issue
            if t > self.deadline:
                self._check_deadline(t)
            if target is not None:  # a core's L1 (Device.memory_write, inline)
                src = src_l1 + offset
                try:
                    target[dst.addr + offset : dst.addr + offset + chunk] = self._l1_bytes[src : src + chunk]
                except ValueError:  # a range past the end of an L1: numpy's own path
                    self.device.memory_write(dst_xy, dst.addr + offset, self.core.l1.read(src, chunk))
            else:  # a DRAM bank
                self.device.memory_write(dst_xy, dst.addr + offset, self.core.l1.read(src_l1 + offset, chunk))
            land = noc.write(index, src_xy, dst_xy, chunk, t)
            if land > self._writes_land:
                self._writes_land = land
            offset += chunk

    def _add_dest(self, dst_xy: tuple[int, int]) -> tuple[memoryview | None, tuple[int, int]]:
        """The :attr:`_dests` entry of node ``dst_xy``, made on the first write to it."""
        core = self._cores_by_xy.get(dst_xy)
        entry = (None if core is None else memoryview(core.l1.data), dst_xy)
        self._dests[dst_xy] = entry
        return entry

    def _mcast_dests(self, dst: McastAddr, include_self: bool) -> _McastDests:
        """The worker cores in the rectangle, in NoC coordinate order (the same for the same
        rectangle, so they are kept)."""
        key = (dst.x_start, dst.y_start, dst.x_end, dst.y_end, include_self)
        dests = self._mcast_cache.get(key)
        if dests is None:
            x0, x1 = sorted((dst.x_start, dst.x_end))
            y0, y1 = sorted((dst.y_start, dst.y_end))
            cores = [core for (x, y), core in sorted(self.device.by_noc_xy.items())
                     if x0 <= x <= x1 and y0 <= y <= y1 and (include_self or core is not self.core)]
            dests = _McastDests(cores, [memoryview(core.l1.data) for core in cores],
                                tuple(core.noc_xy for core in cores))
            self._mcast_cache[key] = dests
        return dests

    def _check_dests(self, dests: list[TensixCore], num_dests: int, what: str) -> None:
        if len(dests) != num_dests:
            raise ConfigurationError(
                f"{self.where}: {what} to {num_dests} destinations but the rectangle holds "
                f"{len(dests)} worker cores")

    def noc_async_write_multicast(self, src_l1: int, dst: McastAddr, size: int, num_dests: int,
                                  linked: bool = False, loopback_src: bool = False) -> None:
        """One write to every worker core in a rectangle (excluding the sender unless loopback)."""
        if self._state_reads:
            self._book_state_reads()
        dests = self._mcast_dests(dst, loopback_src)
        self._check_dests(dests.cores, num_dests, "noc_async_write_multicast")
        self._t += self._write_issue
        address = dst.addr
        payload = self._l1_bytes[src_l1 : src_l1 + size]
        if loopback_src and address < src_l1 + size and src_l1 < address + size:
            payload = bytes(payload)  # the source is among the destinations: copy it first
        for core, target in zip(dests.cores, dests.l1):
            try:
                target[address : address + size] = payload
            except ValueError:  # a range past the end of an L1 (either side): numpy's own path
                core.l1.write(address, np.frombuffer(payload, dtype=np.uint8))
        land = self._noc.multicast(self.noc_index, self.core.noc_xy, dests.noc_xy, size, self._t, linked)
        if land > self._writes_land:
            self._writes_land = land

    def noc_async_write_barrier(self) -> None:
        """Wait until every write this RISC issued has been acknowledged."""
        if self._unrun is not None:
            raise self._unrun_error("noc_async_write_barrier()")
        self._t += self._barrier_poll
        if self._writes_land > self._t:
            self._stall(self.risc, "noc_write_barrier", self._t, self._writes_land)
            self._t = self._writes_land

    # -- semaphores -----------------------------------------------------------------------------
    def noc_semaphore_set(self, sem_addr: int, value: int) -> None:
        """Set a semaphore in this core's L1.

        The store lands at once: the kernel itself may multicast the word next, and other RISCs
        of this core only observe it through their own (later) waits.
        """
        if self._unrun is not None:
            raise self._unrun_error(f"noc_semaphore_set(0x{sem_addr:x}, {value})")
        self._t += self._store
        self.core.write_word(sem_addr, value)

    def noc_semaphore_inc(self, dst: NocAddr, increment: int) -> None:
        """Atomically add to a semaphore on another core (the add lands with the update)."""
        if self._unrun is not None:
            raise self._unrun_error(f"noc_semaphore_inc({dst}, {increment})")
        if self._state_reads:
            self._book_state_reads()
        t = self._t = self._t + self._atomic_issue
        target = self._cores_by_xy[dst[:2]]
        land = self._noc.atomic(self.noc_index, self.core.noc_xy, target.noc_xy, t)
        env = self.env
        now = env._now  # the add lands now, or one timeout carrying it lands it (no closure; built
        # as cb_push_back builds its publication: env.timeout's event under its key, without its frames)
        if land <= now:
            target.add_word(dst.addr, increment)
        else:
            scheduled_timeout(env, land - now, (target, dst.addr, increment), [_land_increment])

    def noc_semaphore_set_multicast(self, src_l1: int, dst: McastAddr, num_dests: int,
                                    loopback_src: bool = False) -> None:
        """Multicast the word at ``src_l1`` into a semaphore on every core of the rectangle (each
        store lands with its update)."""
        if self._unrun is not None:
            raise self._unrun_error(f"noc_semaphore_set_multicast(0x{src_l1:x}, {dst}, {num_dests})")
        if self._state_reads:
            self._book_state_reads()
        dests = self._mcast_dests(dst, loopback_src).cores
        self._check_dests(dests, num_dests, "noc_semaphore_set_multicast")
        t = self._t = self._t + self._write_issue
        value = self.core.read_word(src_l1)
        atomic, index, src_xy, env, address = self._noc.atomic, self.noc_index, self.core.noc_xy, self.env, dst.addr
        for core in dests:  # per core: set now, or one timeout carrying the value (no closures;
            land = atomic(index, src_xy, core.noc_xy, t)  # built as in noc_semaphore_inc)
            now = env._now
            if land <= now:
                core.write_word(address, value)
            else:
                scheduled_timeout(env, land - now, (core, address, value), [_land_word])

    def noc_semaphore_wait(self, sem_addr: int, value: int) -> KernelGen:
        """Spin until the semaphore in this core's L1 equals ``value`` (run with ``yield from``)."""
        return self._semaphore_call("noc_semaphore_wait", sem_addr, value, at_least=False)

    def noc_semaphore_wait_min(self, sem_addr: int, value: int) -> KernelGen:
        """Spin until the semaphore in this core's L1 is at least ``value`` (a counter; run with
        ``yield from``)."""
        return self._semaphore_call("noc_semaphore_wait_min", sem_addr, value, at_least=True)

    def _semaphore_call(self, call: str, sem_addr: int, value: int, at_least: bool) -> KernelGen:
        if self._unrun is not None:  # a previous blocking call never ran
            raise self._unrun_error(self._describe_call(call, sem_addr, value))
        self._unrun = (call, sem_addr, value)
        if self._state_reads:
            self._book_state_reads()
        return self._semaphore_spin(call, sem_addr, value, at_least)

    def _semaphore_spin(self, call: str, sem_addr: int, value: int, at_least: bool) -> KernelGen:
        """The spin of ``noc_semaphore_wait`` (``== value``) or ``noc_semaphore_wait_min``
        (``>= value``): SimPy reaches the kernel's time, the word is read there, and the kernel
        blocks until it matches, then polls once. A kernel ahead of SimPy that finds the word not
        matching now, with nobody else watching it, watches it as an early watcher from its sync
        point on instead of scheduling the timeout there (TensixCore.early_word_event): a word
        that matches now may change before then, so then it syncs."""
        self._unrun = None
        t = self._t
        if t > self.deadline:  # _sync_to(t), inline
            self._check_deadline(t)
        env = self.env
        now = env._now
        core = self.core
        woken = False
        if t > now:
            word = core.read_word(sem_addr)
            event = None
            if (word < value) if at_least else (word != value):
                event = core.early_word_event(sem_addr, value, at_least, t - now)
            if event is None:
                yield scheduled_timeout(env, t - now)
            else:
                self.blocked_on = partial(self._semaphore_detail, call, sem_addr, value)
                woken = (yield event) is not SYNC_POINT  # else: at the sync point, reading
                self.blocked_on = None
        if not woken:
            word = core.read_word(sem_addr)
            if (word < value) if at_least else (word != value):
                yield from self._block(core.word_event(sem_addr, value, at_least=at_least),
                                       partial(self._semaphore_detail, call, sem_addr, value))
                woken = True
        if woken:
            self._stall(self.risc, "semaphore_wait", self._t, env.now)
            self._t = float(env.now)
        self._t += self._sem_poll

    def _semaphore_detail(self, call: str, sem_addr: int, value: int) -> str:
        """What a kernel blocked in a semaphore wait waits for (deadlock reports)."""
        return f"{call}(0x{sem_addr:x}, {value}): value is {self.core.read_word(sem_addr)}"

    # -- lifecycle -------------------------------------------------------------------------------
    def finish(self) -> KernelGen:
        """:meth:`KernelContext.finish`, after booking the reads not booked yet."""
        if self._state_reads:
            self._book_state_reads()
        return super().finish()

    # -- plain L1 access (volatile pointers in C++) -----------------------------------------------
    def l1_store(self, address: int, payload: np.ndarray) -> None:
        """Store bytes to this core's L1 from the RISC, one 32-bit store per 4 bytes."""
        data = np.ascontiguousarray(payload).view(np.uint8)
        self.core.l1.write(address, data)
        self._t += self._store * -(-data.size // 4)
        self._check_deadline(self._t)

    def l1_load(self, address: int, count: int, dtype: type = np.uint16) -> np.ndarray:
        """Load ``count`` values from this core's L1.

        Not charged separately: kernels load indices right before the NoC read they address,
        and that load is inside the measured per-read issue cost.
        """
        itemsize = np.dtype(dtype).itemsize
        raw = self.core.l1.read(address, count * itemsize)
        return raw.view(dtype).copy()
