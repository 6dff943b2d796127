"""Chrome / Perfetto trace JSON of simulated ops (loads in ui.perfetto.dev and chrome://tracing).

One process per (op, core), one thread per RISC. Complete ("X") events: each RISC's kernel zone,
nested inside it every blocking wait (named by its stall reason) and every compute op group
(consecutive work of one API call on one thread); counter ("C") tracks: CB occupancy in pages.
Chrome's ``ts`` / ``dur`` are microseconds: values are device cycles converted at the device
clock, so they carry ns precision (``displayTimeUnit`` is ns).
"""

from __future__ import annotations

from typing import Any

from ttsim.device.core import Risc
from ttsim.report.breakdown import is_stall_reason
from ttsim.results import OpResult

SCHEMA_VERSION = 1
RISC_ORDER = (Risc.BRISC, Risc.NCRISC, Risc.TRISC0, Risc.TRISC1, Risc.TRISC2)


def _us(cycles: float, clock_mhz: float) -> float:
    return round(cycles / clock_mhz, 6)


def trace_events(results: list[OpResult]) -> list[dict[str, Any]]:
    """Every trace event of ``results`` (only ops run with tracing have nested events)."""
    events: list[dict[str, Any]] = []
    for op_index, result in enumerate(results):
        profile = result.profile
        clock = profile.clock_mhz
        cores = sorted({z.core for z in profile.zones}, key=lambda c: (c[1], c[0]))
        pids = {core: op_index * 1000 + i for i, core in enumerate(cores)}
        for core, pid in pids.items():
            events.append({"ph": "M", "name": "process_name", "pid": pid,
                           "args": {"name": f"{op_index}: {result.op_code} ({result.program}) core {core}"}})
            events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
            for tid, risc in enumerate(RISC_ORDER):
                events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                               "args": {"name": risc.value}})
        for zone in profile.zones:
            events.append({"ph": "X", "name": f"{zone.risc.value}-KERNEL {zone.kernel}", "cat": "kernel",
                           "pid": pids[zone.core], "tid": RISC_ORDER.index(zone.risc),
                           "ts": _us(zone.start, clock), "dur": _us(zone.end - zone.start, clock)})
        for core, risc, name, start, end in profile.events:
            events.append({"ph": "X", "name": name, "cat": "stall" if is_stall_reason(name) else "compute",
                           "pid": pids[core], "tid": RISC_ORDER.index(risc),
                           "ts": _us(start, clock), "dur": _us(end - start, clock)})
        for core, cb_name, t, pages in profile.counters:
            events.append({"ph": "C", "name": f"CB {cb_name}", "pid": pids[core], "ts": _us(t, clock),
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
