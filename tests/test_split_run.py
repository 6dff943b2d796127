"""A run that finishes in two processes (ttsim/split_run.py) is the serial run: the same profile
(cycles, zones, stalls, busy cycles, CB statistics), the same L1 bytes and the same errors, and it
merges only when the halves never met after the fork. Every program on a seed-op-shaped config,
and hand-built programs whose cores meet again, fail, or hang after the quiet window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import ttsim
from ttsim import split_run
from ttsim.cb import CBConfig
from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.errors import DeadlockError, SimulationLimitError
from ttsim.formats import DataFormat
from ttsim.host import Program, run_program
from ttsim.kernel_api import TensorAccessor

pytestmark = pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")

CORES = [(x, y) for y in range(2) for x in range(4)]
STEPS = split_run.FIRST_STEPS // 4  # blocks: the run outlives the first split attempt (~10 steps a block)


@pytest.fixture
def merges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the merges of split runs (the parent's side of a split that was taken)."""
    count: list[int] = []
    merge = split_run._merge

    def counting(*args, **kwargs):
        count.append(1)
        return merge(*args, **kwargs)

    monkeypatch.setattr(split_run, "_merge", counting)
    return count


def _profile_key(profile) -> tuple:
    return (repr(profile.zones), repr(list(profile.blocked.items())), repr(list(profile.busy.items())),
            repr(profile.cbs), profile.l1_used_bytes)


def _l1(device: Device) -> list[bytes]:
    return [device.core(xy).l1.data.tobytes() for xy in CORES]


def _program(device: Device, late: str | None = None, blocks: int = STEPS) -> Program:
    """Per core: a reader that checks in with core (0,0) (a semaphore handshake, so the cores meet
    at the start), then copies ``blocks`` 64-byte blocks of its own L1 into a CB that a writer
    sums into an L1 word. ``late`` adds a meeting, a failure or a hang near the end:
    "semaphore" (a semaphore update to core (0,0)), "remote_read" (a read of core (0,0)'s L1),
    "dram_apart" (each core reads a 64-byte DRAM
    page: the halves' bookings miss each other), "dram_together" (every core reads the same 2 KiB
    page at the same block: the halves queue on one bank), "hang" (the writer waits for a page
    never pushed) or "runaway" (a kernel that never stops)."""
    program = Program("split_test_op")
    program.create_circular_buffer(CORES, CBConfig(0, "blocks", 64, 4, DataFormat.BFLOAT16))
    semaphore = program.create_semaphore(CORES, 0)
    source = device.allocate_l1_buffer("source", CORES, 64)
    scratch = device.allocate_l1_buffer("scratch", CORES, 2048)
    page = 2048 if late == "dram_together" else 64
    buffer = device.dram.allocate_interleaved("late_pages", page, len(device.dram.banks))
    device.dram.write_pages(buffer, (np.arange(page * buffer.num_pages) % 251).astype(np.uint8).reshape(-1, page))
    accessor = TensorAccessor(buffer, tuple(bank.noc_xy for bank in device.dram.banks))
    home = device.core((0, 0)).noc_xy
    for xy in CORES:
        device.core(xy).l1.write(source.address(xy), np.full(64, sum(xy) + 1, dtype=np.uint8))

    def reader(ctx):
        sem = ctx.get_semaphore(semaphore)
        ctx.noc_semaphore_inc(ctx.get_noc_addr(*home, sem), 1)
        for block in range(blocks):
            yield from ctx.cb_reserve_back(0, 1)
            ctx.noc_async_read(ctx.get_noc_addr(source.address(ctx.core.logical)), ctx.get_write_ptr(0), 64)
            if late == "remote_read" and block == blocks - 8:
                ctx.noc_async_read(ctx.get_noc_addr(*home, source.address((0, 0))), ctx.get_write_ptr(0), 64)
            if late in ("dram_apart", "dram_together") and block == blocks - 8:
                page_id = 0 if late == "dram_together" else ctx.core.logical[0] % buffer.num_pages
                ctx.noc_async_read_tile(page_id, accessor, scratch.address(ctx.core.logical))
            ctx.noc_async_read_barrier()
            ctx.cb_push_back(0, 1)
        if late == "semaphore":
            ctx.noc_semaphore_inc(ctx.get_noc_addr(*home, sem), 1)
        if late == "runaway":
            while True:
                yield from ctx.cb_reserve_back(0, 1)
                ctx.cb_push_back(0, 1)
                yield from ctx.cb_wait_front(0, 0)

    def writer(ctx):
        total = 0
        for _ in range(blocks + (1 if late == "hang" and ctx.core.logical == (3, 1) else 0)):
            yield from ctx.cb_wait_front(0, 1)
            total += int(ctx.core.l1.read(ctx.get_read_ptr(0), 64).astype(np.int64).sum())
            ctx.cb_pop_front(0, 1)
        ctx.l1_store(source.address(ctx.core.logical), np.frombuffer(np.int64(total).tobytes(), dtype=np.uint8))

    program.create_kernel("reader", reader, CORES, Risc.BRISC, {})
    program.create_kernel("writer", writer, CORES, Risc.NCRISC, {}, noc=1)
    return program


def _run(late: str | None, split: bool, **kwargs):
    device = Device(load_device("wormhole_b0"))
    profile = run_program(device, _program(device, late), split=split, **kwargs)
    return _profile_key(profile), _l1(device), device.env.now


def test_independent_cores_split_and_give_the_serial_run(merges) -> None:
    serial = _run(None, split=False)
    assert not merges
    assert _run(None, split=True) == serial
    assert merges == [1]


