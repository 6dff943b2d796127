"""Device descriptions: every cycle constant of the cost model, with its provenance.

One YAML preset per architecture lives in ``ttsim/device/presets/``. Each constant is a
:class:`Param` carrying its value, unit, source and confidence (H: official documentation or
source code; M: measured on hardware by someone else; L: engineering estimate; fitted: fitted
by ttsim to measured data, see docs/calibration.md). Nothing outside this module and the
presets may hold a cycle constant (DEVELOPERS.md, principle 1).
"""

from __future__ import annotations

from importlib import resources
from typing import Generic, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttsim.errors import ConfigurationError

T = TypeVar("T")
Confidence = Literal["H", "M", "L", "fitted"]


class Param(BaseModel, Generic[T]):
    """One constant of the device description with its provenance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: T
    unit: str = Field(description="unit of value, e.g. cycles, B/cycle, bytes, MHz")
    source: str = Field(min_length=3, description="where the number comes from")
    confidence: Confidence


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChipSpec(_Section):
    """Grid, clock and coordinates."""

    clock_mhz: Param[float]
    compute_grid: Param[tuple[int, int]]
    noc_grid: Param[tuple[int, int]]
    worker_noc_x: Param[tuple[int, ...]]
    worker_noc_y: Param[tuple[int, ...]]
    launch_stagger_cycles_per_core: Param[float]
    firmware_overhead_cycles: Param[float]
    pm_dram_bandwidth_gb_per_s: Param[float]
    pm_flop_per_cycle_per_core: Param[float]


class L1Spec(_Section):
    """Per-core L1 SRAM and what of it a program may use."""

    size_bytes: Param[int]
    unreserved_base_bytes: Param[int]
    l1_small_bytes: Param[int]
    alignment_bytes: Param[int]

    @property
    def usable_bytes(self) -> int:
        """Bytes a program may allocate for CBs and L1 buffers on one core."""
        return self.size_bytes.value - self.unreserved_base_bytes.value - self.l1_small_bytes.value


class NocSpec(_Section):
    """Network-on-chip timing."""

    num_nocs: Param[int]
    link_bytes_per_cycle: Param[float]
    niu_bytes_per_cycle: Param[float]
    local_bytes_per_cycle: Param[float]
    multicast_bytes_per_cycle: Param[float]
    multicast_linked_bytes_per_cycle: Param[float]
    hop_latency_cycles: Param[float]
    max_burst_bytes: Param[int]
    read_base_latency_cycles: Param[float]
    local_read_latency_cycles: Param[float]
    write_base_latency_cycles: Param[float]
    write_hop_latency_cycles: Param[float]
    read_issue_cycles: Param[float]
    interleaved_page_address_cycles: Param[float]
    read_with_state_issue_cycles: Param[float]
    write_issue_cycles: Param[float]
    atomic_issue_cycles: Param[float]
    barrier_poll_cycles: Param[float]


class DramSpec(_Section):
    """DRAM banks (interleaved buffers)."""

    num_banks: Param[int]
    bank_noc_xy: Param[tuple[tuple[int, int], ...]]
    bank_bytes_per_cycle: Param[float]
    read_latency_cycles: Param[float]
    write_latency_cycles: Param[float]
    read_alignment_bytes: Param[int]


class ComputeSpec(_Section):
    """Tensix compute engine: unpack (TRISC0), math (TRISC1), pack (TRISC2)."""

    dst_tiles_per_half: Param[int]
    matmul_tile_cycles_lofi: Param[float]
    eltwise_add_tile_cycles: Param[float]
    eltwise_mul_tile_cycles_per_phase: Param[float]
    reduce_tile_cycles_per_phase: Param[float]
    datacopy_tile_cycles: Param[float]
    unpack_bytes_per_cycle: Param[float]
    unpack_two_operand_bytes_per_cycle: Param[float]
    unpack_tile_overhead_cycles: Param[float]
    unpack_tilize_tile_cycles: Param[float]
    pack_bytes_per_cycle: Param[float]
    pack_tile_overhead_cycles: Param[float]
    pack_tilize_tile_cycles: Param[float]
    pack_untilize_tile_cycles: Param[float]
    sfpu_tile_cycles: Param[dict[str, float]]
    init_cycles: Param[dict[str, float]]
    tile_regs_handshake_cycles: Param[float]
    srcb_row_select_cycles_per_tile: Param[float]


class RiscSpec(_Section):
    """Baby RISC-V costs of the kernel API calls that do not touch the NoC or the FPU."""

    cb_check_cycles: Param[float]
    cb_update_cycles: Param[float]
    cb_poll_cycles: Param[float]
    semaphore_poll_cycles: Param[float]
    l1_store_cycles: Param[float]


class DeviceSpec(_Section):
    """A whole device description (one architecture, one board)."""

    name: str
    arch: Literal["wormhole_b0", "blackhole"]
    board: str
    chip: ChipSpec
    l1: L1Spec
    noc: NocSpec
    dram: DramSpec
    compute: ComputeSpec
    risc: RiscSpec

    @property
    def clock_mhz(self) -> float:
        return self.chip.clock_mhz.value

    def cycles_to_ns(self, cycles: float) -> float:
        """Convert device cycles to ns at the device clock (as the profiler does)."""
        return cycles * 1000.0 / self.clock_mhz

    def params(self) -> dict[str, Param]:
        """Every constant of the description by dotted name (for docs and provenance tests)."""
        out: dict[str, Param] = {}
        for section_name in ("chip", "l1", "noc", "dram", "compute", "risc"):
            section = getattr(self, section_name)
            for field_name in type(section).model_fields:
                out[f"{section_name}.{field_name}"] = getattr(section, field_name)
        return out


def available_devices() -> list[str]:
    """Names of the bundled presets."""
    folder = resources.files("ttsim.device") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


_CACHE: dict[str, DeviceSpec] = {}


def load_device(name: str) -> DeviceSpec:
    """Load a bundled device preset by name (e.g. ``wormhole_b0``)."""
    if name in _CACHE:
        return _CACHE[name]
    names = available_devices()
    if name not in names:
        raise ConfigurationError(f"unknown device {name!r}; available: {', '.join(names)}")
    text = (resources.files("ttsim.device") / "presets" / f"{name}.yaml").read_text()
    try:
        spec = DeviceSpec.model_validate(yaml.safe_load(text))
    except ValidationError as exc:  # a broken preset is a packaging bug, still reported cleanly
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(f"device preset {name}: {loc}: {first['msg']}") from None
    _CACHE[name] = spec
    return spec
