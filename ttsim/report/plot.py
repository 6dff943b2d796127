"""Pictures of simulated runs (matplotlib, Agg backend): what people would rather look at than read.

* :func:`risc_timeline`: one op on one core, a Gantt row per RISC: the kernel zone, and on it
  every stall (coloured by reason) and compute op group;
* :func:`stall_breakdown`: per kernel and RISC, busy time and time blocked per stall reason;
* :func:`program_durations`: DEVICE KERNEL DURATION per config and program (halo + conv stacked),
  with a roofline mark per config when one is given;
* :func:`sweep_pareto`: a sweep's points, duration against L1 use, the Pareto front drawn;
* :func:`model_layers`: a model suite's per-layer durations, a bar per program.

Every function returns a ``matplotlib.figure.Figure``; :func:`save` writes one atomically.
matplotlib is imported on first use only (``pip install 'ttsim[plot]'``), so the CLI does not pay
for it at startup. Reports only read results.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ttsim.errors import TtsimError
from ttsim.report.breakdown import breakdown, is_stall_reason
from ttsim.report.results import RISCS
from ttsim.report.pareto import pareto_front
from ttsim.results import OpResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STALL_COLOURS = {
    "cb_wait_front": "#d62728", "cb_reserve_back": "#ff7f0e", "noc_read_barrier": "#9467bd",
    "noc_write_barrier": "#8c564b", "semaphore_wait": "#e377c2", "unpack_wait_math": "#bcbd22",
    "math_wait_unpack": "#17becf", "math_wait_pack": "#7f7f7f", "pack_wait_math": "#aec7e8",
}
"""Colour per stall kind (``cb_wait_front:<cb>`` shares its kind's colour)."""
BUSY_COLOUR = "#2ca02c"
COMPUTE_COLOUR = "#1f77b4"
ZONE_COLOUR = "#dddddd"


def _figure(width: float, height: float) -> Figure:
    """A new figure on the Agg canvas; a clear error when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise TtsimError("plotting needs matplotlib: pip install 'ttsim[plot]'") from None
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def check_picture_path(path: Path) -> str:
    """The picture format of ``path`` (its suffix), or a TtsimError naming what is wrong: checked
    before a long simulation, not after it."""
    _figure(1, 1)  # matplotlib is there
    from matplotlib.backend_bases import FigureCanvasBase

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise TtsimError(f"cannot write {path}: folder {folder} does not exist")
    supported = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in supported:
        raise TtsimError(f"cannot write {path}: unknown picture format {path.suffix or '(none)'!r}; "
                         f"use one of {', '.join('.' + s for s in sorted(supported))}")
    return suffix


def save(figure: Figure, path: Path) -> None:
    """Write ``figure`` to ``path`` (format from its suffix, e.g. .png, .svg, .pdf) via a temporary
    file and a rename, so a failed write leaves nothing half-written."""
    suffix = check_picture_path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        figure.savefig(tmp, format=suffix, dpi=120)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stall_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def risc_timeline(result: OpResult, core: tuple[int, int] | None = None) -> Figure:
    """Gantt of one op on one core: a row per RISC that ran a kernel there (top: BRISC), its
    kernel zone in grey, its stalls in their reason's colour and its compute op groups in blue.

    ``core`` defaults to the first core with traced events (else the first core). Times in µs
    from the op's first kernel start. Stalls and op groups are there only for cores the op was
    traced on (``run(..., trace=True, trace_cores=...)``).
    """
    profile = result.profile
    traced = sorted({c for c, *_ in profile.events}, key=lambda c: (c[1], c[0]))
    cores = sorted({z.core for z in profile.zones}, key=lambda c: (c[1], c[0]))
    core = core if core is not None else (traced or cores)[0]
    zones = [z for z in profile.zones if z.core == core]
    if not zones:
        raise TtsimError(f"{result.op_code} ({result.program}) ran no kernel on core {core}; "
                         f"cores: {cores[0]}..{cores[-1]}")
    origin = min(z.start for z in profile.zones)
    us = 1.0 / profile.clock_mhz
    riscs = [r for r in RISCS if any(z.risc == r for z in zones)]
    figure = _figure(10, 1.0 + 0.55 * len(riscs))
    ax = figure.add_subplot()
    spans: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for z in zones:
        spans[(riscs.index(z.risc), "kernel zone")].append(((z.start - origin) * us, (z.end - z.start) * us))
    for event_core, risc, name, start, end in profile.events:
        if event_core == core and risc in riscs:
            label = _stall_kind(name) if is_stall_reason(name) else "compute op group"
            spans[(riscs.index(risc), label)].append(((start - origin) * us, (end - start) * us))
    labelled: set[str] = set()
    for (row, label), bars in sorted(spans.items(), key=lambda kv: (kv[0][1] != "kernel zone", kv[0])):
        zone = label == "kernel zone"
        colour = ZONE_COLOUR if zone else COMPUTE_COLOUR if label == "compute op group" else STALL_COLOURS[label]
        height = 0.8 if zone else 0.5
        ax.broken_barh(bars, (row - height / 2, height), facecolors=colour,
                       label=None if label in labelled else label)
        labelled.add(label)
    ax.set_yticks(range(len(riscs)), [r.value for r in riscs])
    ax.invert_yaxis()
    ax.set_xlabel("time from the op's first kernel start [µs]")
    ax.set_title(f"{result.config} {result.op_code} ({result.program}) on core {core}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return figure


def stall_breakdown(result: OpResult) -> Figure:
    """A horizontal bar per (kernel, RISC): busy time then each stall reason, averaged over the
    cores the kernel ran on, in µs (the rows of ``ttsim run --breakdown``)."""
    rows = breakdown(result)
    us = 1.0 / result.profile.clock_mhz
    figure = _figure(10, 1.0 + 0.45 * len(rows))
    ax = figure.add_subplot()
    labels = [f"{row.kernel} ({row.risc.value})" for row in rows]
    left = [0.0] * len(rows)
    segments: dict[str, list[float]] = {"busy": [row.busy * us for row in rows]}
    for i, row in enumerate(rows):
        for reason, cycles in row.stalls.items():
            segments.setdefault(reason, [0.0] * len(rows))[i] += cycles * us
    for name, widths in segments.items():
        colour = BUSY_COLOUR if name == "busy" else STALL_COLOURS[_stall_kind(name)]
        ax.barh(range(len(rows)), widths, left=left, color=colour, label=name, edgecolor="white", linewidth=0.5)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("average per core [µs]")
    ax.set_title(f"{result.config} {result.op_code} ({result.program}): where the time goes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return figure


def program_durations(results: list[OpResult], roofline_ns: Mapping[str, float] | None = None) -> Figure:
    """DEVICE KERNEL DURATION per config (groups) and program (bars), each bar its ops stacked in
    run order (halo, then conv), in µs. ``roofline_ns`` maps a config name to the ideal duration
    of its ops (ns); each given one is drawn as a line across its group."""
    configs = list(dict.fromkeys(r.config for r in results))
    programs = list(dict.fromkeys(r.program for r in results))
    figure = _figure(max(6.0, 1.6 * len(configs) * len(programs)), 4.5)
    ax = figure.add_subplot()
    width = 0.8 / len(programs)
    op_codes = list(dict.fromkeys(r.op_code for r in results))
    colours = {code: f"C{i}" for i, code in enumerate(op_codes)}
    labelled: set[str] = set()
    for c, config in enumerate(configs):
        for p, program in enumerate(programs):
            bottom = 0.0
            x = c + (p - (len(programs) - 1) / 2) * width
            for r in (r for r in results if r.config == config and r.program == program):
                height = r.device_kernel_duration_ns / 1000
                ax.bar(x, height, width * 0.9, bottom=bottom, color=colours[r.op_code],
                       label=None if r.op_code in labelled else r.op_code)
                labelled.add(r.op_code)
                bottom += height
            ax.annotate(program, (x, bottom), ha="center", va="bottom", fontsize="small")
        if roofline_ns and config in roofline_ns:
            ax.hlines(roofline_ns[config] / 1000, c - 0.45, c + 0.45, colors="black", linestyles="dashed",
                      label=None if "roofline" in labelled else "roofline")
            labelled.add("roofline")
    ax.set_xticks(range(len(configs)), configs)
    ax.set_ylabel("DEVICE KERNEL DURATION [µs]")
    ax.set_title("DEVICE KERNEL DURATION per program")
    ax.legend(fontsize="small")
    return figure


def sweep_pareto(rows: list[dict[str, str]], keys: list[str]) -> Figure:
    """A sweep's ok points: L1 used (KiB) against DEVICE KERNEL DURATION (µs); the duration-vs-L1
    Pareto front joined by a step line and labelled with its points' swept values."""
    ok = [i for i, row in enumerate(rows) if row["status"] == "ok"]
    if not ok:
        raise TtsimError("no sweep point ran successfully: nothing to plot")
    front = sorted(pareto_front(rows), key=lambda i: int(rows[i]["l1_used_bytes"]))
    figure = _figure(8, 5)
    ax = figure.add_subplot()

    def xy(indices: list[int]) -> tuple[list[float], list[float]]:
        return ([int(rows[i]["l1_used_bytes"]) / 1024 for i in indices],
                [float(rows[i]["device_kernel_duration_ns"]) / 1000 for i in indices])

    ax.scatter(*xy(ok), color="#999999", label="point", zorder=2)
    fx, fy = xy(front)
    ax.step(fx, fy, where="post", color="#d62728", zorder=1)
    ax.scatter(fx, fy, color="#d62728", label="Pareto front", zorder=3)
    for i, x, y in zip(front, fx, fy):
        ax.annotate(", ".join(f"{k}={rows[i][k]}" for k in keys), (x, y), textcoords="offset points",
                    xytext=(4, 4), fontsize="x-small")
    ax.set_xlabel("L1 used per core [KiB]")
    ax.set_ylabel("DEVICE KERNEL DURATION [µs]")
    ax.set_title("sweep: duration against L1 use")
    ax.legend(fontsize="small")
    return figure


def model_layers(durations: Mapping[str, Mapping[str, float]], title: str = "per-layer duration") -> Figure:
    """Grouped bars: per layer (in the mapping's order) a bar per program, of its duration in ns
    (``{layer: {program: ns}}``; a program missing for a layer leaves a gap)."""
    layers = list(durations)
    programs = list(dict.fromkeys(p for per_layer in durations.values() for p in per_layer))
    figure = _figure(max(6.0, 0.5 * len(layers) * len(programs) + 2), 4.5)
    ax = figure.add_subplot()
    width = 0.8 / max(1, len(programs))
    for p, program in enumerate(programs):
        xs = [i + (p - (len(programs) - 1) / 2) * width for i, layer in enumerate(layers)
              if program in durations[layer]]
        heights = [durations[layer][program] / 1000 for layer in layers if program in durations[layer]]
        ax.bar(xs, heights, width * 0.9, label=program, color=f"C{p}")
    ax.set_xticks(range(len(layers)), layers, rotation=30 if len(layers) > 4 else 0, ha="right")
    ax.set_ylabel("DEVICE KERNEL DURATION [µs]")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return figure


def layer_durations(results: list[OpResult]) -> dict[str, dict[str, float]]:
    """``{config: {program: ns}}``: each config a layer, the sum of its ops per program (the input
    :func:`model_layers` takes)."""
    out: dict[str, dict[str, float]] = {}
    for r in results:
        per_layer = out.setdefault(r.config, {})
        per_layer[r.program] = per_layer.get(r.program, 0.0) + r.device_kernel_duration_ns
    return out


