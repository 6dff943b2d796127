"""Porting mistakes a kernel author makes when translating a tt-metal C++ kernel, each caught
with a KernelAPIError naming the kernel, core, RISC and call, and saying what was forgotten.

In C++ ``cb_wait_front(cb, n);`` blocks; in Python a blocking call is a generator that does
nothing unless run with ``yield from``, so a literal transcription silently skips the wait. The
DST handshake (``tile_regs_acquire/commit/wait/release``) is enforced by hardware semaphores; out
of order it would hang or let math and pack share a DST half.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.errors import KernelAPIError
from ttsim.formats import DataFormat
from ttsim.host import Program, run_program

CORE = (1, 2)
IN, OUT = 0, 16
TILE = 2048


def _device() -> Device:
    return Device(load_device("wormhole_b0"))


def _program(*kernels: tuple[str, object, Risc | str], pages: int = 2) -> Program:
    """One core with a 2-page input CB (``in_cb``) and output CB (``out_cb``) and the kernels."""
    program = Program("porting_op")
    program.create_circular_buffer([CORE], CBConfig(IN, "in_cb", TILE, pages, DataFormat.BFLOAT16))
    program.create_circular_buffer([CORE], CBConfig(OUT, "out_cb", TILE, pages, DataFormat.BFLOAT16))
    for name, function, risc in kernels:
        program.create_kernel(name, function, [CORE], risc, {})
    return program


def _fails(*kernels: tuple[str, object, Risc | str]) -> str:
    with pytest.raises(KernelAPIError) as info:
        run_program(_device(), _program(*kernels), max_cycles=1_000_000)
    return str(info.value)


def feeder(ctx):
    """Pushes one tile into in_cb, correctly."""
    yield from ctx.cb_reserve_back(IN, 1)
    ctx.cb_push_back(IN, 1)


# -- kernels that are not generator functions -----------------------------------------------------

def test_plain_function_kernel_is_rejected_at_create_kernel() -> None:
    def reader(ctx):
        ctx.cb_push_back(IN, 1)  # no yield anywhere: a plain function

    program = Program("porting_op")
    with pytest.raises(KernelAPIError) as info:
        program.create_kernel("reader_pool_2d", reader, [CORE, (2, 2)], Risc.BRISC, {})
    assert str(info.value) == (
        "kernel 'reader_pool_2d' for core (1,2) (and 1 more cores): "
        "test_plain_function_kernel_is_rejected_at_create_kernel.<locals>.reader is not a generator "
        "function: a kernel runs its blocking calls with 'yield from ctx.cb_wait_front(...)' (a kernel "
        "without any blocking call still needs one 'yield from ()')")
    assert program.kernels == []


def test_partial_of_a_generator_function_is_a_kernel() -> None:
    """Control: binding arguments with functools.partial keeps a generator function a kernel."""
    def feed(ctx, pages):
        yield from ctx.cb_reserve_back(IN, pages)
        ctx.cb_push_back(IN, pages)

    program = _program(("feeder", functools.partial(feed, pages=2), Risc.BRISC))
    profile = run_program(_device(), program)
    assert profile.cbs[0].pages_pushed == 2


# -- blocking calls without yield from ------------------------------------------------------------

def test_reserve_without_yield_from_is_caught_at_the_push() -> None:
    def reader(ctx):
        ctx.cb_reserve_back(IN, 1)  # C++ habit: the generator is made and dropped
        ctx.cb_push_back(IN, 1)
        yield from ()

    assert _fails(("reader", reader, Risc.BRISC)) == (
        "kernel 'reader' on core (1,2) BRISC: cb_reserve_back(CB 0 'in_cb', 1) never ran before "
        "cb_push_back(CB 0 'in_cb', 1): blocking calls are generators, call it as "
        "'yield from ctx.cb_reserve_back(...)'")


def test_wait_front_without_yield_from_in_compute_is_caught_at_the_pop() -> None:
    def compute(ctx):
        ctx.cb_wait_front(IN, 1)
        ctx.cb_pop_front(IN, 1)
        yield from ()

    assert _fails(("feeder", feeder, Risc.BRISC), ("compute", compute, "compute")) == (
        "kernel 'compute' on core (1,2) TRISC0: cb_wait_front(CB 0 'in_cb', 1) never ran before "
        "cb_pop_front(CB 0 'in_cb', 1): blocking calls are generators, call it as "
        "'yield from ctx.cb_wait_front(...)'")


def test_unrun_call_is_caught_at_the_next_blocking_call() -> None:
    def writer(ctx):
        ctx.cb_wait_front(OUT, 1)
        yield from ctx.cb_reserve_back(IN, 1)

    assert _fails(("writer", writer, Risc.NCRISC)) == (
        "kernel 'writer' on core (1,2) NCRISC: cb_wait_front(CB 16 'out_cb', 1) never ran before "
        "cb_reserve_back(CB 0 'in_cb', 1): blocking calls are generators, call it as "
        "'yield from ctx.cb_wait_front(...)'")


def test_semaphore_wait_without_yield_from_is_caught_at_the_next_semaphore_call() -> None:
    device = _device()
    program = Program("porting_op")
    sem = program.create_semaphore([CORE], initial_value=0)
    address = device.semaphore_address(sem)

    def receiver(ctx):
        ctx.noc_semaphore_wait(ctx.get_semaphore(sem), 1)
        ctx.noc_semaphore_set(ctx.get_semaphore(sem), 0)
        yield from ()

    program.create_kernel("weights_receiver", receiver, [CORE], Risc.BRISC, {})
    with pytest.raises(KernelAPIError) as info:
        run_program(device, program)
    assert str(info.value) == (
        f"kernel 'weights_receiver' on core (1,2) BRISC: noc_semaphore_wait(0x{address:x}, 1) never ran "
        f"before noc_semaphore_set(0x{address:x}, 0): blocking calls are generators, call it as "
        "'yield from ctx.noc_semaphore_wait(...)'")


def test_last_call_without_yield_from_is_caught_at_the_end_of_the_kernel() -> None:
    def writer(ctx):
        yield from ctx.cb_wait_front(IN, 1)
        ctx.cb_pop_front(IN, 1)
        ctx.cb_wait_front(IN, 1)  # the last statement: nothing after it would notice

    assert _fails(("feeder", feeder, Risc.BRISC), ("writer", writer, Risc.NCRISC)) == (
        "kernel 'writer' on core (1,2) NCRISC: cb_wait_front(CB 0 'in_cb', 1) never ran before the end "
        "of the kernel: blocking calls are generators, call it as 'yield from ctx.cb_wait_front(...)'")


def test_blocking_call_yielded_instead_of_yield_from() -> None:
    def writer(ctx):
        yield ctx.cb_wait_front(IN, 1)  # SimPy receives a generator, not an event

    assert _fails(("feeder", feeder, Risc.BRISC), ("writer", writer, Risc.NCRISC)) == (
        "kernel 'writer' on core (1,2) NCRISC: cb_wait_front(CB 0 'in_cb', 1) was yielded to the "
        "simulator: blocking calls are generators, call it as 'yield from ctx.cb_wait_front(...)', "
        "not 'yield'")


def test_other_invalid_yields_stay_simpy_errors() -> None:
    """Only a pending blocking call is blamed; yielding anything else is SimPy's own error."""
    def writer(ctx):
        yield 42

    with pytest.raises(RuntimeError, match='Invalid yield value "42"'):
        run_program(_device(), _program(("writer", writer, Risc.NCRISC)))


