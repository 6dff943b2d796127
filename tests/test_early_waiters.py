"""Early CB waiters (ttsim/cb.py) and semaphore watchers (TensixCore.early_word_event): a kernel
ahead of SimPy's clock that must block waits from its sync point on without scheduling the
timeout to it; and a publication timeout that wakes one waiter whose event would be processed
next processes it at once (cb._wake_last). The reference is the kernel API without either: every
blocked call first lets SimPy reach its time with a timeout, then looks at the CB (reads the
word) and queues (the generators below, as ttsim/kernel_api/base.py, compute.py and dataflow.py
had them), and every wake goes through the schedule. Racing programs, with several waiters on
each side of a CB (on a semaphore) and integer costs that make equal times common, run the same
way under both: the same order of every kernel call, clocks, stalls and CB statistics, and the
same deadlock report."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from functools import partial
from heapq import heappush

import numpy as np
import pytest
from simpy.events import NORMAL, Event, Timeout

from ttsim.cb import CBConfig, CircularBuffer
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.errors import DeadlockError, KernelAPIError
from ttsim.formats import DataFormat
from ttsim.host import Program, run_program
from ttsim.kernel_api.base import KernelContext
from ttsim.kernel_api.compute import ComputeContext
from ttsim.kernel_api.dataflow import DataflowContext

CORE = (0, 0)
FRONT_CB, BACK_CB = 3, 4
PAGE = 64


def _reference_reserve(self, cb_id: int, n: int):
    """``KernelContext._reserve`` without early waiters: a timeout to t, then look, then queue."""
    self._unrun = None
    cb = self._cbs[cb_id]
    if n <= 0 or n > cb.num_pages:
        cb.check_request(n, "cb_reserve_back", self.kernel_name)
    t = self._t + self._cb_check
    self._busy_producer += self._cb_check
    if cb.num_pages - (cb._pushed_by_producer - cb._visible_popped) >= n:
        self._t = t
        return
    if t > self.deadline:
        self._check_deadline(t)
    env = self.env
    now = env._now
    if t > now:
        yield env.timeout(t - now)
    if cb.num_pages - (cb._pushed_by_producer - cb._visible_popped) >= n:
        self._t = t
        return
    self.blocked_on = partial(cb.reserve_detail, n)
    event = Event(env)
    cb._back_waiters.append((n, event))
    yield event
    self.blocked_on = None
    now = env._now
    cb.stats.producer.blocked_cycles += now - t
    self._stall(self._producer_risc, cb.reserve_back_stall, t, now)
    self._busy_producer += self._cb_poll
    self._t = now + self._cb_poll


def _reference_wait_front(self, cb_id: int, n: int):
    """``KernelContext._wait_front`` without early waiters, as :func:`_reference_reserve`."""
    self._unrun = None
    cb = self._cbs[cb_id]
    if n <= 0 or n > cb.num_pages:
        cb.check_request(n, "cb_wait_front", self.kernel_name)
    if n > cb.waited:
        cb.waited = n
    t = self._t + self._cb_check
    self._busy_consumer += self._cb_check
    if cb._visible_pushed - cb._popped_by_consumer >= n:
        self._t = t
        return
    if t > self.deadline:
        self._check_deadline(t)
    env = self.env
    now = env._now
    if t > now:
        yield env.timeout(t - now)
    if cb._visible_pushed - cb._popped_by_consumer >= n:
        self._t = t
        return
    self.blocked_on = partial(cb.wait_detail, n)
    event = Event(env)
    cb._front_waiters.append((n, event))
    yield event
    self.blocked_on = None
    now = env._now
    cb.stats.consumer.blocked_cycles += now - t
    self._stall(self._consumer_risc, cb.wait_front_stall, t, now)
    self._busy_consumer += self._cb_poll
    self._t = now + self._cb_poll


def _reference_compute_reserve(self, cb_id: int, n: int):
    """``ComputeContext._cb_reserve_back`` without early waiters: pack looks from ``_pack_t``,
    the process lets SimPy reach unpack's ``_t`` with a timeout, looks again, then queues."""
    self._unrun = None
    cb = self.cb(cb_id)
    if n <= 0 or n > cb.num_pages:
        cb.check_request(n, "cb_reserve_back", self.kernel_name)
    resume = self._pack_t + self._cb_check
    self._busy_producer += self._cb_check
    env = self.env
    if cb.num_pages - (cb._pushed_by_producer - cb._visible_popped) < n:
        t = self._t
        if t > self.deadline:
            self._check_deadline(t)
        now = env._now
        if t > now:
            yield env.timeout(t - now)
    if cb.num_pages - (cb._pushed_by_producer - cb._visible_popped) < n:
        start = env._now
        self.blocked_on = partial(cb.reserve_detail, n)
        event = Event(env)
        cb._back_waiters.append((n, event))
        yield event
        self.blocked_on = None
        now = env._now
        cb.stats.producer.blocked_cycles += now - start
        self._stall(Risc.TRISC0, cb.reserve_back_stall, self._t, now)
        self._t = max(self._t, float(now))
        if now > resume:
            self._stall(Risc.TRISC2, cb.reserve_back_stall, resume, now)
            resume = now + self._cb_poll
            self._busy_producer += self._cb_poll
    self._pack_t = resume


