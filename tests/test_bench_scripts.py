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


@pytest.mark.parametrize("dont_write", [True, False])
def test_bytecode_is_compiled_for_children_only_when_they_would_not_write_it(tmp_path, dont_write):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text("VALUE = 1\n")
    env = {"PATH": "/usr/bin:/bin", **({"PYTHONDONTWRITEBYTECODE": "1"} if dont_write else {})}
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(BENCH)!r}); import child_usage; "
                               f"from pathlib import Path; print(child_usage.compile_package_bytecode(Path({str(package)!r})))"],
        capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    compiled = list((package / "__pycache__").glob("mod.*.pyc"))
    if dont_write:
        assert "compiled before measuring" in done.stdout and len(compiled) == 1
    else:
        assert "PYTHONDONTWRITEBYTECODE is not set" in done.stdout and not compiled
