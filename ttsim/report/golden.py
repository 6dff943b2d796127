"""Golden cycle counts: expected DEVICE KERNEL DURATION cycles of every op of every program, per
config, committed under tests/golden/ and checked by ``ttsim check``.

Simulated cycles are deterministic, so a golden normally matches exactly (Match); within the
tolerance it is an ApproxMatch; otherwise (or with no golden) a Mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ttsim.results import OpResult

SCHEMA_VERSION = 1
MATCH, APPROX, MISMATCH = "Match", "ApproxMatch", "Mismatch"


@dataclass(frozen=True)
class CheckRow:
    config: str
    program: str
    op_code: str
    golden: int | None
    simulated: int
    status: str

    @property
    def delta(self) -> float | None:
        if not self.golden:
            return None
        return (self.simulated - self.golden) / self.golden


def golden_path(folder: Path, config_name: str) -> Path:
    return folder / f"{config_name}.json"


def golden_document(config_name: str, results: list[OpResult]) -> dict:
    ops: dict[str, dict[str, int]] = {}
    for result in results:
        ops.setdefault(result.program, {})[result.op_code] = result.device_kernel_duration_cycles
    return {"schema_version": SCHEMA_VERSION, "config": config_name, "device": results[0].device,
            "device_kernel_duration_cycles": ops}


def load_golden(path: Path) -> dict[str, dict[str, int]]:
    """{program: {op_code: cycles}} from a golden file ({} when there is none)."""
    if not path.exists():
        return {}
    return json.loads(path.read_text())["device_kernel_duration_cycles"]


def compare_with_golden(config_name: str, results: list[OpResult], golden: dict[str, dict[str, int]],
                        tolerance: float) -> list[CheckRow]:
    """One row per simulated op; ``tolerance`` is a fraction (0.02 = 2 %)."""
    rows = []
    for result in results:
        expected = golden.get(result.program, {}).get(result.op_code)
        simulated = result.device_kernel_duration_cycles
        if expected == simulated:
            status = MATCH
        elif expected is not None and abs(simulated - expected) <= tolerance * expected:
            status = APPROX
        else:
            status = MISMATCH
        rows.append(CheckRow(config_name, result.program, result.op_code, expected, simulated, status))
    return rows
