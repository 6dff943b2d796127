"""Timing of the two networks-on-chip.

The model is a reservation (virtual cut-through) model, chosen for speed and determinism: a
transfer occupies every port on its path (the source NIU, each router link, the destination
NIU, or a DRAM bank) for ``bytes / rate`` cycles, where ``rate`` is the slowest port or the
primitive's own cap. Ports are served first come, first served, so concurrent transfers that
share a link share its bandwidth by queueing. Latency (router hops, NIU, DRAM) is added on top
of the streaming time. Routes are dimension-ordered on the torus: NoC0 goes +x then +y, NoC1
goes -y then -x (ISA-WH NoC/RoutingPaths.md). Transfers larger than the maximum burst are split
into bursts.

Nothing here knows about kernels or convolution: callers pass coordinates, byte counts and the
issue time, and receive arrival times in cycles.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Callable

from ttsim.device.spec import DeviceSpec

XY = tuple[int, int]
_NEG_INF = float("-inf")  # a port's last end before any booking (read_planned_many, per read)
RoutePlan = tuple[tuple["Port", ...], float, float]
"""A read (or unicast write) route's ports, rate in bytes per cycle and latency in cycles
(NocModel.read_plan, NocModel.write)."""


def _route_plan(ports: tuple[Port, ...], cap: float, latency: float) -> RoutePlan:
    """A route's plan: its ports, its rate (the slowest port, at most the primitive's ``cap``, in
    bytes per cycle) and the latency (cycles) added to its streaming. A route holds each port
    once: the booking (:func:`_book_busy`) keeps one insertion index per port of the route."""
    if len(set(map(id, ports))) != len(ports):
        raise ValueError(f"a NoC route holds a port twice: {[port.name for port in ports]}")
    return ports, min(cap, *(port.bytes_per_cycle for port in ports)), latency


class Port:
    """A serially shared resource with a bandwidth (a router link, an NIU side, a DRAM bank).

    It keeps a calendar of reserved intervals, so a transfer issued by a kernel whose clock is
    behind another's still finds the idle gaps before the other's later reservations.
    """

    __slots__ = ("name", "bytes_per_cycle", "busy_cycles", "bytes_moved", "_starts", "_ends")

    def __init__(self, name: str, bytes_per_cycle: float) -> None:
        self.name = name
        self.bytes_per_cycle = bytes_per_cycle
        self.busy_cycles = 0.0
        self.bytes_moved = 0
        self._starts: list[float] = []
        self._ends: list[float] = []

    def reserve(self, start: float, duration: float, nbytes: int) -> None:
        """Book [start, start + duration); merges with touching neighbours."""
        end = start + duration
        self.busy_cycles += duration
        self.bytes_moved += nbytes
        ends = self._ends
        if not ends or ends[-1] <= start:  # nothing booked after start (the common case)
            if ends and ends[-1] >= start - 1e-9:
                ends[-1] = end
            else:
                self._starts.append(start)
                ends.append(end)
            return
        self.insert(start, end)

    def insert(self, start: float, end: float) -> None:
        """Put [start, end) into the calendar where an interval is booked after ``start``
        (:meth:`reserve` without the totals)."""
        starts, ends = self._starts, self._ends
        i = bisect_right(ends, start)
        # the merged calendar, edited in place: [start, end) joins the interval before it when
        # that one ends at start, and the one after when that one starts by end
        joins_next = i < len(starts) and starts[i] <= end + 1e-9
        if i > 0 and ends[i - 1] >= start - 1e-9:
            if joins_next:
                ends[i - 1] = max(end, ends[i])
                del starts[i], ends[i]
            else:
                ends[i - 1] = end
        elif joins_next:
            starts[i] = start
            ends[i] = max(end, ends[i])
        else:
            starts.insert(i, start)
            ends.insert(i, end)

    def calendar(self) -> tuple[list[float], list[float]]:
        """The booked intervals: starts and ends, sorted and disjoint (copies)."""
        return list(self._starts), list(self._ends)

    def restore(self, starts: list[float], ends: list[float], busy_cycles: float, bytes_moved: int) -> None:
        """Set the calendar and the totals (a run finished in another process: ttsim/split_run.py)."""
        self._starts, self._ends = list(starts), list(ends)
        self.busy_cycles, self.bytes_moved = busy_cycles, bytes_moved

    def forget_before(self, t: float) -> None:
        """Drop intervals that ended before ``t`` (no request can start earlier than now)."""
        i = bisect_right(self._ends, t)
        if i:
            del self._starts[:i], self._ends[:i]


def _book_busy(ports: tuple[Port, ...], t: float, duration: float, nbytes: int) -> float:
    """Book ``nbytes`` for ``duration`` on every port of ``ports`` at the earliest start >= ``t``
    at which all of them are idle for ``duration``; return the end (:meth:`NocModel._book` when
    a port is booked after ``t``).

    The search visits the ports in turn, from the last (the destination) back to the first,
    until all of them in a row are idle at start (a port that moves start is idle at the new
    one; each move is to the end of an interval that rules out every earlier start, so the
    visiting order does not change the result; this one moves start soonest, on the measured
    runs, so fewer ports are visited again). Each visit ends
    with the port's insertion index at the current start (``bisect_right(ends, start)``), so the
    last visits, all at the final start, leave every port's index for the booking: one bisect
    per port, not a second one in :meth:`Port.insert`.
    """
    count_ports = len(ports)
    at = [0] * count_ports  # per port: its insertion index at start, once booked after it
    start = t
    k = count_ports - 1
    idle = 0
    while idle < count_ports:
        port = ports[k]
        ends = port._ends
        if ends and ends[-1] > start:
            i = bisect_right(ends, start)
            starts = port._starts
            if starts[i] < start + duration:  # interval i rules out start: move to its end
                count = len(ends)
                start = ends[i]
                i += 1
                while i < count and starts[i] < start + duration:
                    start = ends[i]
                    i += 1
                idle = 0
            at[k] = i
        idle += 1
        k = k - 1 if k else count_ports - 1
    return _reserve_at(ports, at, start, duration, nbytes)


def _reserve_at(ports: tuple[Port, ...], at: list[int], start: float, duration: float,
                nbytes: int) -> float:
    """:meth:`Port.reserve` of [start, start + duration) on every port of ``ports``, each
    booked after ``start`` at its insertion index ``at[k]`` (:func:`_book_busy`); returns the
    end. The interval fits the gap before ``ends[i]``: it joins the interval before it when
    that one ends by start (within the tolerance), the one after when that one starts by end."""
    end = start + duration
    apart = start - 1e-9  # an interval ending before this does not touch the new one
    joins = end + 1e-9  # an interval starting by this touches it
    for port, i in zip(ports, at):
        port.busy_cycles += duration
        port.bytes_moved += nbytes
        ends = port._ends
        if not ends or ends[-1] < apart:
            port._starts.append(start)
            ends.append(end)
        elif ends[-1] <= start:
            ends[-1] = end
        else:  # Port.insert at i (i < len(ends): ends[-1] > start)
            starts = port._starts
            if i and ends[i - 1] >= apart:
                if starts[i] <= joins:
                    ends[i - 1] = max(end, ends[i])
                    del starts[i], ends[i]
                else:
                    ends[i - 1] = end
            elif starts[i] <= joins:
                starts[i] = start
                ends[i] = max(end, ends[i])
            else:
                starts.insert(i, start)
                ends.insert(i, end)
    return end


def _append_reads(ports: tuple[Port, ...], times: list[float], e: float, duration: float,
                  nbytes: int) -> float:
    """Book reads of ``nbytes`` issued at ``times`` (non-decreasing) on ``ports``, every one of
    whose last intervals ends at ``e``, each read starting at ``max(t, e)`` and lasting
    ``duration`` (the fast reads of :meth:`NocModel.read_planned_many`, see there); returns the
    last one's end. Every port's calendar gains the same intervals: a read starting more than
    :meth:`Port.reserve`'s tolerance after ``e`` opens one, the others extend the last."""
    first_end = e  # the end of the current last interval, once a gap closes it
    new_starts: list[float] = []
    new_ends: list[float] = []
    for t in times:
        if t > e:
            if e < t - 1e-9:  # a gap: a new interval (Port.reserve's rule)
                if new_starts:
                    new_ends.append(e)
                else:
                    first_end = e
                new_starts.append(t)
            e = t + duration
        else:
            e = e + duration
    moved = len(times) * nbytes
    for port in ports:
        busy = port.busy_cycles
        for _ in times:  # one addition per read, in order (the float sums of one booking each)
            busy += duration
        port.busy_cycles = busy
        port.bytes_moved += moved
        ends = port._ends
        if new_starts:
            ends[-1] = first_end
            port._starts += new_starts
            if new_ends:
                ends += new_ends
            ends.append(e)
        else:
            ends[-1] = e
    return e


