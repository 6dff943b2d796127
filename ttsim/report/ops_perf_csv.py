"""tt-metal's ``ops_perf_results_*.csv`` written from simulated ops (tt-metal
``tools/tracy/process_ops_logs.py``; PM columns: ``ttnn/core/operation.cpp``).

Column names are tt-metal's ``OPS_CSV_HEADER`` in order, with INPUTS / OUTPUTS expanded per tensor.
Times are ns at the device clock. Columns ttsim cannot know (host timestamps, dispatch, trace ids,
kernel hashes and sizes, tt-npe NoC figures) are written empty. PM columns follow the op
performance model (``OpPerformanceModelGeneral``): PM COMPUTE from the op family's ideal cycles,
PM BANDWIDTH the max over tensors (DRAM: bytes / peak; L1: 1 ns), PM IDEAL their max.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ttsim.device.core import Risc
from ttsim.device.spec import DeviceSpec, load_device
from ttsim.report.tt_metal_attributes import conv_attributes, halo_attributes, tt_metal_op_code
from ttsim.results import OpResult, TensorDesc

HEADER_BEFORE_TENSORS = [
    "OP CODE", "OP TYPE", "GLOBAL CALL COUNT", "DEVICE ID", "DEVICE ARCH", "ATTRIBUTES", "MATH FIDELITY",
    "CORE COUNT", "AVAILABLE WORKER CORE COUNT", "PARALLELIZATION STRATEGY", "HOST START TS", "HOST END TS",
    "HOST DURATION [ns]", "DEVICE FW START CYCLE", "DEVICE FW END CYCLE", "OP TO OP LATENCY [ns]",
    "OP TO OP LATENCY BR/NRISC START [ns]", "DEVICE FW DURATION [ns]", "DEVICE KERNEL DURATION [ns]",
    "DEVICE KERNEL DURATION DM START [ns]", "DEVICE KERNEL DURATION PER CORE MIN [ns]",
    "DEVICE KERNEL DURATION PER CORE MAX [ns]", "DEVICE KERNEL DURATION PER CORE AVG [ns]",
    "DEVICE KERNEL FIRST TO LAST START [ns]", "DEVICE BRISC KERNEL DURATION [ns]",
    "DEVICE NCRISC KERNEL DURATION [ns]", "DEVICE TRISC0 KERNEL DURATION [ns]",
    "DEVICE TRISC1 KERNEL DURATION [ns]", "DEVICE TRISC2 KERNEL DURATION [ns]",
    "DEVICE ERISC KERNEL DURATION [ns]", "DEVICE COMPUTE CB WAIT FRONT [ns]",
    "DEVICE COMPUTE CB RESERVE BACK [ns]", "DISPATCH TOTAL CQ CMD OP TIME [ns]",
    "DISPATCH GO SEND WAIT TIME [ns]",
]
HEADER_AFTER_TENSORS = [
    "METAL TRACE ID", "METAL TRACE REPLAY SESSION ID", "COMPUTE KERNEL SOURCE", "COMPUTE KERNEL HASH",
    "DATA MOVEMENT KERNEL SOURCE", "DATA MOVEMENT KERNEL HASH", "PROGRAM HASH", "PROGRAM CACHE HIT",
    "TENSIX DM 0 MAX KERNEL SIZE [B]", "TENSIX DM 1 MAX KERNEL SIZE [B]",
    "TENSIX COMPUTE 0 MAX KERNEL SIZE [B]", "TENSIX COMPUTE 1 MAX KERNEL SIZE [B]",
    "TENSIX COMPUTE 2 MAX KERNEL SIZE [B]", "ACTIVE ETH DM 0 MAX KERNEL SIZE [B]",
    "ACTIVE ETH DM 1 MAX KERNEL SIZE [B]", "IDLE ETH DM 0 MAX KERNEL SIZE [B]",
    "IDLE ETH DM 1 MAX KERNEL SIZE [B]", "PM IDEAL [ns]", "PM COMPUTE [ns]", "PM BANDWIDTH [ns]",
    "PM REQ I BW", "PM REQ O BW", "PM FPU UTIL (%)", "NOC UTIL (%)", "MULTICAST NOC UTIL (%)",
    "DRAM BW UTIL (%)", "DRAM BW UTIL PER CTRL (%)", "ETH BW UTIL (%)", "NPE CONG IMPACT (%)",
]
ROOFLINE_COLUMNS = ["TTSIM ROOFLINE [ns]", "TTSIM ROOFLINE BOUND", "TTSIM % OF ROOFLINE"]
"""ttsim's own columns after tt-metal's (where its optional performance-counter columns go):
the op's lower bound (ttsim.programs.roofline), its binding engine and the achieved fraction."""
TENSOR_FIELDS = ["W_PAD[LOGICAL]", "Z_PAD[LOGICAL]", "Y_PAD[LOGICAL]", "X_PAD[LOGICAL]", "LAYOUT", "DATATYPE",
                 "MEMORY"]
