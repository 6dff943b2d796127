"""Stall breakdown: per kernel and RISC, busy time and time blocked per stall reason.

Stall reasons (a fixed vocabulary, docs/outputs.md): ``cb_wait_front:<cb>``,
``cb_reserve_back:<cb>``, ``noc_read_barrier``, ``noc_write_barrier``, ``semaphore_wait``,
``unpack_wait_math``, ``math_wait_unpack``, ``math_wait_pack``, ``pack_wait_math``,
``math_wait_sfpu``, ``pack_wait_sfpu``.
For every (core, RISC): busy + sum of stalls = the RISC's kernel zone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rich.table import Table

from ttsim.device.core import Risc
from ttsim.results import OpResult

STALL_REASON_PREFIXES = ("cb_wait_front:", "cb_reserve_back:")
STALL_REASONS = ("noc_read_barrier", "noc_write_barrier", "semaphore_wait", "unpack_wait_math",
                 "math_wait_unpack", "math_wait_pack", "pack_wait_math", "math_wait_sfpu", "pack_wait_sfpu")


def is_stall_reason(name: str) -> bool:
    """True for a name of the fixed stall vocabulary."""
    return name in STALL_REASONS or (name.startswith(STALL_REASON_PREFIXES) and len(name.split(":", 1)[1]) > 0)


@dataclass(frozen=True)
class KernelBreakdown:
    """One kernel on one RISC type, averaged over the cores it ran on (cycles)."""

    op_code: str
    kernel: str
    risc: Risc
    cores: int
    duration: float
    busy: float
    stalls: dict[str, float]

    @property
    def utilisation(self) -> float:
        return self.busy / self.duration if self.duration else 0.0


def breakdown(result: OpResult) -> list[KernelBreakdown]:
    profile = result.profile
    groups: dict[tuple[str, Risc], list] = defaultdict(list)
    for zone in profile.zones:
        groups[(zone.kernel, zone.risc)].append(zone)
    rows = []
    for (kernel, risc), zones in sorted(groups.items(), key=lambda kv: (kv[0][1].value, kv[0][0])):
        n = len(zones)
        stalls: dict[str, float] = defaultdict(float)
        for zone in zones:
            for reason, cycles in profile.blocked[(zone.core, risc)].items():
                stalls[reason] += cycles / n
        rows.append(KernelBreakdown(result.op_code, kernel, risc, n,
                                    sum(z.end - z.start for z in zones) / n,
                                    sum(profile.busy[(z.core, risc)] for z in zones) / n,
                                    dict(sorted(stalls.items()))))
    return rows


def breakdown_table(result: OpResult) -> Table:
    table = Table(title=f"{result.config} {result.op_code} ({result.program}): where the time goes, "
                        "average per core \\[ns]", title_justify="left")
    for name in ("kernel", "RISC", "cores", "duration", "busy", "util", "blocked on (largest first)"):
        text = name in ("kernel", "RISC", "blocked on (largest first)")
        table.add_column(name, justify="left" if text else "right", no_wrap=not text, overflow="fold")
    to_ns = result.profile.to_ns
    for row in breakdown(result):
        stalls = sorted(((c, r) for r, c in row.stalls.items() if c >= 0.5), reverse=True)
        text = "\n".join(f"{r} {to_ns(c):,.0f}" for c, r in stalls[:4]) or "-"  # a reason per line
        if len(stalls) > 4:
            text += f"\n+{len(stalls) - 4} more"
        table.add_row(row.kernel, row.risc.value, str(row.cores), f"{to_ns(row.duration):,.0f}",
                      f"{to_ns(row.busy):,.0f}", f"{row.utilisation:.0%}", text)
    return table
