"""The repository stands alone: its text cites public sources (docs/sources.md), never notes that
are not in it, and every ``ttsim.*`` module or object it names exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".toml"}
# Private notes the project once cited: not in the repository, so never citable.
NOT_IN_REPO = ("tt-programs.md", "hardware.md", "peers.md", "optimized-depthwise.md", "DEVELOPERS.md",
               "seed-baseline.csv", "shared/reference")
DOTTED = re.compile(r"\bttsim(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _texts() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for folder in ("ttsim", "docs", "tests", "bench", "examples", "configs"):
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.suffix in TEXT_SUFFIXES]
    return [p for p in files if p.is_file() and p != Path(__file__).resolve()]


def _resolves(dotted: str) -> bool:
    """True if ``dotted`` is an importable module or an attribute path inside one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_no_citation_of_files_outside_the_repository():
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in _texts()
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if any(name in line for name in NOT_IN_REPO) or "§" in line]
    assert not offenders, "\n".join(offenders)


def test_every_named_ttsim_module_exists():
    offenders = sorted({f"{path.relative_to(ROOT)}: {name}"
                        for path in _texts()
                        for name in DOTTED.findall(path.read_text())
                        if not _resolves(name)})
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(("name", "exists"), [("ttsim.kernel_api.base", True),
                                               ("ttsim.kernel_api.common_values.VALID", True),
                                               ("ttsim.kernels.context", False),
                                               ("ttsim.cb.NoSuchThing", False)])
def test_module_check_tells_real_from_missing(name, exists):
    assert _resolves(name) is exists
