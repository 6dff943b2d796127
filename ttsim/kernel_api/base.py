"""What every kernel context shares: its clock, its arguments and the circular-buffer calls.

Each kernel keeps a local clock ``_t`` (device cycles) that may run ahead of the SimPy clock:
costs of calls that touch nobody else (issuing a NoC read, a barrier whose completion time is
already known, compute work) only advance ``_t``. The kernel synchronises with SimPy only when
it must observe another kernel (blocking CB and semaphore calls); pushes and pops become
visible to other kernels at the local time through scheduled events (kept unscheduled under
the same keys while nobody waits for them: ttsim/cb.py). This keeps at most one SimPy event per
interaction rather than per call, which is what makes whole ops simulate in seconds.
A blocking CB call that finds its pages missing and is alone on its side of the CB waits as an
early waiter (ttsim/cb.py) instead of first scheduling the timeout to its local time.

Porting mistakes fail loudly (:class:`~ttsim.errors.KernelAPIError`) with cheap checks only:
a blocking call is a plain method that records itself as not yet run and returns a generator
that clears the record on its first step, so a call written without ``yield from`` is caught at
the kernel's next blocking, CB, semaphore or barrier call, or at its end; a push needs free
pages and a pop needs pages waited for.
"""

from __future__ import annotations

from collections import defaultdict
from heapq import heappush
from typing import Any, Callable, Generator, Mapping

import simpy
from simpy.events import NORMAL, Event

from ttsim.cb import SYNC_POINT, CircularBuffer, enqueue
from ttsim.device.core import Risc, TensixCore
from ttsim.device.device import Device
from ttsim.errors import CBRequestError, ConfigurationError, KernelAPIError, SimulationLimitError
from ttsim.sim_events import scheduled_timeout, waiter_event

KernelGen = Generator[simpy.Event, Any, None]

_new_event = Event.__new__
"""What :func:`ttsim.sim_events.waiter_event` calls: an early waiter's event is made inline (once
per blocked CB call of a kernel ahead of SimPy, the hot case: one frame less)."""


def _missing_cb_error(where: str, cb_id: int) -> CBRequestError:
    """The error for a CB index the kernel's core does not have."""
    return CBRequestError(f"{where}: no circular buffer {cb_id} on this core")


class _CBTable(dict):
    """The CBs one kernel sees, by index; looking up a missing index raises the API's error.

    :meth:`KernelContext.cb`, which kernels call, is this dict's own ``__getitem__`` (no Python
    frame per lookup) and the error comes from ``__missing__``. The API's own lookups use the
    plain dict :attr:`KernelContext._cbs` instead (see there).
    """

    where = ""
    """The kernel, for the error (:attr:`KernelContext.where`)."""

    def __missing__(self, cb_id: int) -> CircularBuffer:
        raise _missing_cb_error(self.where, cb_id)