# -- pushes beyond the free pages, pops beyond the pages waited for ------------------------------

def test_push_beyond_the_free_pages() -> None:
    def reader(ctx):
        for _ in range(3):  # into a 2-page CB nobody pops, never reserving
            ctx.l1_store(ctx.get_write_ptr(IN), np.ones(8, dtype=np.uint32))
            ctx.cb_push_back(IN, 1)
        yield from ()

    assert _fails(("reader", reader, Risc.BRISC)) == (
        "kernel 'reader' on core (1,2) BRISC: cb_push_back(CB 0 'in_cb', 1) pushes 1 pages but only 0 of "
        "its 2 pages are free, so it would overwrite pages not yet popped: reserve them first with "
        "'yield from ctx.cb_reserve_back(0, 1)'")


def test_push_into_free_pages_without_reserving_runs() -> None:
    """Control: tt-metal kernels push into a CB they know is empty without reserving."""
    def reader(ctx):
        ctx.cb_push_back(IN, 2)
        yield from ()

    profile = run_program(_device(), _program(("reader", reader, Risc.BRISC)))
    assert profile.cbs[0].pages_pushed == 2


def test_push_beyond_the_reservation_into_a_full_cb() -> None:
    def compute(ctx):
        yield from ctx.cb_reserve_back(OUT, 2)
        ctx.cb_push_back(OUT, 2)
        ctx.cb_push_back(OUT, 1)  # the pack thread pushes a page it never reserved

    assert _fails(("compute", compute, "compute")) == (
        "kernel 'compute' on core (1,2) TRISC0: cb_push_back(CB 16 'out_cb', 1) pushes 1 pages but only 0 "
        "of its 2 pages are free, so it would overwrite pages not yet popped: reserve them first with "
        "'yield from ctx.cb_reserve_back(16, 1)'")


