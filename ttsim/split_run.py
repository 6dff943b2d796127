"""Finishing a program's run in two processes once its two halves of cores stop meeting.

Many programs (the pool and depthwise conv programs among them) share data between cores only at
the start (the weights multicast and its semaphores, the DRAM reads of weights and bias); after
that every core reads and writes its own L1. Once every kernel has started, at least
:data:`FIRST_STEPS` SimPy steps have run and a window of :data:`POLL_STEPS` steps has passed with
no byte on any NoC link or DRAM port and no semaphore update between cores, the run forks
two children. Each keeps the kernels of one half of the cores, drops the other half's pending
events and runs its half to the end; the parent waits. The parent takes the halves' results only
if they provably never met after the fork:

* neither child made a NoC transfer or semaphore update that touches a core of the other half or
  writes DRAM, nor resumed a kernel of the other half (such a child stops at once), nor left
  events pending once its own kernels had finished;
* on every NoC link and DRAM bank port, the cycles one child booked after the fork overlap none
  the other booked.

Then every booking is the one the serial run makes: a port calendar gives a transfer the earliest
start at which every port of its path is idle; the other half's bookings, disjoint from the chosen
interval, leave it idle and, adding occupancy only, cannot open an earlier one; by induction over
the serial order, every transfer of either half lands where it did alone. So every cycle, zone,
stall, CB statistic and L1 byte is the serial run's (tests/test_split_run.py compares them on every
program). In any other case (the check fails, a child fails, or the fork cannot happen) the parent,
whose state is still the fork-time state, goes on serially, so errors (deadlocks, the time guard)
are the serial run's too. The split never changes a result, only the wall time.
"""

from __future__ import annotations

import heapq
import itertools
import os
import pickle
import sys
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import simpy

from ttsim.cb import CBStats
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.noc import RoutePlan
from ttsim.device.profiler import KernelZone
from ttsim.kernel_api.base import KernelContext
from ttsim.kernel_api.compute import ComputeContext

XY = tuple[int, int]

FIRST_STEPS = 8192
"""SimPy steps before the first split attempt: a split costs a few hundredths of a second (fork,
L1 comparison, merge), so a run that ends sooner than this is not split (a scheduling policy of
the simulator, like the two below, not a cost of the device)."""
POLL_STEPS = 1024
"""SimPy steps of the quiet window before a split is tried; each failed attempt doubles it."""
L1_BLOCK = 1024
"""Granularity (bytes) at which a child sends back the L1 it changed."""
MAX_ATTEMPTS = 3
"""Split attempts per run; a program whose cores keep meeting (classic conv's weight multicast
per block) then runs serially, having lost at most the few steps up to each first crossing."""


@dataclass(frozen=True)
class ContextSummary:
    """What the profile reads of one kernel context once its kernel has finished."""

    core: XY
    start_time: float
    ends: dict[Risc, float]
    stalls: dict[Risc, dict[str, float]]
    busy: dict[Risc, float] | None
    """Per-thread busy cycles of a compute kernel; None for a data-movement kernel (whose busy
    time is its zone minus its stalls)."""
    trace: list[tuple[Risc, str, float, float]] | None


def summarize(context: KernelContext) -> ContextSummary:
    return ContextSummary(context.core.logical, context.start_time, context.zone_ends(),
                          {risc: dict(stalls) for risc, stalls in context.stalls.items()},
                          context.busy_cycles if isinstance(context, ComputeContext) else None,
                          context.trace)


@dataclass
class SplitOutcome:
    """The two halves' results, merged: the rest of the profile in the serial run's order."""

    summaries: list[ContextSummary]
    """One per kernel context, in the order the contexts started."""
    zones: list[KernelZone]


class _Crossed(Exception):
    """A child's half met the other half (the split would not be exact)."""


@dataclass
class _HalfResult:
    ok: bool
    reason: str = ""
    now: float = 0.0
    events: int = 0
    zones: list[KernelZone] | None = None
    summaries: dict[int, ContextSummary] | None = None
    cb_stats: dict[tuple[XY, int], CBStats] | None = None
    l1: dict[XY, tuple[np.ndarray, bytes]] | None = None
    """Per core: the indices of the L1 blocks of :data:`L1_BLOCK` bytes that changed after the
    fork, and their bytes."""
    ports: dict[tuple, tuple[list[float], list[float], float, int]] | None = None


