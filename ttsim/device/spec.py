"""Device descriptions: every cycle constant of the cost model, with its provenance.

One YAML preset per architecture lives in ``ttsim/device/presets/``. Each constant is a
:class:`Param` carrying its value, unit, source and confidence (H: official documentation or
source code; M: measured on hardware by someone else; L: engineering estimate; fitted: fitted
by ttsim to measured data, see docs/calibration.md). Nothing outside this module and the
presets may hold a cycle constant (docs/calibration.md).
"""

# No ``from __future__ import annotations``: pydantic would then compile and evaluate every
# field's annotation string when each model class is built, a share of every run's start-up.
import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any, Generic, Iterator, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ttsim.bounded_yaml import parse_config_text, read_config_text, short_text
from ttsim.errors import ConfigurationError

T = TypeVar("T")
Confidence = Literal["H", "M", "L", "fitted"]


class ParamRange(BaseModel, Generic[T]):
    """The plausible values of an uncertain constant: [min, max] (in the constant's unit) and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: T
    max: T
    reason: str = Field(min_length=3, description="why the true value should lie in [min, max]")


class Param(BaseModel, Generic[T]):
    """One constant of the device description with its provenance.

    Constants of confidence M, L or fitted carry a ``range`` (what ``ttsim run --uncertainty``
    perturbs); a zero-width range (min = max = value) marks a choice rather than a magnitude.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: T
    unit: str = Field(description="unit of value, e.g. cycles, B/cycle, bytes, MHz")
    source: str = Field(min_length=3, description="where the number comes from")
    confidence: Confidence
    range: ParamRange[T] | None = None
    """Checked against ``value`` with the other consistency checks (:func:`range_problems`)."""


def range_problems(dotted: str, param: Param) -> Iterator[str]:
    """A range whose shape differs from its value's, or that does not hold the value."""
    if param.range is None:
        return
    low, value, high = param.range.min, param.value, param.range.max
    if isinstance(value, dict) and not (low.keys() == value.keys() == high.keys()):
        yield f"{dotted}: range keys {sorted(low)} / {sorted(high)} differ from the value's {sorted(value)}"
    elif not _within(low, value, high):
        yield f"{dotted}: value {value!r} outside its range [{low!r}, {high!r}]"


def _within(low: Any, value: Any, high: Any) -> bool:
    """low <= value <= high for numbers; key by key for dicts, element by element for sequences."""
    if isinstance(value, dict):
        return all(_within(low[k], v, high[k]) for k, v in value.items())
    if isinstance(value, (tuple, list)):
        return (len(low) == len(value) == len(high)
                and all(_within(lo, v, hi) for lo, v, hi in zip(low, value, high)))
    return low <= value <= high


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
    bank_size_bytes: Param[int]
    bank_noc_xy: Param[tuple[tuple[int, int], ...]]
    bank_bytes_per_cycle: Param[float]
    read_latency_cycles: Param[float]
    write_latency_cycles: Param[float]
    read_alignment_bytes: Param[int]

    @property
    def capacity_bytes(self) -> int:
        """Bytes of all DRAM banks together."""
        return self.num_banks.value * self.bank_size_bytes.value


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

    @model_validator(mode="after")
    def _check_consistency(self) -> "DeviceSpec":
        """Reject a description whose sections contradict each other (see :func:`consistency_problems`)."""
        problems = list(consistency_problems(self))
        if problems:
            raise PydanticCustomError(_CONSISTENCY, "; ".join(problems))
        return self

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


_CONSISTENCY = "preset_consistency"
COMPUTE_STAGES = frozenset({"unpack", "math", "pack"})
"""The keys of ``compute.init_cycles``: the three TRISC threads of a compute kernel."""


def consistency_problems(spec: DeviceSpec) -> Iterator[str]:
    """What makes a device description self-contradictory, one message per problem: worker
    coordinates that do not fit the NoC grid or repeat, DRAM banks that are miscounted, repeat or
    sit on a worker column, a port faster than the link behind it, bursts that break the DRAM
    read alignment, an L1 layout with no room or a misaligned base, a constant outside its range."""
    for dotted, param in spec.params().items():
        yield from range_problems(dotted, param)
    chip, noc, dram, l1 = spec.chip, spec.noc, spec.dram, spec.l1
    width, height = chip.noc_grid.value
    grid = chip.compute_grid.value
    for axis, coords, size, extent in (("x", chip.worker_noc_x.value, grid[0], width),
                                       ("y", chip.worker_noc_y.value, grid[1], height)):
        key = f"chip.worker_noc_{axis}"
        if len(coords) < size:
            yield f"{key}: {len(coords)} coordinates for a compute grid {size} cores along {axis}"
        if len(set(coords)) != len(coords):
            yield f"{key}: repeated coordinates in {list(coords)}"
        outside = [c for c in coords if not 0 <= c < extent]
        if outside:
            yield f"{key}: {outside} outside the NoC grid (0..{extent - 1})"
    banks = [tuple(xy) for xy in dram.bank_noc_xy.value]
    if len(banks) != dram.num_banks.value:
        yield f"dram.bank_noc_xy: {len(banks)} banks listed but dram.num_banks is {dram.num_banks.value}"
    if len(set(banks)) != len(banks):
        yield "dram.bank_noc_xy: repeated bank coordinates"
    for bx, by in banks:
        if not (0 <= bx < width and 0 <= by < height):
            yield f"dram.bank_noc_xy: bank ({bx}, {by}) outside the {width}x{height} NoC grid"
        elif bx in chip.worker_noc_x.value:
            yield f"dram.bank_noc_xy: bank ({bx}, {by}) sits in worker column x={bx}"
    if noc.niu_bytes_per_cycle.value > noc.link_bytes_per_cycle.value:
        yield (f"noc.niu_bytes_per_cycle {noc.niu_bytes_per_cycle.value} exceeds "
               f"noc.link_bytes_per_cycle {noc.link_bytes_per_cycle.value}")
    if dram.bank_bytes_per_cycle.value > noc.niu_bytes_per_cycle.value:
        yield (f"dram.bank_bytes_per_cycle {dram.bank_bytes_per_cycle.value} exceeds "
               f"noc.niu_bytes_per_cycle {noc.niu_bytes_per_cycle.value}")
    if noc.max_burst_bytes.value % dram.read_alignment_bytes.value:
        yield (f"noc.max_burst_bytes {noc.max_burst_bytes.value} is not a multiple of "
               f"dram.read_alignment_bytes {dram.read_alignment_bytes.value}")
    if l1.usable_bytes <= 0:
        yield (f"l1: no usable bytes (size_bytes {l1.size_bytes.value} - unreserved_base_bytes "
               f"{l1.unreserved_base_bytes.value} - l1_small_bytes {l1.l1_small_bytes.value})")
    if l1.unreserved_base_bytes.value % l1.alignment_bytes.value:
        yield (f"l1.unreserved_base_bytes {l1.unreserved_base_bytes.value} is not a multiple of "
               f"l1.alignment_bytes {l1.alignment_bytes.value}")
    stages = set(spec.compute.init_cycles.value)
    if stages != COMPUTE_STAGES:
        yield f"compute.init_cycles: keys {sorted(stages)}, expected {sorted(COMPUTE_STAGES)}"