def test_pop_without_any_wait() -> None:
    def compute(ctx):
        ctx.cb_pop_front(IN, 1)
        yield from ()

    assert _fails(("feeder", feeder, Risc.BRISC), ("compute", compute, "compute")) == (
        "kernel 'compute' on core (1,2) TRISC0: cb_pop_front(CB 0 'in_cb', 1) pops 1 pages but "
        "cb_wait_front granted only 0 not yet popped: wait for them first with "
        "'yield from ctx.cb_wait_front(0, 1)'")


def test_pops_in_pieces_of_one_wait_run() -> None:
    """Control: one cumulative wait covers several smaller pops, as tt-metal kernels do."""
    def reader(ctx):
        yield from ctx.cb_reserve_back(IN, 2)
        ctx.cb_push_back(IN, 2)

    def writer(ctx):
        yield from ctx.cb_wait_front(IN, 1)
        yield from ctx.cb_wait_front(IN, 2)
        ctx.cb_pop_front(IN, 1)
        ctx.cb_pop_front(IN, 1)

    profile = run_program(_device(), _program(("reader", reader, Risc.BRISC), ("writer", writer, Risc.NCRISC)))
    assert profile.cbs[0].pages_popped == 2


# -- the DST handshake ----------------------------------------------------------------------------

def _compute_fails(body) -> str:
    """Run ``body(ctx)`` (plain calls) in a compute kernel after the input tile arrived and the
    output page is reserved."""
    def compute(ctx):
        yield from ctx.cb_wait_front(IN, 1)
        yield from ctx.cb_reserve_back(OUT, 1)
        body(ctx)

    return _fails(("feeder", feeder, Risc.BRISC), ("compute", compute, "compute"))


def test_math_before_tile_regs_acquire() -> None:
    def body(ctx):
        ctx.copy_tile(IN, 0, 0)

    assert _compute_fails(body) == (
        "kernel 'compute' on core (1,2) TRISC1: copy_tile writes DST outside "
        "tile_regs_acquire()/tile_regs_commit(): call ctx.tile_regs_acquire() before the math ops "
        "(on hardware math would write a DST half the packer owns)")


def test_sfpu_after_tile_regs_commit_names_the_call_made() -> None:
    def body(ctx):
        ctx.tile_regs_acquire()
        ctx.copy_tile(IN, 0, 0)
        ctx.tile_regs_commit()
        ctx.relu_tile(0)  # after the half went to pack

    assert _compute_fails(body) == (
        "kernel 'compute' on core (1,2) TRISC1: relu_tile writes DST outside "
        "tile_regs_acquire()/tile_regs_commit(): call ctx.tile_regs_acquire() before the math ops "
        "(on hardware math would write a DST half the packer owns)")


def test_reduce_before_tile_regs_acquire() -> None:
    def body(ctx):
        ctx.reduce_tile(IN, IN, 0, 0, 0)

    assert _compute_fails(body).startswith(
        "kernel 'compute' on core (1,2) TRISC1: reduce_tile writes DST outside "
        "tile_regs_acquire()/tile_regs_commit()")


