"""Circular buffers with tt-metal semantics.

A CB is a FIFO of ``num_pages`` pages of ``page_size`` bytes at a real L1 address. It is two
coupled counters, as on hardware: pages pushed by the producer and pages popped (acked) by the
consumer.

* ``cb_reserve_back(n)`` blocks the producer until ``num_pages - (pushed - popped) >= n``; it
  moves no pointer.
* ``cb_push_back(n)`` publishes n pages and advances the write pointer.
* ``cb_wait_front(n)`` blocks the consumer until ``pushed - popped >= n`` (cumulative: waiting
  again without popping needs a larger n).
* ``cb_pop_front(n)`` frees n pages and advances the read pointer.

A request for more pages than the CB holds can never succeed and is rejected when it is made.
Blocking is through SimPy events, never polling. Each side keeps its waiters in a FIFO queue, as
SimPy's ``BaseResource`` keeps its put and get queues, because a side can have several waiters:
tt-metal's split-reader pool (tenstorrent/tt-metal
``ttnn/cpp/ttnn/operations/pool/generic/device/kernels/dataflow/reader_pool_2d.cpp``) has both
reader kernels wait on ``clear_value_cb``. Because a kernel's local clock may run ahead
of the SimPy clock (see :mod:`ttsim.kernel_api.base`), pushes and pops have a producer/consumer
side that changes at once and a visible side that another kernel sees at the right simulated
time (:meth:`publish_push`, :meth:`publish_pop`).

A kernel whose clock is ahead of SimPy's lets SimPy reach its time ``t`` before it looks at the
CB, and blocks if the pages are not there then. When no other kernel waits on that side, it
joins the queue at once as an *early waiter* (its pages, its event, and the schedule key
``(t, NORMAL, id)`` its timeout to ``t`` would have had, that id taken as the timeout would take
it) instead of scheduling that timeout: it then is exactly as if it had joined at that key. A
publication or another waiter arriving before the key sends the kernel to it (its event is
scheduled under that key with the value :data:`SYNC_POINT`, and the kernel looks at the CB there
as it would have); one arriving after finds it waiting as it would have been. Whether the key
has passed is a comparison with the schedule entry SimPy is processing
(:class:`ttsim.device.device.Environment`). It saves one SimPy event per blocked call.

A push (pop) published later than it is made, with no consumer (producer) waiting and no
trace, is not scheduled either: it takes the schedule key its timeout would have had (that id
taken as the timeout would take it) and waits in the CB's heap of unscheduled pushes (pops).
Processed, its timeout would only have changed the counters and statistics (nobody to wake),
and only a later look at the CB could see that: so every look that could (a kernel finding too
few pages, a publication, a report, the run's end) first applies the unscheduled publications
whose keys SimPy has passed, in key order. A look at one side's counter only (the free pages
see the pops alone, the available pages the pushes) applies them when one of that side has
passed, else leaves them to the next look: applied later, they are applied in the same key
order (a publication made since sorts after the entry SimPy is processing), so nothing
changes. A consumer (producer) about to wait schedules the pushes (pops) left under their
keys, so it is woken exactly as by the timeouts; while one waits, the publications that could
wake it are scheduled as before. It saves one SimPy event per publication nobody waits for.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Callable

import simpy
from simpy.events import NORMAL

from ttsim.device.core import SYNC_POINT
from ttsim.errors import CBRequestError
from ttsim.formats import DataFormat, tile_size_bytes
from ttsim.sim_events import timeouts_under_keys

_NEG_INF = float("-inf")
_AFTER_EVERY_KEY = (float("inf"),)
"""Sorts after every schedule key (a run never reaches time inf)."""


@dataclass(frozen=True)
class CBConfig:
    """Host-side description of one CB (what ``CreateCircularBuffer`` receives)."""

    index: int
    name: str
    page_size: int
    num_pages: int
    data_format: DataFormat
    globally_allocated: bool = False
    """True when the CB aliases a tensor buffer (``set_globally_allocated_address``)."""

    @property
    def total_size(self) -> int:
        return self.page_size * self.num_pages


@dataclass
class CBSideStats:
    """Blocking statistics of one side (producer or consumer) of a CB, in cycles."""

    blocked_cycles: float = 0.0


@dataclass
class CBStats:
    producer: CBSideStats = field(default_factory=CBSideStats)
    consumer: CBSideStats = field(default_factory=CBSideStats)
    pages_pushed: int = 0
    pages_popped: int = 0
    max_occupancy: int = 0


class CircularBuffer:
    """One CB on one core."""

    def __init__(self, env: simpy.Environment, config: CBConfig, address: int, core_name: str) -> None:
        self.env = env
        self.config = config
        self.name = config.name
        self.wait_front_stall = f"cb_wait_front:{config.name}"
        self.reserve_back_stall = f"cb_reserve_back:{config.name}"
        """The stall reasons of a blocked ``cb_wait_front`` / ``cb_reserve_back`` on this CB
        (docs/outputs.md), built once: a kernel may block on a CB once per page."""
        self.core_name = core_name
        self.address = address
        # per-CB constants, read on every tile access by the kernel APIs
        self.page_size = config.page_size
        self.num_pages = config.num_pages
        self.total_size = config.total_size
        self.data_format = DataFormat(config.data_format)
        self.tile_bytes = tile_size_bytes(self.data_format)
        """Bytes of one 32x32 tile in the CB's format."""
        self.is_bf16 = self.data_format is DataFormat.BFLOAT16
        self.limit = address + self.total_size
        self.fifo_wr_ptr = address
        self.fifo_rd_ptr = address
        self._pushed_by_producer = 0
        self._popped_by_consumer = 0
        self._visible_pushed = 0
        self._visible_popped = 0
        self._front_waiters: deque[tuple] = deque()
        """(pages, event) of every consumer blocked in cb_wait_front, in arrival order, or
        (pages, event, time, id) of an early waiter (then the only one; see the module docstring)."""
        self._back_waiters: deque[tuple] = deque()
        """As :attr:`_front_waiters`, for the producers blocked in cb_reserve_back."""
        self.waited = 0
        """Pages cb_wait_front has granted and cb_pop_front not yet freed (the kernel API's
        check that a pop frees only pages waited for)."""
        self.stats = CBStats()
        self.trace: Callable[[int, float], None] | None = None
        """When tracing: called with (occupancy in pages, cycle) whenever it changes."""
        self.push_callback = self.on_push_event
        self.pop_callback = self.on_pop_event
        """The callbacks of the timeouts that publish a push or a pop, bound once (the kernel
        API builds one such timeout per push and pop)."""
        self._unscheduled_pushes: list[tuple[float, int, int, int, float]] = []
        """The pushes published later than made that nobody waited for, not scheduled (see the
        module docstring): a heap of their schedule keys ``(time, NORMAL, id)``, each followed
        by its page count and its timeout's delay."""
        self._unscheduled_pops: list[tuple[float, int, int, int, float]] = []
        """As :attr:`_unscheduled_pushes`, for the pops."""

    # -- identity -------------------------------------------------------------------------
    def describe(self) -> str:
        return f"CB {self.config.index} '{self.config.name}'"

    # -- page addresses -------------------------------------------------------------------
    def _wrap(self, address: int) -> int:
        """Fold an address past either end of the FIFO back into it."""
        return self.address + (address - self.address) % self.total_size

    def front_page_address(self, index: int) -> int:
        """L1 address of page ``index`` counted from the read pointer (the consumer's view)."""
        address = self.fifo_rd_ptr + index * self.page_size
        return address if self.address <= address < self.limit else self._wrap(address)

    def back_page_address(self, index: int) -> int:
        """L1 address of page ``index`` counted from the write pointer (the producer's view)."""
        address = self.fifo_wr_ptr + index * self.page_size
        return address if self.address <= address < self.limit else self._wrap(address)

    # -- checks ---------------------------------------------------------------------------
    def check_request(self, n: int, op: str, kernel: str) -> None:
        """Reject a request that can never be satisfied, naming kernel, core and CB."""
        if n <= 0 or n > self.num_pages:
            raise CBRequestError(
                f"kernel '{kernel}' on core {self.core_name}: {op}({self.describe()}, {n}) asks for "
                f"{n} pages but the CB holds {self.num_pages} pages of {self.page_size} B"
            )

    # -- producer side --------------------------------------------------------------------
    def free_pages(self) -> int:
        """Free pages as the producer sees them. The unscheduled publications SimPy has passed
        are applied first when a pop is among them, that is when the earliest pop (the heap's
        head) is (see the module docstring)."""
        pops = self._unscheduled_pops
        if pops and pops[0] < self.env.current:  # type: ignore[attr-defined]
            self.apply_unscheduled()
        return self.num_pages - (self._pushed_by_producer - self._visible_popped)

    def reserve_event(self, n: int) -> simpy.Event:
        """An event that fires once ``n`` pages are free (the producer blocks on it)."""
        event = self.env.event()
        if self._unscheduled_pops:
            self.apply_unscheduled()
            self.schedule_unscheduled(False)
        enqueue(self.env, self._back_waiters, n, event)
        return event

    def reserve_detail(self, n: int) -> str:
        """What a producer blocked in ``cb_reserve_back(n)`` waits for (deadlock reports)."""
        return f"cb_reserve_back({self.describe()}, {n}): {self.free_pages()} of {self.num_pages} pages free"

    def push(self, n: int) -> None:
        """Producer side of ``cb_push_back``: advance the write pointer."""
        self._pushed_by_producer += n
        self.fifo_wr_ptr += n * self.page_size
        if self.fifo_wr_ptr >= self.limit:
            self.fifo_wr_ptr -= self.total_size

    def publish_push(self, n: int) -> None:
        """Make n pushed pages visible to the consumer (at the producer's time)."""
        if self._unscheduled_pushes or self._unscheduled_pops:  # those before this one first
            self.apply_unscheduled()
        self._visible_pushed += n
        self.stats.pages_pushed += n
        occupancy = self._visible_pushed - self._visible_popped
        if occupancy > self.stats.max_occupancy:
            self.stats.max_occupancy = occupancy
        if self.trace is not None:
            self.trace(occupancy, self.env.now)
        if self._front_waiters:  # available_pages(), inline
            _wake(self.env, self._front_waiters, self._visible_pushed - self._popped_by_consumer)

    def on_push_event(self, event: simpy.Event) -> None:
        """Callback of the timeout that publishes a push; its value is the page count
        (:meth:`publish_push` inline: once per push published later than it is made; the wake is
        the last thing the event does, see :func:`_wake_last`)."""
        if self._unscheduled_pushes or self._unscheduled_pops:  # those before this one first
            self.apply_unscheduled()
        self._visible_pushed += event._value
        stats = self.stats
        stats.pages_pushed += event._value
        occupancy = self._visible_pushed - self._visible_popped
        if occupancy > stats.max_occupancy:
            stats.max_occupancy = occupancy
        if self.trace is not None:
            self.trace(occupancy, self.env.now)
        if self._front_waiters:
            _wake_last(self.env, self._front_waiters, self._visible_pushed - self._popped_by_consumer)

    # -- consumer side --------------------------------------------------------------------
    def available_pages(self) -> int:
        """Pages the consumer may read (the unscheduled publications SimPy has passed applied
        first when a push is among them, as :meth:`free_pages` does for pops)."""
        pushes = self._unscheduled_pushes
        if pushes and pushes[0] < self.env.current:  # type: ignore[attr-defined]
            self.apply_unscheduled()
        return self._visible_pushed - self._popped_by_consumer

    def front_event(self, n: int) -> simpy.Event:
        """An event that fires once ``n`` pages are available (the consumer blocks on it)."""
        event = self.env.event()
        if self._unscheduled_pushes:
            self.apply_unscheduled()
            self.schedule_unscheduled(True)
        enqueue(self.env, self._front_waiters, n, event)
        return event

    def wait_detail(self, n: int) -> str:
        """What a consumer blocked in ``cb_wait_front(n)`` waits for (deadlock reports)."""
        return (f"cb_wait_front({self.describe()}, {n}): {self.available_pages()} of "
                f"{self.num_pages} pages available")

    def pop(self, n: int) -> None:
        """Consumer side of ``cb_pop_front``: advance the read pointer."""
        if n > self.available_pages():
            raise self.overpop_error(n)
        self._popped_by_consumer += n
        self.fifo_rd_ptr += n * self.page_size
        if self.fifo_rd_ptr >= self.limit:
            self.fifo_rd_ptr -= self.total_size

    def overpop_error(self, n: int) -> CBRequestError:
        """The error for popping ``n`` pages, more than are available."""
        return CBRequestError(
            f"core {self.core_name}: cb_pop_front({self.describe()}, {n}) pops more pages than "
            f"the {self.available_pages()} available")

    def publish_pop(self, n: int) -> None:
        """Make n popped pages free for the producer (at the consumer's time)."""
        if self._unscheduled_pushes or self._unscheduled_pops:  # those before this one first
            self.apply_unscheduled()
        self._visible_popped += n
        self.stats.pages_popped += n
        if self.trace is not None:
            self.trace(self._visible_pushed - self._visible_popped, self.env.now)
        if self._back_waiters:  # free_pages(), inline
            free = self.num_pages - (self._pushed_by_producer - self._visible_popped)
            _wake(self.env, self._back_waiters, free)

    def on_pop_event(self, event: simpy.Event) -> None:
        """Callback of the timeout that publishes a pop; its value is the page count
        (:meth:`publish_pop` inline, as :meth:`on_push_event`)."""
        if self._unscheduled_pushes or self._unscheduled_pops:  # those before this one first
            self.apply_unscheduled()
        self._visible_popped += event._value
        self.stats.pages_popped += event._value
        if self.trace is not None:
            self.trace(self._visible_pushed - self._visible_popped, self.env.now)
        if self._back_waiters:
            _wake_last(self.env, self._back_waiters,
                       self.num_pages - (self._pushed_by_producer - self._visible_popped))

    def occupancy(self) -> int:
        """Pages pushed and not yet popped, as seen from outside."""
        if self._unscheduled_pushes or self._unscheduled_pops:
            self.apply_unscheduled()
        return self._visible_pushed - self._visible_popped

    # -- unscheduled publications (see the module docstring) --------------------------------------
    def defer(self, n: int, delay: float, push: bool) -> None:
        """Publish a push (or pop) of ``n`` pages ``delay`` cycles from now without scheduling it
        (nobody waits for it): under the key ``env.timeout(delay, n)`` would have, its id taken
        now. The entry's form is the contract of the heaps: the kernel API's pushes and pops
        make it inline (their hot path), and tests/test_cb.py drives the heaps through here."""
        env = self.env
        heappush(self._unscheduled_pushes if push else self._unscheduled_pops,
                 (env._now + delay, NORMAL, next(env._eid), n, delay))

    def apply_unscheduled(self, before: tuple | None = None) -> None:
        """Apply, in key order, the unscheduled publications whose keys sort before ``before``
        (by default the entry SimPy is processing: those it has passed), each as its timeout's
        :meth:`on_push_event` or :meth:`on_pop_event` would have (nobody waited: no one to wake,
        and no trace)."""
        pushes, pops = self._unscheduled_pushes, self._unscheduled_pops
        if before is None:
            before = self.env.current  # type: ignore[attr-defined]
        stats = self.stats
        while True:  # the earlier of the two heads, while it is before ``before``
            if pushes and pushes[0] < before and not (pops and pops[0] < pushes[0]):
                self._visible_pushed += (n := heappop(pushes)[3])
                stats.pages_pushed += n
                occupancy = self._visible_pushed - self._visible_popped
                if occupancy > stats.max_occupancy:
                    stats.max_occupancy = occupancy
            elif pops and pops[0] < before:
                self._visible_popped += (n := heappop(pops)[3])
                stats.pages_popped += n
            else:
                return

    def schedule_unscheduled(self, push: bool) -> None:
        """Schedule the unscheduled pushes (or pops; none passed: :meth:`apply_unscheduled`
        first), each as the timeout it stands for, under its key: a kernel is about to wait for
        them."""
        if push:
            timeouts_under_keys(self.env, self._unscheduled_pushes, self.push_callback)
            self._unscheduled_pushes = []
        else:
            timeouts_under_keys(self.env, self._unscheduled_pops, self.pop_callback)
            self._unscheduled_pops = []

    def apply_all_unscheduled(self) -> float:
        """Apply every unscheduled publication, in key order (the run ended or deadlocked: SimPy
        would have processed them all); returns the last one's time (-inf if there was none)."""
        last = max((entry[0] for entry in (*self._unscheduled_pushes, *self._unscheduled_pops)),
                   default=_NEG_INF)
        self.apply_unscheduled(_AFTER_EVERY_KEY)
        return last

    def sync_points(self) -> list[float]:
        """The times of the sync points of this CB's early waiters (see the module docstring)."""
        return [entry[2] for waiters in (self._front_waiters, self._back_waiters)
                for entry in waiters if len(entry) == 4]


