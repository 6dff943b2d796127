"""NoC timing: routes on the torus, calibration against the measured DM-tests figures
(tt-metal DM-tests ``tests/tt_metal/tt_metal/data_movement/documentation/perf_plots/``),
contention on shared ports, and multicast delivery."""

from __future__ import annotations

from bisect import bisect_right

import numpy as np
import pytest

from ttsim.device.core import Risc
from ttsim.device.device import Device
from ttsim.device.noc import NocModel
from ttsim.device.spec import load_device
from ttsim.errors import ConfigurationError
from ttsim.host import Program, run_program

# The DM-tests setup behind those plots (TM tests/tt_metal/tt_metal/data_movement/one_from_one/
# test_one_from_one.cpp, TensixDataMovementOneFromOnePacketSizes): master (requestor) logical
# core (0,0) reads from subordinate logical core (1,1) on NOC::RISCV_1_default, i.e. NCRISC on
# NoC1. On the unidirectional torus (NoC1 goes -y, -x) that is 20 (WH) / 27 (BH) hops there, 2 back.
REQUESTER = (0, 0)
TARGET = (1, 1)
CAL_RISC, CAL_NOC = Risc.NCRISC, 1


# -- (a) routes -------------------------------------------------------------------------------

def _stream(model: NocModel, ports, nbytes: int, t: float, cap: float) -> float:
    """The reference booking of a transfer: ``ports`` at the slowest port's rate, at most ``cap``
    (what the NoC's read and write plans precompute)."""
    return model._book(ports, nbytes, t, min([cap, *(port.bytes_per_cycle for port in ports)]))


@pytest.fixture(scope="module")
def wh_noc() -> NocModel:
    return NocModel(load_device("wormhole_b0"))


@pytest.mark.parametrize(("noc", "src", "dst", "hops"), [
    (0, (1, 1), (2, 1), 1),     # one step +x
    (0, (2, 1), (1, 1), 9),     # NoC0 only goes +x: around the 10-wide ring
    (1, (2, 1), (1, 1), 1),     # NoC1 goes -x
    (1, (1, 1), (2, 1), 9),
    (0, (1, 1), (1, 2), 1),     # one step +y
    (0, (1, 2), (1, 1), 11),    # around the 12-high ring
    (1, (1, 2), (1, 1), 1),
    (0, (9, 11), (0, 0), 2),    # wrap in both dimensions
    (1, (0, 0), (9, 11), 2),
    (0, (8, 10), (1, 2), 7),    # 3 in x (8->9->0->1), 4 in y (10->11->0->1->2)
    (1, (8, 10), (1, 2), 15),   # 7 in x (8->...->1 going down), 8 in y
    (0, (3, 4), (3, 4), 0),
])
def test_hop_counts(wh_noc: NocModel, noc: int, src, dst, hops: int) -> None:
    assert wh_noc.hops(noc, src, dst) == hops
    assert len(wh_noc.route_nodes(noc, src, dst)) == hops


def test_noc0_goes_x_then_y(wh_noc: NocModel) -> None:
    assert wh_noc.route_nodes(0, (8, 10), (1, 2)) == [
        (8, 10, "x"), (9, 10, "x"), (0, 10, "x"),
        (1, 10, "y"), (1, 11, "y"), (1, 0, "y"), (1, 1, "y"),
    ]


def test_noc1_goes_y_then_x(wh_noc: NocModel) -> None:
    assert wh_noc.route_nodes(1, (1, 1), (9, 11)) == [
        (1, 1, "y"), (1, 0, "y"),     # -y: 1 -> 0 -> 11
        (1, 11, "x"), (0, 11, "x"),   # -x: 1 -> 0 -> 9
    ]


# -- (b) calibration against the DM-tests perf plots ---------------------------------------------

def _remote_read_cycles(device_name: str, size: int, count: int) -> int:
    device = Device(load_device(device_name))
    buffer = device.allocate_l1_buffer("data", [REQUESTER, TARGET], size)

    def requester(ctx):
        x, y = ctx.device.worker_core(TARGET)
        for _ in range(count):
            ctx.noc_async_read(ctx.get_noc_addr(x, y, buffer.address(TARGET)),
                               buffer.address(REQUESTER), size)
        ctx.noc_async_read_barrier()
        yield from ()

    program = Program("one_from_one")
    program.create_kernel("requestor", requester, [REQUESTER], CAL_RISC, {}, noc=CAL_NOC)
    profile = run_program(device, program)
    return _single_kernel_duration(profile)