class KernelContext:
    """State and API common to data-movement and compute kernels."""

    def __init__(self, device: Device, core: TensixCore, kernel_name: str, risc: Risc,
                 compile_args: Mapping[str, Any], runtime_args: Mapping[str, Any]) -> None:
        self.device = device
        self.core = core
        self.env = device.env
        self.spec = device.spec
        self.kernel_name = kernel_name
        self.risc = risc
        self._compile_args = dict(compile_args)
        self._runtime_args = dict(runtime_args)
        self._t = float(self.env.now)
        self.start_time = self._t
        self.blocked_on: Callable[[], str] | None = None
        """What the kernel is blocked in, described when called (deadlock reports); None when it
        is not blocked."""
        self._blocked_cb: tuple[Callable[[int], str], int] = (str, 0)
        """The detail method (``wait_detail`` or ``reserve_detail``) of the CB a blocked CB call
        waits on, and its page count: :meth:`_cb_detail` describes the call from them."""
        self._cb_detail_bound = self._cb_detail
        """:meth:`_cb_detail`, bound once: a blocked CB call sets it as :attr:`blocked_on` with
        :attr:`_blocked_cb` (once per block, cheaper than a ``functools.partial`` each time)."""
        self.deadline = float("inf")
        """Simulated-time guard set by the launcher: passing it raises SimulationLimitError."""
        self.stalls: dict[Risc, dict[str, float]] = {r: defaultdict(float) for r in self.riscs()}
        """Cycles each RISC of this kernel spent blocked, by stall reason (docs/outputs.md)."""
        self.trace: list[tuple] | None = None
        """When tracing: (risc, name, start, end) of every stall and busy op group."""
        self._producer_risc = risc
        self._consumer_risc = risc
        self._busy_producer = 0.0
        """Busy cycles of the producer side's thread: the CB calls on it (cb_reserve_back,
        cb_push_back) add their overhead here, a compute kernel its other pack work too (its pack
        thread's total). A data-movement kernel's busy time is its zone minus its stalls, so
        its totals go unread: a plain addition per call, cheaper than asking whether to keep it."""
        self._busy_consumer = 0.0
        """As :attr:`_busy_producer`, for the consumer side (cb_wait_front, cb_pop_front; a compute
        kernel's unpack thread)."""
        risc_spec = self.spec.risc
        self._cb_check = risc_spec.cb_check_cycles.value
        self._cb_update = risc_spec.cb_update_cycles.value
        self._cb_poll = risc_spec.cb_poll_cycles.value
        self._cbs: dict[int, CircularBuffer] = dict(core.cbs)
        """The core's CBs (the launcher places them before any kernel starts), as a plain dict
        for the API's own lookups, several per call: a subscript of a dict subclass goes through
        the subclass's ``__getitem__`` slot (twice a dict's), a call of :meth:`cb` through a
        method lookup CPython cannot specialize (the instance attribute shadows the class's), so
        each costs a few times this dict's subscript. A missing index raises
        the error of :meth:`_no_cb_error` (the lookups catch the KeyError: free when nothing is
        raised)."""
        table = _CBTable(core.cbs)
        table.where = self.where
        self.cb = table.__getitem__  # type: ignore[method-assign]  # see _CBTable
        self.get_local_cb_interface = self.cb  # type: ignore[method-assign]  # the same lookup
        self._unrun: tuple[str, int, int] | None = None
        """(call, CB id or semaphore address, count) of the blocking call whose generator has
        not started yet; at most one, since the next blocking call checks it."""

    # -- identity and arguments -------------------------------------------------------------
    @property
    def where(self) -> str:
        return f"kernel '{self.kernel_name}' on core {self.core.name} {self.risc.value}"

    def get_compile_time_arg_val(self, name: str) -> Any:
        """A compile-time argument by name."""
        try:
            return self._compile_args[name]
        except KeyError:
            raise ConfigurationError(f"{self.where}: no compile-time argument {name!r}") from None

    def get_arg_val(self, name: str) -> Any:
        """A runtime argument by name."""
        try:
            return self._runtime_args[name]
        except KeyError:
            raise ConfigurationError(f"{self.where}: no runtime argument {name!r}") from None

    def riscs(self) -> tuple[Risc, ...]:
        """The RISCs this kernel runs on."""
        return (self.risc,)

    @property
    def now(self) -> float:
        """This kernel's local clock in device cycles."""
        return self._t

    # -- clock helpers -----------------------------------------------------------------------
    def _check_deadline(self, t: float) -> None:
        """Stop a kernel whose clock passed the simulated-time guard (a runaway loop)."""
        if t > self.deadline:
            raise SimulationLimitError(
                f"{self.where}: still running at cycle {t:,.0f}, past the simulated-time guard "
                f"({self.deadline:,.0f}); is the kernel looping forever?")

    def _sync_to(self, t: float) -> KernelGen:
        """Let the SimPy clock reach ``t`` (one timeout, built as :meth:`cb_push_back` builds its
        publication, when ``t`` is later than now)."""
        if t > self.deadline:
            self._check_deadline(t)
        env = self.env
        now = env._now
        if t > now:
            yield scheduled_timeout(env, t - now)

    def _cb_detail(self) -> str:
        """What the blocked CB call of :attr:`_blocked_cb` waits for (its :attr:`blocked_on`)."""
        detail, n = self._blocked_cb
        return detail(n)

    def _block(self, event: simpy.Event, detail: Callable[[], str]) -> KernelGen:
        """Wait for ``event``. ``detail`` describes the wait when called (at deadlock-report
        time, so it is current)."""
        self.blocked_on = detail
        yield event
        self.blocked_on = None

    def _stall(self, risc: Risc, reason: str, start: float, end: float) -> None:
        """Account [start, end) of ``risc`` as blocked for ``reason``."""
        if end > start:
            self.stalls[risc][reason] += end - start
            if self.trace is not None:
                self.trace.append((risc, reason, start, end))

    # -- blocking calls ------------------------------------------------------------------------
    # A blocking call is a plain method that checks no earlier call is still unrun, records
    # itself in ``_unrun`` and returns its generator, whose first step clears the record (inline
    # in each call: this runs once per CB wait, so it stays two attribute accesses and a tuple).
    def _describe_call(self, call: str, target: int, n: int) -> str:
        if call in ("noc_semaphore_wait", "noc_semaphore_wait_min"):
            return f"{call}(0x{target:x}, {n})"
        cb = self.core.cbs.get(target)
        return f"{call}({cb.describe() if cb is not None else target}, {n})"

    def _unrun_error(self, next_call: str) -> KernelAPIError:
        """The error for the unrun blocking call, found when the kernel reached ``next_call``."""
        assert self._unrun is not None
        call = self._unrun[0]
        return KernelAPIError(
            f"{self.where}: {self._describe_call(*self._unrun)} never ran before {next_call}: "
            f"blocking calls are generators, call it as 'yield from ctx.{call}(...)'")

    def yielded_error(self) -> KernelAPIError | None:
        """The error for a blocking call handed to SimPy with ``yield`` instead of ``yield from``
        (SimPy rejects the generator it received); None if no blocking call is pending."""
        if self._unrun is None:
            return None
        call = self._unrun[0]
        return KernelAPIError(
            f"{self.where}: {self._describe_call(*self._unrun)} was yielded to the simulator: "
            f"blocking calls are generators, call it as 'yield from ctx.{call}(...)', not 'yield'")

    # -- circular buffers ------------------------------------------------------------------------
    def cb(self, cb_id: int) -> CircularBuffer:
        """The CB with index ``cb_id`` (replaced per instance by its table's lookup: _CBTable)."""
        try:
            return self._cbs[cb_id]
        except KeyError:
            raise self._no_cb_error(cb_id) from None

    def _no_cb_error(self, *cb_ids: int) -> CBRequestError:
        """The error for the first of ``cb_ids`` this core has no CB for (a lookup of them in
        :attr:`_cbs` raised KeyError)."""
        return _missing_cb_error(self.where, next(i for i in cb_ids if i not in self._cbs))

    def get_local_cb_interface(self, cb_id: int) -> CircularBuffer:
        """The CB's local interface, whose ``fifo_rd_ptr`` / ``fifo_wr_ptr`` kernels may move by
        hand (as tt-metal's conv compute does for its partials). Replaced per instance by the
        CB table's lookup, as :meth:`cb` is (a pool kernel asks once per output stick)."""
        return self.cb(cb_id)

    def get_write_ptr(self, cb_id: int) -> int:
        """L1 address where the producer writes next (``get_write_ptr``)."""
        try:
            return self._cbs[cb_id].fifo_wr_ptr
        except KeyError:
            raise self._no_cb_error(cb_id) from None

    def get_read_ptr(self, cb_id: int) -> int:
        """L1 address of the front page (``get_read_ptr``)."""
        try:
            return self._cbs[cb_id].fifo_rd_ptr
        except KeyError:
            raise self._no_cb_error(cb_id) from None

    def _reserve(self, cb_id: int, n: int) -> KernelGen:
        """The generator ``cb_reserve_back`` returns: the producer waits for ``n`` free pages
        from its local clock ``_t`` and advances ``_t`` to the resume time."""
        self._unrun = None
        try:
            cb = self._cbs[cb_id]
        except KeyError:
            raise self._no_cb_error(cb_id) from None
        if n <= 0 or n > cb.num_pages:
            cb.check_request(n, "cb_reserve_back", self.kernel_name)
        t = self._t + self._cb_check
        self._busy_producer += self._cb_check
        # free space only grows while the producer waits (free_pages() inline: the hot path; the
        # method applies the unscheduled pops SimPy has passed, ttsim/cb.py)
        if (cb.num_pages - (cb._pushed_by_producer - cb._visible_popped) >= n
                or cb._unscheduled_pops and cb.free_pages() >= n):
            self._t = t
            return
        # _sync_to(t) and _block, inline (one generator level less on every resume); the
        # timeout and the event are built as cb_push_back builds its publication (see there)
        if t > self.deadline:
            self._check_deadline(t)
        env = self.env
        now = env._now
        waiters = cb._back_waiters
        woken = False
        if t > now:
            if waiters:  # others wait for space: sync to t, then queue behind them
                yield scheduled_timeout(env, t - now)
            else:  # wait as an early waiter from the sync point t on (ttsim/cb.py): no timeout
                event = _new_event(Event)  # waiter_event(env), inline (once per early wait)
                event.env, event.callbacks = env, []
                if cb._unscheduled_pops:  # (none passed: applied above) a producer waits for them
                    cb.schedule_unscheduled(False)
                waiters.append((n, event, now + (t - now), next(env._eid)))
                self._blocked_cb = (cb.reserve_detail, n)
                self.blocked_on = self._cb_detail_bound
                woken = (yield event) is not SYNC_POINT  # else: at the sync point, looking
                self.blocked_on = None
        if not woken:
            if (cb.num_pages - (cb._pushed_by_producer - cb._visible_popped) >= n
                    or cb._unscheduled_pops and cb.free_pages() >= n):
                self._t = t
                return
            self._blocked_cb = (cb.reserve_detail, n)  # no closure: cb and n stay plain locals
            self.blocked_on = self._cb_detail_bound
            event = waiter_event(env)  # cb.reserve_event(n) without env.event()'s frames
            if cb._unscheduled_pops:  # (none passed: applied above) a producer waits for them
                cb.schedule_unscheduled(False)
            enqueue(env, waiters, n, event)
            yield event
            self.blocked_on = None
        now = env._now  # env.now without the property call (up to once per CB wait)
        cb.stats.producer.blocked_cycles += now - t
        if self.trace is None:  # _stall, inline (once per blocked reserve)
            if now > t:
                self.stalls[self._producer_risc][cb.reserve_back_stall] += now - t
        else:
            self._stall(self._producer_risc, cb.reserve_back_stall, t, now)
        self._busy_producer += self._cb_poll
        self._t = now + self._cb_poll

    def _wait_front(self, cb_id: int, n: int) -> KernelGen:
        """The generator ``cb_wait_front`` returns: the consumer waits for ``n`` available pages
        from its local clock ``_t`` (unpack's, in a compute kernel) and advances ``_t`` to the
        resume time."""
        self._unrun = None
        try:
            cb = self._cbs[cb_id]
        except KeyError:
            raise self._no_cb_error(cb_id) from None
        if n <= 0 or n > cb.num_pages:
            cb.check_request(n, "cb_wait_front", self.kernel_name)
        if n > cb.waited:  # cumulative: the pages granted once this returns
            cb.waited = n
        t = self._t + self._cb_check
        self._busy_consumer += self._cb_check
        # available pages only grow while the consumer waits (available_pages() inline; the
        # method applies the unscheduled pushes SimPy has passed, ttsim/cb.py, when its head has:
        # that test inline too, as a consumer ahead of SimPy mostly finds it has not)
        if (cb._visible_pushed - cb._popped_by_consumer >= n
                or cb._unscheduled_pushes and cb._unscheduled_pushes[0] < self.env.current
                and cb.available_pages() >= n):
            self._t = t
            return
        # _sync_to(t) and _block, inline, as in _reserve (an early waiter when nobody else waits)
        if t > self.deadline:
            self._check_deadline(t)
        env = self.env
        now = env._now
        waiters = cb._front_waiters
        woken = False
        if t > now:
            if waiters:
                yield scheduled_timeout(env, t - now)
            else:
                event = _new_event(Event)  # waiter_event(env), inline (once per early wait)
                event.env, event.callbacks = env, []
                if cb._unscheduled_pushes:  # (none passed: applied above) a consumer waits for them
                    cb.schedule_unscheduled(True)
                waiters.append((n, event, now + (t - now), next(env._eid)))
                self._blocked_cb = (cb.wait_detail, n)
                self.blocked_on = self._cb_detail_bound
                woken = (yield event) is not SYNC_POINT
                self.blocked_on = None
        if not woken:
            if (cb._visible_pushed - cb._popped_by_consumer >= n
                    or cb._unscheduled_pushes and cb.available_pages() >= n):
                self._t = t
                return
            self._blocked_cb = (cb.wait_detail, n)  # no closure: cb and n stay plain locals
            self.blocked_on = self._cb_detail_bound
            event = waiter_event(env)  # cb.front_event(n), likewise
            if cb._unscheduled_pushes:  # (none passed: applied above) a consumer waits for them
                cb.schedule_unscheduled(True)
            enqueue(env, waiters, n, event)
            yield event
            self.blocked_on = None
        now = env._now  # env.now without the property call (up to once per CB wait)
        cb.stats.consumer.blocked_cycles += now - t
        if self.trace is None:  # _stall, inline (once per blocked wait)
            if now > t:
                self.stalls[self._consumer_risc][cb.wait_front_stall] += now - t
        else:
            self._stall(self._consumer_risc, cb.wait_front_stall, t, now)
        self._busy_consumer += self._cb_poll
        self._t = now + self._cb_poll

    def cb_push_back(self, cb_id: int, n: int) -> None:
        """Publish ``n`` pages at the producer's clock (a data-movement kernel's ``_t``; a compute
        kernel's pack thread has its own version, :meth:`ComputeContext.cb_push_back`).

        The pushed pages must be free. They need not have been reserved: tt-metal kernels push
        into a CB they know is empty without reserving (``reader_pool_2d.cpp`` does so for
        ``clear_value_cb``), but a push beyond the free pages overwrites pages not yet popped.

        One Python frame per push, the checks inline: a helper called by both context types
        would cost a frame more, and its attribute reads of ``self`` would alternate between
        two classes (one specialization each in CPython 3.11, so either misses every other call).
        """
        try:
            cb = self._cbs[cb_id]
        except KeyError:
            raise self._no_cb_error(cb_id) from None
        if n <= 0 or n > cb.num_pages:
            cb.check_request(n, "cb_push_back", self.kernel_name)
        if self._unrun is not None:
            raise self._unrun_error(f"cb_push_back({cb.describe()}, {n})")
        # free_pages() inline; the method applies the passed unscheduled pops (ttsim/cb.py)
        if n > cb.num_pages - (cb._pushed_by_producer - cb._visible_popped) and n > cb.free_pages():
            raise self._overpush_error(cb, cb_id, n)
        cb._pushed_by_producer += n  # cb.push(n), inline (once per push): the write pointer
        wr_ptr = cb.fifo_wr_ptr + n * cb.page_size
        cb.fifo_wr_ptr = wr_ptr if wr_ptr < cb.limit else wr_ptr - cb.total_size
        t = self._t + self._cb_update
        self._busy_producer += self._cb_update
        if t > self.deadline:
            self._check_deadline(t)
        # A CB publication at t: now, or a timeout carrying n whose callback publishes (one SimPy
        # event, no closure). The timeout is env.timeout(t - now, n) without the Python frames of
        # Timeout.__init__ and Environment.schedule (once per push and pop): the same Timeout,
        # queued under the key schedule gives it, (now + delay, NORMAL, next event id);
        # ttsim/split_run.py reads that queue too. A publication nobody waits for (and no trace
        # follows) is not scheduled: the CB keeps it under that key (ttsim/cb.py).
        env = self.env
        now = env._now
        if t <= now:
            cb.publish_push(n)
        elif cb._front_waiters or cb.trace is not None:
            scheduled_timeout(env, t - now, n, [cb.push_callback])
        else:  # cb.defer(n, t - now, True), inline (once per push nobody waits for)
            heappush(cb._unscheduled_pushes, (now + (t - now), NORMAL, next(env._eid), n, t - now))
        self._t = t

    def _overpush_error(self, cb: CircularBuffer, cb_id: int, n: int) -> KernelAPIError:
        """The error for pushing ``n`` pages into ``cb`` (index ``cb_id``) with fewer free."""
        return KernelAPIError(
            f"{self.where}: cb_push_back({cb.describe()}, {n}) pushes {n} pages but only "
            f"{cb.free_pages()} of its {cb.num_pages} pages are free, so it would overwrite pages "
            f"not yet popped: reserve them first with 'yield from ctx.cb_reserve_back({cb_id}, {n})'")

    def cb_pop_front(self, cb_id: int, n: int) -> None:
        """Free ``n`` pages at the consumer's clock ``_t`` (a compute kernel's unpack thread adds
        its pending ops' flush: :meth:`ComputeContext.cb_pop_front`; one frame per pop, as
        :meth:`cb_push_back`).

        Only pages a ``cb_wait_front`` granted may be popped: without the wait the pages may not
        have arrived yet (on hardware the pop would free pages the producer is still writing).
        """
        try:
            cb = self._cbs[cb_id]
        except KeyError:
            raise self._no_cb_error(cb_id) from None
        if n <= 0 or n > cb.num_pages:
            cb.check_request(n, "cb_pop_front", self.kernel_name)
        if self._unrun is not None:
            raise self._unrun_error(f"cb_pop_front({cb.describe()}, {n})")
        if n > cb.waited:
            raise self._unwaited_pop_error(cb, cb_id, n)
        cb.waited -= n
        # cb.pop(n), inline (once per pop); available_pages() applies the passed unscheduled pushes
        if n > cb._visible_pushed - cb._popped_by_consumer and n > cb.available_pages():
            raise cb.overpop_error(n)
        cb._popped_by_consumer += n
        rd_ptr = cb.fifo_rd_ptr + n * cb.page_size
        cb.fifo_rd_ptr = rd_ptr if rd_ptr < cb.limit else rd_ptr - cb.total_size
        t = self._t + self._cb_update
        self._busy_consumer += self._cb_update
        if t > self.deadline:
            self._check_deadline(t)
        env = self.env
        now = env._now  # the pop's publication at t, as in cb_push_back
        if t <= now:
            cb.publish_pop(n)
        elif cb._back_waiters or cb.trace is not None:
            scheduled_timeout(env, t - now, n, [cb.pop_callback])
        else:  # cb.defer(n, t - now, False), inline, as in cb_push_back
            heappush(cb._unscheduled_pops, (now + (t - now), NORMAL, next(env._eid), n, t - now))
        self._t = t

    def _unwaited_pop_error(self, cb: CircularBuffer, cb_id: int, n: int) -> KernelAPIError:
        """The error for popping ``n`` pages of ``cb`` (index ``cb_id``) not granted by a wait."""
        return KernelAPIError(
            f"{self.where}: cb_pop_front({cb.describe()}, {n}) pops {n} pages but cb_wait_front "
            f"granted only {cb.waited} not yet popped: wait for them first with "
            f"'yield from ctx.cb_wait_front({cb_id}, {n})'")

    # -- lifecycle -------------------------------------------------------------------------------
    def finish(self) -> KernelGen:
        """Called by the launcher after the kernel returns: let the clock reach the kernel end."""
        if self._unrun is not None:
            raise self._unrun_error("the end of the kernel")
        yield from self._sync_to(self.end_time())

    def end_time(self) -> float:
        return self._t

    def zone_ends(self) -> dict[Risc, float]:
        """End cycle of this kernel's zone on each RISC it ran on."""
        return {self.risc: self._t}