def _passed(env: simpy.Environment, time: float, eid: int) -> bool:
    """True when SimPy has processed the schedule key ``(time, NORMAL, eid)``: it sorts before
    the entry being processed (the ``current`` entry of :class:`ttsim.device.device.Environment`)."""
    return (time, NORMAL, eid) < env.current  # type: ignore[attr-defined]


def enqueue(env: simpy.Environment, waiters: deque[tuple], n: int, event: simpy.Event) -> None:
    """Queue a waiter for ``n`` pages behind the others. An early waiter there (only ever alone)
    whose sync point has passed joined before this one: it stays, as a plain waiter; one whose
    sync point is still ahead would join after: it is sent to its sync point to do so."""
    if waiters and len(waiters[0]) == 4:
        need, early, time, eid = waiters[0]
        if _passed(env, time, eid):
            waiters[0] = (need, early)
        else:
            waiters.popleft()
            early._ok = True
            early._value = SYNC_POINT
            heappush(env._queue, (time, NORMAL, eid, early))
    waiters.append((n, event))


def _wake(env: simpy.Environment, waiters: deque[tuple], pages: int) -> None:
    """Succeed, in arrival order, every waiter that asked for at most ``pages`` pages; the others
    keep their place in the queue.

    Each event succeeds as ``event.succeed()`` makes it (ok, value None, queued now at NORMAL
    priority under the next event id), without that call's two Python frames (once per blocked
    CB call): a waiter's event is new and only triggered here.

    Unlike a SimPy ``Container``, which stops at the first request it cannot serve, a satisfied
    waiter behind an unsatisfied one is woken too: waiting takes no pages (each kernel polls the
    shared counters on its own RISC), so a small wait never queues behind a larger one.

    An early waiter (see the module docstring) whose sync point is still ahead is sent there
    instead: its event is scheduled under that key, with the value :data:`SYNC_POINT`.
    """
    for _ in range(len(waiters)):
        entry = waiters.popleft()
        if pages >= entry[0]:
            event = entry[1]
            event._ok = True
            # an early waiter whose sync point is ahead (not _passed, inline: once per wake)
            if len(entry) == 4 and not (entry[2], NORMAL, entry[3]) < env.current:  # type: ignore
                event._value = SYNC_POINT
                heappush(env._queue, (entry[2], NORMAL, entry[3], event))
            else:
                event._value = None
                heappush(env._queue, (env._now, NORMAL, next(env._eid), event))
        else:
            waiters.append(entry)


def _wake_last(env: simpy.Environment, waiters: deque[tuple], pages: int) -> None:
    """:func:`_wake`, as the last thing a publication timeout's processing does (its one
    callback). When it wakes a single waiter and no other entry is scheduled at this time, that
    waiter's event (now, NORMAL, the next id) is the next one SimPy would process, and nothing
    happens in between: it is processed at once, as :class:`ttsim.device.device.Environment`'s
    step would (the entry it processes recorded, its callbacks run), without its trip through
    the schedule (once per blocked CB call)."""
    if len(waiters) == 1:
        entry = waiters[0]
        # a plain waiter, or an early one whose sync point has passed (_passed, inline)
        if pages >= entry[0] and (len(entry) == 2 or (entry[2], NORMAL, entry[3]) < env.current):  # type: ignore
            waiters.popleft()
            event = entry[1]
            event._ok = True
            event._value = None
            now = env._now
            key = (now, NORMAL, next(env._eid), event)
            queue = env._queue
            if queue and queue[0][0] <= now:  # another entry at this time goes first
                heappush(queue, key)
                return
            env.current = key  # type: ignore[attr-defined]
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            return
    _wake(env, waiters, pages)