def _dram_read_cycles(device_name: str, size: int, count: int) -> int:
    """As the DM-tests DRAM kernel (dram_unary/kernels/reader_unary.cpp): ``count`` reads of
    consecutive addresses of one bank, addresses precomputed (no interleaved address generation)."""
    device = Device(load_device(device_name))
    dram = device.dram.allocate_interleaved("dram_data", size * count, len(device.dram.banks))
    bank_x, bank_y = device.dram.banks[0].noc_xy
    landing = device.allocate_l1_buffer("landing", [REQUESTER], size)

    def reader(ctx):
        for i in range(count):
            ctx.noc_async_read(ctx.get_noc_addr(bank_x, bank_y, dram.base_address + i * size),
                               landing.address(REQUESTER), size)
        ctx.noc_async_read_barrier()
        yield from ()

    program = Program("dram_interleaved")
    program.create_kernel("reader", reader, [REQUESTER], CAL_RISC, {}, noc=CAL_NOC)
    return _single_kernel_duration(run_program(device, program))


def _single_kernel_duration(profile) -> int:
    """The kernel zone is the only thing in the op: the device duration is that zone."""
    assert len(profile.zones) == 1
    zone = profile.zones[0]
    assert zone.core == REQUESTER and zone.risc is CAL_RISC
    assert zone.start == 0.0  # first core launched: no stagger, no firmware gap
    assert profile.device_kernel_duration_cycles == round(zone.end - zone.start)
    assert profile.risc_duration_cycles[CAL_RISC] == profile.device_kernel_duration_cycles
    return profile.device_kernel_duration_cycles


# (device, kind, bytes per read, reads, measured cycles) from the DM-tests perf_plots/<arch>/*.md tables.
MEASURED = [
    ("wormhole_b0", "remote", 32, 1, 290),
    ("wormhole_b0", "remote", 2048, 1, 364),
    ("wormhole_b0", "remote", 8192, 1, 570),
    ("wormhole_b0", "remote", 2048, 256, 18_722),
    ("wormhole_b0", "dram", 32, 1, 384),
    ("wormhole_b0", "dram", 2048, 1, 463),
    ("wormhole_b0", "dram", 2048, 256, 23_929),
    ("blackhole", "remote", 64, 1, 368),
    ("blackhole", "remote", 2048, 1, 402),
    ("blackhole", "remote", 8192, 1, 495),
    ("blackhole", "remote", 2048, 256, 9_311),
    ("blackhole", "dram", 64, 1, 479),
    ("blackhole", "dram", 2048, 1, 578),
    ("blackhole", "dram", 2048, 256, 24_603),
]
TOLERANCE = 0.15

def _case(device: str, kind: str, size: int, count: int, measured: int):
    return pytest.param(device, kind, size, count, measured, id=f"{device}-{kind}-{count}x{size}B")


def _simulate(device: str, kind: str, size: int, count: int) -> int:
    return (_remote_read_cycles if kind == "remote" else _dram_read_cycles)(device, size, count)


@pytest.fixture(scope="module")
def calibration(request) -> dict[tuple[str, str, int, int], int]:
    """Simulate every case once and print the table of simulated vs measured."""
    simulated = {row[:4]: _simulate(*row[:4]) for row in MEASURED}
    lines = ["", f"{'device':12} {'kind':6} {'reads':>5} {'bytes':>6} {'measured':>9} "
                 f"{'simulated':>9} {'error':>7}"]
    for device, kind, size, count, measured in MEASURED:
        cycles = simulated[(device, kind, size, count)]
        lines.append(f"{device:12} {kind:6} {count:5} {size:6} {measured:9,} {cycles:9,} "
                     f"{(cycles - measured) / measured:+7.1%}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n".join(lines))
    else:
        print("\n".join(lines))
    return simulated


@pytest.mark.parametrize(("device", "kind", "size", "count", "measured"),
                         [_case(*row) for row in MEASURED])
def test_calibration_within_15_percent(calibration, device: str, kind: str, size: int, count: int,
                                       measured: int) -> None:
    simulated = calibration[(device, kind, size, count)]
    assert abs(simulated - measured) <= TOLERANCE * measured, (
        f"{device} {kind} {count} x {size} B: simulated {simulated} vs measured {measured}")


def test_steady_state_bandwidth_per_read(calibration) -> None:
    """DM-tests One from One: 73 cycles per 2 KiB (28.0 B/cycle) between remote reads on WH."""
    one = calibration[("wormhole_b0", "remote", 2048, 1)]
    many = calibration[("wormhole_b0", "remote", 2048, 256)]
    per_read = (many - one) / 255
    assert per_read == pytest.approx(73, rel=0.10)
    assert 2048 / per_read == pytest.approx(28.0, rel=0.10)