class NocModel:
    """Both NoCs of one device, plus the DRAM bank ports they reach."""

    def __init__(self, spec: DeviceSpec, now: Callable[[], float] = lambda: 0.0) -> None:
        self.spec = spec
        self._now = now
        self._issued = 0
        self._atomics = 0
        noc = spec.noc
        self.width, self.height = spec.chip.noc_grid.value
        self.link_rate = noc.link_bytes_per_cycle.value
        self.niu_rate = noc.niu_bytes_per_cycle.value
        self.max_burst = noc.max_burst_bytes.value
        self.hop_latency = noc.hop_latency_cycles.value
        # constants read on every transfer (hot path: one attribute each instead of a chain)
        self._local_rate = noc.local_bytes_per_cycle.value
        self._local_read_latency = noc.local_read_latency_cycles.value
        self._read_base_latency = noc.read_base_latency_cycles.value
        self._write_base_latency = noc.write_base_latency_cycles.value
        self._write_hop_latency = noc.write_hop_latency_cycles.value
        self._dram_read_latency = spec.dram.read_latency_cycles.value
        self._dram_write_latency = spec.dram.write_latency_cycles.value
        self._links: dict[tuple[int, int, int, str], Port] = {}
        self._nius: dict[tuple[int, XY, str], Port] = {}
        self._banks: dict[XY, Port] = {}
        self._routes: dict[tuple[int, XY, XY], tuple[Port, ...]] = {}
        self._read_plans: dict[tuple[int, XY, XY], RoutePlan] = {}
        """Per (noc, target, requester): a read's path, rate and latency (:meth:`read_plan`)."""
        self._write_plans: dict[tuple[int, XY, XY], RoutePlan] = {}
        """Per (noc, source, destination): a unicast write's path, rate and latency (:meth:`write`)."""
        self._mcast_plans: dict[tuple[int, XY, tuple[XY, ...], bool], RoutePlan] = {}
        """Per (noc, source, destinations, linked): a multicast's path, rate and latency
        (:meth:`_make_mcast_plan`)."""
        self._atomic_latencies: dict[tuple[int, XY, XY], float] = {}
        """Per (noc, source, destination): a semaphore update's latency."""
        for xy in spec.dram.bank_noc_xy.value:
            self._banks[tuple(xy)] = Port(f"dram{tuple(xy)}", spec.dram.bank_bytes_per_cycle.value)

    # -- topology -------------------------------------------------------------------------
    def route_nodes(self, noc: int, src: XY, dst: XY) -> list[tuple[int, int, str]]:
        """The (x, y, axis) of every link a packet leaves on, from src to dst."""
        x, y = src
        hops: list[tuple[int, int, str]] = []
        if noc == 0:
            while x != dst[0]:
                hops.append((x, y, "x"))
                x = (x + 1) % self.width
            while y != dst[1]:
                hops.append((x, y, "y"))
                y = (y + 1) % self.height
        else:
            while y != dst[1]:
                hops.append((x, y, "y"))
                y = (y - 1) % self.height
            while x != dst[0]:
                hops.append((x, y, "x"))
                x = (x - 1) % self.width
        return hops

    def hops(self, noc: int, src: XY, dst: XY) -> int:
        """Router hops from src to dst on ``noc``."""
        dx, dy = dst[0] - src[0], dst[1] - src[1]
        if noc == 0:
            return dx % self.width + dy % self.height
        return (-dx) % self.width + (-dy) % self.height

    def _link(self, noc: int, node: tuple[int, int, str]) -> Port:
        key = (noc, *node)
        port = self._links.get(key)
        if port is None:
            port = Port(f"noc{noc} link {node}", self.link_rate)
            self._links[key] = port
        return port

    def niu(self, noc: int, xy: XY, side: str) -> Port:
        """The NIU of node ``xy`` on ``noc``; side 'out' sends, 'in' receives."""
        key = (noc, xy, side)
        port = self._nius.get(key)
        if port is None:
            port = Port(f"noc{noc} niu {xy} {side}", self.niu_rate)
            self._nius[key] = port
        return port

    def _path(self, noc: int, src: XY, dst: XY) -> tuple[Port, ...]:
        key = (noc, src, dst)
        path = self._routes.get(key)
        if path is None:
            first = self._banks.get(src) or self.niu(noc, src, "out")
            links = [self._link(noc, node) for node in self.route_nodes(noc, src, dst)]
            path = (first, *links, self.niu(noc, dst, "in"))
            self._routes[key] = path
        return path

    # -- streaming ------------------------------------------------------------------------
    def _book(self, ports: tuple[Port, ...], nbytes: int, t: float, rate: float) -> float:
        """Book ``ports`` for ``nbytes`` from time ``t`` at ``rate`` (the path's slowest port or the
        primitive's cap); return when the last byte leaves. Each burst takes the first interval from
        its issue time in which every port of the path is idle (cut-through: a packet streams
        through all ports at once)."""
        self._issued += 1
        if self._issued % 4096 == 0:
            self._forget_past()
        if nbytes > self.max_burst:
            return self._book_bursts(ports, nbytes, t, rate)
        duration = nbytes / rate
        for port in ports:
            ends = port._ends
            if ends and ends[-1] > t:
                return _book_busy(ports, t, duration, nbytes)
        # no port is booked after t (the common case): each interval is appended or extends the
        # last one (Port.reserve's tail case, inline: one burst per read is the hot path)
        end = t + duration
        apart = t - 1e-9  # an interval ending before this does not touch the new one
        for port in ports:
            port.busy_cycles += duration
            port.bytes_moved += nbytes
            ends = port._ends
            if not ends or ends[-1] < apart:
                port._starts.append(t)
                ends.append(end)
            else:
                ends[-1] = end
        return end

    def _book_bursts(self, ports: tuple[Port, ...], nbytes: int, t: float, rate: float) -> float:
        """:meth:`_book` of a transfer larger than the maximum burst: one burst after another,
        each from the end of the previous one."""
        max_burst = self.max_burst
        end = t
        remaining = nbytes
        if all(not port._ends or port._ends[-1] <= t for port in ports):  # none booked after t
            return self._book_idle_bursts(ports, nbytes, t, rate)
        while remaining > 0:
            chunk = min(remaining, max_burst)
            duration = chunk / rate
            end = _book_busy(ports, end, duration, chunk)
            remaining -= chunk
            # every port's last interval ends at this burst's end (a later one would end later):
            # nothing is booked after it, so the rest are the idle case from there
            if remaining > 0 and all(port._ends[-1] == end for port in ports):
                return self._book_idle_bursts(ports, remaining, end, rate)
        return end

    def _book_idle_bursts(self, ports: tuple[Port, ...], nbytes: int, t: float, rate: float) -> float:
        """:meth:`_book_bursts` when no port of the path is booked after ``t``: every burst
        starts where the previous one ended, so each port's calendar gains one interval from
        ``t`` (or its last interval, touching ``t``, is extended). The ends and each port's busy
        total are the same float sums, in the same order, as booking burst by burst."""
        max_burst = self.max_burst
        durations = []
        end = t
        remaining = nbytes
        while remaining > 0:
            chunk = min(remaining, max_burst)
            duration = chunk / rate
            durations.append(duration)
            end = end + duration
            remaining -= chunk
        for port in ports:
            busy = port.busy_cycles
            for duration in durations:
                busy += duration
            port.busy_cycles = busy
            port.bytes_moved += nbytes
            ends = port._ends
            if ends and ends[-1] >= t - 1e-9:
                ends[-1] = end
            else:
                port._starts.append(t)
                ends.append(end)
        return end

    def _forget_past(self) -> None:
        now = self._now()
        for port in (*self._links.values(), *self._nius.values(), *self._banks.values()):
            port.forget_before(now)

    def keep_shared_history(self) -> None:
        """From now on forget past intervals of the NIU ports only: the calendars of the router
        links and DRAM banks keep every booking made since (ttsim/split_run.py compares them)."""
        def forget_niu_past() -> None:
            now = self._now()
            for port in self._nius.values():
                port.forget_before(now)

        self._forget_past = forget_niu_past  # type: ignore[method-assign]

    # -- the ports as a whole -------------------------------------------------------------------
    def all_ports(self) -> list[tuple[tuple, Port]]:
        """Every port created so far, by key: ("link", noc, x, y, axis), ("niu", noc, xy, side)
        or ("bank", xy)."""
        return [*((("link", *k), p) for k, p in self._links.items()),
                *((("niu", *k), p) for k, p in self._nius.items()),
                *((("bank", k), p) for k, p in self._banks.items())]

    def port_at(self, key: tuple) -> Port:
        """The port of an :meth:`all_ports` key, created if it was not yet."""
        kind, *rest = key
        if kind == "link":
            return self._link(rest[0], tuple(rest[1:]))  # type: ignore[arg-type]
        if kind == "niu":
            return self.niu(*rest)
        return self._banks[rest[0]]

    def shared_traffic(self) -> tuple[int, int]:
        """(bytes moved over router links and DRAM bank ports, semaphore updates sent) so far:
        what changes whenever a transfer leaves a core's own L1."""
        return (sum(port.bytes_moved for port in self._links.values())
                + sum(port.bytes_moved for port in self._banks.values()), self._atomics)

    # -- primitives -----------------------------------------------------------------------
    def read(self, noc: int, requester: XY, target: XY, nbytes: int, t: float) -> float:
        """A read issued at cycle ``t`` by ``requester`` of bytes held at ``target``.

        Returns the cycle at which the last byte has landed in the requester's L1.
        """
        return self.read_planned(self.read_plan(noc, requester, target), nbytes, t)

    def read_planned(self, plan: RoutePlan, nbytes: int, t: float) -> float:
        """:meth:`read` along a :meth:`read_plan` (a kernel keeps the plans of its sources)."""
        return self._book(plan[0], nbytes, t, plan[1]) + plan[2]

    def read_planned_many(self, plan: RoutePlan, nbytes: int, times: list[float],
                          last: float | None = None) -> tuple[float, float | None]:
        """:meth:`read_planned` of ``nbytes`` issued at each of ``times`` (non-decreasing), in
        order. ``last`` is what the previous call of the same issuer along ``plan`` returned
        second (its reads issued no later than these). Returns the last landing (the largest) and,
        when the last read ended last on every port of the path, its end (else None). The
        calendars, totals and landings are those of one :meth:`read_planned` call per read.

        A read is booked by :meth:`read_planned` itself unless the previous read of the issuer
        along the path ended last on every port at ``e`` and every port's last interval still ends
        at ``e``: then the read starts at ``max(t, e)``. That is exactly the start the search of
        :func:`_book_busy` finds. With ``t >= e`` no port is booked after ``t``. With ``t < e``
        no start in [t, e) is free: a free gap there would be free in the calendar the previous read was booked in
        (calendars only gain intervals, but for the past ones forgotten, which end before any
        issue time; and the previous read's own interval, still booked, ends at ``e`` after any
        such gap's start, so the gap starts before the previous read did) at a start >= its issue
        time and earlier than its own, which that search would have found (it never moves a start
        past a free one). The interval then joins the last one or is appended as in :meth:`_book`,
        the ends are the same ``start + duration`` sums, and each port's busy total gains the same
        durations in the same order. A read whose issue count is a multiple of 4096 (when
        :meth:`_book` forgets the past) goes through :meth:`read_planned`.
        """
        ports, rate, latency = plan
        if nbytes > self.max_burst:  # several bursts per read: one call each
            return max(self.read_planned(plan, nbytes, t) for t in times), None
        duration = nbytes / rate
        count = len(times)
        e = last  # the end of the issuer's last read along the path while it ends last everywhere
        if e is not None:
            for port in ports:
                ends = port._ends
                if not ends or ends[-1] != e:  # booked after it since (or all forgotten)
                    e = None
                    break
            else:
                if self._issued % 4096 + count < 4096:  # every read fast (the common case)
                    self._issued += count
                    e = _append_reads(ports, times, e, duration, nbytes)
                    return e + latency, e
        last_land = _NEG_INF
        i = 0
        while i < count:
            stop = i if e is None else min(count, i + 4095 - self._issued % 4096)
            if stop <= i:  # read i through read_planned
                t = times[i]
                before = []
                for port in ports:
                    ends = port._ends
                    before.append(ends[-1] if ends else _NEG_INF)
                land = self.read_planned(plan, nbytes, t)
                i += 1
                if land > last_land:
                    last_land = land
                # the read ended last on every port when every last end moved, all to the same e
                # (a port's last end only moves to the end of the interval just booked)
                e = ports[0]._ends[-1]
                for port, old in zip(ports, before):  # (a plain loop: cheaper than any())
                    end = port._ends[-1]
                    if end != e or end <= old:
                        e = None
                        break
                continue
            self._issued += stop - i
            e = _append_reads(ports, times[i:stop], e, duration, nbytes)
            land = e + latency
            if land > last_land:
                last_land = land
            i = stop
        return last_land, e

    def read_plan(self, noc: int, requester: XY, target: XY) -> RoutePlan:
        """What every read from ``target`` to ``requester`` on ``noc`` shares: its path, its
        rate (the slowest port or the read's cap) and the latency added to its streaming."""
        key = (noc, target, requester)
        plan = self._read_plans.get(key)
        if plan is None:
            plan = self._read_plans[key] = self._make_read_plan(noc, requester, target)
        return plan

    def _make_read_plan(self, noc: int, requester: XY, target: XY) -> RoutePlan:
        path = self._path(noc, target, requester)
        if target in self._banks:
            cap, latency = self.link_rate, self._dram_read_latency
        elif target == requester:  # no links: the NIU out and in ports
            cap, latency = self._local_rate, self._local_read_latency
        else:
            round_trip = self.hops(noc, requester, target) + self.hops(noc, target, requester)
            cap, latency = self.link_rate, self._read_base_latency + round_trip * self.hop_latency
        return _route_plan(path, cap, latency)

    def write_latency(self, hops: int) -> float:
        return self._write_base_latency + hops * self._write_hop_latency

    def write(self, noc: int, src: XY, dst: XY, nbytes: int, t: float) -> float:
        """A unicast write issued at ``t``; returns its arrival (and ack) cycle at ``dst``."""
        key = (noc, src, dst)
        plan = self._write_plans.get(key)
        if plan is None:
            plan = self._write_plans[key] = self._make_write_plan(noc, src, dst)
        return self._book(plan[0], nbytes, t, plan[1]) + plan[2]

    def _make_write_plan(self, noc: int, src: XY, dst: XY) -> RoutePlan:
        """What every write from ``src`` to ``dst`` on ``noc`` shares: its path, its rate (the
        slowest port or the write's cap) and the latency added to its streaming (to a DRAM bank,
        to the node itself through its NIU, or over the links)."""
        path = self._path(noc, src, dst)
        if dst in self._banks:
            cap, latency = self.link_rate, self._dram_write_latency
        elif src == dst:  # no links: the NIU out and in ports
            cap, latency = self._local_rate, self.write_latency(0)
        else:
            cap, latency = self.link_rate, self.write_latency(self.hops(noc, src, dst))
        return _route_plan(path, cap, latency)

    def multicast(self, noc: int, src: XY, dests: tuple[XY, ...] | list[XY], nbytes: int, t: float,
                  linked: bool) -> float:
        """One write delivered to every node of ``dests``; returns the last arrival cycle."""
        key = (noc, src, tuple(dests), linked)
        plan = self._mcast_plans.get(key)
        if plan is None:
            plan = self._mcast_plans[key] = self._make_mcast_plan(noc, src, key[2], linked)
        return self._book(plan[0], nbytes, t, plan[1]) + plan[2]

    def _make_mcast_plan(self, noc: int, src: XY, dests: tuple[XY, ...], linked: bool) -> RoutePlan:
        """What every multicast from ``src`` to ``dests`` on ``noc`` shares: the union of the
        unicast paths, the rate (the slowest of those ports or the multicast's cap, linked or
        not) and the latency of the farthest destination's hops."""
        ports: dict[str, Port] = {}
        for dst in dests:
            for port in self._path(noc, src, dst):
                ports[port.name] = port
        spec = self.spec.noc
        cap = (spec.multicast_linked_bytes_per_cycle if linked else spec.multicast_bytes_per_cycle).value
        hops = max((self.hops(noc, src, d) for d in dests), default=0)
        return _route_plan(tuple(ports.values()), cap, self.write_latency(hops))

    def atomic(self, noc: int, src: XY, dst: XY, t: float) -> float:
        """A 4-byte semaphore update issued at ``t``; returns when it lands at ``dst``."""
        self._atomics += 1
        key = (noc, src, dst)
        latency = self._atomic_latencies.get(key)
        if latency is None:
            latency = self._atomic_latencies[key] = self.write_latency(self.hops(noc, src, dst))
        return t + latency
