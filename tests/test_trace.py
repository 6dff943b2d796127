"""The Chrome / Perfetto trace (``ttsim run --trace``): the trace-event format, one process per
(op, core) and one thread per RISC, stalls and op groups nested in their kernel zone, CB
occupancy counters, and times in µs at the device clock."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttsim.kernel_api.compute import ComputeContext
from ttsim.report.breakdown import is_stall_reason
from ttsim.report.trace import trace_document
from ttsim.simulate import run

RISC_NAMES = ["BRISC", "NCRISC", "TRISC0", "TRISC1", "TRISC2"]
CLOCK_MHZ = {"wormhole_b0": 1000.0, "blackhole": 1350.0}  # profiler CHIP_FREQ[MHz]
COMPUTE_API = {name for name in dir(ComputeContext) if not name.startswith("_")}
NS_PER_US = 1000

CONV: dict[str, Any] = {
    "batch": 1, "input_height": 16, "input_width": 16, "channels": 64, "kernel": [3, 3], "stride": [1, 1],
    "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6", "dtype": "bfloat16",
    "weights_dtype": "bfloat16", "memory_layout": "height_sharded", "math_fidelity": "LoFi",
}
SMALL = {"name": "trace_small", "conv": CONV}
SMALL_BS = {"name": "trace_bs", "conv": {**CONV, "memory_layout": "block_sharded", "channels": 128,
                                         "dtype": "bfloat8_b", "weights_dtype": "bfloat8_b"}}


def ttsim_cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


class Trace:
    """A parsed trace document: pid -> (op index, op code, program, core); (pid, tid) -> RISC."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.events = doc["traceEvents"]
        self.process: dict[int, tuple[int, str, str, tuple[int, int]]] = {}
        self.threads: dict[tuple[int, int], str] = {}
        for e in self.events:
            if e["ph"] == "M" and e["name"] == "process_name":
                m = re.fullmatch(r"(\d+): (\w+) \((\w+)\) core \((\d+), (\d+)\)", e["args"]["name"])
                assert m is not None, e["args"]["name"]
                self.process[e["pid"]] = (int(m.group(1)), m.group(2), m.group(3),
                                          (int(m.group(4)), int(m.group(5))))
            elif e["ph"] == "M" and e["name"] == "thread_name":
                self.threads[(e["pid"], e["tid"])] = e["args"]["name"]

    def of(self, ph: str, cat: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ph"] == ph and (cat is None or e.get("cat") == cat)]

    def nested(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ph"] == "X" and e.get("cat") != "kernel"]

    def core(self, pid: int) -> tuple[int, int]:
        return self.process[pid][3]

    def zones(self) -> dict[tuple[int, int], dict[str, Any]]:
        zones: dict[tuple[int, int], dict[str, Any]] = {}
        for e in self.of("X", "kernel"):
            assert (e["pid"], e["tid"]) not in zones  # one kernel zone per RISC per core per op
            zones[(e["pid"], e["tid"])] = e
        return zones


# -- the command line -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trace")
    (folder / "small.yaml").write_text(yaml.safe_dump(SMALL))
    return folder


@pytest.fixture(scope="module")
def default_trace(folder: Path):
    trace_path, json_path = folder / "default.json", folder / "report.json"
    done = ttsim_cli("run", folder / "small.yaml", "--trace", trace_path, "--json", json_path)
    assert done.returncode == 0, done.stderr
    return Trace(json.loads(trace_path.read_text())), json.loads(json_path.read_text())


@pytest.fixture(scope="module")
def all_cores_trace(folder: Path):
    trace_path, json_path = folder / "all.json", folder / "report_all.json"
    done = ttsim_cli("run", folder / "small.yaml", "--trace", trace_path, "--trace-cores", "all",
                     "--json", json_path)
    assert done.returncode == 0, done.stderr
    return Trace(json.loads(trace_path.read_text())), json.loads(json_path.read_text())


def test_trace_event_format(default_trace) -> None:
    trace, _ = default_trace
    assert isinstance(trace.events, list) and trace.events
    assert trace.doc["displayTimeUnit"] == "ns"
    assert trace.doc["otherData"]["schema_version"] == 1
    assert trace.doc["otherData"]["device"] == "wormhole_b0"
    assert trace.doc["otherData"]["clock_mhz"] == CLOCK_MHZ["wormhole_b0"]
    for e in trace.events:
        assert {"ph", "pid", "name"} <= e.keys(), e
        assert e["ph"] in ("M", "X", "C"), e
        if e["ph"] == "X":
            assert isinstance(e["tid"], int) and e["ts"] >= 0 and e["dur"] >= 0, e
            assert e["cat"] in ("kernel", "stall", "compute"), e
        if e["ph"] == "C":
            assert e["ts"] >= 0 and isinstance(e["args"]["pages"], int), e
    json.dumps(trace.doc, allow_nan=False)  # strict JSON: no NaN / Infinity


def test_a_process_per_op_and_core_and_a_thread_per_risc(default_trace) -> None:
    trace, report = default_trace
    ops = report["ops"]
    for index, op in enumerate(ops):
        pids = [pid for pid, (i, *_rest) in trace.process.items() if i == index]
        assert len(pids) == op["core_count"]
        assert len({trace.core(pid) for pid in pids}) == len(pids)
        for pid in pids:
            _, op_code, program, _ = trace.process[pid]
            assert (op_code, program) == (op["op_code"], op["program"])
            named = {tid: name for (p, tid), name in trace.threads.items() if p == pid}
            assert all(RISC_NAMES[tid] == name for tid, name in named.items())
            # a thread per RISC that ran a kernel on this core, and no other (no empty tracks)
            busy = {tid for (p, tid) in trace.zones() if p == pid}
            assert set(named) == busy and busy
            if op_code == "HaloDeviceOperation":
                assert set(named.values()) == {"BRISC", "NCRISC"}  # the halo op has no compute kernel
    for e in trace.of("X") + trace.of("C"):
        assert e["pid"] in trace.process
    for e in trace.of("X"):
        assert (e["pid"], e["tid"]) in trace.threads


def test_kernel_zones_name_their_risc(default_trace) -> None:
    trace, _ = default_trace
    for e in trace.of("X", "kernel"):
        assert e["name"].startswith(f"{trace.threads[(e['pid'], e['tid'])]}-KERNEL "), e


def test_default_traces_core_0_0_only_but_zones_of_every_core(default_trace) -> None:
    trace, report = default_trace
    zone_pids = {e["pid"] for e in trace.of("X", "kernel")}
    assert zone_pids == set(trace.process)  # every core of every op has its kernel zones
    assert len(zone_pids) == sum(op["core_count"] for op in report["ops"])
    detail = trace.nested() + trace.of("C")
    assert detail
    assert {trace.core(e["pid"]) for e in detail} == {(0, 0)}
    # core (0, 0) of each conv op has its compute op groups and CB counters
    for index, op in enumerate(report["ops"]):
        if op["op_code"] == "HaloDeviceOperation":
            continue
        pids = {pid for pid, p in trace.process.items() if p[0] == index and p[3] == (0, 0)}
        assert {e["pid"] for e in trace.nested()} & pids
        assert {e["pid"] for e in trace.of("C")} & pids


def test_all_cores_get_nested_events(all_cores_trace) -> None:
    trace, report = all_cores_trace
    assert report["ops"][1]["core_count"] > 1
    with_detail = {e["pid"] for e in trace.nested()}
    with_counters = {e["pid"] for e in trace.of("C")}
    for pid, (index, op_code, _, _) in trace.process.items():
        if op_code != "HaloDeviceOperation":
            assert pid in with_detail and pid in with_counters, trace.process[pid]
    halo_pids = {pid for pid, p in trace.process.items() if p[1] == "HaloDeviceOperation"}
    assert halo_pids & with_detail  # halo data movement waits on barriers somewhere


def test_all_cores_trace_has_the_same_zones_as_the_default(default_trace, all_cores_trace) -> None:
    zones = [{k: e[k] for k in ("pid", "tid", "name", "ts", "dur")} for e in default_trace[0].of("X", "kernel")]
    zones_all = [{k: e[k] for k in ("pid", "tid", "name", "ts", "dur")} for e in all_cores_trace[0].of("X", "kernel")]
    assert zones == zones_all


@pytest.mark.parametrize("index, cores, message", [
    (0, "abc", "--trace-cores"), (1, "1,2,3", "--trace-cores"), (2, "0,0;", "--trace-cores"),
    (3, "99,99", "outside"),
])
def test_bad_trace_cores_exit_2(folder: Path, index: int, cores: str, message: str) -> None:
    target = folder / f"bad_{index}.json"
    done = ttsim_cli("run", folder / "small.yaml", "--trace", target, "--trace-cores", cores)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ttsim: error:") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not target.exists()


# -- in process: the trace against the profile ------------------------------------------------------------

@pytest.fixture(scope="module", params=[("wormhole_b0", SMALL), ("blackhole", SMALL_BS)],
                ids=["wh-hs", "bh-bs"])
def traced(request):
    device, config = request.param
    results = run(config, program="all", device=device, trace=True, trace_cores=[(0, 0), (1, 0)])
    return device, results, Trace(trace_document(results))


def test_nested_events_lie_within_their_kernel_zone(traced) -> None:
    _, _, trace = traced
    zones = trace.zones()
    nested = trace.nested()
    assert nested
    for e in nested:
        zone = zones[(e["pid"], e["tid"])]  # a nested event only on a RISC that ran a kernel
        start, end = perfetto_ns(e)
        zone_start, zone_end = perfetto_ns(zone)
        assert zone_start <= start and end <= zone_end, (e, zone)  # exact, at the ns written
    assert {trace.core(e["pid"]) for e in nested} == {(0, 0), (1, 0)}


def test_nested_event_names(traced) -> None:
    _, _, trace = traced
    names = {e["name"] for e in trace.nested()}
    assert all(is_stall_reason(n) or n in COMPUTE_API for n in names), sorted(
        n for n in names if not (is_stall_reason(n) or n in COMPUTE_API))
    assert any(is_stall_reason(n) for n in names) and any(n in COMPUTE_API for n in names)
    # compute op groups are on the compute threads only
    for e in trace.nested():
        if not is_stall_reason(e["name"]):
            assert trace.threads[(e["pid"], e["tid"])].startswith("TRISC"), e


def test_category_is_stall_exactly_for_stall_reasons(traced) -> None:
    _, _, trace = traced
    wrong = {(e["name"], e["cat"]) for e in trace.nested() if (e["cat"] == "stall") != is_stall_reason(e["name"])}
    assert not wrong, sorted(wrong)


def test_stall_events_add_up_to_the_profile(traced) -> None:
    """Every blocked cycle of a traced core is in the timeline, under its reason."""
    _, results, trace = traced
    summed: dict[tuple, float] = defaultdict(float)
    count: dict[tuple, int] = defaultdict(int)
    for e in trace.nested():
        if is_stall_reason(e["name"]):
            index = trace.process[e["pid"]][0]
            key = (index, trace.core(e["pid"]), trace.threads[(e["pid"], e["tid"])], e["name"])
            summed[key] += e["dur"]
            count[key] += 1
    expected: dict[tuple, float] = {}
    for index, result in enumerate(results):
        clock = result.profile.clock_mhz
        for (core, risc), stalls in result.profile.blocked.items():
            if core in ((0, 0), (1, 0)):
                for reason, cycles in stalls.items():
                    expected[(index, core, risc.value, reason)] = cycles / clock
    assert summed.keys() == {k for k, v in expected.items() if v > 0}
    for key, us in expected.items():
        # each dur is whole ns: its two ends rounded to the nearest ns
        assert summed.get(key, 0.0) == pytest.approx(us, abs=1e-3 * count.get(key, 0) + 1e-9), key


def test_cb_counters_stay_within_the_cb(traced) -> None:
    _, results, trace = traced
    counters = trace.of("C")
    assert counters
    by_key: dict[tuple, list] = defaultdict(list)
    for e in counters:
        assert e["name"].startswith("CB ")
        by_key[(e["pid"], e["name"][3:])].append(e)
    for (pid, cb_name), events in by_key.items():
        index = trace.process[pid][0]
        records = [r for r in results[index].profile.cbs if r.core == trace.core(pid) and r.name == cb_name]
        assert len(records) == 1, (trace.process[pid], cb_name)
        record = records[0]
        pages = [e["args"]["pages"] for e in events]
        assert all(0 <= p <= record.num_pages for p in pages), (cb_name, record.num_pages, max(pages))
        assert max(pages) == record.max_occupancy
        ts = [e["ts"] for e in events]
        assert ts == sorted(ts)
        assert pages[-1] == record.pages_pushed - record.pages_popped  # occupancy left at the end


def test_times_are_microseconds_at_the_device_clock(traced) -> None:
    device, results, trace = traced
    clock = CLOCK_MHZ[device]
    assert trace.doc["otherData"]["clock_mhz"] == clock
    zones = trace.zones()
    checked = 0
    for index, result in enumerate(results):
        pids = {trace.core(pid): pid for pid, p in trace.process.items() if p[0] == index}
        for z in result.profile.zones:
            e = zones[(pids[z.core], RISC_NAMES.index(z.risc.value))]
            # ends at the nearest whole ns: within half a ns each
            assert e["ts"] * NS_PER_US == pytest.approx(z.start * 1000 / clock, abs=0.5 + 1e-6)
            assert e["dur"] * NS_PER_US == pytest.approx((z.end - z.start) * 1000 / clock, abs=1 + 1e-6)
            checked += 1
        # the op's span in the trace, at the clock, is its DEVICE KERNEL DURATION in cycles
        op_zones = [zones[k] for k in zones if trace.process[k[0]][0] == index]
        span_us = max(e["ts"] + e["dur"] for e in op_zones) - min(e["ts"] for e in op_zones)
        assert span_us * NS_PER_US == pytest.approx(result.device_kernel_duration_ns, abs=1 + 1e-6)
    assert checked == len(zones)


# -- as Perfetto imports it -----------------------------------------------------------------------------


def perfetto_ns(event: dict[str, Any]) -> tuple[int, int]:
    """(start, end) in ns as Perfetto's JSON importer reads a complete event: each of ``ts`` and
    ``dur`` (µs, doubles) becomes llround(value * 1000) (google/perfetto
    src/trace_processor/importers/json/json_utils ``CoerceToTs``)."""
    start = math.floor(event["ts"] * 1000 + 0.5)
    return start, start + math.floor(event["dur"] * 1000 + 0.5)


def perfetto_dropped_slices(events: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """Complete events Perfetto would drop as ``slice_drop_overlapping_complete_event``.

    Its slice tracker, per track (pid, tid), in timestamp order (stable for ties): pops every
    open slice that ended before the new one starts (or ends exactly at its start, unless both
    are zero-length), then drops the new slice if it starts inside an open slice but ends after
    it (google/perfetto src/trace_processor/importers/common/slice_tracker.cc). Returns
    (dropped, the open slice it crossed) pairs.
    """
    tracks: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            tracks[(e["pid"], e["tid"])].append(e)
    dropped = []
    for slices in tracks.values():
        stack: list[tuple[int, int, dict]] = []
        for e in sorted(slices, key=lambda e: perfetto_ns(e)[0]):
            start, end = perfetto_ns(e)
            while stack and (stack[-1][1] < start or (stack[-1][1] == start and not (
                    stack[-1][1] == stack[-1][0] and end == start))):
                stack.pop()
            crossed = next((s for s in stack if start < s[1] < end), None)
            if crossed is not None:
                dropped.append((e, crossed[2]))
                continue
            stack.append((start, end, e))
    return dropped


def test_the_nesting_check_finds_what_perfetto_drops() -> None:
    def x(ts: float, dur: float, tid: int = 0) -> dict[str, Any]:
        return {"ph": "X", "pid": 1, "tid": tid, "name": f"{ts}+{dur}", "ts": ts, "dur": dur}
    parent = x(1.0, 1.0)
    assert perfetto_dropped_slices([parent, x(1.5, 0.5), x(2.0, 1.0), x(1.0, 0.25)]) == []  # nest, touch
    late = x(1.5, 0.501)  # one ns past the parent's end
    assert perfetto_dropped_slices([parent, late]) == [(late, parent)]
    assert perfetto_dropped_slices([parent, x(1.5, 0.501, tid=1)]) == []  # another track
    early = x(0.999, 0.5)  # starts before the parent and ends inside it: the parent is dropped
    assert perfetto_dropped_slices([parent, early]) == [(parent, early)]


def test_perfetto_drops_no_slice(traced) -> None:
    _, _, trace = traced
    assert trace.nested()
    assert perfetto_dropped_slices(trace.events) == []


def test_every_thread_name_has_events(traced) -> None:
    _, _, trace = traced
    with_events = {(e["pid"], e["tid"]) for e in trace.of("X")}
    assert set(trace.threads) == with_events


@pytest.mark.slow
def test_op14_trace_imports_without_dropped_slices(tmp_path: Path) -> None:
    """The trace issue 14 reported 409 dropped slices on: both programs of MobileNetV2 op 14."""
    trace_path = tmp_path / "op14.json"
    config = Path(__file__).resolve().parent.parent / "configs" / "mobilenetv2_op14.yaml"
    done = ttsim_cli("run", config, "--trace", trace_path)
    assert done.returncode == 0, done.stderr
    trace = Trace(json.loads(trace_path.read_text()))
    assert len(trace.nested()) > 1000
    assert perfetto_dropped_slices(trace.events) == []
    assert set(trace.threads) == {(e["pid"], e["tid"]) for e in trace.of("X")}