FIDELITY_MULTIPLIER = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}


def _tensor_columns(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{i}_{field}" for i in range(count) for field in TENSOR_FIELDS]


def _tensor_cells(tensors: list[TensorDesc], count: int) -> list[str]:
    cells: list[str] = []
    for i in range(count):
        if i >= len(tensors):
            cells += [""] * len(TENSOR_FIELDS)
            continue
        t = tensors[i]
        cells += [f"{p}[{q}]" for p, q in zip(t.padded_shape, t.logical_shape)]
        cells += [t.layout, t.dtype, t.memory]
    return cells


def _ns(profile, cycles: float) -> str:
    return f"{profile.to_ns(cycles):.0f}"


PM_ELEMENT_BYTES = {"BFLOAT16": 2, "FLOAT32": 4, "BFLOAT8_B": 1, "UINT16": 2, "UINT32": 4}
"""``element_size()`` as tt-metal's performance model uses it (block-float formats count 1 B)."""


def pm_bytes(tensor: TensorDesc) -> int:
    """Bytes of a tensor as the op performance model counts them: physical volume x element size."""
    return math.prod(tensor.padded_shape) * PM_ELEMENT_BYTES[tensor.dtype]


def performance_model(result: OpResult, spec: DeviceSpec) -> dict[str, str]:
    """PM IDEAL / COMPUTE / BANDWIDTH / REQ BW / FPU UTIL as tt-metal's op performance model."""
    clock_ghz = spec.clock_mhz / 1000.0
    flops = result.info.get("pm_flops")
    if flops:  # conv2d: the matmul formula with K = Cin*kh*kw (dense, whatever the program)
        grid_x, grid_y = spec.chip.compute_grid.value
        fidelity = FIDELITY_MULTIPLIER[result.info["math_fidelity"]]
        ideal_cycles = math.ceil(flops / (grid_x * grid_y * spec.chip.pm_flop_per_cycle_per_core.value) * fidelity)
        compute_ns = math.ceil(ideal_cycles / clock_ghz)
    else:  # ops without a model of their own report 1 ns
        compute_ns = 1
    peak = spec.chip.pm_dram_bandwidth_gb_per_s.value
    inputs, outputs = result.info.get("inputs", []), result.info.get("outputs", [])
    bandwidth_ns = 1  # an int set from a float in tt-metal: truncates; L1 tensors count 1 ns
    for tensor in inputs + outputs:
        if tensor.memory.startswith("DEV_0_DRAM"):
            bandwidth_ns = max(bandwidth_ns, int(pm_bytes(tensor) / peak / 2**30 * 1e9))
    ideal_ns = max(compute_ns, bandwidth_ns)
    duration = result.profile.device_kernel_duration_ns
    return {
        "PM IDEAL [ns]": str(ideal_ns),
        "PM COMPUTE [ns]": str(compute_ns),
        "PM BANDWIDTH [ns]": str(bandwidth_ns),
        "PM REQ I BW": str([round(pm_bytes(t) / ideal_ns, 3) for t in inputs]),
        "PM REQ O BW": str([round(pm_bytes(t) / ideal_ns, 3) for t in outputs]),
        "PM FPU UTIL (%)": f"{100.0 * compute_ns / duration:.3f}" if duration else "",
    }


def attributes(result: OpResult) -> str:
    """The ATTRIBUTES cell: tt-metal's spelling of the halo or conv op's attributes; empty for
    ops that carry no conv description."""
    info = result.info
    if "conv" not in info:
        return ""
    return halo_attributes(info) if "halo_sticks_per_core" in info else conv_attributes(info)


TIMING_ONLY_ATTRIBUTE = "'ttsim_timing_only': 'true'"
"""Added to the ATTRIBUTES struct of an op run with ``timing_only`` (no numerics)."""


def _with_timing_only(cell: str) -> str:
    """``cell`` (a ``{'name': 'value'; ...}`` struct, or empty) with the timing-only marker."""
    return f"{cell[:-1]}; {TIMING_ONLY_ATTRIBUTE}}}" if cell.endswith("}") else f"{{{TIMING_ONLY_ATTRIBUTE}}}"


def op_row(result: OpResult, call_count: int) -> dict[str, str]:
    """One CSV row (by column name) for a simulated device op."""
    profile = result.profile
    spec = load_device(result.device)
    zones = profile.zones
    start = min(z.start for z in zones)
    end = max(z.end for z in zones)
    firmware = spec.chip.firmware_overhead_cycles.value
    dm = [z for z in zones if z.risc in (Risc.BRISC, Risc.NCRISC)]
    per_core = list(profile.per_core_duration_cycles().values())
    row = {name: "" for name in HEADER_BEFORE_TENSORS + HEADER_AFTER_TENSORS + ROOFLINE_COLUMNS}
    row.update({
        "OP CODE": tt_metal_op_code(result.op_code),
        "OP TYPE": "tt_dnn_device",
        "GLOBAL CALL COUNT": str(call_count),
        "DEVICE ID": "0",
        "DEVICE ARCH": spec.arch.upper(),
        "ATTRIBUTES": _with_timing_only(attributes(result)) if result.timing_only else attributes(result),
        "MATH FIDELITY": result.info.get("math_fidelity", ""),
        "CORE COUNT": str(profile.core_count),
        "AVAILABLE WORKER CORE COUNT": str(spec.chip.compute_grid.value[0] * spec.chip.compute_grid.value[1]),
        "DEVICE FW START CYCLE": f"{start - firmware / 2:.0f}",
        "DEVICE FW END CYCLE": f"{end + firmware / 2:.0f}",
        "DEVICE FW DURATION [ns]": _ns(profile, end - start + firmware),
        "DEVICE KERNEL DURATION [ns]": _ns(profile, profile.device_kernel_duration_cycles),
        "DEVICE KERNEL DURATION DM START [ns]": _ns(profile, end - min(z.start for z in dm)) if dm else "",
        "DEVICE KERNEL DURATION PER CORE MIN [ns]": _ns(profile, min(per_core)),
        "DEVICE KERNEL DURATION PER CORE MAX [ns]": _ns(profile, max(per_core)),
        "DEVICE KERNEL DURATION PER CORE AVG [ns]": _ns(profile, sum(per_core) / len(per_core)),
        "DEVICE KERNEL FIRST TO LAST START [ns]": _ns(profile, profile.first_to_last_start_cycles),
        "COMPUTE KERNEL SOURCE": result.info.get("compute_kernel_source", ""),
        "DATA MOVEMENT KERNEL SOURCE": result.info.get("data_movement_kernel_source", ""),
    })
    for risc in (Risc.BRISC, Risc.NCRISC, Risc.TRISC0, Risc.TRISC1, Risc.TRISC2):
        cycles = profile.risc_duration_cycles[risc]
        row[f"DEVICE {risc.value} KERNEL DURATION [ns]"] = _ns(profile, cycles) if cycles else ""
    wait, reserve = profile.compute_cb_wait_cycles()
    if wait is not None:
        row["DEVICE COMPUTE CB WAIT FRONT [ns]"] = _ns(profile, wait)
        row["DEVICE COMPUTE CB RESERVE BACK [ns]"] = _ns(profile, reserve)
    row.update(performance_model(result, spec))
    roof = result.info.get("roofline")
    if roof is not None:
        row["TTSIM ROOFLINE [ns]"] = _ns(profile, roof.bound_cycles)
        row["TTSIM ROOFLINE BOUND"] = roof.binding
        row["TTSIM % OF ROOFLINE"] = f"{100.0 * roof.achieved(profile.device_kernel_duration_cycles):.1f}"
    return row


def ops_perf_csv(results: list[OpResult]) -> str:
    """The CSV text for ``results`` in run order (one row per device op).

    Give it one program's ops: tt-perf-report sums every row of a file as one model's run.
    """
    n_in = max((len(r.info.get("inputs", [])) for r in results), default=0)
    n_out = max((len(r.info.get("outputs", [])) for r in results), default=0)
    header = (HEADER_BEFORE_TENSORS + _tensor_columns("INPUT", n_in) + _tensor_columns("OUTPUT", n_out)
              + HEADER_AFTER_TENSORS + ROOFLINE_COLUMNS)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for call, result in enumerate(results, start=1):
        row = op_row(result, call)
        cells = [row[name] for name in HEADER_BEFORE_TENSORS]
        cells += _tensor_cells(result.info.get("inputs", []), n_in)
        cells += _tensor_cells(result.info.get("outputs", []), n_out)
        cells += [row[name] for name in HEADER_AFTER_TENSORS + ROOFLINE_COLUMNS]
        writer.writerow(cells)
    return out.getvalue()


def csv_file_paths(path: Path, programs: list[str]) -> dict[str, Path]:
    """Where each program's CSV goes: ``path`` itself for one program, else
    ``<stem>_<program><suffix>`` per program (alternatives are never summed as one run)."""
    if len(programs) <= 1:
        return {program: path for program in programs}
    return {program: path.with_name(f"{path.stem}_{program}{path.suffix}") for program in programs}


def ops_perf_csv_files(results: list[OpResult], path: Path) -> list[tuple[Path, str]]:
    """One CSV per program of ``results``, in run order, at :func:`csv_file_paths`."""
    programs = list(dict.fromkeys(r.program for r in results))
    return [(target, ops_perf_csv([r for r in results if r.program == program]))
            for program, target in csv_file_paths(path, programs).items()]
