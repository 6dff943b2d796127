"""Programs that can never finish end with a clear error instead of hanging: deadlocks name
every blocked kernel, and runaway kernels hit the simulated-time guard."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.errors import DeadlockError, SimulationLimitError
from ttsim.formats import DataFormat
from ttsim.host import Program, run_program

CORES = [(0, 0), (1, 0)]


def _device() -> Device:
    return Device(load_device("wormhole_b0"))


def _starved_program() -> Program:
    program = Program("starved_op")
    program.create_circular_buffer(CORES, CBConfig(5, "act_cb", 64, 4, DataFormat.BFLOAT16))

    def producer(ctx):
        for _ in range(2):
            yield from ctx.cb_reserve_back(5, 1)
            ctx.cb_push_back(5, 1)

    def consumer(ctx):
        yield from ctx.cb_wait_front(5, 3)  # only 2 pages ever arrive
        ctx.cb_pop_front(5, 3)

    program.create_kernel("act_producer", producer, CORES, Risc.BRISC, {})
    program.create_kernel("act_consumer", consumer, CORES, Risc.NCRISC, {})
    return program


def test_consumer_waiting_for_pages_never_pushed() -> None:
    program = _starved_program()
    start = time.perf_counter()
    with pytest.raises(DeadlockError) as info:
        run_program(_device(), program)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert message.startswith("deadlock in starved_op")
    for core in ("(0,0)", "(1,0)"):
        assert f"kernel 'act_consumer' on core {core} NCRISC: waiting in cb_wait_front(" in message
    assert "cb_wait_front(CB 5 'act_cb', 3)" in message
    assert "act_producer" not in message  # it finished: only blocked kernels are named
    assert "5:act_cb 2/4" in message  # CB occupancy of the blocked cores


def test_deadlock_report_shows_pages_available_at_the_deadlock() -> None:
    with pytest.raises(DeadlockError) as info:
        run_program(_device(), _starved_program())
    assert "cb_wait_front(CB 5 'act_cb', 3): 2 of 4 pages available" in str(info.value)


def test_two_kernels_waiting_on_each_other() -> None:
    program = Program("cycle_op")
    program.create_circular_buffer([(0, 0)], CBConfig(0, "ping", 32, 1, DataFormat.BFLOAT16))
    program.create_circular_buffer([(0, 0)], CBConfig(1, "pong", 32, 1, DataFormat.BFLOAT16))

    def a(ctx):
        yield from ctx.cb_wait_front(1, 1)  # waits for b, which waits for a
        yield from ctx.cb_reserve_back(0, 1)
        ctx.cb_push_back(0, 1)

    def b(ctx):
        yield from ctx.cb_wait_front(0, 1)
        yield from ctx.cb_reserve_back(1, 1)
        ctx.cb_push_back(1, 1)

    program.create_kernel("kernel_a", a, [(0, 0)], Risc.BRISC, {})
    program.create_kernel("kernel_b", b, [(0, 0)], Risc.NCRISC, {})
    with pytest.raises(DeadlockError) as info:
        run_program(_device(), program)
    message = str(info.value)
    assert "kernel 'kernel_a' on core (0,0) BRISC: waiting in cb_wait_front(CB 1 'pong', 1)" in message
    assert "kernel 'kernel_b' on core (0,0) NCRISC: waiting in cb_wait_front(CB 0 'ping', 1)" in message


def test_compute_kernel_blocked_on_a_full_output_cb() -> None:
    program = Program("full_out")
    program.create_circular_buffer([(0, 0)], CBConfig(16, "out_cb", 2048, 2, DataFormat.BFLOAT16))

    def compute(ctx):
        for _ in range(3):  # nobody pops: the third reserve can never succeed
            yield from ctx.cb_reserve_back(16, 1)
            ctx.cb_push_back(16, 1)

    program.create_kernel("compute_k", compute, [(0, 0)], "compute", {})
    with pytest.raises(DeadlockError) as info:
        run_program(_device(), program)
    message = str(info.value)
    assert "kernel 'compute_k' on core (0,0)" in message
    assert "cb_reserve_back(CB 16 'out_cb', 1): 0 of 2 pages free" in message


def test_semaphore_wait_that_is_never_satisfied() -> None:
    program = Program("sem_op")
    sem = program.create_semaphore([(2, 3)], initial_value=0)

    def receiver(ctx):
        yield from ctx.noc_semaphore_wait(ctx.get_semaphore(sem), 1)

    program.create_kernel("mcast_receiver", receiver, [(2, 3)], Risc.BRISC, {})
    device = _device()
    with pytest.raises(DeadlockError) as info:
        run_program(device, program)
    message = str(info.value)
    assert "kernel 'mcast_receiver' on core (2,3) BRISC" in message
    assert f"noc_semaphore_wait(0x{device.semaphore_address(sem):x}, 1): value is 0" in message


def test_semaphore_handshake_that_completes_is_not_a_deadlock() -> None:
    """Control case: the same wait succeeds once another core increments the semaphore."""
    program = Program("sem_ok")
    sem = program.create_semaphore([(0, 0), (1, 0)], initial_value=0)
    device = _device()
    target = device.worker_core((1, 0))

    def sender(ctx):
        ctx.noc_semaphore_inc(ctx.get_noc_addr(*target, ctx.get_semaphore(sem)), 1)
        yield from ()

    def receiver(ctx):
        yield from ctx.noc_semaphore_wait(ctx.get_semaphore(sem), 1)

    program.create_kernel("sender", sender, [(0, 0)], Risc.BRISC, {})
    program.create_kernel("receiver", receiver, [(1, 0)], Risc.BRISC, {})
    profile = run_program(device, program)
    blocked = profile.blocked[((1, 0), Risc.BRISC)]
    assert blocked["semaphore_wait"] > 0


def test_runaway_kernel_hits_the_simulated_time_guard() -> None:
    program = Program("forever")
    program.create_circular_buffer([(0, 0)], CBConfig(0, "loop_cb", 32, 1, DataFormat.BFLOAT16))

    def spinner(ctx):
        while True:  # reserve, push, wait, pop its own CB: time advances, nothing ends
            yield from ctx.cb_reserve_back(0, 1)
            ctx.l1_store(ctx.get_write_ptr(0), np.zeros(8, dtype=np.uint32))
            ctx.cb_push_back(0, 1)
            yield from ctx.cb_wait_front(0, 1)
            ctx.cb_pop_front(0, 1)

    program.create_kernel("spinner", spinner, [(0, 0)], Risc.BRISC, {})
    start = time.perf_counter()
    with pytest.raises(SimulationLimitError) as info:
        run_program(_device(), program, max_cycles=100_000)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "kernel 'spinner' on core (0,0) BRISC" in message
    assert "100,000" in message and "simulated-time guard" in message