def _reference_semaphore_spin(self, call: str, sem_addr: int, value: int, at_least: bool):
    """``DataflowContext._semaphore_spin`` without early watchers: a timeout to the kernel's
    time, then read the word, then watch it."""
    self._unrun = None
    yield from self._sync_to(self._t)
    word = self.core.read_word(sem_addr)
    if (word < value) if at_least else (word != value):
        yield from self._block(self.core.word_event(sem_addr, value, at_least=at_least),
                               partial(self._semaphore_detail, call, sem_addr, value))
        self._stall(self.risc, "semaphore_wait", self._t, self.env.now)
        self._t = float(self.env.now)
    self._t += self._sem_poll


def _schedule_every_publication(patch: pytest.MonkeyPatch) -> None:
    """Give every CB a trace that records nothing: the kernel API then schedules each push and pop
    published later than its call as its timeout (ttsim/kernel_api/base.py), none unscheduled."""
    init = CircularBuffer.__init__

    def traced_init(cb: CircularBuffer, *args) -> None:
        init(cb, *args)
        cb.trace = lambda occupancy, t: None

    patch.setattr(CircularBuffer, "__init__", traced_init)


def _burn(ctx, words: int) -> None:
    """5 cycles per 32-bit store (risc.l1_store_cycles): integer clocks, so times often tie."""
    if words:
        ctx.l1_store(ctx.core.l1.base + 8192, np.zeros(words, dtype=np.uint32))


def _noter(log: list) -> Callable:
    """``note(ctx, what)``: append (kernel, what, the kernel's clock, SimPy's) to ``log``."""
    def note(ctx, what: str) -> None:
        log.append((ctx.kernel_name, what, ctx.now, ctx.env.now))
    return note


def _core_program(name: str, pages: dict[int, int], brisc: Callable, ncrisc: Callable,
                  compute: Callable) -> Program:
    """A program on CORE: a bfloat16 CB of ``pages[id]`` pages of PAGE bytes per CB id (FRONT_CB is
    "front", BACK_CB "back"), and the three kernels on BRISC, NCRISC and compute."""
    program = Program(name)
    for cb_id, count in pages.items():
        program.create_circular_buffer([CORE], CBConfig(cb_id, "front" if cb_id == FRONT_CB else "back",
                                                        PAGE, count, DataFormat.BFLOAT16))
    program.create_kernel("brisc", brisc, [CORE], Risc.BRISC, {})
    program.create_kernel("ncrisc", ncrisc, [CORE], Risc.NCRISC, {})
    program.create_kernel("compute", compute, [CORE], "compute", {})
    return program


def _racing_program(seed: int, log: list) -> Program:
    """BRISC pushes FRONT_CB's pages one by one; NCRISC and compute both wait on them
    (cumulatively, without popping) at random times. BACK_CB, two pages, has two producers, NCRISC
    and compute (compute's cb_reserve_back queues through its own path), and BRISC pops."""
    rng = random.Random(seed)
    pages = 8
    burns = {name: [rng.choice((0, 0, 1, 2, 3, 8, 20)) for _ in range(3 * pages)]
             for name in ("brisc", "ncrisc")}

    note = _noter(log)

    def brisc(ctx):
        for i in range(pages):
            yield from ctx.cb_reserve_back(FRONT_CB, 1)
            _burn(ctx, burns["brisc"][i])
            ctx.cb_push_back(FRONT_CB, 1)
            note(ctx, f"push {i}")
            if i % 2:
                yield from ctx.cb_wait_front(BACK_CB, 1)
                note(ctx, f"back {i}")
                _burn(ctx, burns["brisc"][pages + i])
                ctx.cb_pop_front(BACK_CB, 1)

    def ncrisc(ctx):
        for i in range(pages):
            _burn(ctx, burns["ncrisc"][i])
            yield from ctx.cb_wait_front(FRONT_CB, i + 1)
            note(ctx, f"front {i}")
            if i % 4 == 1:
                yield from ctx.cb_reserve_back(BACK_CB, 1)
                note(ctx, f"reserve {i}")
                ctx.cb_push_back(BACK_CB, 1)

    def compute(ctx):
        for i in range(pages):
            yield from ctx.cb_wait_front(FRONT_CB, i + 1)
            note(ctx, f"front {i}")
            if i % 4 == 3:
                yield from ctx.cb_reserve_back(BACK_CB, 1)
                note(ctx, f"reserve {i}")
                ctx.cb_push_back(BACK_CB, 1)

    return _core_program("early_waiters", {FRONT_CB: pages, BACK_CB: 2}, brisc, ncrisc, compute)


