"""Device presets: every constant carries its provenance, fitted constants are documented, the
presets are self-consistent, and the L1 budget matches its derivation from tt-metal's memory map."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttsim.device.spec import DeviceSpec, Param, available_devices, load_device
from ttsim.errors import ConfigurationError
from ttsim.numerics import ACTIVATIONS

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ["wormhole_b0", "blackhole"]


def test_both_presets_are_bundled() -> None:
    assert set(DEVICES) <= set(available_devices())


@pytest.mark.parametrize("name", DEVICES)
def test_every_constant_has_a_source_and_a_confidence(name: str) -> None:
    spec = load_device(name)
    params = spec.params()
    assert len(params) >= 50  # every section is walked
    for dotted, param in params.items():
        assert isinstance(param, Param), dotted
        assert param.source.strip(), dotted
        assert param.unit.strip(), dotted
        assert param.confidence in ("H", "M", "L", "fitted"), dotted
    # every field of every section is a Param (nothing slipped in as a bare number)
    for section in ("chip", "l1", "noc", "dram", "compute", "risc"):
        for field in type(getattr(spec, section)).model_fields:
            assert f"{section}.{field}" in params


@pytest.mark.parametrize("name", DEVICES)
def test_fitted_constants_are_documented_in_calibration_md(name: str) -> None:
    fitted = {dotted: p for dotted, p in load_device(name).params().items()
              if p.confidence == "fitted"}
    assert fitted, "expected at least the fitted NoC/DRAM latencies"
    for dotted, param in fitted.items():
        assert "docs/calibration.md" in param.source, dotted
    doc = ROOT / "docs" / "calibration.md"
    assert doc.is_file(), "docs/calibration.md must describe every fitted constant"
    text = doc.read_text(encoding="utf-8")
    for dotted in fitted:
        field = dotted.split(".", 1)[1]
        assert field in text, f"{name} {dotted} is fitted but not mentioned in docs/calibration.md"


def test_unknown_device_lists_the_available_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_device("grayskull")
    message = str(info.value)
    assert "unknown device 'grayskull'" in message
    for name in DEVICES:
        assert name in message


# L1 1,499,136 B (TM soc descriptors worker_l1_size); first user address 103,424 B (WH, derived from
# TM dev_mem_map.h MEM_MAP_END + the 69 KiB kernel-config buffer of wh_hal_tensix.cpp) / 104,128 B (BH,
# BH_TENSIX_DEFAULT_UNRESERVED 0x196C0 of public BH fast-dispatch drivers); usable for CBs and L1
# buffers ~1,395,700 B (WH) / ~1,395,000 B (BH), minus the application's l1_small_size (16,384 B
# in the depthwise tests).
@pytest.mark.parametrize(("name", "base", "approx_usable"), [
    ("wormhole_b0", 103_424, 1_395_700),
    ("blackhole", 0x196C0, 1_395_000),
])
def test_usable_l1_budget_matches_hardware_md(name: str, base: int, approx_usable: int) -> None:
    l1 = load_device(name).l1
    assert l1.size_bytes.value == 1_499_136
    assert l1.unreserved_base_bytes.value == base
    assert l1.l1_small_bytes.value == 16_384
    before_small = 1_499_136 - base
    assert abs(before_small - approx_usable) < 1_000
    assert l1.usable_bytes == before_small - 16_384
    assert base % l1.alignment_bytes.value == 0


@pytest.mark.parametrize(("name", "clock", "grid"), [("wormhole_b0", 1000, (8, 8)),
                                                     ("blackhole", 1350, (11, 10))])
def test_clock_grid_and_ns_conversion(name: str, clock: float, grid: tuple[int, int]) -> None:
    spec = load_device(name)
    assert spec.clock_mhz == clock
    assert tuple(spec.chip.compute_grid.value) == grid
    assert spec.cycles_to_ns(clock * 3) == pytest.approx(3000.0)


@pytest.mark.parametrize("name", DEVICES)
def test_preset_is_self_consistent(name: str) -> None:
    spec: DeviceSpec = load_device(name)
    width, height = spec.chip.noc_grid.value
    grid_x, grid_y = spec.chip.compute_grid.value
    xs, ys = spec.chip.worker_noc_x.value, spec.chip.worker_noc_y.value
    assert len(xs) >= grid_x and len(ys) >= grid_y
    assert len(set(xs)) == len(xs) and len(set(ys)) == len(ys)
    assert all(0 <= x < width for x in xs) and all(0 <= y < height for y in ys)
    banks = [tuple(xy) for xy in spec.dram.bank_noc_xy.value]
    assert len(banks) == spec.dram.num_banks.value == len(set(banks))
    for bx, by in banks:  # DRAM endpoints sit in DRAM columns, never on a worker
        assert 0 <= bx < width and 0 <= by < height
        assert bx not in xs
    assert spec.noc.niu_bytes_per_cycle.value <= spec.noc.link_bytes_per_cycle.value
    assert spec.dram.bank_bytes_per_cycle.value <= spec.noc.niu_bytes_per_cycle.value
    assert spec.noc.max_burst_bytes.value % spec.dram.read_alignment_bytes.value == 0
    # every activation the configs accept has an SFPU cost (identity stands for "none")
    sfpu = spec.compute.sfpu_tile_cycles.value
    assert {"identity", *(a for a in ACTIVATIONS if a != "none")} <= set(sfpu)
    assert set(spec.compute.init_cycles.value) == {"unpack", "math", "pack"}


def test_load_device_returns_the_cached_spec() -> None:
    assert load_device("wormhole_b0") is load_device("wormhole_b0")
