"""Classic vs pool comparison of conv ops: durations, speedup, error against measurements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table

from ttsim.simulate import OpResult

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Comparison:
    """One config: the two conv ops and the measured classic duration (if known)."""

    config: str
    classic: OpResult
    pool: OpResult
    measured_classic_ns: float | None

    @property
    def speedup(self) -> float:
        """classic / pool DEVICE KERNEL DURATION (> 1: the pool program is faster)."""
        return self.classic.device_kernel_duration_ns / self.pool.device_kernel_duration_ns

    @property
    def classic_error(self) -> float | None:
        """(simulated - measured) / measured of the classic program, or None."""
        if self.measured_classic_ns is None:
            return None
        return (self.classic.device_kernel_duration_ns - self.measured_classic_ns) / self.measured_classic_ns


def mean_absolute_error(comparisons: list[Comparison]) -> float | None:
    errors = [abs(c.classic_error) for c in comparisons if c.classic_error is not None]
    return sum(errors) / len(errors) if errors else None


def comparison_table(comparisons: list[Comparison]) -> Table:
    table = Table(title="DEVICE KERNEL DURATION \\[ns]: classic (OptimizedConvNew) vs pool-based depthwise;\nspeedup = classic / pool",
                  title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    table.add_column("config", overflow="fold")
    for name in ("classic", "pool", "speedup", "measured\nclassic", "classic\nerror", "PCC\nclassic",
                 "PCC\npool"):
        table.add_column(name, justify="right", no_wrap=True)
    for c in comparisons:
        error = c.classic_error
        table.add_row(
            c.config, f"{c.classic.device_kernel_duration_ns:,.0f}", f"{c.pool.device_kernel_duration_ns:,.0f}",
            f"{c.speedup:.2f}x", "-" if c.measured_classic_ns is None else f"{c.measured_classic_ns:,.0f}",
            "-" if error is None else f"{error:+.1%}", f"{c.classic.pcc:.4f}", f"{c.pool.pcc:.4f}")
    mae = mean_absolute_error(comparisons)
    if mae is not None:
        table.caption = f"mean absolute error of the classic program against the measurements: {mae:.1%}"
    return table


def comparison_document(comparisons: list[Comparison]) -> dict[str, Any]:
    mae = mean_absolute_error(comparisons)
    return {
        "schema_version": SCHEMA_VERSION,
        "ops": [{
            "config": c.config,
            "device": c.classic.device,
            "classic_device_kernel_duration_ns": c.classic.device_kernel_duration_ns,
            "pool_device_kernel_duration_ns": c.pool.device_kernel_duration_ns,
            "speedup_classic_over_pool": c.speedup,
            "measured_classic_device_kernel_duration_ns": c.measured_classic_ns,
            "classic_error": c.classic_error,
            "classic_pcc": c.classic.pcc,
            "pool_pcc": c.pool.pcc,
        } for c in comparisons],
        "classic_mean_absolute_error": mae,
    }