def _popping_program(seed: int, log: list) -> Program:
    """BRISC and compute push FRONT_CB's pages one by one (it holds 2) and NCRISC pops them, each
    after random work; BACK_CB, one page, goes from compute to BRISC and NCRISC in turn, so each of
    them resumes from it at times the other side of FRONT_CB did not see."""
    rng = random.Random(seed)
    pages = 12
    burns = {name: [rng.choice((0, 0, 1, 2, 3, 8, 20)) for _ in range(3 * pages)]
             for name in ("brisc", "ncrisc")}

    note = _noter(log)

    def brisc(ctx):
        for i in range(pages):
            yield from ctx.cb_reserve_back(FRONT_CB, 1)
            note(ctx, f"reserve {i}")
            _burn(ctx, burns["brisc"][i])
            ctx.cb_push_back(FRONT_CB, 1)
            if i % 3 == 0:
                yield from ctx.cb_wait_front(BACK_CB, 1)
                note(ctx, f"back {i}")
                _burn(ctx, burns["brisc"][pages + i])
                ctx.cb_pop_front(BACK_CB, 1)

    def ncrisc(ctx):
        for i in range(pages + pages // 3):
            _burn(ctx, burns["ncrisc"][i])
            yield from ctx.cb_wait_front(FRONT_CB, 1)
            note(ctx, f"front {i}")
            _burn(ctx, burns["ncrisc"][pages + i])
            ctx.cb_pop_front(FRONT_CB, 1)
            if i % 3 == 1 and i < pages:
                yield from ctx.cb_wait_front(BACK_CB, 1)
                note(ctx, f"back {i}")
                ctx.cb_pop_front(BACK_CB, 1)

    def compute(ctx):
        for i in range(2 * pages // 3):
            yield from ctx.cb_reserve_back(BACK_CB, 1)
            note(ctx, f"reserve {i}")
            ctx.cb_push_back(BACK_CB, 1)
            if i % 2:
                yield from ctx.cb_reserve_back(FRONT_CB, 1)
                ctx.cb_push_back(FRONT_CB, 1)

    return _core_program("unscheduled", {FRONT_CB: 2, BACK_CB: 1}, brisc, ncrisc, compute)


def _compute_producer_program(seed: int, log: list) -> Program:
    """Compute pops FRONT_CB's pages (NCRISC pushes them) and pushes BACK_CB's (two pages), which
    BRISC pops; now and then NCRISC waits until BACK_CB is empty (cb_reserve_back of every page,
    without a push). Random reconfigurations move unpack's clock (the one compute syncs at) and
    pack's (the one it checks at) ahead of SimPy's, so compute's cb_reserve_back waits early, is
    sent to its sync point by BRISC's pops and by NCRISC's reserve, wakes after it and syncs with
    a timeout behind NCRISC."""
    rng = random.Random(seed)
    pages = 12
    burns = {name: [rng.choice((0, 0, 1, 2, 3, 8, 20)) for _ in range(2 * pages)]
             for name in ("brisc", "ncrisc", "unpack", "pack")}
    probes = [i for i in range(pages) if rng.random() < 0.3]
    """The iterations in which NCRISC waits for BACK_CB to be empty."""

    note = _noter(log)

    def brisc(ctx):
        for i in range(pages):
            _burn(ctx, burns["brisc"][i])
            yield from ctx.cb_wait_front(BACK_CB, 1)
            note(ctx, f"back {i}")
            _burn(ctx, burns["brisc"][pages + i])
            ctx.cb_pop_front(BACK_CB, 1)

    def ncrisc(ctx):
        for i in range(pages):
            _burn(ctx, burns["ncrisc"][i])
            yield from ctx.cb_reserve_back(FRONT_CB, 1)
            ctx.cb_push_back(FRONT_CB, 1)
            if i in probes:
                yield from ctx.cb_reserve_back(BACK_CB, 2)
                note(ctx, f"empty {i}")

    def compute(ctx):
        for i in range(pages):
            yield from ctx.cb_wait_front(FRONT_CB, 1)
            for _ in range(burns["unpack"][i] % 4):  # 40 unpack cycles each
                ctx.reconfig_data_format(FRONT_CB, FRONT_CB)
            ctx.cb_pop_front(FRONT_CB, 1)
            for _ in range(burns["pack"][i] % 3):  # 40 pack cycles each
                ctx.pack_reconfig_data_format(BACK_CB)
            yield from ctx.cb_reserve_back(BACK_CB, 1)
            note(ctx, f"reserve {i}")
            ctx.cb_push_back(BACK_CB, 1)

    return _core_program("compute_producer", {FRONT_CB: 2, BACK_CB: 2}, brisc, ncrisc, compute)


def _semaphore_program(seed: int, log: list) -> Program:
    """Semaphores on cores A (0,0) and B (1,0): A's BRISC counts B's ``count`` up (NoC
    increments); B's BRISC and NCRISC both wait on it (at least i + 1, at least 2i + 1), B's
    NCRISC setting B's ``local`` to its count, which B's BRISC waits on too; B's BRISC and A's
    NCRISC play ping-pong on the ``flag`` semaphores (equality waits). Random work between the
    calls puts the kernels ahead of SimPy's clock and makes equal times common."""
    rng = random.Random(seed)
    rounds = 12
    program = Program("early_semaphores")
    a, b = (0, 0), (1, 0)
    count, flag, local = (program.create_semaphore([a, b], 0) for _ in range(3))
    burns = {name: [rng.choice((0, 0, 1, 2, 3, 8, 20)) for _ in range(2 * rounds)]
             for name in ("a_brisc", "a_ncrisc", "b_brisc", "b_ncrisc")}

    note = _noter(log)

    def a_brisc(ctx):
        b_xy = ctx.device.worker_core(b)
        for i in range(rounds):
            _burn(ctx, burns["a_brisc"][i])
            ctx.noc_semaphore_inc(ctx.get_noc_addr(*b_xy, ctx.get_semaphore(count)), 1)
        yield from ()

    def b_brisc(ctx):
        a_xy = ctx.device.worker_core(a)
        for i in range(rounds):
            _burn(ctx, burns["b_brisc"][i])
            yield from ctx.noc_semaphore_wait_min(ctx.get_semaphore(count), i + 1)
            note(ctx, f"count {i}")
            if i % 4 == 3:
                yield from ctx.noc_semaphore_wait_min(ctx.get_semaphore(local), i // 4 + 1)
                note(ctx, f"local {i}")
            if i % 3 == 2:
                _burn(ctx, burns["b_brisc"][rounds + i])
                ctx.noc_semaphore_inc(ctx.get_noc_addr(*a_xy, ctx.get_semaphore(flag)), 1)
                yield from ctx.noc_semaphore_wait(ctx.get_semaphore(flag), i // 3 + 1)
                note(ctx, f"pong {i}")

    def b_ncrisc(ctx):
        for i in range(rounds // 2):
            _burn(ctx, burns["b_ncrisc"][i])
            yield from ctx.noc_semaphore_wait_min(ctx.get_semaphore(count), 2 * i + 1)
            note(ctx, f"count {i}")
            ctx.noc_semaphore_set(ctx.get_semaphore(local), i + 1)

    def a_ncrisc(ctx):
        b_xy = ctx.device.worker_core(b)
        for k in range(1, rounds // 3 + 1):
            _burn(ctx, burns["a_ncrisc"][k])
            yield from ctx.noc_semaphore_wait(ctx.get_semaphore(flag), k)
            note(ctx, f"ping {k}")
            _burn(ctx, burns["a_ncrisc"][rounds + k])
            ctx.noc_semaphore_inc(ctx.get_noc_addr(*b_xy, ctx.get_semaphore(flag)), 1)

    program.create_kernel("a_brisc", a_brisc, [a], Risc.BRISC, {})
    program.create_kernel("a_ncrisc", a_ncrisc, [a], Risc.NCRISC, {})
    program.create_kernel("b_brisc", b_brisc, [b], Risc.BRISC, {})
    program.create_kernel("b_ncrisc", b_ncrisc, [b], Risc.NCRISC, {})
    return program


def _outcome(program_of, reference: bool, monkeypatch: pytest.MonkeyPatch, scheduled: bool = False):
    """Everything a run shows: the log of calls in simulation order and the profile (or the
    error raised). ``scheduled``: with early waiters, but every publication scheduled."""
    with monkeypatch.context() as patch:
        if scheduled:
            _schedule_every_publication(patch)
        if reference:
            patch.setattr(KernelContext, "_reserve", _reference_reserve)
            patch.setattr(KernelContext, "_wait_front", _reference_wait_front)
            patch.setattr(ComputeContext, "_cb_reserve_back", _reference_compute_reserve)
            patch.setattr(DataflowContext, "_semaphore_spin", _reference_semaphore_spin)
            # and publications that wake their waiters through the schedule (no _wake_last)
            patch.setattr(CircularBuffer, "on_push_event", lambda cb, event: cb.publish_push(event._value))
            patch.setattr(CircularBuffer, "on_pop_event", lambda cb, event: cb.publish_pop(event._value))
            # and every publication later than its call is scheduled (none unscheduled)
            _schedule_every_publication(patch)
        log: list = []
        device = Device(load_device("wormhole_b0"))
        try:
            profile = run_program(device, program_of(log))
        except (DeadlockError, KernelAPIError) as exc:
            return log, f"{type(exc).__name__}: {exc}"
        return log, (profile.zones, profile.blocked, profile.busy, profile.cbs,
                     profile.device_kernel_duration_cycles)


@pytest.mark.parametrize("seed", range(24))
def test_racing_waiters_run_as_without_early_waiters(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    program_of = partial(_racing_program, seed)
    expected = _outcome(program_of, True, monkeypatch)
    assert _outcome(program_of, False, monkeypatch) == expected
    assert expected[0]  # the kernels ran


def test_the_racing_programs_exercise_every_early_waiter_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Across the seeds, early waiters are sent to their sync point by a publication and by
    another waiter, joined after their sync point by another waiter, and woken after it; and
    publications process the event of the waiter they wake at once."""
    import ttsim.cb as cb_module

    seen: set[str] = set()
    enqueue, wake = cb_module.enqueue, cb_module._wake

    def counting_enqueue(env, waiters, n, event):
        if waiters and len(waiters[0]) == 4:
            seen.add("joined after" if cb_module._passed(env, *waiters[0][2:]) else "sent by a waiter")
        enqueue(env, waiters, n, event)

    def counting_wake(env, waiters, pages):
        for entry in waiters:
            if len(entry) == 4 and pages >= entry[0]:
                seen.add("woken after" if cb_module._passed(env, *entry[2:]) else "sent by a publication")
        wake(env, waiters, pages)

    def counting_wake_last(env, waiters, pages):
        queue, entry = env._queue, waiters[0]
        if (len(waiters) == 1 and pages >= entry[0]
                and (len(entry) == 2 or cb_module._passed(env, *entry[2:]))):
            if len(entry) == 4:
                seen.add("woken after")
            seen.add("behind an entry at its time" if queue and queue[0][0] <= env.now
                     else "processed at once")
        wake_last(env, waiters, pages)

    wake_last = cb_module._wake_last
    monkeypatch.setattr(cb_module, "_wake", counting_wake)
    monkeypatch.setattr(cb_module, "_wake_last", counting_wake_last)
    for module in ("ttsim.kernel_api.base", "ttsim.kernel_api.compute"):
        monkeypatch.setattr(f"{module}.enqueue", counting_enqueue)
    for seed in range(24):
        _outcome(partial(_racing_program, seed), False, monkeypatch)
    assert seen == {"joined after", "sent by a waiter", "woken after", "sent by a publication",
                    "processed at once", "behind an entry at its time"}


@pytest.mark.parametrize("seed", range(24))
@pytest.mark.parametrize("program", [_racing_program, _popping_program, _compute_producer_program])
def test_racing_programs_run_as_with_every_publication_scheduled(program, seed: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Unscheduled CB publications (ttsim/cb.py) against the same kernel API scheduling each."""
    program_of = partial(program, seed)
    expected = _outcome(program_of, False, monkeypatch, scheduled=True)
    assert _outcome(program_of, False, monkeypatch) == expected


def test_the_racing_programs_exercise_every_unscheduled_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Across the seeds, unscheduled pushes and pops are applied by a kernel that found too few
    pages, by a publication and at the run's end, and scheduled when a consumer or a producer
    is about to wait; and the deadlocking program applies them in its report."""
    seen: set[str] = set()
    apply, schedule = CircularBuffer.apply_unscheduled, CircularBuffer.schedule_unscheduled

    def counting_apply(cb, before=None):
        pending = len(cb._unscheduled_pushes) + len(cb._unscheduled_pops)
        apply(cb, before)
        if len(cb._unscheduled_pushes) + len(cb._unscheduled_pops) < pending:
            seen.add(f"applied in {sys._getframe(1).f_code.co_name}")

    def counting_schedule(cb, push):
        if cb._unscheduled_pushes if push else cb._unscheduled_pops:
            seen.add("pushes scheduled" if push else "pops scheduled")
        schedule(cb, push)

    monkeypatch.setattr(CircularBuffer, "apply_unscheduled", counting_apply)
    monkeypatch.setattr(CircularBuffer, "schedule_unscheduled", counting_schedule)
    for seed in range(24):
        for program in (_racing_program, _popping_program):
            _outcome(partial(program, seed), False, monkeypatch)
    assert seen == {"applied in available_pages", "applied in free_pages", "applied in publish_push",
                    "applied in on_push_event",
                    "applied in on_pop_event", "applied in apply_all_unscheduled", "pushes scheduled",
                    "pops scheduled"}


@pytest.mark.parametrize("seed", range(24))
def test_compute_reserves_run_as_without_early_waiters(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compute's cb_reserve_back (two clocks: it checks at pack's, syncs at unpack's) waiting
    early, against the reference that syncs with a timeout first."""
    program_of = partial(_compute_producer_program, seed)
    expected = _outcome(program_of, True, monkeypatch)
    assert _outcome(program_of, False, monkeypatch) == expected
    assert len(expected[0]) > 24  # the kernels ran


def test_the_compute_program_exercises_every_compute_reserve_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Across the seeds, compute's cb_reserve_back waits early and is sent to its sync point by a
    publication and by another waiter, wakes after it, and syncs with a timeout behind another
    waiter and where pops are made and not yet published."""
    import ttsim.kernel_api.base as base_module
    from ttsim.cb import SYNC_POINT

    seen: set[str] = set()
    early_events: set = set()
    reserve, enqueue = ComputeContext._cb_reserve_back, base_module.enqueue

    def counting_reserve(ctx, cb_id, n):
        cb, steps, value = ctx.cb(cb_id), reserve(ctx, cb_id, n), None
        while True:
            try:
                event = steps.send(value)
            except StopIteration:
                return
            waiters = cb._back_waiters
            early = bool(waiters) and len(waiters[-1]) == 4 and waiters[-1][1] is event
            if early:
                early_events.add(event)
            elif isinstance(event, Timeout):
                seen.add("timeout behind a waiter" if waiters else "timeout, pops pending")
            value = yield event
            if early:
                seen.add("early, at its sync point" if value is SYNC_POINT else "early, woken after it")

    def counting_enqueue(env, waiters, n, event):
        if waiters and len(waiters[0]) == 4 and waiters[0][1] in early_events:
            if not (waiters[0][2], NORMAL, waiters[0][3]) < env.current:
                seen.add("early, sent by a waiter")
        enqueue(env, waiters, n, event)

    monkeypatch.setattr(ComputeContext, "_cb_reserve_back", counting_reserve)
    monkeypatch.setattr(base_module, "enqueue", counting_enqueue)
    for seed in range(24):
        _outcome(partial(_compute_producer_program, seed), False, monkeypatch)
    assert seen == {"early, at its sync point", "early, woken after it", "early, sent by a waiter",
                    "timeout behind a waiter", "timeout, pops pending"}


@pytest.mark.parametrize("seed", range(24))
def test_semaphore_waits_run_as_without_early_watchers(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Semaphore waits watching early (TensixCore.early_word_event) against the reference that
    syncs with a timeout first."""
    program_of = partial(_semaphore_program, seed)
    expected = _outcome(program_of, True, monkeypatch)
    assert _outcome(program_of, False, monkeypatch) == expected
    assert len(expected[0]) == 12 + 3 + 4 + 6 + 4  # every wait returned


def test_the_semaphore_program_exercises_every_early_watcher_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Across the seeds, semaphore waits watch early and are sent to their sync point by a store
    and by another watcher, are joined after it by another watcher and woken after it, and sync
    with a timeout when the word matches already and when others watch it."""
    from ttsim.device.core import SYNC_POINT, TensixCore

    seen: set[str] = set()
    spin, word_event, write_word = (DataflowContext._semaphore_spin, TensixCore.word_event,
                                    TensixCore.write_word)

    def counting_spin(ctx, call, sem_addr, value, at_least):
        steps, sent = spin(ctx, call, sem_addr, value, at_least), None
        while True:
            try:
                event = steps.send(sent)
            except StopIteration:
                return
            watchers = ctx.core._word_watchers.get(sem_addr, [])
            early = any(len(entry) == 4 and entry[1] is event for entry in watchers)
            if isinstance(event, Timeout):
                word = ctx.core.read_word(sem_addr)
                seen.add("timeout, others watch" if watchers
                         else "timeout, the word matches" if (word >= value if at_least else word == value)
                         else "timeout, ?")
            sent = yield event
            if early:
                seen.add("early, woken after it" if sent is not SYNC_POINT else "early, at its sync point")

    def early_head(core, address):
        watchers = core._word_watchers.get(address)
        if watchers and len(watchers[0]) == 4:
            return (watchers[0][2], NORMAL, watchers[0][3]) < core.env.current
        return None

    def counting_word_event(core, address, value, at_least=False):
        passed = early_head(core, address)
        if passed is not None:
            seen.add("joined after by a watcher" if passed else "sent by a watcher")
        return word_event(core, address, value, at_least)

    def counting_write_word(core, address, value):
        watchers = core._word_watchers.get(address) or []
        before = [entry for entry in watchers if len(entry) == 4]
        write_word(core, address, value)
        if before and before[0][1]._value is SYNC_POINT:
            seen.add("sent by a store")

    monkeypatch.setattr(DataflowContext, "_semaphore_spin", counting_spin)
    monkeypatch.setattr(TensixCore, "word_event", counting_word_event)
    monkeypatch.setattr(TensixCore, "write_word", counting_write_word)
    for seed in range(24):
        _outcome(partial(_semaphore_program, seed), False, monkeypatch)
    assert seen == {"early, at its sync point", "early, woken after it", "sent by a watcher",
                    "joined after by a watcher", "sent by a store", "timeout, others watch",
                    "timeout, the word matches"}


def _tie_program(producer_first: bool, shift: int, log: list) -> Program:
    """A push published at exactly the consumer's sync time (reserve 20 + 5k + push 10 cycles
    against 5(k + 2) + wait 20), its timeout made before or after the consumer's wait: the
    schedule keys' ids decide whether the consumer finds the page at its sync point."""
    program = Program("early_tie")
    program.create_circular_buffer([CORE], CBConfig(FRONT_CB, "front", PAGE, 2, DataFormat.BFLOAT16))

    def producer(ctx):
        yield from ctx.cb_reserve_back(FRONT_CB, 1)
        _burn(ctx, 40)
        ctx.cb_push_back(FRONT_CB, 1)
        log.append(("pushed", ctx.now))

    def consumer(ctx):
        _burn(ctx, 42 + shift)
        yield from ctx.cb_wait_front(FRONT_CB, 1)
        log.append(("got", ctx.now))
        ctx.cb_pop_front(FRONT_CB, 1)

    kernels = [("producer", producer, Risc.BRISC), ("consumer", consumer, Risc.NCRISC)]
    for name, function, risc in kernels if producer_first else kernels[::-1]:
        program.create_kernel(name, function, [CORE], risc, {})
    return program


@pytest.mark.parametrize("producer_first", [True, False])
@pytest.mark.parametrize("shift", [-1, 0, 1])
def test_a_publication_at_the_sync_time(producer_first: bool, shift: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    program_of = partial(_tie_program, producer_first, shift)
    expected = _outcome(program_of, True, monkeypatch)
    assert _outcome(program_of, False, monkeypatch) == expected


def _deadlocking_program(log: list) -> Program:
    """The consumer, ahead of SimPy's clock, waits for a page nobody pushes."""
    program = Program("early_deadlock")
    program.create_circular_buffer([CORE], CBConfig(FRONT_CB, "front", PAGE, 2, DataFormat.BFLOAT16))

    def producer(ctx):
        yield from ctx.cb_reserve_back(FRONT_CB, 1)
        log.append(ctx.now)

    def consumer(ctx):
        _burn(ctx, 300)
        yield from ctx.cb_wait_front(FRONT_CB, 1)

    program.create_kernel("producer", producer, [CORE], Risc.BRISC, {})
    program.create_kernel("consumer", consumer, [CORE], Risc.NCRISC, {})
    return program


def _compute_deadlocking_program(log: list) -> Program:
    """Compute, unpack's clock ahead of SimPy's, reserves a page of a full CB nobody pops."""
    program = Program("early_deadlock")
    program.create_circular_buffer([CORE], CBConfig(BACK_CB, "back", PAGE, 1, DataFormat.BFLOAT16))

    def compute(ctx):
        yield from ctx.cb_reserve_back(BACK_CB, 1)
        ctx.cb_push_back(BACK_CB, 1)
        for _ in range(10):  # 400 unpack cycles
            ctx.reconfig_data_format(BACK_CB, BACK_CB)
        yield from ctx.cb_reserve_back(BACK_CB, 1)

    program.create_kernel("compute", compute, [CORE], "compute", {})
    return program


def _semaphore_deadlocking_program(log: list) -> Program:
    """A kernel ahead of SimPy's clock waits for a semaphore nobody sets; another kernel sets it
    to a value that does not match before that kernel's sync point."""
    program = Program("early_deadlock")
    sem = program.create_semaphore([CORE], 0)

    def setter(ctx):
        _burn(ctx, 10)
        ctx.noc_semaphore_set(ctx.get_semaphore(sem), 2)
        yield from ()

    def waiter(ctx):
        _burn(ctx, 300)
        yield from ctx.noc_semaphore_wait(ctx.get_semaphore(sem), 1)

    program.create_kernel("setter", setter, [CORE], Risc.BRISC, {})
    program.create_kernel("waiter", waiter, [CORE], Risc.NCRISC, {})
    return program


@pytest.mark.parametrize("program_of, start, fragments", [
    (_deadlocking_program, "DeadlockError: deadlock in early_deadlock at cycle 1,5", ()),
    (_compute_deadlocking_program, "DeadlockError: deadlock in early_deadlock at cycle 400:", ()),
    (_semaphore_deadlocking_program, "DeadlockError: deadlock in early_deadlock at cycle 1,5",
     ("noc_semaphore_wait(", "value is 2")),
], ids=["cb_waiter", "compute_reserve", "semaphore_watcher"])
def test_a_deadlock_is_reported_at_the_early_waiters_sync_point(program_of, start: str, fragments: tuple[str, ...],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A deadlock found with an early CB waiter, compute reserve or semaphore watcher is the
    report the reference gives, at the blocked kernel's sync point."""
    expected = _outcome(program_of, True, monkeypatch)
    assert expected[1].startswith(start)
    for fragment in fragments:
        assert fragment in expected[1]
    assert _outcome(program_of, False, monkeypatch) == expected


def test_the_environment_records_the_entry_it_processes() -> None:
    """ttsim's Environment steps as SimPy's does and keeps the entry being processed."""
    device = Device(load_device("wormhole_b0"))
    env = device.env
    seen = []
    for delay in (3, 1, 2):
        timeout = Timeout(env, delay, delay)
        timeout.callbacks.append(lambda event: seen.append((env.now, env.current[3] is event)))
    event = Event(env)
    heappush(env._queue, (1, NORMAL - 1, next(env._eid), event))  # an urgent entry at 1 goes first
    event._ok, event._value = True, None
    event.callbacks.append(lambda e: seen.append(("urgent", env.current[:2])))
    env.run()
    assert seen == [("urgent", (1, 0)), (1, True), (2, True), (3, True)]


def _stepped(forever: bool) -> tuple[list, str]:
    """A schedule with ties, an urgent entry, a process that stops the run at 4 and one that
    fails at 6, run by :meth:`Environment.step_forever` or ``while True: step()`` to the first
    signal, then stepped on: what every callback saw and how the run ended."""
    import simpy

    device = Device(load_device("wormhole_b0"))
    env = device.env
    seen = []

    def record(event) -> None:
        seen.append((env.now, env.current[1], env.current[2], event.value))

    for delay in (3, 1, 2, 2, 1):
        Timeout(env, delay, delay).callbacks.append(record)
    event = Event(env)
    heappush(env._queue, (1, NORMAL - 1, next(env._eid), event))
    event._ok, event._value = True, "urgent"
    event.callbacks.append(record)

    def stopper():
        yield env.timeout(4)
        raise simpy.core.StopSimulation("stop")

    def failing():
        yield env.timeout(6)
        raise ValueError("kernel fault")

    env.process(stopper()).callbacks.append(lambda e: None)
    env.process(failing())
    ending = []
    for _ in range(2):
        try:
            if forever:
                env.step_forever()
            while True:
                env.step()
        except (simpy.core.StopSimulation, ValueError, simpy.core.EmptySchedule) as signal:
            ending.append(f"{type(signal).__name__}: {signal} at {env.now}")
    return seen, "; ".join(ending)


def test_step_forever_processes_the_entries_as_step_does() -> None:
    forever = _stepped(True)
    assert forever == _stepped(False)
    assert forever[1] == "StopSimulation: stop at 4; ValueError: kernel fault at 6"
    assert [s[0] for s in forever[0]] == [1, 1, 1, 2, 2, 3]
