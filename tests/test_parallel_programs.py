"""``ttsim.run(..., jobs=N)``: the programs of one config in worker processes at once give exactly
the serial run's results (every op's cycles, kernel zones, stalls, CB records and output bytes),
in registry order."""

from __future__ import annotations

from pathlib import Path

import pytest

import ttsim
from ttsim.errors import ConfigurationError
from ttsim.programs import registry

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mobilenetv2_op53.yaml"


def _everything(result: ttsim.OpResult) -> tuple:
    profile = result.profile
    return (result.program, result.op_code, result.device_kernel_duration_cycles, profile.zones,
            profile.blocked, profile.busy, profile.cbs, result.pcc)


def test_programs_in_parallel_give_the_serial_results() -> None:
    serial = ttsim.run(CONFIG)
    parallel = ttsim.run(CONFIG, jobs=2)
    assert [r.program for r in parallel] == [name for name in registry.names() for _ in range(2)]
    assert [_everything(r) for r in parallel] == [_everything(r) for r in serial]
    for mine, theirs in zip(parallel, serial):
        assert (mine.output is None) == (theirs.output is None)
        if mine.output is not None:
            assert mine.output.tobytes() == theirs.output.tobytes()
            assert mine.output.dtype == theirs.output.dtype


def test_one_program_ignores_jobs() -> None:
    one = ttsim.run(CONFIG, program="pool", timing_only=True, jobs=4)
    assert [_everything(r) for r in one] == [_everything(r) for r in ttsim.run(CONFIG, program="pool",
                                                                               timing_only=True)]


@pytest.mark.parametrize("jobs", [0, -1, 65, True, 2.0, "2"])
def test_jobs_must_be_a_process_count(jobs: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^jobs: expected a number of processes from 1 to 64, got "):
        ttsim.run(CONFIG, jobs=jobs)  # type: ignore[arg-type]
