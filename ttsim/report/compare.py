"""Comparison of the conv ops of every program on a config: durations, speedup of each program
against ``classic``, the fraction of its roofline each program reaches (ttsim.programs.roofline),
and the classic program's error against measurements.

Ops are paired by (config, program name, OP CODE), never by their position in a result list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rich import box
from rich.table import Table

from ttsim.report.results import roofline_record
from ttsim.results import OpResult

SCHEMA_VERSION = 1
BASELINE = "classic"
"""The program every speedup is measured against (the one calibrated against hardware)."""


@dataclass(frozen=True)
class Comparison:
    """One config: the conv op of each program (by program name, in the programs' order) and the
    measured classic duration (if known)."""

    config: str
    ops: dict[str, OpResult]
    measured_classic_ns: float | None

    @classmethod
    def from_results(cls, config: str, results: list[OpResult], op_codes: Mapping[str, str],
                     measured_classic_ns: float | None = None) -> Comparison:
        """Pick from ``results`` the op of each program ``name`` whose config is ``config`` and
        whose OP CODE is ``op_codes[name]`` (the program's conv op). A program without such an op
        is left out."""
        ops = {}
        for name, op_code in op_codes.items():
            match = [r for r in results if (r.config, r.program, r.op_code) == (config, name, op_code)]
            if match:
                ops[name] = match[0]
        return cls(config, ops, measured_classic_ns)

    @property
    def timing_only(self) -> bool:
        """Any op of the comparison ran with ``timing_only`` (no PCC)."""
        return any(op.timing_only for op in self.ops.values())

    @property
    def device(self) -> str | None:
        return next(iter(self.ops.values())).device if self.ops else None

    def speedup(self, program: str) -> float | None:
        """classic / ``program`` DEVICE KERNEL DURATION (> 1: ``program`` is faster), or None."""
        if BASELINE not in self.ops or program not in self.ops:
            return None
        return self.ops[BASELINE].device_kernel_duration_ns / self.ops[program].device_kernel_duration_ns

    @property
    def classic_error(self) -> float | None:
        """(simulated - measured) / measured of the classic program, or None."""
        if self.measured_classic_ns is None or BASELINE not in self.ops:
            return None
        return (self.ops[BASELINE].device_kernel_duration_ns - self.measured_classic_ns) / self.measured_classic_ns


def mean_absolute_error(comparisons: list[Comparison]) -> float | None:
    errors = [abs(c.classic_error) for c in comparisons if c.classic_error is not None]
    return sum(errors) / len(errors) if errors else None


def _programs(comparisons: list[Comparison]) -> list[str]:
    """Every program of any comparison, in first-seen order."""
    return list(dict.fromkeys(name for c in comparisons for name in c.ops))


def comparison_table(comparisons: list[Comparison]) -> Table:
    programs = _programs(comparisons)
    others = [p for p in programs if p != BASELINE]
    title = "DEVICE KERNEL DURATION \\[ns] per program; speedup = classic / program"
    if any(c.timing_only for c in comparisons):
        title += " (timing only: no numerics, PCC not computed)"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True,
                  pad_edge=False)
    table.add_column("config", overflow="fold")
    for name in (*programs, *(f"speedup\n{p}" for p in others), "measured\nclassic", "classic\nerror",
                 *(f"PCC\n{p}" for p in programs)):
        table.add_column(name, justify="right", no_wrap=True)
    for c in comparisons:
        error = c.classic_error
        durations = [f"{c.ops[p].device_kernel_duration_ns:,.0f}" if p in c.ops else "-" for p in programs]
        speedups = [f"{s:.2f}x" if (s := c.speedup(p)) is not None else "-" for p in others]
        pccs = [f"{c.ops[p].pcc:.4f}" if p in c.ops and c.ops[p].pcc is not None else "-" for p in programs]
        table.add_row(c.config, *durations, *speedups,
                      "-" if c.measured_classic_ns is None else f"{c.measured_classic_ns:,.0f}",
                      "-" if error is None else f"{error:+.1%}", *pccs)
    mae = mean_absolute_error(comparisons)
    if mae is not None:
        table.caption = f"mean absolute error of the classic program against the measurements: {mae:.1%}"
    return table


def comparison_record(comparison: Comparison, programs: list[str]) -> dict[str, Any]:
    """One config of the JSON document: ``<program>_device_kernel_duration_ns``,
    ``speedup_classic_over_<program>`` and ``<program>_pcc`` for each program (None when absent)."""
    c = comparison
    record: dict[str, Any] = {"config": c.config, "device": c.device}
    for p in programs:
        record[f"{p}_device_kernel_duration_ns"] = c.ops[p].device_kernel_duration_ns if p in c.ops else None
    for p in programs:
        if p != BASELINE:
            record[f"speedup_classic_over_{p}"] = c.speedup(p)
    record["measured_classic_device_kernel_duration_ns"] = c.measured_classic_ns
    record["classic_error"] = c.classic_error
    for p in programs:
        record[f"{p}_pcc"] = c.ops[p].pcc if p in c.ops else None
    record["roofline"] = {p: roofline_record(c.ops[p]) if p in c.ops else None for p in programs}
    return record



def roofline_table(comparisons: list[Comparison]) -> Table:
    """Per config and program: the lower bound on the program's grid, its binding engine and the
    fraction of it the simulation reaches (docs/roofline.md)."""
    table = Table(title="roofline: lower bound \\[ns] on each program's grid, binding engine, "
                        "% of roofline = bound / duration", title_justify="left")
    for name in ("config", "program", "roofline \\[ns]", "bound by", "% of roofline"):
        table.add_column(name, justify="left" if name in ("config", "program", "bound by") else "right",
                         no_wrap=True)
    for c in comparisons:
        for name, result in c.ops.items():
            roof = result.info.get("roofline")
            if roof is None:
                continue
            table.add_row(c.config, name, f"{result.profile.to_ns(roof.bound_cycles):,.0f}", roof.binding,
                          f"{roof.achieved(result.profile.device_kernel_duration_cycles):.0%}")
    return table


def comparison_document(comparisons: list[Comparison]) -> dict[str, Any]:
    programs = _programs(comparisons)
    return {
        "schema_version": SCHEMA_VERSION,
        "ops": [comparison_record(c, programs) for c in comparisons],
        "classic_mean_absolute_error": mean_absolute_error(comparisons),
        "timing_only": any(c.timing_only for c in comparisons),
    }