# -- (c) contention ---------------------------------------------------------------------------

CONTENTION_BYTES = 64 * 1024


def _concurrent_reads(pairs: list[tuple[tuple[int, int], tuple[int, int]]]):
    device = Device(load_device("wormhole_b0"))
    cores = sorted({xy for pair in pairs for xy in pair})
    buffer = device.allocate_l1_buffer("data", cores, CONTENTION_BYTES)
    program = Program("contention")
    for requester, target in pairs:
        def kernel(ctx, target=target):
            x, y = ctx.device.worker_core(target)
            ctx.noc_async_read(ctx.get_noc_addr(x, y, buffer.address(target)),
                               buffer.address(ctx.core.logical), CONTENTION_BYTES)
            ctx.noc_async_read_barrier()
            yield from ()
        program.create_kernel(f"reader_{requester}", kernel, [requester], Risc.BRISC, {}, noc=0)
    return run_program(device, program)


def test_two_readers_of_one_core_share_its_niu() -> None:
    spec = load_device("wormhole_b0")
    streaming = CONTENTION_BYTES / min(spec.noc.niu_bytes_per_cycle.value,
                                       spec.noc.link_bytes_per_cycle.value)  # ~2,332 cycles
    alone = _concurrent_reads([((0, 0), (1, 0))]).device_kernel_duration_cycles
    assert alone > streaming
    shared = _concurrent_reads([((0, 0), (1, 0)), ((2, 0), (1, 0))])
    slowest = max(shared.per_core_duration_cycles().values())
    # the second transfer queues behind the first on the target's NIU: one more streaming time
    assert slowest - alone == pytest.approx(streaming, rel=0.10)
    assert slowest / alone > 1.6


def test_readers_on_disjoint_links_do_not_interfere() -> None:
    alone = _concurrent_reads([((0, 0), (1, 0))]).device_kernel_duration_cycles
    # rows 0 and 2 use different NIUs and different router links (row y=1 vs y=3 on NoC0)
    both = _concurrent_reads([((0, 0), (1, 0)), ((0, 2), (1, 2))])
    assert both.per_core_duration_cycles() == {(0, 0): alone, (0, 2): alone}


# -- (d) multicast ----------------------------------------------------------------------------

def _multicast_program(device: Device, rect_logical, num_dests: int, payload: np.ndarray):
    sender = (0, 0)
    buffer = device.allocate_l1_buffer("mcast", list(device.cores), payload.size)
    address = buffer.address(sender)  # same on every core (fresh device)
    (lx0, ly0), (lx1, ly1) = rect_logical
    x0, y0 = device.worker_core((lx0, ly0))
    x1, y1 = device.worker_core((lx1, ly1))

    def kernel(ctx):
        ctx.l1_store(address, payload)
        ctx.noc_async_write_multicast(address, ctx.get_noc_multicast_addr(x0, y0, x1, y1, address),
                                      payload.size, num_dests)
        ctx.noc_async_write_barrier()
        yield from ()

    program = Program("mcast")
    program.create_kernel("sender", kernel, [sender], Risc.BRISC, {}, noc=0)
    return program, address


def test_multicast_reaches_every_core_of_the_rectangle() -> None:
    device = Device(load_device("wormhole_b0"))
    payload = (np.arange(256) * 7 % 251).astype(np.uint8)
    rect = ((1, 1), (3, 2))  # 3 x 2 logical cores, the sender (0,0) outside
    program, address = _multicast_program(device, rect, 6, payload)
    profile = run_program(device, program)
    inside = {(x, y) for x in range(1, 4) for y in range(1, 3)}
    for xy, core in device.cores.items():
        landed = core.l1.read(address, payload.size)
        if xy in inside:
            assert np.array_equal(landed, payload), xy
        elif xy != (0, 0):
            assert not landed.any(), xy
    # the write costs at least its streaming time at the multicast rate
    mcast_rate = device.spec.noc.multicast_bytes_per_cycle.value
    assert profile.device_kernel_duration_cycles > payload.size / mcast_rate


def test_multicast_rectangle_spanning_a_dram_column_counts_only_workers() -> None:
    device = Device(load_device("wormhole_b0"))
    payload = np.full(64, 0xAB, dtype=np.uint8)
    # logical columns 3 and 4 are NoC x=4 and x=6; NoC x=5 is DRAM: 2 x 1 worker cores
    program, address = _multicast_program(device, ((3, 0), (4, 0)), 2, payload)
    run_program(device, program)
    assert np.array_equal(device.core((3, 0)).l1.read(address, 64), payload)
    assert np.array_equal(device.core((4, 0)).l1.read(address, 64), payload)


