"""Data-movement kernel API (BRISC / NCRISC): NoC reads, writes, multicast, semaphores, CBs.

Bytes move at issue time (the source is stable by protocol: a kernel only reads data another
kernel has published); the NoC model returns when they land, and the barrier advances the
kernel's clock to the last landing. Costs come from the device description only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import numpy as np

from ttsim.device.core import Risc, TensixCore
from ttsim.device.device import Device
from ttsim.device.dram import InterleavedBuffer
from ttsim.device.noc import ReadPlan
from ttsim.errors import ConfigurationError
from ttsim.kernel_api.base import KernelContext, KernelGen


class NocAddr(NamedTuple):
    """A 64-bit NoC address: physical (x, y) and a local address there."""

    x: int
    y: int
    addr: int


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


class DataflowContext(KernelContext):
    """The API a reader or writer kernel sees."""

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
        self._state_l1: np.ndarray | None = None
        """The L1 bytes of the preloaded source node (None for a DRAM bank)."""
        self._state_reads: list[float] | None = None
        """Issue times of the ``*_with_state`` reads not booked on the NoC yet (None before
        ``*_set_state``): :meth:`_book_state_reads` books them before this kernel books anything
        else, reads its landings or lets another kernel run."""
        self._noc = device.noc
        self._l1_data = core.l1.data
        """This core's L1 bytes (a fixed array: reads land in it)."""
        self._cores_by_xy = device.by_noc_xy
        self._read_plans: dict[tuple[int, int], ReadPlan] = {}
        """The NoC plan of a read from each source node this kernel read from (its NoC and core
        are fixed)."""
        self._mcast_cache: dict[tuple[int, int, int, int, bool], list[TensixCore]] = {}

    # -- circular buffers ---------------------------------------------------------------------
    def cb_reserve_back(self, cb_id: int, n: int) -> KernelGen:
        """Block until ``n`` pages are free at the back of ``cb_id`` (run with ``yield from``)."""
        if self._unrun is not None:  # a previous blocking call never ran
            raise self._unrun_error(self._describe_call("cb_reserve_back", cb_id, n))
        self._unrun = ("cb_reserve_back", cb_id, n)
        if self._state_reads:
            self._book_state_reads()
        return self._reserve(cb_id, n)

    def cb_push_back(self, cb_id: int, n: int) -> None:
        self._t = self._push(cb_id, n, self._t)

    def cb_wait_front(self, cb_id: int, n: int) -> KernelGen:
        """Block until ``n`` pages are at the front of ``cb_id`` (run with ``yield from``)."""
        if self._unrun is not None:  # a previous blocking call never ran
            raise self._unrun_error(self._describe_call("cb_wait_front", cb_id, n))
        self._unrun = ("cb_wait_front", cb_id, n)
        if self._state_reads:
            self._book_state_reads()
        return self._wait_front(cb_id, n)

    def cb_pop_front(self, cb_id: int, n: int) -> None:
        self._t = self._pop(cb_id, n, self._t)

    # -- addresses ------------------------------------------------------------------------------
    def get_noc_addr(self, *args: int) -> NocAddr:
        """``get_noc_addr(addr)``: ``addr`` in this core's own L1; ``get_noc_addr(x, y, addr)``:
        ``addr`` at physical NoC node (x, y). Both overloads of tenstorrent/tt-metal
        ``tt_metal/hw/inc/dataflow_api.h`` (its trailing ``noc`` argument is the kernel's NoC)."""
        if len(args) == 1:
            x, y = self.core.noc_xy
            return NocAddr(x, y, args[0])
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
        book the NoC read issued at the local clock."""
        if self._state_reads:
            self._book_state_reads()
        t = self._t
        if t > self.deadline:
            self._check_deadline(t)
        source = self._cores_by_xy.get(src_xy)  # a core's L1 (Device.memory_read, inline) ...
        if source is not None:
            payload = source.l1.data[src_addr : src_addr + size]
            self._l1_data[dst_l1 : dst_l1 + payload.size] = payload
        else:  # ... or a DRAM bank
            self.core.l1.write(dst_l1, self.device.memory_read(src_xy, src_addr, size))
        land = self._noc.read_planned(self._plan_from(src_xy), size, t)
        if land > self._reads_land:
            self._reads_land = land

    def _plan_from(self, src_xy: tuple[int, int]) -> ReadPlan:
        """The NoC read plan from node ``src_xy`` to this core (made once per source)."""
        plan = self._read_plans.get(src_xy)
        if plan is None:
            plan = self._read_plans[src_xy] = self._noc.read_plan(self.noc_index, self.core.noc_xy, src_xy)
        return plan

    def noc_async_read(self, src: NocAddr, dst_l1: int, size: int) -> None:
        """Start a read of ``size`` bytes from ``src`` into this core's L1 at ``dst_l1``."""
        if size <= 0:
            raise ConfigurationError(f"{self.where}: noc_async_read of {size} bytes")
        if size <= self._max_burst:  # one burst (the common case): the loop's one step
            self._t += self._read_issue
            self._read((src.x, src.y), src.addr, dst_l1, size)
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
        source = self._cores_by_xy.get(self._state_src)
        self._state_l1 = source.l1.data if source is not None else None
        self._state_reads = []

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
        if source is not None:  # a core's L1, as in _read
            payload = source[src_local_addr : src_local_addr + self._state_size]
            self._l1_data[dst_l1 : dst_l1 + payload.size] = payload
        else:  # a DRAM bank
            self.core.l1.write(dst_l1, self.device.memory_read(self._state_src, src_local_addr,
                                                               self._state_size))
        reads.append(t)

    def _book_state_reads(self) -> None:
        """Book the ``*_with_state`` reads issued since the last booking (:attr:`_state_reads`)."""
        reads = self._state_reads
        land = self._noc.read_planned_many(self._plan_from(self._state_src), self._state_size, reads)
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
        if self._state_reads:
            self._book_state_reads()
        self._t += self._barrier_poll
        if self._reads_land > self._t:
            self._stall(self.risc, "noc_read_barrier", self._t, self._reads_land)
            self._t = self._reads_land

    # -- writes ---------------------------------------------------------------------------------
    def noc_async_write(self, src_l1: int, dst: NocAddr, size: int) -> None:
        """Start a write of ``size`` bytes from this core's L1 to ``dst``."""
        if self._state_reads:
            self._book_state_reads()
        offset = 0
        while offset < size:
            chunk = min(self._max_burst, size - offset)
            self._t += self._write_issue
            self._check_deadline(self._t)
            payload = self.core.l1.read(src_l1 + offset, chunk)
            self.device.memory_write((dst.x, dst.y), dst.addr + offset, payload)
            land = self.device.noc.write(self.noc_index, self.core.noc_xy, (dst.x, dst.y), chunk, self._t)
            self._writes_land = max(self._writes_land, land)
            offset += chunk

    def _mcast_dests(self, dst: McastAddr, include_self: bool) -> list[TensixCore]:
        """The worker cores in the rectangle, in NoC coordinate order (the same list for the same
        rectangle, so it is kept)."""
        key = (dst.x_start, dst.y_start, dst.x_end, dst.y_end, include_self)
        dests = self._mcast_cache.get(key)
        if dests is None:
            x0, x1 = sorted((dst.x_start, dst.x_end))
            y0, y1 = sorted((dst.y_start, dst.y_end))
            dests = [core for (x, y), core in sorted(self.device.by_noc_xy.items())
                     if x0 <= x <= x1 and y0 <= y <= y1 and (include_self or core is not self.core)]
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
        self._check_dests(dests, num_dests, "noc_async_write_multicast")
        self._t += self._write_issue
        payload = self.core.l1.read(src_l1, size).copy()
        for core in dests:
            core.l1.write(dst.addr, payload)
        land = self.device.noc.multicast(self.noc_index, self.core.noc_xy,
                                         [c.noc_xy for c in dests], size, self._t, linked)
        self._writes_land = max(self._writes_land, land)

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
        """Atomically add to a semaphore on another core."""
        if self._unrun is not None:
            raise self._unrun_error(f"noc_semaphore_inc({dst}, {increment})")
        if self._state_reads:
            self._book_state_reads()
        self._t += self._atomic_issue
        target = self.device.by_noc_xy[(dst.x, dst.y)]
        land = self.device.noc.atomic(self.noc_index, self.core.noc_xy, target.noc_xy, self._t)
        self._at(land, lambda k: target.add_word(dst.addr, k), increment)

    def noc_semaphore_set_multicast(self, src_l1: int, dst: McastAddr, num_dests: int,
                                    loopback_src: bool = False) -> None:
        """Multicast the word at ``src_l1`` into a semaphore on every core of the rectangle."""
        if self._unrun is not None:
            raise self._unrun_error(f"noc_semaphore_set_multicast(0x{src_l1:x}, {dst}, {num_dests})")
        if self._state_reads:
            self._book_state_reads()
        dests = self._mcast_dests(dst, loopback_src)
        self._check_dests(dests, num_dests, "noc_semaphore_set_multicast")
        self._t += self._write_issue
        value = self.core.read_word(src_l1)
        for core in dests:
            land = self.device.noc.atomic(self.noc_index, self.core.noc_xy, core.noc_xy, self._t)
            self._at(land, lambda v, c=core: c.write_word(dst.addr, v), value)

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
        (``>= value``): blocked until the word matches, then one poll."""
        self._unrun = None
        yield from self._sync_to(self._t)
        word = self.core.read_word(sem_addr)
        if (word < value) if at_least else (word != value):
            def detail() -> str:
                return f"{call}(0x{sem_addr:x}, {value}): value is {self.core.read_word(sem_addr)}"

            yield from self._block(self.core.word_event(sem_addr, value, at_least=at_least), detail)
            self._stall(self.risc, "semaphore_wait", self._t, self.env.now)
            self._t = float(self.env.now)
        self._t += self._sem_poll

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