def test_late_dram_reads_that_miss_each_other_still_split(merges) -> None:
    serial = _run("dram_apart", split=False)
    assert _run("dram_apart", split=True) == serial
    assert merges == [1]


@pytest.mark.parametrize("late", ["semaphore", "dram_together", "remote_read"])
def test_halves_that_meet_again_run_serially_with_the_same_result(late, merges) -> None:
    serial = _run(late, split=False)
    assert _run(late, split=True) == serial
    assert not merges


def test_a_deadlock_after_the_split_is_the_serial_runs(merges) -> None:
    with pytest.raises(DeadlockError) as serial:
        _run("hang", split=False)
    with pytest.raises(DeadlockError) as split:
        _run("hang", split=True)
    assert str(split.value) == str(serial.value)
    assert "kernel 'writer' on core (3,1)" in str(split.value)
    assert not merges


def test_a_runaway_kernel_after_the_split_hits_the_same_guard(merges) -> None:
    with pytest.raises(SimulationLimitError) as serial:
        _run("runaway", split=False, max_cycles=200_000)
    with pytest.raises(SimulationLimitError) as split:
        _run("runaway", split=True, max_cycles=200_000)
    assert str(split.value) == str(serial.value)
    assert not merges


def _result_key(results: list[ttsim.OpResult]) -> list[tuple]:
    return [(r.op_code, r.device_kernel_duration_cycles, _profile_key(r.profile), r.pcc,
             None if r.output is None else r.output.astype(np.float32).tobytes()) for r in results]


SEED = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def small_config() -> dict:
    """A seed op at a quarter of its area: a few thousand SimPy steps per program."""
    config = yaml.safe_load((SEED / "yolov10_op66.yaml").read_text())
    config["conv"]["input_height"] //= 2
    config["conv"]["input_width"] //= 2
    return config


@pytest.mark.parametrize("program", ["pool", "depthwise", "classic"])
@pytest.mark.parametrize("timing_only", [False, True])
def test_every_program_gives_the_serial_results_with_jobs(program, timing_only, small_config, merges,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the small pool run takes some 7,000 SimPy steps (its unscheduled CB publications take none,
    # ttsim/cb.py): its first split attempt comes after half of them instead of 8,192
    monkeypatch.setattr(split_run, "FIRST_STEPS", 4096)
    serial = ttsim.run(small_config, program=program, timing_only=timing_only)
    split = ttsim.run(small_config, program=program, timing_only=timing_only, jobs=2)
    assert _result_key(split) == _result_key(serial)
    if program == "pool":
        assert merges  # the pool program's cores stop meeting after its weights: it does split
    if program == "classic":
        assert not merges  # its definition rules splits out (split_runs=False)


def test_intervals_minus_and_overlap_against_a_grid() -> None:
    """_minus and _overlap against a brute-force count of grid cells (interval ends on the grid)."""
    rng = np.random.default_rng(7)

    def random_set() -> tuple[list[float], list[float]]:
        points = np.sort(rng.choice(60, size=2 * int(rng.integers(0, 6)), replace=False)).astype(float)
        return list(points[0::2]), list(points[1::2])

    def cells(pairs) -> set[int]:
        return {c for start, end in pairs for c in range(int(start), int(end))}

    for _ in range(300):
        have, base, other = random_set(), random_set(), random_set()
        union = sorted(zip(*have))  # have must include base, as a child's calendar does
        merged = sorted(cells(union) | cells(zip(*base)))
        runs: list[list[float]] = []
        for c in merged:
            if runs and runs[-1][1] == c:
                runs[-1][1] = c + 1
            else:
                runs.append([c, c + 1])
        have = ([s for s, _ in runs], [e for _, e in runs])
        added = split_run._minus(have, base)
        assert cells(added) == cells(zip(*have)) - cells(zip(*base))
        other_added = split_run._minus(other, ([], []))
        assert split_run._overlap(added, other_added) == bool(cells(added) & cells(other_added))


def test_changed_blocks_from_the_nonzero_snapshot_are_a_whole_comparison() -> None:
    """A child's L1 changes found from its snapshot of the non-zero blocks (_nonzero_blocks) are
    exactly the blocks a byte-by-byte comparison with a whole copy finds, with their bytes: blocks
    written with other values, with zeros over data, with zeros over zeros (no change) and with
    the values they held (no change)."""
    rng = np.random.default_rng(5)
    size = 64 * split_run.L1_BLOCK
    for _ in range(300):
        before = np.zeros(size, dtype=np.uint8)
        for block in rng.integers(0, 64, int(rng.integers(0, 40))):
            where = block * split_run.L1_BLOCK + rng.integers(0, split_run.L1_BLOCK, 4)
            before[where] = rng.integers(1, 256, 4)
        snapshot = split_run._nonzero_blocks(before)
        after = before.copy()
        for block in rng.integers(0, 64, int(rng.integers(0, 25))):
            where = block * split_run.L1_BLOCK + rng.integers(0, split_run.L1_BLOCK, 3)
            kind = rng.integers(0, 3)
            after[where] = (rng.integers(0, 256, 3) if kind == 0 else 0 if kind == 1 else before[where])
        rows_before, rows_after = before.reshape(-1, split_run.L1_BLOCK), after.reshape(-1, split_run.L1_BLOCK)
        expected = np.flatnonzero((rows_before != rows_after).any(axis=1))
        indices, data = split_run._changed_blocks(snapshot, after)
        assert indices.tolist() == expected.tolist()
        assert data == rows_after[expected].tobytes()
