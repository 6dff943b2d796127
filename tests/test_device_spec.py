"""Device presets: every constant carries its provenance, fitted constants are documented, the
L1 budget matches its derivation from tt-metal's memory map, and a preset file of one's own is
validated when loaded (the device model's consistency validators reject contradictions with a
clear message)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttsim.device.spec import Param, available_devices, load_device
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
def test_usable_l1_budget_matches_the_memory_map_derivation(name: str, base: int, approx_usable: int) -> None:
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
def test_every_config_activation_has_an_sfpu_cost(name: str) -> None:
    # identity stands for "none"; the config layer's activations are not the device model's to know
    sfpu = load_device(name).compute.sfpu_tile_cycles.value
    assert {"identity", *(a for a in ACTIVATIONS if a != "none")} <= set(sfpu)


def _preset_data() -> dict[str, Any]:
    """The bundled wormhole_b0 preset as parsed YAML, renamed (a user's copy to edit)."""
    text = (ROOT / "ttsim" / "device" / "presets" / "wormhole_b0.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    data["name"] = "my_wormhole"
    return data


def _write(tmp_path: Path, data: dict[str, Any], name: str = "my_wormhole.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_user_preset_file_loads_and_is_known_by_its_name(tmp_path: Path) -> None:
    data = _preset_data()
    data["chip"]["clock_mhz"]["value"] = 800.0
    spec = load_device(_write(tmp_path, data))
    assert spec.name == "my_wormhole" and spec.clock_mhz == 800.0
    assert load_device("my_wormhole") is spec  # reports look a result's device up by name


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    node = data
    for key in path:
        node = node[key]
    node[last] = value


# each edit breaks one consistency rule of the device model; the message names the keys involved
BAD_PRESETS = {
    "too_few_worker_columns": ("chip.worker_noc_x.value", [1, 2, 3],
                               "chip.worker_noc_x: 3 coordinates for a compute grid 8 cores along x"),
    "repeated_worker_row": ("chip.worker_noc_y.value", [1, 1, 2, 3, 4, 5, 7, 8, 9, 10],
                            "chip.worker_noc_y: repeated coordinates"),
    "worker_outside_noc": ("chip.worker_noc_x.value", [1, 2, 3, 4, 6, 7, 8, 9, 30],
                           "chip.worker_noc_x: [30] outside the NoC grid (0..9)"),
    "bank_count": ("dram.num_banks.value", 11, "dram.bank_noc_xy: 12 banks listed but dram.num_banks is 11"),
    "niu_faster_than_link": ("noc.niu_bytes_per_cycle.value", 64.0,
                             "noc.niu_bytes_per_cycle 64.0 exceeds noc.link_bytes_per_cycle"),
    "burst_alignment": ("noc.max_burst_bytes.value", 8100,
                        "noc.max_burst_bytes 8100 is not a multiple of dram.read_alignment_bytes"),
    "misaligned_l1_base": ("l1.unreserved_base_bytes.value", 103_425,
                           "l1.unreserved_base_bytes 103425 is not a multiple of l1.alignment_bytes"),
    "init_stages": ("compute.init_cycles.value", {"unpack": 1.0, "math": 1.0},
                    "compute.init_cycles: keys ['math', 'unpack'], expected ['math', 'pack', 'unpack']"),
}


@pytest.mark.parametrize("case", sorted(BAD_PRESETS))
def test_an_inconsistent_preset_file_is_rejected_with_a_clear_message(tmp_path: Path, case: str) -> None:
    dotted, value, message = BAD_PRESETS[case]
    data = _preset_data()
    _set(data, dotted, value)
    data["name"] = f"bad_{case}"
    path = _write(tmp_path, data, f"{case}.yaml")
    with pytest.raises(ConfigurationError) as info:
        load_device(path)
    text = str(info.value)
    assert text.startswith(f"device preset {path}: ")
    assert message in text, text


def test_a_preset_file_missing_a_constant_names_it(tmp_path: Path) -> None:
    data = _preset_data()
    del data["noc"]["hop_latency_cycles"]
    with pytest.raises(ConfigurationError, match=r"noc\.hop_latency_cycles: Field required"):
        load_device(_write(tmp_path, data))


def test_a_preset_file_may_not_take_a_bundled_name(tmp_path: Path) -> None:
    data = _preset_data()
    data["name"] = "wormhole_b0"
    with pytest.raises(ConfigurationError, match="name 'wormhole_b0' is a bundled preset's"):
        load_device(_write(tmp_path, data))


def test_a_missing_preset_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="nope.yaml: preset file not found"):
        load_device(tmp_path / "nope.yaml")


def test_a_preset_file_is_read_with_the_config_limits(tmp_path: Path) -> None:
    """A preset file of one's own goes through the bounded YAML reader: an alias bomb, a FIFO
    and an oversized file are one-line errors naming the file, never a hang or a blown memory."""
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"bomb.yaml: more than 10,000 values \(aliases expanded\)"):
        load_device(bomb)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigurationError, match=r"fifo.yaml: not a regular file \(a FIFO\)"):
        load_device(fifo)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="big.yaml: preset file .* exceeds the limit"):
        load_device(big)


def test_load_device_returns_the_cached_spec() -> None:
    assert load_device("wormhole_b0") is load_device("wormhole_b0")