def test_multicast_num_dests_mismatch_raises() -> None:
    device = Device(load_device("wormhole_b0"))
    payload = np.ones(32, dtype=np.uint8)
    program, _ = _multicast_program(device, ((1, 1), (3, 2)), 5, payload)
    with pytest.raises(ConfigurationError) as info:
        run_program(device, program)
    message = str(info.value)
    assert "noc_async_write_multicast" in message
    assert "5 destinations" in message and "6 worker cores" in message
    assert "kernel 'sender' on core (0,0)" in message


# -- get_noc_addr overloads (tt-metal dataflow_api.h) -----------------------------------------------

def test_get_noc_addr_one_argument_is_this_cores_l1() -> None:
    device = Device(load_device("wormhole_b0"))
    program = Program("noc_addr")
    seen = []

    def kernel(ctx):
        seen.append((ctx.get_noc_addr(0x1000), ctx.get_noc_addr(3, 4, 0x20), ctx.core.noc_xy))
        with pytest.raises(ConfigurationError, match="get_noc_addr takes \\(addr\\) or \\(x, y, addr\\), got 2"):
            ctx.get_noc_addr(1, 2)
        yield from ()

    program.create_kernel("k", kernel, [(1, 1)], Risc.BRISC, {})
    run_program(device, program)
    local, remote, xy = seen[0]
    assert (local.x, local.y, local.addr) == (*xy, 0x1000)
    assert (remote.x, remote.y, remote.addr) == (3, 4, 0x20)


# -- the reservation calendar against a brute-force model ----------------------------------------