def step_until_split(device: Device, live: dict[simpy.Process, KernelContext], processes: list[simpy.Process],
                     zones: list[KernelZone]) -> SplitOutcome | None:
    """Step the run (as ``env.step()`` does) until it has split and merged, returning the merged
    outcome, or until :data:`MAX_ATTEMPTS` split attempts failed (None: the caller steps on
    serially). SimPy's own signals (the end of the run, an empty schedule) and kernel errors
    pass through."""
    env = device.env
    noc = device.noc
    for _ in range(FIRST_STEPS - POLL_STEPS):
        env.step()
    window = POLL_STEPS
    for _ in range(MAX_ATTEMPTS):
        traffic = noc.shared_traffic()
        while True:
            for _ in range(window):
                env.step()
            now_traffic = noc.shared_traffic()
            if now_traffic == traffic and len(live) == len(processes):
                break
            traffic = now_traffic
        outcome = _split(device, live, zones)
        if outcome is not None:
            return outcome
        window *= 2
    return None


def _split(device: Device, live: dict[simpy.Process, KernelContext],
           zones: list[KernelZone]) -> SplitOutcome | None:
    cores = sorted({context.core.logical for context in live.values()}, key=lambda c: (c[1], c[0]))
    if len(cores) < 2 or not hasattr(os, "fork"):
        return None
    import signal  # only a split needs it (to kill its children if interrupted): not every run

    halves = (frozenset(cores[: len(cores) // 2]), frozenset(cores[len(cores) // 2:]))
    children = []
    sys.stdout.flush()
    sys.stderr.flush()
    for half in halves:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run this half, send its result, leave without any cleanup
            try:
                os.close(read_end)
                try:
                    result = _run_half(device, live, zones, half)
                    payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
                except BaseException as exc:  # noqa: BLE001 - any failure only means: do not merge
                    payload = pickle.dumps(_HalfResult(False, f"{type(exc).__name__}: {exc}"))
                with os.fdopen(write_end, "wb") as pipe:
                    pipe.write(payload)
            finally:  # never return into the parent's code, whatever happened (a closed pipe, ^C)
                os._exit(0)
        os.close(write_end)
        children.append((pid, read_end))
    results = []
    pending = [pid for pid, _ in children]
    try:
        for pid, read_end in children:
            with os.fdopen(read_end, "rb") as pipe:
                payload = pipe.read()
            os.waitpid(pid, 0)
            pending.remove(pid)
            try:
                results.append(pickle.loads(payload))
            except Exception:  # noqa: BLE001 - a child that died mid-write
                results.append(_HalfResult(False, "no result"))
    finally:  # interrupted (^C): no child outlives the wait
        for pid in pending:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if not all(r.ok for r in results) or not _disjoint(device, results):
        return None
    return _merge(device, live, zones, results)


def _owners(event: simpy.Event) -> set[object]:
    """The objects whose methods ``event`` calls when processed (processes it resumes, CBs it
    publishes to)."""
    return {getattr(callback, "__self__", None) for callback in event.callbacks or ()}


def _trap() -> Generator[None, object, None]:
    """Stands in for a kernel of the other half: resuming it fails the child."""
    yield
    raise _Crossed("a kernel of the other half would resume")


def _run_half(device: Device, live: dict[simpy.Process, KernelContext], zones: list[KernelZone],
              half: frozenset[XY]) -> _HalfResult:
    """In the child: drop the other half, run this half to its end, refusing every crossing."""
    env = device.env
    mine = {p for p, context in live.items() if context.core.logical in half}
    others = set(live) - mine
    other_cores = {context.core.logical for context in live.values()} - half
    theirs = others | {cb for xy in other_cores for cb in device.core(xy).cbs.values()}
    ours = mine | {cb for xy in half for cb in device.core(xy).cbs.values()}
    queue = env._queue  # SimPy's schedule of (time, priority, id, event)
    kept = []
    for entry in queue:
        owners = _owners(entry[3])
        if owners & theirs:
            if owners & ours:
                raise _Crossed("a pending event serves both halves")
        else:
            kept.append(entry)
    queue[:] = kept
    heapq.heapify(queue)
    for process in others:
        if process.is_alive:
            trap = _trap()
            next(trap)
            process._generator = trap
    _guard(device, {device.core(xy).noc_xy for xy in half})
    first_event = next(env._eid)
    l1_before = {xy: _nonzero_blocks(device.core(xy).l1.data) for xy in half}
    zones_before = len(zones)
    ports_before = {name: port.calendar() for name, port in device.noc.all_ports()}
    running = [sum(p.is_alive for p in mine)]

    def finished(_: simpy.Event) -> None:
        running[0] -= 1

    for process in mine:
        if process.is_alive:
            process.callbacks.append(finished)
    try:
        while running[0]:
            if not queue:
                raise _Crossed("this half stopped with kernels unfinished")
            env.step()
    except simpy.core.StopSimulation:  # the other half had finished before the fork
        pass
    if queue:
        raise _Crossed("events still pending after this half's kernels finished")
    for xy in half:  # the pushes not scheduled (ttsim/cb.py): this half's run passed them all
        for cb in device.core(xy).cbs.values():
            cb.apply_all_unscheduled()
    order = {context: i for i, context in enumerate(live.values())}
    return _HalfResult(
        True, now=env.now, events=next(env._eid) - first_event,
        zones=[zone for zone in zones[zones_before:] if zone.core in half],
        summaries={order[context]: summarize(context) for p, context in live.items() if p in mine},
        cb_stats={(xy, index): cb.stats for xy in half for index, cb in device.core(xy).cbs.items()},
        l1={xy: _changed_blocks(before, device.core(xy).l1.data) for xy, before in l1_before.items()},
        ports={name: (*calendar, port.busy_cycles, port.bytes_moved)
               for name, port in device.noc.all_ports()
               if (calendar := port.calendar()) != ports_before.get(name)})


def _blocks_of(data: np.ndarray) -> np.ndarray:
    """An L1 array as rows of :data:`L1_BLOCK` bytes (a view). Every preset's L1 is whole blocks; in a
    child, another size raises, and the run goes on serially."""
    return data.reshape(-1, L1_BLOCK)


def _words_of(data: np.ndarray) -> np.ndarray:
    """:func:`_blocks_of` as 64-bit words (a view): a block is all zeros, or equal to another,
    exactly when its words are, and a pass over words is several times faster than over bytes."""
    return _blocks_of(data).view(np.uint64)


def _nonzero_blocks(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The L1 blocks of ``data`` that hold a byte other than zero: their indices and a copy of
    them. Most of a core's L1 is zeros that nothing wrote (pages the parent never touched), so
    this snapshot reads the L1 once and copies a part of it, where a whole copy allocated and
    wrote the whole L1 again in each child (about 0.2 s of a split on op14)."""
    words = _words_of(data)
    nonzero = np.flatnonzero(words.any(axis=1))
    return nonzero, words[nonzero]


def _changed_blocks(before: tuple[np.ndarray, np.ndarray], after: np.ndarray) -> tuple[np.ndarray, bytes]:
    """The blocks of ``after`` that differ from the snapshot ``before`` (:func:`_nonzero_blocks`:
    every other block was zeros): their indices and bytes."""
    indices, saved = before
    words = _words_of(after)
    changed = words.any(axis=1)
    changed[indices] = (words[indices] != saved).any(axis=1)
    where = np.flatnonzero(changed)
    return where, _blocks_of(after)[where].tobytes()


def _guard(device: Device, own: set[XY]) -> None:
    """Make every NoC operation of this child that reaches the other half (or writes DRAM) stop it,
    and keep the link and DRAM bank calendars whole (no forgetting) for the disjointness check
    (a core's NIU ports serve its own half only: the guard sees to it)."""
    noc = device.noc
    banks = {bank.noc_xy for bank in device.dram.banks}
    write, multicast, atomic = noc.write, noc.multicast, noc.atomic
    read_planned, read_planned_many = noc.read_planned, noc.read_planned_many
    # a read's plan starts at the port its bytes leave from: an own core's NIU or a DRAM bank
    sources = {noc.niu(index, xy, "out") for index in (0, 1) for xy in own}
    sources.update(noc.port_at(("bank", xy)) for xy in banks)

    def crossed(what: str, xy: XY) -> None:
        raise _Crossed(f"{what} reaches {xy} outside this half")

    def checked_read_planned(plan: RoutePlan, nbytes: int, t: float) -> float:
        if plan[0][0] not in sources:
            raise _Crossed(f"a read from {plan[0][0].name} outside this half")
        return read_planned(plan, nbytes, t)

    def checked_read_planned_many(plan: RoutePlan, nbytes: int, times: list[float],
                                  last: float | None = None) -> tuple[float, float | None]:
        if plan[0][0] not in sources:  # (it may book without read_planned)
            raise _Crossed(f"a read from {plan[0][0].name} outside this half")
        return read_planned_many(plan, nbytes, times, last)

    def checked_write(index: int, src: XY, dst: XY, nbytes: int, t: float) -> float:
        if dst not in own:
            crossed("a write", dst)
        return write(index, src, dst, nbytes, t)

    def checked_multicast(index: int, src: XY, dests: list[XY], nbytes: int, t: float, linked: bool) -> float:
        for dst in dests:
            if dst not in own:
                crossed("a multicast", dst)
        return multicast(index, src, dests, nbytes, t, linked)

    def checked_atomic(index: int, src: XY, dst: XY, t: float) -> float:
        if dst not in own:
            crossed("a semaphore update", dst)
        return atomic(index, src, dst, t)

    noc.read_planned, noc.write, noc.multicast, noc.atomic = (checked_read_planned, checked_write,
                                                              checked_multicast, checked_atomic)
    noc.read_planned_many = checked_read_planned_many
    noc.keep_shared_history()


Intervals = tuple[list[float], list[float]]


def _minus(have: Intervals, base: Intervals) -> list[tuple[float, float]]:
    """The parts of the interval set ``have`` not in ``base`` (both sorted, disjoint)."""
    out = []
    base_pairs = list(zip(*base))
    j = 0
    for start, end in zip(*have):
        while j < len(base_pairs) and base_pairs[j][1] <= start:
            j += 1
        k, cursor = j, start
        while k < len(base_pairs) and base_pairs[k][0] < end:
            if base_pairs[k][0] > cursor:
                out.append((cursor, base_pairs[k][0]))
            cursor = max(cursor, base_pairs[k][1])
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Whether two sorted, disjoint interval lists share any stretch of positive length."""
    i = j = 0
    while i < len(a) and j < len(b):
        if min(a[i][1], b[j][1]) > max(a[i][0], b[j][0]):
            return True
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return False


def _disjoint(device: Device, results: list[_HalfResult]) -> bool:
    """Whether no port holds bookings of both halves made after the fork that overlap."""
    first, second = (r.ports or {} for r in results)
    for name in first.keys() & second.keys():
        base = device.noc.port_at(name).calendar()  # the fork-time calendar (empty if made after)
        if _overlap(_minus(first[name][:2], base), _minus(second[name][:2], base)):
            return False
    return True


def _merge(device: Device, live: dict[simpy.Process, KernelContext], zones: list[KernelZone],
           results: list[_HalfResult]) -> SplitOutcome:
    """Bring the parent to the state the serial run ends in and return the rest of the profile."""
    env = device.env
    noc = device.noc
    summaries: dict[int, ContextSummary] = {}
    merged_zones = list(zones)
    booked: dict[tuple, list[tuple[list[float], list[float], float, int]]] = {}
    for result in results:
        summaries.update(result.summaries or {})
        merged_zones.extend(result.zones or [])
        for (xy, index), stats in (result.cb_stats or {}).items():
            device.core(xy).cbs[index].stats = stats
        for xy, (blocks, data) in (result.l1 or {}).items():
            _blocks_of(device.core(xy).l1.data)[blocks] = np.frombuffer(data, dtype=np.uint8).reshape(-1, L1_BLOCK)
        for name, state in (result.ports or {}).items():
            booked.setdefault(name, []).append(state)
    for name, states in booked.items():
        port = noc.port_at(name)
        base_busy, base_moved = port.busy_cycles, port.bytes_moved
        pairs = sorted(pair for starts, ends, _, _ in states for pair in zip(starts, ends))
        calendar: list[list[float]] = []
        for start, end in pairs:
            if calendar and start <= calendar[-1][1]:
                calendar[-1][1] = max(calendar[-1][1], end)
            else:
                calendar.append([start, end])
        port.restore([s for s, _ in calendar], [e for _, e in calendar],
                     base_busy + sum(busy - base_busy for _, _, busy, _ in states),
                     base_moved + sum(moved - base_moved for _, _, _, moved in states))
    env._now = max(result.now for result in results)
    env._queue.clear()
    env._eid = itertools.count(next(env._eid) + sum(result.events for result in results))
    return SplitOutcome([summaries[i] for i in range(len(live))], merged_zones)
