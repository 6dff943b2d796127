"""Classic vs pool vs depthwise comparison of conv ops: durations, speedups over classic, the
fraction of the roofline each program reaches, and the classic program's error against
measurements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table

from ttsim.simulate import OpResult

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Comparison:
    """One config: the conv op of each program and the measured classic duration (if known)."""

    config: str
    classic: OpResult
    pool: OpResult
    measured_classic_ns: float | None
    depthwise: OpResult | None = None

    @property
    def speedup(self) -> float:
        """classic / pool DEVICE KERNEL DURATION (> 1: the pool program is faster)."""
        return self.classic.device_kernel_duration_ns / self.pool.device_kernel_duration_ns

    @property
    def depthwise_speedup(self) -> float | None:
        """classic / depthwise DEVICE KERNEL DURATION."""
        if self.depthwise is None:
            return None
        return self.classic.device_kernel_duration_ns / self.depthwise.device_kernel_duration_ns

    @property
    def programs(self) -> dict[str, OpResult]:
        out = {"classic": self.classic, "pool": self.pool}
        if self.depthwise is not None:
            out["depthwise"] = self.depthwise
        return out

    @property
    def classic_error(self) -> float | None:
        """(simulated - measured) / measured of the classic program, or None."""
        if self.measured_classic_ns is None:
            return None
        return (self.classic.device_kernel_duration_ns - self.measured_classic_ns) / self.measured_classic_ns


def mean_absolute_error(comparisons: list[Comparison]) -> float | None:
    errors = [abs(c.classic_error) for c in comparisons if c.classic_error is not None]
    return sum(errors) / len(errors) if errors else None


def _achieved(result: OpResult) -> str:
    roof = result.info.get("roofline")
    return "-" if roof is None else f"{roof.achieved(result.profile.device_kernel_duration_cycles):.0%}"


def comparison_table(comparisons: list[Comparison]) -> Table:
    table = Table(title="DEVICE KERNEL DURATION \\[ns]: classic (OptimizedConvNew) vs pool-based vs depthwise;\n"
                        "speedup = classic / program", title_justify="left")
    table.add_column("config", no_wrap=True)
    for name in ("classic", "pool", "depthwise", "speedup\npool", "speedup\ndepthwise", "measured\nclassic",
                 "classic\nerror"):
        table.add_column(name, justify="right", no_wrap=True)
    for c in comparisons:
        error = c.classic_error
        dw = c.depthwise
        table.add_row(
            c.config, f"{c.classic.device_kernel_duration_ns:,.0f}", f"{c.pool.device_kernel_duration_ns:,.0f}",
            "-" if dw is None else f"{dw.device_kernel_duration_ns:,.0f}", f"{c.speedup:.2f}x",
            "-" if dw is None else f"{c.depthwise_speedup:.2f}x",
            "-" if c.measured_classic_ns is None else f"{c.measured_classic_ns:,.0f}",
            "-" if error is None else f"{error:+.1%}")
    mae = mean_absolute_error(comparisons)
    if mae is not None:
        table.caption = f"mean absolute error of the classic program against the measurements: {mae:.1%}"
    return table


def roofline_table(comparisons: list[Comparison]) -> Table:
    """Per config and program: the lower bound on the program's grid, its binding engine, the
    fraction of it reached, and the PCC."""
    table = Table(title="roofline (ttsim.roofline): lower bound \\[ns] on each program's grid, binding engine, "
                        "% of roofline = bound / duration", title_justify="left")
    for name in ("config", "program", "roofline \\[ns]", "bound by", "% of roofline", "PCC"):
        table.add_column(name, justify="left" if name in ("config", "program", "bound by") else "right",
                         no_wrap=True)
    for c in comparisons:
        for name, result in c.programs.items():
            roof = result.info.get("roofline")
            table.add_row(c.config, name, "-" if roof is None else f"{result.profile.to_ns(roof.bound_cycles):,.0f}",
                          "-" if roof is None else roof.binding, _achieved(result), f"{result.pcc:.4f}")
    return table


def _roofline(result: OpResult) -> dict[str, Any] | None:
    roof = result.info.get("roofline")
    if roof is None:
        return None
    record = roof.as_dict(result.profile.clock_mhz)
    record["achieved_fraction"] = roof.achieved(result.profile.device_kernel_duration_cycles)
    return record


def comparison_document(comparisons: list[Comparison]) -> dict[str, Any]:
    mae = mean_absolute_error(comparisons)
    return {
        "schema_version": SCHEMA_VERSION,
        "ops": [{
            "config": c.config,
            "device": c.classic.device,
            "classic_device_kernel_duration_ns": c.classic.device_kernel_duration_ns,
            "pool_device_kernel_duration_ns": c.pool.device_kernel_duration_ns,
            "depthwise_device_kernel_duration_ns": None if c.depthwise is None else c.depthwise.device_kernel_duration_ns,
            "speedup_classic_over_pool": c.speedup,
            "speedup_classic_over_depthwise": c.depthwise_speedup,
            "measured_classic_device_kernel_duration_ns": c.measured_classic_ns,
            "classic_error": c.classic_error,
            "classic_pcc": c.classic.pcc,
            "pool_pcc": c.pool.pcc,
            "depthwise_pcc": None if c.depthwise is None else c.depthwise.pcc,
            "roofline": {name: _roofline(r) for name, r in c.programs.items()},
        } for c in comparisons],
        "classic_mean_absolute_error": mae,
    }
