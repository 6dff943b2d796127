"""The layering docs/architecture.md describes, enforced on the source: each layer imports only
the layers below it, and no module reaches into another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ttsim

PACKAGE = Path(ttsim.__file__).parent

ALLOWED = {
    # device/ knows nothing above itself: cores, L1, NoC, DRAM, profiler, presets.
    "device": ("ttsim.device", "ttsim.errors", "ttsim.formats", "ttsim.bounded_yaml"),
    # kernels know only the kernel API (and the kernels they share helpers with).
    "kernels": ("ttsim.kernel_api", "ttsim.kernels"),
}


STACK = (
    ("ttsim.errors", "ttsim.version"),
    ("ttsim.bounded_yaml",),
    ("ttsim.formats", "ttsim.config", "ttsim.output_paths"),
    ("ttsim.numerics", "ttsim.fpu"),
    ("ttsim.sim_events",),
    ("ttsim.device",),
    ("ttsim.results", "ttsim.limits"),
    ("ttsim.cb",),
    ("ttsim.kernel_api",),
    ("ttsim.split_run",),
    ("ttsim.kernels", "ttsim.host"),
    ("ttsim.programs",),
    ("ttsim.simulate",),
    ("ttsim.sweep",),
    ("ttsim.suite",),
    ("ttsim.uncertainty",),
    ("ttsim.report",),
    ("ttsim.suite_cli",),
    ("ttsim.cli", "ttsim"),
)
"""docs/architecture.md's stack, bottom first: a package may import its own row's package and
anything in a lower row."""


LATE_BOUND = {("ttsim.config", "ttsim.programs.registry")}
"""Upward lookups made at call time, each for a stated reason: a config has one section per
registered program, so validating a config asks the registry which programs exist (the registry
itself builds on config's models). Nothing else may look upward."""


def _package(module: str) -> str:
    """The stack entry a module belongs to (``ttsim.device.noc`` -> ``ttsim.device``)."""
    return ".".join(module.split(".")[:2])


def _row(package: str) -> int:
    return next(i for i, row in enumerate(STACK) if package in row)


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every ``ttsim`` import in a source file under ``root``
    (the ``ttsim`` package directory), including relative ones resolved against the package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return [(line, module, names) for line, module, names in found
            if module == "ttsim" or module.startswith("ttsim.")]


def _sources(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_is_below_it(layer):
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
                 for path in _sources(layer)
                 for line, module, _ in _imports(path)
                 if not _allowed(module, ALLOWED[layer])]
    assert not offenders, "\n".join(offenders)


def test_every_module_has_a_place_in_the_stack():
    missing = sorted({_package(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts))
                      for p in PACKAGE.rglob("*.py")} - {pkg for row in STACK for pkg in row}
                     - {"ttsim.__init__"})
    assert not missing, f"add {missing} to STACK and to docs/architecture.md"


def test_no_package_imports_one_above_it():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        importer = "ttsim" if parts == ("ttsim", "__init__") else _package(".".join(parts))
        for line, module, _ in _imports(path):
            imported = _package(module)
            if (".".join(parts), module) in LATE_BOUND:
                continue
            if imported != importer and _row(imported) >= _row(importer):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_no_private_names_imported_across_modules():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} from {module}"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 for line, module, names in _imports(path)
                 for name in names
                 if name.startswith("_") and not name.startswith("__")]
    assert not offenders, "\n".join(offenders)


def test_the_checks_see_a_violation(tmp_path):
    """The walker finds an upward import and a private import in a file that has them, so the
    tests above cannot pass by seeing nothing."""
    fake = tmp_path / "ttsim" / "device"
    fake.mkdir(parents=True)
    source = fake / "bad.py"
    source.write_text("from ttsim.cb import CircularBuffer\nfrom ..kernels.classic.conv_act_reader import _geometry\n")
    found = _imports(source, root=tmp_path / "ttsim")
    assert [(module, names) for _, module, names in found] == [
        ("ttsim.cb", ["CircularBuffer"]), ("ttsim.kernels.classic.conv_act_reader", ["_geometry"])]
    assert not _allowed("ttsim.cb", ALLOWED["device"])


def test_shared_constants_have_one_definition():
    """VALID / INVALID and the tile shape are assigned once in the package (the kernel API's
    common values and ttsim.formats); everyone else imports them."""
    names = {"VALID", "INVALID", "TILE", "TILE_H", "TILE_W", "TILE_ELEMENTS", "TILE_ROWS", "TILE_WIDTH"}
    definitions: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            for target in targets:
                if isinstance(target, ast.Name) and target.id in names:
                    definitions.setdefault(target.id, []).append(str(path.relative_to(PACKAGE.parent)))
    assert definitions == {
        "VALID": ["ttsim/kernel_api/common_values.py"],
        "INVALID": ["ttsim/kernel_api/common_values.py"],
        "TILE_H": ["ttsim/formats.py"],
        "TILE_W": ["ttsim/formats.py"],
        "TILE_ELEMENTS": ["ttsim/formats.py"],
    }


def test_one_weights_multicast_handshake():
    """Both weight-loading readers call the shared handshake instead of writing their own."""
    for kernel in ("classic/conv_weights.py", "reader.py"):
        source = (PACKAGE / "kernels" / kernel).read_text()
        assert "mcast_send_block" in source and "mcast_receive_block" in source, kernel
        assert "noc_semaphore_set_multicast" not in source, kernel