def test_pack_before_tile_regs_wait() -> None:
    def body(ctx):
        ctx.tile_regs_acquire()
        ctx.copy_tile(IN, 0, 0)
        ctx.tile_regs_commit()
        ctx.pack_tile(0, OUT)

    assert _compute_fails(body) == (
        "kernel 'compute' on core (1,2) TRISC2: pack_tile into CB 16 'out_cb' reads DST outside "
        "tile_regs_wait()/tile_regs_release(): call ctx.tile_regs_wait() after tile_regs_commit() and "
        "before packing (on hardware pack would read a DST half math is still writing)")


def test_pack_untilize_after_tile_regs_release() -> None:
    def body(ctx):
        ctx.tile_regs_acquire()
        ctx.copy_tile(IN, 0, 0)
        ctx.tile_regs_commit()
        ctx.tile_regs_wait()
        ctx.tile_regs_release()
        ctx.pack_untilize_dest(OUT, 1, 0, 1, 2, block_ct_dim=1, row_width=32)

    assert _compute_fails(body).startswith(
        "kernel 'compute' on core (1,2) TRISC2: pack_untilize_dest into CB 16 'out_cb' reads DST outside "
        "tile_regs_wait()/tile_regs_release()")


def test_tile_regs_release_without_commit() -> None:
    def body(ctx):
        ctx.tile_regs_acquire()
        ctx.copy_tile(IN, 0, 0)
        ctx.tile_regs_release()

    assert _compute_fails(body) == (
        "kernel 'compute' on core (1,2) TRISC2: tile_regs_release() without tile_regs_commit(): on "
        "hardware pack would free a DST half math never handed over; the order is tile_regs_acquire(), "
        "math, tile_regs_commit(), tile_regs_wait(), pack, tile_regs_release()")


def test_tile_regs_release_without_wait() -> None:
    def body(ctx):
        ctx.tile_regs_acquire()
        ctx.tile_regs_commit()
        ctx.tile_regs_release()

    assert _compute_fails(body).startswith(
        "kernel 'compute' on core (1,2) TRISC2: tile_regs_release() without tile_regs_wait(): on hardware")


def test_tile_regs_wait_without_commit() -> None:
    def body(ctx):
        ctx.tile_regs_acquire()
        ctx.copy_tile(IN, 0, 0)
        ctx.tile_regs_wait()

    assert _compute_fails(body) == (
        "kernel 'compute' on core (1,2) TRISC2: tile_regs_wait() with no DST half committed: call "
        "ctx.tile_regs_commit() after the math ops (on hardware pack would wait forever)")


def test_tile_regs_commit_without_acquire() -> None:
    def body(ctx):
        ctx.tile_regs_commit()

    assert _compute_fails(body) == (
        "kernel 'compute' on core (1,2) TRISC1: tile_regs_commit() without tile_regs_acquire(): "
        "call ctx.tile_regs_acquire() before the math ops")


def test_handshake_in_order_runs_twice() -> None:
    """Control: the documented order, twice in a row (the second acquire reuses the state)."""
    def body(ctx):
        for _ in range(2):
            ctx.tile_regs_acquire()
            ctx.copy_tile(IN, 0, 0)
            ctx.tile_regs_commit()
            ctx.tile_regs_wait()
            ctx.pack_tile(0, OUT, 0)
            ctx.tile_regs_release()
        ctx.cb_push_back(OUT, 1)

    def compute(ctx):
        yield from ctx.cb_wait_front(IN, 1)
        yield from ctx.cb_reserve_back(OUT, 1)
        body(ctx)

    profile = run_program(_device(), _program(("feeder", feeder, Risc.BRISC), ("compute", compute, "compute")))
    assert profile.cbs[1].pages_pushed == 1


def test_a_cb_the_core_does_not_have_is_named() -> None:
    from ttsim.errors import CBRequestError

    def reader(ctx):
        yield from ctx.cb_reserve_back(5, 1)

    with pytest.raises(CBRequestError) as info:
        run_program(_device(), _program(("reader", reader, Risc.BRISC)), max_cycles=1_000_000)
    assert str(info.value) == "kernel 'reader' on core (1,2) BRISC: no circular buffer 5 on this core"