def available_devices() -> list[str]:
    """Names of the bundled presets."""
    folder = resources.files("ttsim.device") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


_CACHE: dict[str, DeviceSpec] = {}


def preset_text(name: str | os.PathLike[str]) -> str:
    """The YAML text of a device preset, bundled (by name) or a preset file (what a sweep's
    results are keyed by)."""
    text_name = os.fspath(name)
    if text_name.endswith((".yaml", ".yml")):
        return read_config_text(text_name, f"device preset {short_text(text_name, 200)}", kind="preset file")
    names = available_devices()
    if text_name not in names:
        raise ConfigurationError(f"unknown device {text_name[:60]!r}; available: {', '.join(names)} "
                                 f"(or a preset file ending in .yaml)")
    return (resources.files("ttsim.device") / "presets" / f"{text_name}.yaml").read_text()


def load_device(name: str | os.PathLike[str]) -> DeviceSpec:
    """Load a bundled device preset by name (e.g. ``wormhole_b0``), or a preset file of your own
    (a path ending in ``.yaml`` / ``.yml``), validated like the bundled ones: every field, every
    constant's provenance and the consistency checks. A preset file is then also known by the
    ``name`` it declares (which must not be a bundled preset's), so reports can look it up."""
    text_name = os.fspath(name)
    if text_name in _CACHE:
        return _CACHE[text_name]
    if text_name.endswith((".yaml", ".yml")):
        return _load_preset_file(Path(text_name))
    # a bundled preset is trusted text: libyaml's parser (when PyYAML has it) builds the same
    # objects as safe_load (same safe constructors and resolver) in a tenth of the time
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = _validate(yaml.load(preset_text(text_name), Loader=loader), f"device preset {text_name}")  # noqa: S506
    _CACHE[text_name] = spec
    return spec


def with_value(spec: DeviceSpec, dotted: str, value: Any) -> DeviceSpec:
    """A copy of ``spec`` with the constant ``section.field`` set to ``value`` and a name saying so.

    The copy is named ``<name>~<dotted>=<value>`` so that results and reports show the
    perturbation (``<name>~<dotted>#<hash of the value>`` where that exceeds a device name's
    100 characters, e.g. for dict-valued constants).
    """
    section_name, _, field_name = dotted.partition(".")
    section = getattr(spec, section_name, None)
    if not isinstance(section, _Section) or field_name not in type(section).model_fields:
        raise ConfigurationError(f"device {spec.name}: no constant {dotted!r}")
    param = getattr(section, field_name).model_copy(update={"value": value})
    new_section = section.model_copy(update={field_name: param})
    name = f"{spec.name}~{dotted}={value}"
    if len(name) > 100:
        name = f"{spec.name}~{dotted}#{hashlib.sha256(repr(value).encode()).hexdigest()[:12]}"
    return spec.model_copy(update={section_name: new_section, "name": name})


def register_device(spec: DeviceSpec) -> None:
    """Make ``spec`` loadable by name in this process (perturbed presets of an uncertainty run)."""
    _CACHE[spec.name] = spec


def _load_preset_file(path: Path) -> DeviceSpec:
    label = f"device preset {short_text(str(path), 200)}"
    spec = _validate(parse_config_text(read_config_text(str(path), label, kind="preset file"), label), label)
    if spec.name in available_devices():
        raise ConfigurationError(f"{label}: name {spec.name!r} is a bundled preset's; give yours its own name")
    known = _CACHE.get(spec.name)
    if known is not None and known != spec:
        raise ConfigurationError(f"{label}: another preset named {spec.name!r} is already loaded")
    _CACHE[spec.name] = spec
    return spec


def _validate(data: Any, label: str) -> DeviceSpec:
    """Validate a parsed preset; ConfigurationError with one line per problem, naming the key."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{label}: top level must be a mapping of sections")
    try:
        return DeviceSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"{label}: {loc + ': ' if loc else ''}{err['msg']}")
        raise ConfigurationError("\n".join(lines)) from None
