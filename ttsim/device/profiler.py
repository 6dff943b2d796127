"""What the device profiler records for one op, and the figures tt-metal derives from it.

Each kernel records a ``<RISC>-KERNEL`` zone (start, end) in device cycles. DEVICE KERNEL
DURATION is (last zone end - first zone start) over all cores and RISCs, divided by the clock
(tt-metal ``tools/tracy/device_post_proc_config.py``;
``docs/source/ttnn/ttnn/profiling_ttnn_operations.rst``, "Perf Report Headers").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ttsim.device.core import Risc

XY = tuple[int, int]


@dataclass(frozen=True)
class KernelZone:
    """One RISC's kernel zone on one core, in device cycles."""

    core: XY
    risc: Risc
    kernel: str
    start: float
    end: float


@dataclass(frozen=True)
class CBRecord:
    """End-of-op statistics of one CB on one core."""

    core: XY
    index: int
    name: str
    address: int
    page_size: int
    num_pages: int
    producer_blocked_cycles: float
    consumer_blocked_cycles: float
    pages_pushed: int
    pages_popped: int
    max_occupancy: int
    globally_allocated: bool = False
    """The CB aliases a tensor buffer (its bytes are the tensor's, not extra L1)."""


@dataclass(repr=False)
class OpProfile:
    """Kernel zones and CB statistics of one device op."""

    op_code: str
    clock_mhz: float
    zones: list[KernelZone] = field(default_factory=list)
    cbs: list[CBRecord] = field(default_factory=list)
    blocked: dict[tuple[XY, Risc], dict[str, float]] = field(default_factory=dict)
    """Cycles blocked per stall reason, per (core, RISC)."""
    busy: dict[tuple[XY, Risc], float] = field(default_factory=dict)
    """Cycles busy per (core, RISC); busy + blocked = the RISC's kernel zone."""
    events: list[tuple[XY, Risc, str, float, float]] = field(default_factory=list)
    """Timeline (when traced): (core, RISC, stall reason or op group, start, end)."""
    counters: list[tuple[XY, str, float, int]] = field(default_factory=list)
    """Timeline (when traced): (core, CB name, cycle, pages occupied)."""
    l1_budget_bytes: int = 0
    """Usable L1 per core (CBs and buffers) of the device."""
    l1_used_bytes: int = 0
    """Largest L1 use of any core while the op ran (CBs and buffers, L1_SMALL excluded)."""

    def _span(self, zones: list[KernelZone]) -> float:
        if not zones:
            return 0.0
        return max(z.end for z in zones) - min(z.start for z in zones)

    @property
    def device_kernel_duration_cycles(self) -> int:
        return round(self._span(self.zones))

    def to_ns(self, cycles: float) -> float:
        return cycles * 1000.0 / self.clock_mhz

    @property
    def device_kernel_duration_ns(self) -> float:
        return self.to_ns(self.device_kernel_duration_cycles)

    @property
    def risc_duration_cycles(self) -> dict[Risc, int]:
        """DEVICE <RISC> KERNEL DURATION [cycles]: the first/last rule applied to each RISC type
        (0 for a RISC that ran nothing)."""
        return {risc: round(self._span([z for z in self.zones if z.risc == risc])) for risc in Risc}

    @property
    def risc_duration_ns(self) -> dict[Risc, float]:
        """DEVICE <RISC> KERNEL DURATION [ns] of each RISC type."""
        return {risc: self.to_ns(cycles) for risc, cycles in self.risc_duration_cycles.items()}

    def per_core_duration_cycles(self) -> dict[XY, int]:
        cores: dict[XY, list[KernelZone]] = {}
        for zone in self.zones:
            cores.setdefault(zone.core, []).append(zone)
        return {core: round(self._span(zs)) for core, zs in sorted(cores.items())}

    @property
    def first_to_last_start_cycles(self) -> int:
        starts = [z.start for z in self.zones]
        return round(max(starts) - min(starts)) if starts else 0

    def compute_cb_wait_cycles(self) -> tuple[float | None, float | None]:
        """Average over compute cores of the cycles TRISC0 spent in cb_wait_front and TRISC2 in
        cb_reserve_back (DEVICE COMPUTE CB WAIT FRONT / RESERVE BACK); None without compute."""
        waits = [sum(c for r, c in stalls.items() if r.startswith("cb_wait_front:"))
                 for (core, risc), stalls in self.blocked.items() if risc is Risc.TRISC0]
        reserves = [sum(c for r, c in stalls.items() if r.startswith("cb_reserve_back:"))
                    for (core, risc), stalls in self.blocked.items() if risc is Risc.TRISC2]
        if not waits:
            return None, None
        return sum(waits) / len(waits), sum(reserves) / len(reserves)

    @property
    def core_count(self) -> int:
        return len({z.core for z in self.zones})

    def __repr__(self) -> str:
        """One short line (the zones, stalls and timelines are far too long to print)."""
        return (f"OpProfile(op_code={self.op_code!r}, device_kernel_duration_cycles="
                f"{self.device_kernel_duration_cycles}, cores={self.core_count}, zones={len(self.zones)})")
