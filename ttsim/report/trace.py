"""Chrome / Perfetto trace JSON of simulated ops (loads in ui.perfetto.dev and chrome://tracing).

One process per (op, core), one thread per RISC that ran a kernel (no empty tracks). Complete
("X") events: each RISC's kernel zone, nested inside it every blocking wait (named by its stall
reason) and every compute op group (consecutive work of one API call on one thread); counter
("C") tracks: CB occupancy in pages.

Exact nesting: every event time is first rounded to a whole ns at the device clock (a monotone
map, so intervals that nest or are disjoint in cycles still do), and ``ts`` / ``dur`` are those
integers / 1000 (Chrome's unit is µs). Perfetto's JSON importer turns a µs value back into ns
with ``llround(value * 1000)`` (src/trace_processor/importers/json/json_utils, ``CoerceToTs``),
which recovers the integers exactly, so ``ts + dur`` of a child never passes its parent's end
and Perfetto drops no slice (``slice_drop_overlapping_complete_event``). Events of one track are
written parent first (by start, then longest first).
"""

from __future__ import annotations

import math
from typing import Any

from ttsim.device.core import Risc
from ttsim.report.breakdown import is_stall_reason
from ttsim.results import OpResult

SCHEMA_VERSION = 1
RISC_ORDER = (Risc.BRISC, Risc.NCRISC, Risc.TRISC0, Risc.TRISC1, Risc.TRISC2)


def whole_ns(cycles: float, clock_mhz: float) -> int:
    """Device cycles -> the nearest whole ns at the clock (monotone non-decreasing in cycles)."""
    return math.floor(cycles * 1000.0 / clock_mhz + 0.5)


def _us(ns: int) -> float:
    return ns / 1000


def trace_events(results: list[OpResult]) -> list[dict[str, Any]]:
    """Every trace event of ``results`` (only ops run with tracing have nested events)."""
    events: list[dict[str, Any]] = []
    for op_index, result in enumerate(results):
        profile = result.profile
        clock = profile.clock_mhz
        cores = sorted({z.core for z in profile.zones}, key=lambda c: (c[1], c[0]))
        pids = {core: op_index * 1000 + i for i, core in enumerate(cores)}
        # (pid, tid) -> [(start ns, end ns, depth, name, category)]
        tracks: dict[tuple[int, int], list[tuple[int, int, int, str, str]]] = {}
        for zone in profile.zones:
            key = (pids[zone.core], RISC_ORDER.index(zone.risc))
            tracks.setdefault(key, []).append((whole_ns(zone.start, clock), whole_ns(zone.end, clock), 0,
                                               f"{zone.risc.value}-KERNEL {zone.kernel}", "kernel"))
        for core, risc, name, start, end in profile.events:
            key = (pids[core], RISC_ORDER.index(risc))
            tracks.setdefault(key, []).append((whole_ns(start, clock), whole_ns(end, clock), 1, name,
                                               "stall" if is_stall_reason(name) else "compute"))
        for core, pid in pids.items():
            events.append({"ph": "M", "name": "process_name", "pid": pid,
                           "args": {"name": f"{op_index}: {result.op_code} ({result.program}) core {core}"}})
            events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
            for tid, risc in enumerate(RISC_ORDER):
                if (pid, tid) in tracks:
                    events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                                   "args": {"name": risc.value}})
        for (pid, tid), slices in tracks.items():
            for start, end, _, name, category in sorted(slices, key=lambda s: (s[0], -s[1], s[2])):
                events.append({"ph": "X", "name": name, "cat": category, "pid": pid, "tid": tid,
                               "ts": _us(start), "dur": _us(end - start)})
        for core, cb_name, t, pages in profile.counters:
            events.append({"ph": "C", "name": f"CB {cb_name}", "pid": pids[core], "ts": _us(whole_ns(t, clock)),
                           "args": {"pages": pages}})
    return events


def trace_document(results: list[OpResult]) -> dict[str, Any]:
    first = results[0].profile if results else None
    return {
        "traceEvents": trace_events(results),
        "displayTimeUnit": "ns",
        "otherData": {"schema_version": SCHEMA_VERSION, "generator": "ttsim",
                      "clock_mhz": first.clock_mhz if first else None,
                      "device": results[0].device if results else None},
    }
