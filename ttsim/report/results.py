"""Plain-data views of op results for reports (tables, JSON). Reports only read results."""

from __future__ import annotations

from typing import Any

from ttsim.device.core import Risc
from ttsim.results import OpResult

SCHEMA_VERSION = 1
RISCS = (Risc.BRISC, Risc.NCRISC, Risc.TRISC0, Risc.TRISC1, Risc.TRISC2)


def op_record(result: OpResult) -> dict[str, Any]:
    """One op as the JSON report (schema_version 1) writes it."""
    profile = result.profile
    return {
        "config": result.config,
        "op_code": result.op_code,
        "program": result.program,
        "device": result.device,
        "clock_mhz": profile.clock_mhz,
        "device_kernel_duration_ns": profile.device_kernel_duration_ns,
        "device_kernel_duration_cycles": profile.device_kernel_duration_cycles,
        "risc_duration_ns": {risc.value: profile.risc_duration_ns[risc]
                             for risc in RISCS},
        "core_count": profile.core_count,
        "pcc": result.pcc,
        "timing_only": result.timing_only,
        "roofline": roofline_record(result),
    }


def roofline_record(result: OpResult) -> dict[str, Any] | None:
    """The op's lower bound (ttsim.programs.roofline) and the fraction of it the simulation reaches."""
    roof = result.info.get("roofline")
    if roof is None:
        return None
    record = roof.as_dict(result.profile.clock_mhz)
    record["achieved_fraction"] = roof.achieved(result.profile.device_kernel_duration_cycles)
    return record


def report_document(results: list[OpResult]) -> dict[str, Any]:
    """The whole JSON report for a list of results (in run order)."""
    first = results[0].profile if results else None
    return {
        "schema_version": SCHEMA_VERSION,
        "device": results[0].device if results else None,
        "clock_mhz": first.clock_mhz if first else None,
        "timing_only": any(r.timing_only for r in results),
        "ops": [op_record(r) for r in results],
    }