def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Intervals merged where they overlap or touch (within the calendar's 1e-9 tolerance)."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1e-9:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def test_port_calendar_is_the_union_of_disjoint_bookings() -> None:
    """Bookings in any order (touching, gapped, filling a gap exactly) leave the calendar as the
    union of the booked intervals, busy time as their sum."""
    from ttsim.device.noc import Port

    rng = np.random.default_rng(7)
    for _ in range(200):
        slots = rng.permutation(40)[: rng.integers(1, 40)]
        lengths = rng.choice([2.0, 4.0], size=slots.size)  # slot i is [4i, 4i + length)
        port, booked = Port("p", 32.0), []
        for slot, length in zip(slots.tolist(), lengths.tolist()):
            port.reserve(4.0 * slot, length, 64)
            booked.append((4.0 * slot, 4.0 * slot + length))
            assert list(zip(port._starts, port._ends)) == _union(booked)
        assert port.busy_cycles == pytest.approx(sum(e - s for s, e in booked))
        assert port.bytes_moved == 64 * len(booked)


def test_stream_takes_the_earliest_gap_free_on_every_port() -> None:
    """A burst starts at the earliest time >= its issue at which every port of its path is idle
    for its duration (checked against every candidate start: the issue time and each interval
    end)."""
    from ttsim.device.noc import Port

    model = NocModel(load_device("wormhole_b0"))
    rng = np.random.default_rng(11)
    for _ in range(300):
        ports = tuple(Port(f"p{i}", 32.0) for i in range(rng.integers(1, 5)))
        for port in ports:
            for slot in sorted(rng.permutation(30)[: rng.integers(0, 12)].tolist()):
                port.reserve(10.0 * slot, float(rng.integers(1, 10)), 32)
        issue, nbytes = float(rng.integers(0, 250)), 32 * int(rng.integers(1, 8))
        duration = nbytes / 32.0

        def idle(start: float) -> bool:
            return all(not (s < start + duration and e > start)
                       for port in ports for s, e in zip(port._starts, port._ends))

        candidates = sorted({issue, *(e for port in ports for e in port._ends if e >= issue)})
        expected = next(c for c in candidates if idle(c))
        end = _stream(model, ports, nbytes, issue, 32.0)
        assert end == expected + duration


def _assert_kernel_leaves_l1(device: Device, kernel, expected: dict) -> None:
    """Run ``kernel`` on BRISC of core (0, 0) and check every core of ``expected`` holds its
    bytes."""
    program = Program("copies")
    program.create_kernel("k", kernel, [(0, 0)], Risc.BRISC, {})
    run_program(device, program)
    for xy, data in expected.items():
        assert np.array_equal(device.core(xy).l1.data, data)


def test_multi_burst_transfer_books_exactly_as_burst_by_burst() -> None:
    """A transfer of several bursts (its path idle after the issue, or not, or idle once its
    first burst waited behind the last booking) ends at the same float, leaves the same
    calendars and the same busy totals, bit for bit, as booking each burst in turn with
    Port.reserve at the earliest start found by brute force (a rate that is not a power of two,
    so the order of the float sums matters)."""
    from ttsim.device.noc import Port

    model = NocModel(load_device("wormhole_b0"))
    burst, rate = model.max_burst, 28.3
    rng = np.random.default_rng(5)
    for case in range(200):
        mine = tuple(Port(f"p{i}", 64.0) for i in range(rng.integers(1, 5)))
        ref = tuple(Port(f"p{i}", 64.0) for i in range(len(mine)))
        busy_later = case % 3 == 1
        behind_last = case % 3 == 2  # the first burst waits for the last booking, the rest are idle
        for a, b in zip(mine, ref):
            for slot in sorted(rng.permutation(30)[: rng.integers(0, 6)].tolist()):
                length = float(rng.integers(1, 400))
                a.reserve(1000.0 * slot, length, 32)
                b.reserve(1000.0 * slot, length, 32)
        last = max((p._ends[-1] for p in mine if p._ends), default=0.0)
        issue = float(rng.integers(0, 30_000)) / 7 if busy_later else last + float(rng.integers(0, 3))
        if behind_last:
            issue = last - float(rng.integers(0, 300))
        nbytes = burst * int(rng.integers(1, 6)) + int(rng.integers(0, burst))

        end, remaining = issue, nbytes
        while remaining > 0:
            chunk = min(remaining, burst)
            duration = chunk / rate
            start = end
            while not all(not (s < start + duration and e > start)
                          for port in ref for s, e in zip(port._starts, port._ends)):
                start = min(e for port in ref for s, e in zip(port._starts, port._ends)
                            if s < start + duration and e > start)
            for port in ref:
                port.reserve(start, duration, chunk)
            end = start + duration
            remaining -= chunk

        assert model._book(mine, nbytes, issue, rate) == end
        for a, b in zip(mine, ref):
            assert (a._starts, a._ends, a.busy_cycles, a.bytes_moved) == \
                   (b._starts, b._ends, b.busy_cycles, b.bytes_moved)


def _reference_earliest(ports, t: float, duration: float) -> float:
    """The search _book used before it kept each port's insertion index: visit the ports in
    turn, moving start past every interval that overlaps [start, start + duration), until all of
    them in a row are idle."""
    start, k, idle = t, 0, 0
    while idle < len(ports):
        port = ports[k]
        k = (k + 1) % len(ports)
        starts, ends = port._starts, port._ends
        i, moved = bisect_right(ends, start), False
        while i < len(ends) and starts[i] < start + duration:
            if ends[i] > start:
                start, moved = ends[i], True
            i += 1
        idle = 1 if moved else idle + 1
    return start


def _reference_book(model: NocModel, ports, nbytes: int, t: float, rate: float) -> float:
    """The booking _book made before: burst by burst, each at _reference_earliest from the end
    of the previous one, booked on every port with Port.reserve (its own bisect and insert)."""
    end, remaining = t, nbytes
    while remaining > 0:
        chunk = min(remaining, model.max_burst)
        duration = chunk / rate
        start = _reference_earliest(ports, end, duration)
        for port in ports:
            port.reserve(start, duration, chunk)
        end = start + duration
        remaining -= chunk
    return end


def test_booking_out_of_order_matches_the_reference_search_and_reserve() -> None:
    """Transfers on routes sharing ports (up to 22 of them, as the longest multi-hop reads),
    issued out of order so they wait in gaps before later bookings, overlapping, and touching
    earlier ones within the 1e-9 merge tolerance or just outside it, some of several bursts:
    _book ends at the same float and leaves the same calendars and totals, bit for bit, as the
    reference search with one Port.reserve per port."""
    from ttsim.device.noc import Port

    model = NocModel(load_device("wormhole_b0"))
    rng = np.random.default_rng(31)
    for case in range(60):
        count = int(rng.integers(2, 30))
        mine = [Port(f"p{i}", 32.0) for i in range(count)]
        ref = [Port(f"p{i}", 32.0) for i in range(count)]
        ends = [0.0]
        for _ in range(300):
            picked = rng.permutation(count)[: rng.integers(1, min(count, 22) + 1)].tolist()
            if case % 2:
                nbytes = int(rng.choice([32, 64, 288, 2048, 8192, 9000, 20000]))
                rate = float(rng.choice([32.0, 28.3, 2.5, 7.0 / 3]))
            else:  # whole cycles: some transfers fill a gap exactly, joining both neighbours
                nbytes, rate = 32 * int(rng.integers(1, 4)), 32.0
            kind = rng.integers(0, 4)
            if kind == 0:  # anywhere in the past or future of the bookings so far
                t = float(rng.uniform(0.0, ends[-1] + 100.0))
                t = t if case % 2 else float(int(t))
            else:  # at an earlier end, touching it, or just apart (beyond the tolerance)
                t = float(rng.choice(ends)) + [0.0, 5e-10, -5e-10, 2e-9][kind]
            t = max(t, 0.0)
            end = _reference_book(model, [ref[k] for k in picked], nbytes, t, rate)
            assert model._book(tuple(mine[k] for k in picked), nbytes, t, rate) == end
            ends.append(end)
            ends.sort()
            for a, b in zip(mine, ref):
                assert (a._starts, a._ends, a.busy_cycles, a.bytes_moved) == \
                       (b._starts, b._ends, b.busy_cycles, b.bytes_moved)


def _twin_read_models(spec, rng: np.random.Generator, target: tuple[int, int]) -> tuple:
    """Two fresh NoC models on one clock (``now[0]``) and the plan of a read by core (1, 1) from
    ``target`` on a random NoC in each: (now, model, reference model, [plan, reference plan])."""
    now = [0.0]
    mine, ref = NocModel(spec, lambda: now[0]), NocModel(spec, lambda: now[0])
    noc = int(rng.integers(0, 2))
    return now, mine, ref, [model.read_plan(noc, (1, 1), target) for model in (mine, ref)]


def test_read_planned_many_books_exactly_as_one_read_at_a_time() -> None:
    """A batch of reads (local, core to core, from DRAM; the path idle, busy later or with gaps
    before other bookings; issues queued behind each other, gapped by more or less than the
    1e-9 merge tolerance, at one cycle, across the 4096-issue forgetting) lands at the same
    float and leaves the same calendars, totals and issue count, bit for bit, as one
    read_planned call per read."""
    spec = load_device("wormhole_b0")
    rng = np.random.default_rng(13)
    dram = tuple(spec.dram.bank_noc_xy.value[0])
    for case in range(300):
        now, mine, ref, plans = _twin_read_models(spec, rng, [(1, 1), (3, 4), dram][case % 3])
        shared = case % 4 == 0  # every port of the path booked alike: its last ends all equal
        slots = sorted(rng.permutation(60)[: rng.integers(0, 8)].tolist())
        for a, b in zip(plans[0][0], plans[1][0]):  # the same bookings of other transfers
            if not shared:
                slots = sorted(rng.permutation(60)[: rng.integers(0, 8)].tolist())
            for slot in slots:
                length = float(slot % 7 + 1) if shared else float(rng.integers(1, 90)) / 3
                a.reserve(50.0 * slot, length, 32)
                b.reserve(50.0 * slot, length, 32)
        issued = int(rng.integers(0, 4096 * 2))
        mine._issued = ref._issued = issued
        now[0] = float(rng.integers(0, 200))
        t = now[0] + float(rng.integers(0, 100))
        nbytes = int(rng.choice([32, 288, 864, 2048, 8192, 9000]))
        duration = nbytes / plans[0][1]  # a step of it (+ a little) lands the next issue at an end
        times = []
        for _ in range(int(rng.integers(1, 5000 if case % 10 == 0 else 300))):
            t += rng.choice([10.0, 10.0, 10.0, 0.0, 1e-10, 7.3, 300.0 / 7, 95.0,
                             duration, duration + 5e-10, duration + 2e-9])
            times.append(t)
        expected = max(ref.read_planned(plans[1], nbytes, t) for t in times)
        assert mine.read_planned_many(plans[0], nbytes, times)[0] == expected
        assert mine._issued == ref._issued
        for a, b in zip(plans[0][0], plans[1][0]):
            assert (a._starts, a._ends, a.busy_cycles, a.bytes_moved) == \
                   (b._starts, b._ends, b.busy_cycles, b.bytes_moved)


def test_batches_of_reads_chained_book_exactly_as_one_read_at_a_time() -> None:
    """Batches of reads, each passed the end the previous one returned, with other transfers
    booked on the path's ports in between (before, across and after the last read's end, on
    some ports or all) and the clock moving on (forgetting the past): every batch lands at the
    same float and leaves the same calendars, totals and issue count, bit for bit, as one
    read_planned call per read. Some chained batches straddle an issue count that is a
    multiple of 4096 (booked in runs around the read that forgets), the others are booked at
    once."""
    spec = load_device("wormhole_b0")
    rng = np.random.default_rng(29)
    dram = tuple(spec.dram.bank_noc_xy.value[0])
    chained = straddling = 0
    for case in range(200):
        now, mine, ref, plans = _twin_read_models(spec, rng, [(1, 1), (3, 4), dram][case % 3])
        mine._issued = ref._issued = int(rng.integers(0, 4096 * 2))
        nbytes = int(rng.choice([32, 288, 864, 2048]))
        duration = nbytes / plans[0][1]
        t = float(rng.integers(0, 100))
        last = None
        for _ in range(int(rng.integers(1, 40))):
            times = []
            for _ in range(int(rng.integers(1, 6 if case % 5 else 600))):
                t += rng.choice([10.0, 0.0, 1e-10, 7.3, duration, duration + 5e-10, duration + 2e-9, 95.0])
                times.append(t)
            expected = max(ref.read_planned(plans[1], nbytes, t) for t in times)
            chained += last is not None
            straddling += last is not None and mine._issued % 4096 + len(times) >= 4096
            land, last = mine.read_planned_many(plans[0], nbytes, times, last)
            assert land == expected
            assert mine._issued == ref._issued
            for a, b in zip(plans[0][0], plans[1][0]):
                assert (a._starts, a._ends, a.busy_cycles, a.bytes_moved) == \
                       (b._starts, b._ends, b.busy_cycles, b.bytes_moved)
            if rng.random() < 0.5:  # another transfer on some ports of the path, in the first gap
                some = [k for k in range(len(plans[0][0])) if rng.random() < 0.6]  # from its issue
                issue, size = max(now[0], t + float(rng.integers(-60, 80)) / 3), int(rng.integers(1, 300))
                for model, plan in ((mine, plans[0]), (ref, plans[1])):
                    model._book(tuple(plan[0][k] for k in some), size, issue, 2.5)
            if rng.random() < 0.3:  # the clock moves on to the last issue (never past one)
                now[0] = t
                mine._forget_past()
                ref._forget_past()
    assert chained > 1000 and straddling > 30


def test_unicast_write_lands_and_books_as_its_path_streamed() -> None:
    """A unicast write (to another core, to the node itself, to a DRAM bank; issued in any order,
    so some wait in gaps) lands at the same float and leaves the same calendars and totals, bit
    for bit, as streaming its path at the slowest port or the write's cap and adding its latency
    (the DRAM write latency, or the base latency plus one per hop)."""
    spec = load_device("wormhole_b0")
    noc_spec = spec.noc
    mine, ref = NocModel(spec), NocModel(spec)
    dram = tuple(spec.dram.bank_noc_xy.value[0])
    rng = np.random.default_rng(17)
    for _ in range(2000):
        noc = int(rng.integers(0, 2))
        src = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dst = [src, (3, 4), (1, 2), dram][int(rng.integers(0, 4))]
        nbytes, t = int(rng.choice([32, 288, 2048, 8192, 9000])), float(rng.integers(0, 20_000)) / 3
        if dst == dram:
            cap, latency = noc_spec.link_bytes_per_cycle.value, spec.dram.write_latency_cycles.value
        else:
            cap = (noc_spec.local_bytes_per_cycle if dst == src else noc_spec.link_bytes_per_cycle).value
            latency = (noc_spec.write_base_latency_cycles.value
                       + ref.hops(noc, src, dst) * noc_spec.write_hop_latency_cycles.value)
        expected = _stream(ref, ref._path(noc, src, dst), nbytes, t, cap) + latency
        assert mine.write(noc, src, dst, nbytes, t) == expected
    assert [key for key, _ in mine.all_ports()] == [key for key, _ in ref.all_ports()]
    for (_, a), (_, b) in zip(mine.all_ports(), ref.all_ports()):
        assert (a._starts, a._ends, a.busy_cycles, a.bytes_moved) == \
               (b._starts, b._ends, b.busy_cycles, b.bytes_moved)


def test_reads_and_writes_move_bytes_as_numpy_slice_assignment() -> None:
    """NoC reads (plain and ``*_with_state``) and writes leave every L1 byte as numpy's slice
    assignment ``dst[d : d + len(p)] = p`` with ``p = src[s : s + size]`` does: ranges that
    overlap in one core's L1, and a source range running past the end of L1 (only its bytes
    inside L1 land)."""
    device = Device(load_device("wormhole_b0"))
    size_l1 = device.core((0, 0)).l1.data.size
    rng = np.random.default_rng(19)
    initial = {xy: rng.integers(0, 256, size_l1, dtype=np.uint8) for xy in ((0, 0), (1, 0))}
    for xy, data in initial.items():
        device.core(xy).l1.data[:] = data
    # (kind, source core, source address, destination core, destination address, size)
    copies = [("read", (1, 0), 0x20000, (0, 0), 0x30000, 4096),
              ("read", (0, 0), 0x40000, (0, 0), 0x40010, 2048),      # overlap, forwards
              ("read", (0, 0), 0x50010, (0, 0), 0x50000, 2048),      # overlap, backwards
              ("read", (1, 0), size_l1 - 100, (0, 0), 0x60000, 256),  # past the end: 100 B land
              ("state", (0, 0), 0x70000, (0, 0), 0x70020, 64),
              ("state", (0, 0), size_l1 - 16, (0, 0), 0x71000, 64),
              ("write", (0, 0), 0x80000, (1, 0), 0x80000, 8192 + 96),
              ("write", (0, 0), 0x90000, (0, 0), 0x90040, 1024),
              ("write", (0, 0), size_l1 - 40, (1, 0), 0x91000, 64)]
    expected = {xy: data.copy() for xy, data in initial.items()}
    for kind, src_core, src, dst_core, dst, size in copies:
        if kind == "write":  # burst by burst, as the kernel API moves them
            for offset in range(0, size, 8192):
                payload = expected[src_core][src + offset : src + min(size, offset + 8192)].copy()
                expected[dst_core][dst + offset : dst + offset + payload.size] = payload
        else:
            payload = expected[src_core][src : src + size].copy()
            expected[dst_core][dst : dst + payload.size] = payload
    def kernel(ctx):
        for kind, src_core, src, dst_core, dst, size in copies:
            src_xy, dst_xy = device.core(src_core).noc_xy, device.core(dst_core).noc_xy
            if kind == "read":
                ctx.noc_async_read(ctx.get_noc_addr(*src_xy, src), dst, size)
            elif kind == "state":
                ctx.noc_async_read_one_packet_set_state(ctx.get_noc_addr(*src_xy, 0), size)
                ctx.noc_async_read_one_packet_with_state(src, dst)
            else:
                ctx.noc_async_write(src, ctx.get_noc_addr(*dst_xy, dst), size)
        ctx.noc_async_read_barrier()
        ctx.noc_async_write_barrier()
        yield from ()

    _assert_kernel_leaves_l1(device, kernel, expected)


def test_multicast_moves_bytes_as_numpy_slice_assignment() -> None:
    """A multicast leaves every destination's L1 as ``dst[d : d + len(p)] = p`` with
    ``p = src[s : s + size]`` copied first: with loopback onto a range overlapping its source
    (the sender is the first destination), without overlap, without loopback, and from a source
    range running past the end of L1 (only its bytes inside L1 land)."""
    device = Device(load_device("wormhole_b0"))
    size_l1 = device.core((0, 0)).l1.data.size
    rng = np.random.default_rng(23)
    cores = ((0, 0), (1, 0))
    for xy in cores:
        device.core(xy).l1.data[:] = rng.integers(0, 256, size_l1, dtype=np.uint8)
    expected = {xy: device.core(xy).l1.data.copy() for xy in cores}
    # (source, destination, size, loopback)
    sends = [(0x40000, 0x40010, 4096, True), (0x60000, 0x70000, 8192, True), (0x80000, 0x80000, 512, False),
             (size_l1 - 100, 0x50000, 256, True)]
    for src, dst, size, loopback in sends:
        payload = expected[(0, 0)][src : src + size].copy()
        for xy in cores if loopback else cores[1:]:
            expected[xy][dst : dst + payload.size] = payload
    def kernel(ctx):
        (x0, y0), (x1, y1) = (device.core(xy).noc_xy for xy in cores)
        for src, dst, size, loopback in sends:
            ctx.noc_async_write_multicast(src, ctx.get_noc_multicast_addr(x0, y0, x1, y1, dst), size,
                                          2 if loopback else 1, loopback_src=loopback)
        ctx.noc_async_write_barrier()
        yield from ()

    _assert_kernel_leaves_l1(device, kernel, expected)


def test_a_route_holding_a_port_twice_is_refused():
    """The booking keeps one insertion index per port of a route, so a route must hold each port
    once; a plan built with a repeated port is refused where it is made."""
    from ttsim.device.noc import Port, _route_plan

    port = Port("noc0 link (1, 1, 'x')", 32.0)
    assert _route_plan((port, Port("noc0 niu (2, 1) in", 32.0)), 64.0, 10.0)[1] == 32.0
    with pytest.raises(ValueError, match="holds a port twice.*link \\(1, 1, 'x'\\)"):
        _route_plan((port, Port("other", 32.0), port), 64.0, 10.0)
