"""Circular-buffer semantics: the CircularBuffer counters directly, then through tiny programs
run on a wormhole_b0 device with hand-written producer / consumer kernels."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import simpy

from ttsim.cb import CBConfig, CircularBuffer
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.errors import CBRequestError, KernelAPIError
from ttsim.formats import DataFormat
from ttsim.host import Program, run_program

CORE = (0, 0)
CB_ID = 3
CB_NAME = "test_cb"
PAGE = 64


def _device() -> Device:
    return Device(load_device("wormhole_b0"))


def _program(num_pages: int, producer, consumer, page_size: int = PAGE) -> Program:
    program = Program("cb_test")
    program.create_circular_buffer(
        [CORE], CBConfig(CB_ID, CB_NAME, page_size, num_pages, DataFormat.BFLOAT16))
    program.create_kernel("producer", producer, [CORE], Risc.BRISC, {})
    if consumer is not None:
        program.create_kernel("consumer", consumer, [CORE], Risc.NCRISC, {})
    return program


def _burn(ctx, words: int) -> None:
    """Spend 5 cycles per 32-bit store (risc.l1_store_cycles) writing a scratch area."""
    ctx.l1_store(ctx.core.l1.base + 4096, np.zeros(words, dtype=np.uint32))


# -- CircularBuffer on its own ------------------------------------------------------------------

def _cb(num_pages: int = 4, page_size: int = 32, address: int = 1024) -> CircularBuffer:
    env = simpy.Environment()
    config = CBConfig(7, "unit", page_size, num_pages, DataFormat.BFLOAT16)
    return CircularBuffer(env, config, address, "(2,3)")


def test_counters_and_push_publish_split() -> None:
    cb = _cb()
    assert cb.free_pages() == 4 and cb.available_pages() == 0 and cb.occupancy() == 0
    cb.push(1)  # producer side: space is taken at once ...
    assert cb.free_pages() == 3
    assert cb.available_pages() == 0  # ... but the consumer sees nothing until it is published
    assert cb.occupancy() == 0
    cb.publish_push(1)
    assert cb.available_pages() == 1 and cb.occupancy() == 1
    cb.push(2)
    cb.publish_push(2)
    assert cb.free_pages() == 1 and cb.available_pages() == 3
    cb.pop(2)  # consumer side: pages gone for the consumer at once ...
    assert cb.available_pages() == 1
    assert cb.free_pages() == 1  # ... and free for the producer only once published
    cb.publish_pop(2)
    assert cb.free_pages() == 3 and cb.occupancy() == 1
    assert cb.stats.pages_pushed == 3 and cb.stats.pages_popped == 2
    assert cb.stats.max_occupancy == 3


def test_pointers_advance_by_pages_and_wrap() -> None:
    cb = _cb(num_pages=4, page_size=32, address=1024)
    assert cb.limit == 1024 + 128
    writes = []
    for _ in range(6):
        writes.append(cb.fifo_wr_ptr)
        cb.push(1)
        cb.publish_push(1)
        cb.pop(1)
        cb.publish_pop(1)
    assert writes == [1024, 1056, 1088, 1120, 1024, 1056]
    assert cb.fifo_rd_ptr == cb.fifo_wr_ptr == 1024 + 64
    cb.push(3)  # a multi-page push that crosses the end wraps as well
    assert cb.fifo_wr_ptr == 1024 + (2 + 3) % 4 * 32


def test_events_fire_when_the_condition_holds() -> None:
    cb = _cb(num_pages=2)
    front = cb.front_event(2)
    cb.push(1)
    cb.publish_push(1)
    assert not front.triggered  # cumulative: 1 of the 2 pages waited for
    cb.push(1)
    cb.publish_push(1)
    assert front.triggered
    back = cb.reserve_event(1)
    cb.pop(1)
    assert not back.triggered  # the pop is not yet visible to the producer
    cb.publish_pop(1)
    assert back.triggered


def test_check_request_and_pop_errors() -> None:
    cb = _cb(num_pages=4, page_size=32)
    with pytest.raises(CBRequestError) as info:
        cb.check_request(5, "cb_wait_front", "my_kernel")
    message = str(info.value)
    for part in ("my_kernel", "(2,3)", "CB 7 'unit'", "cb_wait_front", "5 pages", "4 pages"):
        assert part in message
    with pytest.raises(CBRequestError):
        cb.check_request(0, "cb_reserve_back", "my_kernel")
    cb.check_request(4, "cb_reserve_back", "my_kernel")  # the whole CB is a valid request
    cb.push(1)
    cb.publish_push(1)
    with pytest.raises(CBRequestError, match="pops more pages than the 1 available"):
        cb.pop(2)


def test_several_waiters_on_one_side_wake_in_arrival_order() -> None:
    """Every waiter whose count is met wakes, in the order it started waiting; one asking for
    more keeps its place without holding back the others (waiting takes no pages)."""
    cb = _cb(num_pages=4)
    woken: list[str] = []
    for name, pages in (("wants_two", 2), ("first_one", 1), ("second_one", 1)):
        cb.front_event(pages).callbacks.append(lambda _event, name=name: woken.append(name))
    cb.push(1)
    cb.publish_push(1)
    cb.env.run()
    assert woken == ["first_one", "second_one"]
    cb.push(1)
    cb.publish_push(1)
    cb.env.run()
    assert woken == ["first_one", "second_one", "wants_two"]
    cb.push(2)
    cb.publish_push(2)  # the CB is full: two producers wait for space
    for name, pages in (("needs_three", 3), ("needs_one", 1)):
        cb.reserve_event(pages).callbacks.append(lambda _event, name=name: woken.append(name))
    cb.pop(1)
    cb.publish_pop(1)
    cb.env.run()
    assert woken[3:] == ["needs_one"]


def test_unscheduled_publications_apply_in_key_order_once_passed() -> None:
    """Unscheduled pushes and pops (ttsim/cb.py) take their timeouts' keys and apply in key order
    once SimPy's current entry is past them: a pop before a push frees its pages before the push
    counts its occupancy, and a publication at the same time as the current entry applies only if
    its id is smaller."""
    env = _device().env
    cb = CircularBuffer(env, CBConfig(7, "unit", 32, 4, DataFormat.BFLOAT16), 1024, "(2,3)")
    cb.push(2)
    cb.publish_push(2)
    cb.pop(2)
    cb.defer(2, 5.0, False)  # key (5, NORMAL, id0)
    cb.push(2)
    cb.defer(2, 7.0, True)  # key (7, NORMAL, id0 + 1)
    next(env._eid)  # (id0 + 2: taken by another event)
    first = cb._unscheduled_pops[0][2]
    env.current = (5.0, simpy.events.NORMAL, first - 1, None)  # an earlier id at 5: not passed
    assert cb.free_pages() == 0 and cb.available_pages() == 0
    env.current = (7.0, simpy.events.NORMAL, first + 2, None)  # both passed (a later id at 7)
    assert cb.free_pages() == 2 and cb.available_pages() == 2
    assert cb.stats.max_occupancy == 2 and cb.stats.pages_pushed == 4 and cb.stats.pages_popped == 2
    cb.push(1)
    cb.defer(1, 7.0, True)  # key (7, NORMAL, id0 + 3): after the current entry
    assert cb._unscheduled_pushes[0][2] == first + 3
    assert cb.free_pages() == 1 and cb.available_pages() == 2
    assert cb.apply_all_unscheduled() == 7.0  # the run's end: the last push, at 7
    assert cb.occupancy() == 3 and cb.stats.max_occupancy == 3 and cb.stats.pages_pushed == 5
    assert cb.apply_all_unscheduled() == float("-inf")


def test_unscheduled_publications_are_scheduled_under_their_keys() -> None:
    """A kernel about to wait schedules the unscheduled publications of the side that wakes it
    as the timeouts they stand for: same keys, values and callbacks."""
    env = _device().env
    cb = CircularBuffer(env, CBConfig(7, "unit", 32, 4, DataFormat.BFLOAT16), 1024, "(2,3)")
    cb.push(3)
    cb.defer(3, 4.0, True)
    key = cb._unscheduled_pushes[0][:3]
    woken = []
    cb.front_event(3).callbacks.append(lambda event: woken.append(env.now))
    assert not cb._unscheduled_pushes
    assert [entry[:3] for entry in env._queue] == [key]
    timeout = env._queue[0][3]
    assert isinstance(timeout, simpy.Timeout) and timeout.value == 3 and timeout._delay == 4.0
    env.run()
    assert woken == [4.0] and cb.available_pages() == 3


@pytest.mark.parametrize("pending", ["pops", "pushes", "both", "none"])
@pytest.mark.parametrize("publication", ["push", "pop"])
def test_publication_callbacks_apply_the_passed_unscheduled_first(pending: str, publication: str) -> None:
    """A publication timeout's callback (on_push_event / on_pop_event) leaves the CB as applying
    every passed unscheduled publication in key order (apply_unscheduled) and then publishing
    does: the same counters, statistics and heaps, whichever kinds are pending."""
    states = []
    for reference in (True, False):
        env = _device().env
        cb = CircularBuffer(env, CBConfig(7, "unit", 32, 8, DataFormat.BFLOAT16), 1024, "(2,3)")
        cb.push(6)
        cb.publish_push(6)
        cb.pop(2)
        cb.publish_pop(2)
        cb.stats.max_occupancy = 0  # so that the pushes applied set it
        for delay, push in ((1.0, False), (2.0, True), (3.0, True), (4.0, False), (9.0, True), (9.5, False)):
            if pending in ("both", "pushes" if push else "pops"):
                if push:
                    cb.push(1)
                else:
                    cb.pop(1)
                cb.defer(1, delay, push)
        if publication == "push":  # the producer (consumer) side of the call published below
            cb.push(1)
        else:
            cb.pop(1)
        env.current = (5.0, simpy.events.NORMAL, next(env._eid), None)  # 1 .. 4 passed, 9, 9.5 not
        if reference:
            cb.apply_unscheduled()
            (cb.publish_push if publication == "push" else cb.publish_pop)(1)
        else:
            event = simpy.Event(env)
            event._value = 1
            (cb.on_push_event if publication == "push" else cb.on_pop_event)(event)
        s = cb.stats
        states.append((cb._visible_pushed, cb._visible_popped, s.pages_pushed, s.pages_popped,
                       s.max_occupancy, list(cb._unscheduled_pushes), list(cb._unscheduled_pops)))
    assert states[1] == states[0]


# -- through programs ---------------------------------------------------------------------------

def test_fifo_order_of_real_bytes_and_pointer_wrap() -> None:
    device = _device()
    num_pages, total = 4, 10
    seen: list[bytes] = []
    write_ptrs: list[int] = []
    read_ptrs: list[int] = []

    def producer(ctx):
        for i in range(total):
            yield from ctx.cb_reserve_back(CB_ID, 1)
            ptr = ctx.get_write_ptr(CB_ID)
            write_ptrs.append(ptr)
            ctx.l1_store(ptr, np.full(PAGE, i + 1, dtype=np.uint8))
            ctx.cb_push_back(CB_ID, 1)

    def consumer(ctx):
        for _ in range(total):
            yield from ctx.cb_wait_front(CB_ID, 1)
            ptr = ctx.get_read_ptr(CB_ID)
            read_ptrs.append(ptr)
            seen.append(bytes(ctx.core.l1.read(ptr, PAGE)))
            _burn(ctx, 64)  # slower than the producer, so the CB fills and wraps under pressure
            ctx.cb_pop_front(CB_ID, 1)

    profile = run_program(device, _program(num_pages, producer, consumer))
    assert seen == [bytes([i + 1]) * PAGE for i in range(total)]
    base = profile.cbs[0].address
    assert base % 16 == 0 and base >= device.spec.l1.unreserved_base_bytes.value
    expected = [base + (i % num_pages) * PAGE for i in range(total)]
    assert write_ptrs == expected
    assert read_ptrs == expected
    record = profile.cbs[0]
    assert (record.pages_pushed, record.pages_popped) == (total, total)
    assert record.max_occupancy == num_pages


def test_wait_front_is_cumulative() -> None:
    """wait_front(2) after wait_front(1) without a pop waits for 2 pages in total, not 2 more:
    the producer pushes only 2 pages, so an incremental reading would deadlock."""
    device = _device()
    times: dict[str, float] = {}

    def producer(ctx):
        yield from ctx.cb_reserve_back(CB_ID, 2)
        ctx.cb_push_back(CB_ID, 1)
        _burn(ctx, 200)  # 1000 cycles between the two pushes
        ctx.cb_push_back(CB_ID, 1)
        times["second_push"] = ctx.now

    def consumer(ctx):
        yield from ctx.cb_wait_front(CB_ID, 1)
        times["got_one"] = ctx.now
        yield from ctx.cb_wait_front(CB_ID, 2)
        times["got_two"] = ctx.now
        ctx.cb_pop_front(CB_ID, 2)

    profile = run_program(device, _program(4, producer, consumer))
    assert times["got_one"] < times["second_push"] - 900
    assert times["got_two"] >= times["second_push"]
    record = profile.cbs[0]
    assert (record.pages_pushed, record.pages_popped) == (2, 2)
    assert record.consumer_blocked_cycles > 900


def test_producer_blocks_when_full_and_it_is_recorded() -> None:
    device = _device()
    total, burn_words = 8, 100  # the consumer spends 500 cycles per page

    def producer(ctx):
        for _ in range(total):
            yield from ctx.cb_reserve_back(CB_ID, 1)
            ctx.cb_push_back(CB_ID, 1)

    def consumer(ctx):
        for _ in range(total):
            yield from ctx.cb_wait_front(CB_ID, 1)
            _burn(ctx, burn_words)
            ctx.cb_pop_front(CB_ID, 1)

    profile = run_program(device, _program(2, producer, consumer))
    record = profile.cbs[0]
    consumer_cost = burn_words * device.spec.risc.l1_store_cycles.value
    # the producer fills the 2 pages, then waits about one consumer iteration per further page
    assert record.producer_blocked_cycles >= (total - 3) * consumer_cost
    assert record.max_occupancy == 2
    assert (record.pages_pushed, record.pages_popped) == (total, total)
    blocked = profile.blocked[(CORE, Risc.BRISC)]
    assert blocked[f"cb_reserve_back:{CB_NAME}"] == pytest.approx(record.producer_blocked_cycles)


def test_consumer_blocks_when_producer_is_slow() -> None:
    device = _device()
    total, burn_words = 6, 100

    def producer(ctx):
        for _ in range(total):
            yield from ctx.cb_reserve_back(CB_ID, 1)
            _burn(ctx, burn_words)
            ctx.cb_push_back(CB_ID, 1)

    def consumer(ctx):
        for _ in range(total):
            yield from ctx.cb_wait_front(CB_ID, 1)
            ctx.cb_pop_front(CB_ID, 1)

    profile = run_program(device, _program(4, producer, consumer))
    record = profile.cbs[0]
    producer_cost = burn_words * device.spec.risc.l1_store_cycles.value
    assert record.producer_blocked_cycles == 0
    assert record.consumer_blocked_cycles >= total * producer_cost * 0.9
    blocked = profile.blocked[(CORE, Risc.NCRISC)]
    assert blocked[f"cb_wait_front:{CB_NAME}"] == pytest.approx(record.consumer_blocked_cycles)


@pytest.mark.parametrize("call", ["cb_reserve_back", "cb_wait_front"])
def test_request_larger_than_cb_names_kernel_core_and_cb(call: str) -> None:
    device = _device()

    def greedy(ctx):
        yield from getattr(ctx, call)(CB_ID, 5)

    with pytest.raises(CBRequestError) as info:
        run_program(device, _program(4, greedy, None))
    message = str(info.value)
    assert "kernel 'producer'" in message
    assert "core (0,0)" in message
    assert f"CB {CB_ID} '{CB_NAME}'" in message
    assert f"{call}(" in message
    assert "holds 4 pages" in message


def test_pop_more_than_waited_for_raises() -> None:
    device = _device()

    def producer(ctx):
        yield from ctx.cb_reserve_back(CB_ID, 1)
        ctx.cb_push_back(CB_ID, 1)

    def consumer(ctx):
        yield from ctx.cb_wait_front(CB_ID, 1)
        ctx.cb_pop_front(CB_ID, 2)

    with pytest.raises(KernelAPIError) as info:
        run_program(device, _program(4, producer, consumer))
    assert str(info.value) == (
        f"kernel 'consumer' on core (0,0) NCRISC: cb_pop_front(CB {CB_ID} '{CB_NAME}', 2) pops 2 pages but "
        f"cb_wait_front granted only 1 not yet popped: wait for them first with "
        f"'yield from ctx.cb_wait_front({CB_ID}, 2)'")


CLEAR_CB, COPY_CB, PACKED_CB = 5, 1, 16


def test_two_kernels_waiting_on_one_cb() -> None:
    """The split reader's clear value (tt-metal ``reader_pool_2d.cpp``): reader 0 fills
    ``clear_value_cb`` and pushes it into the empty CB without reserving, as tt-metal does;
    reader 1 and the compute kernel both wait on it from the start. Each gets the bytes: reader 1
    copies the tile over the NoC, compute copies it through DST and packs it."""
    device = _device()
    core = device.core(CORE)
    tile = 2048
    copy_buffer = device.allocate_l1_buffer("copy", [CORE], tile)
    packed_buffer = device.allocate_l1_buffer("packed", [CORE], tile)
    program = Program("two_waiters")
    program.create_circular_buffer([CORE], CBConfig(CLEAR_CB, "clear_value_cb", tile, 1, DataFormat.BFLOAT16))
    program.create_circular_buffer([CORE], CBConfig(COPY_CB, "copy_cb", tile, 1, DataFormat.BFLOAT16, True),
                                   copy_buffer)
    program.create_circular_buffer([CORE], CBConfig(PACKED_CB, "packed_cb", tile, 1, DataFormat.BFLOAT16, True),
                                   packed_buffer)
    value = np.float32(-3.5).astype(ml_dtypes.bfloat16).view(np.uint16)  # exact in bfloat16
    pushed: list[float] = []

    def reader0(ctx):
        ctx.l1_store(ctx.get_write_ptr(CLEAR_CB), np.full(tile // 2, value, dtype=np.uint16))  # 2,560 cycles
        ctx.cb_push_back(CLEAR_CB, 1)
        pushed.append(ctx.now)
        yield from ()

    def reader1(ctx):
        yield from ctx.cb_wait_front(CLEAR_CB, 1)
        yield from ctx.cb_reserve_back(COPY_CB, 1)
        ctx.noc_async_read(ctx.get_noc_addr(ctx.get_read_ptr(CLEAR_CB)), ctx.get_write_ptr(COPY_CB), tile)
        ctx.noc_async_read_barrier()
        ctx.cb_push_back(COPY_CB, 1)

    def compute(ctx):
        yield from ctx.cb_wait_front(CLEAR_CB, 1)
        yield from ctx.cb_reserve_back(PACKED_CB, 1)
        ctx.tile_regs_acquire()
        ctx.copy_tile(CLEAR_CB, 0, 0)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        ctx.pack_tile(0, PACKED_CB)
        ctx.tile_regs_release()
        ctx.cb_push_back(PACKED_CB, 1)

    program.create_kernel("reader0", reader0, [CORE], Risc.BRISC, {})
    program.create_kernel("reader1", reader1, [CORE], Risc.NCRISC, {})
    program.create_kernel("compute", compute, [CORE], "compute", {})
    profile = run_program(device, program)
    expected = np.full(tile // 2, value, dtype=np.uint16)
    assert np.array_equal(core.l1.read(copy_buffer.address(CORE), tile).view(np.uint16), expected)
    assert np.array_equal(core.l1.read(packed_buffer.address(CORE), tile).view(np.uint16), expected)
    # both waited from their start until the push (the store loop alone is 512 x 5 cycles)
    for risc in (Risc.NCRISC, Risc.TRISC0):
        assert profile.blocked[(CORE, risc)]["cb_wait_front:clear_value_cb"] > 512 * 5 - 100
    clear = next(record for record in profile.cbs if record.index == CLEAR_CB)
    assert clear.consumer_blocked_cycles > 2 * (512 * 5 - 100)  # two waiters, one CB
    assert pushed and profile.device_kernel_duration_cycles > pushed[0]
