"""How many processes ``ttsim run``, ``compare`` and ``check`` give the programs of an op config:
``--jobs`` when given, else its default (2) capped at the CPUs the process may use. The results
do not depend on it (tests/test_parallel_programs.py), so the default takes what the machine has."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import ttsim.simulate
from ttsim.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mobilenetv2_op53.yaml"


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


@pytest.mark.parametrize("cpus, expected", [({0}, 1), ({0, 1}, 2), ({0, 1, 2, 3, 4, 5}, 2)])
@pytest.mark.parametrize("command", ["run", "compare", "check"])
def test_the_default_is_capped_at_the_usable_cpus(monkeypatch, jobs_seen, cpus, expected, command) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus, raising=False)
    extra = ["--golden", str(CONFIG.parents[1] / "tests" / "golden")] if command == "check" else []
    _invoke(command, str(CONFIG), "--timing-only", *extra)
    assert jobs_seen == [expected]


@pytest.mark.parametrize("command", ["run", "compare"])
def test_jobs_given_are_taken_as_given(monkeypatch, jobs_seen, command) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    _invoke(command, str(CONFIG), "--timing-only", "--jobs", "3")
    assert jobs_seen == [3]
