"""The bench/ scripts still start against today's package: each one's ``--help`` runs (their
imports resolve) and offers every registered program where it takes one. They are not run in
the suite (they are benchmarks), so this is what keeps them from rotting between benchmark runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ttsim.programs import registry

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _help(script: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py") if p.name != "child_usage.py"))
def test_bench_script_starts(script):
    assert "usage:" in _help(script)


@pytest.mark.parametrize("script", ["bench_speed.py", "bench_seed_ops.py"])
def test_bench_program_choice_is_the_registry(script):
    text = _help(script)
    for name in registry.names():
        assert name in text
