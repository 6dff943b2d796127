"""How many processes ``ttsim run``, ``compare`` and ``check`` give the programs of an op config:
``--jobs`` when given, else one (two did not pay on the 2-core machine; bench/README.md). The
results do not depend on it (tests/test_parallel_programs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import ttsim.simulate
from ttsim.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mobilenetv2_op53.yaml"
GOLDEN = ["--golden", str(CONFIG.parents[1] / "tests" / "golden")]


@pytest.fixture
def jobs_seen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``jobs`` of every ttsim.run call the CLI makes (each a real timing-only run)."""
    seen: list[int] = []
    real_run = ttsim.simulate.run

    def recording_run(*args, jobs: int = 1, **kwargs):
        seen.append(jobs)
        return real_run(*args, jobs=1, **kwargs)

    monkeypatch.setattr(ttsim.simulate, "run", recording_run)
    return seen


def _invoke(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command, extra", [("run", []), ("compare", []), ("check", GOLDEN)])
def test_an_op_config_runs_in_one_process_by_default(jobs_seen, command, extra) -> None:
    _invoke(command, str(CONFIG), "--timing-only", *extra)
    assert jobs_seen == [1]


@pytest.mark.parametrize("command, extra", [("run", []), ("compare", []), ("check", GOLDEN)])
def test_jobs_given_are_taken_as_given(jobs_seen, command, extra) -> None:
    _invoke(command, str(CONFIG), "--timing-only", "--jobs", "3", *extra)
    assert jobs_seen == [3]
