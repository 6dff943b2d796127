"""Model suites: every depthwise layer of a model, run with every requested program, in parallel.

A suite is a folder of op configs (``configs/models/mobilenetv2/``: every ``*.yaml`` in it, in name
order) or a suite file listing them::

    suite: mobilenetv2            # optional; default: the file's stem
    configs: [01_a.yaml, 02_b.yaml]   # paths relative to the suite file's folder

Each config is one layer; its ``count`` says how often the layer occurs in the model, and the
model totals weigh it by that. A layer a program cannot run (an L1 overflow, an unsupported
layout) is a result with its message, not an abort of the suite. Layers run on local processes or
a Dask cluster through :func:`ttsim.sweep.execute`, one task per layer and program (and, for an
uncertainty run, per perturbed preset constant; see :mod:`ttsim.uncertainty`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ttsim.config import OpConfig, load_config, parse_config_text, read_config_text
from ttsim.errors import ConfigurationError, TtsimError

CLASSIC = "classic"


@dataclass(frozen=True)
class SuiteEntry:
    """One layer: the config file (with the ``--set`` overrides applied) and its loaded config."""

    path: Path
    config: OpConfig


@dataclass(frozen=True)
class Suite:
    name: str
    entries: tuple[SuiteEntry, ...]
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """One layer on one program (and, in an uncertainty run, one perturbed constant)."""

    config: str
    program: str
    status: str  # "ok" or "error"
    device_kernel_duration_ns: float | None = None
    device_kernel_duration_cycles: int | None = None
    halo_duration_ns: float | None = None
    pcc: float | None = None
    l1_used_bytes: int | None = None
    error: str = ""
    error_type: str = ""  # the TtsimError subclass, e.g. L1OverflowError, UnsupportedFunctionality
    perturbation: tuple[str, str] | None = None  # (dotted constant, "min" or "max")
    roofline_ns: float | None = None  # the op's lower bound, when the program reports one

    @property
    def roofline_fraction(self) -> float | None:
        """roofline / duration (1 = at the bound), if both are known."""
        if self.roofline_ns is None or not self.device_kernel_duration_ns:
            return None
        return self.roofline_ns / self.device_kernel_duration_ns

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class LayerResult:
    """A layer's outcome on every program (nominal preset)."""

    config: str
    count: int
    source: str | None
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every program ran the layer (only complete layers enter the totals)."""
        return all(o.ok for o in self.outcomes.values())

    def speedup(self, program: str) -> float | None:
        """classic / program DEVICE KERNEL DURATION (> 1: ``program`` is faster), if both ran."""
        classic, other = self.outcomes.get(CLASSIC), self.outcomes.get(program)
        if classic is None or other is None or not (classic.ok and other.ok):
            return None
        return classic.device_kernel_duration_ns / other.device_kernel_duration_ns


@dataclass(frozen=True)
class ProgramTotals:
    """A program's model totals over the complete layers."""

    program: str
    total_ns: float
    speedup_total: float | None  # classic total / this total (None for classic itself)
    speedup_geomean: float | None  # geometric mean of per-layer speedups, weighted by count
    worst_layer: str | None  # lowest speedup against classic
    best_layer: str | None


@dataclass(frozen=True)
class SuiteTotals:
    layers: int  # configs
    occurrences: int  # layers x count
    complete_layers: int
    complete_occurrences: int
    programs: dict[str, ProgramTotals]


def _read_yaml(path: Path) -> Any:
    """A YAML file parsed with the config loader's limits and one-line errors."""
    return parse_config_text(read_config_text(str(path), str(path)), str(path))


def is_suite(path: Path) -> bool:
    """A folder, or a YAML file whose top level has a ``configs`` list."""
    if path.is_dir():
        return True
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    data = _read_yaml(path)
    return isinstance(data, dict) and "configs" in data


def load_suite(path: Path, overrides: Iterable[str] = ()) -> Suite:
    """The suite at ``path`` (folder or suite file); every config validated up front."""
    overrides = tuple(overrides)
    if path.is_dir():
        paths = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        name = path.resolve().name
        if not paths:
            raise ConfigurationError(f"{path}: suite folder holds no *.yaml configs")
    else:
        data = _read_yaml(path)
        if not isinstance(data, dict) or "configs" not in data:
            raise ConfigurationError(f"{path}: not a suite file (expected a mapping with a 'configs' list)")
        unknown = sorted(set(data) - {"suite", "configs"})
        if unknown:
            raise ConfigurationError(f"{path}: unknown key {unknown[0]!r} in suite file (expected suite, configs)")
        listed = data["configs"]
        if not isinstance(listed, list) or not listed or not all(isinstance(p, str) and p for p in listed):
            raise ConfigurationError(f"{path}: configs: expected a non-empty list of config paths")
        name = data.get("suite", path.stem)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{path}: suite: expected a name, got {name!r}")
        paths = [path.parent / p for p in listed]
        for listed_path, full in zip(listed, paths):
            if not full.is_file():
                raise ConfigurationError(f"{path}: configs: {listed_path} not found (relative to {path.parent})")
    entries = tuple(SuiteEntry(p, load_config(p, list(overrides))) for p in paths)
    seen: dict[str, Path] = {}
    for entry in entries:
        if entry.config.name in seen:
            raise ConfigurationError(
                f"{entry.path}: name {entry.config.name!r} already used by {seen[entry.config.name]} in suite {name}")
        seen[entry.config.name] = entry.path
    return Suite(name, entries, overrides)


def single_suite(path: Path, overrides: Iterable[str] = ()) -> Suite:
    """A one-layer suite of a plain config (so that one report serves single ops too)."""
    config = load_config(path, list(overrides))
    return Suite(config.name, (SuiteEntry(path, config),), tuple(overrides))


def run_layer(config_path: str, overrides: tuple[str, ...], program: str, device: str | None,
              perturbation: tuple[str, str, Any] | None = None, timing_only: bool = False) -> Outcome:
    """Simulate one layer on one program; every ttsim error becomes an error outcome.

    ``perturbation`` = (dotted constant, "min"/"max", value): run on the device preset with that
    one constant changed (imported and registered in the worker process), timing only (only its
    cycles are read). ``timing_only``: no numerics for the nominal run either (no PCC).
    """
    from ttsim.device.spec import load_device, register_device, with_value
    from ttsim.simulate import run

    config = load_config(config_path, list(overrides))
    label = None if perturbation is None else (perturbation[0], perturbation[1])
    try:
        if perturbation is not None:
            spec = with_value(load_device(device or config.device), perturbation[0], perturbation[2])
            register_device(spec)
            device = spec.name
        halo, conv = run(config, program=program, device=device,
                         timing_only=timing_only or perturbation is not None)[-2:]
    except TtsimError as exc:
        return Outcome(config.name, program, "error", error=" ".join(str(exc).split())[:500],
                       error_type=type(exc).__name__, perturbation=label)
    roof = conv.info.get("roofline")  # an object with bound_cycles, where a roofline model is wired in
    return Outcome(config.name, program, "ok", conv.device_kernel_duration_ns, conv.device_kernel_duration_cycles,
                   halo.device_kernel_duration_ns, conv.pcc, conv.profile.l1_used_bytes, perturbation=label,
                   roofline_ns=None if roof is None else conv.profile.to_ns(roof.bound_cycles))


def run_suite(suite: Suite, programs: tuple[str, ...], device: str | None, jobs: int = 2,
              scheduler: str | None = None, on_result: Callable[[Outcome], None] = lambda o: None,
              timing_only: bool = False) -> list[LayerResult]:
    """Every layer on every program; results in suite order, outcomes in ``programs`` order."""
    from ttsim.sweep import execute  # process pools and Dask: only when a suite runs, not to ask is_suite

    tasks = [(str(e.path), suite.overrides, program, device, None, timing_only)
             for e in suite.entries for program in programs]
    outcomes: dict[tuple[str, str], Outcome] = {}
    for outcome in execute(run_layer, tasks, jobs, scheduler):
        outcomes[(outcome.config, outcome.program)] = outcome
        on_result(outcome)
    return [LayerResult(e.config.name, e.config.count, e.config.source,
                        {p: outcomes[(e.config.name, p)] for p in programs}) for e in suite.entries]


def suite_totals(layers: list[LayerResult], programs: tuple[str, ...]) -> SuiteTotals:
    """Model totals: sum of count x duration over the layers every program ran; speedups vs classic."""
    complete = [layer for layer in layers if layer.complete]
    totals = {p: sum(layer.count * layer.outcomes[p].device_kernel_duration_ns for layer in complete)
              for p in programs}
    result = {}
    for program in programs:
        speedup_total = geomean = worst = best = None
        if CLASSIC in programs and program != CLASSIC and complete and totals[program] > 0:
            speedup_total = totals[CLASSIC] / totals[program]
            weights = sum(layer.count for layer in complete)
            geomean = math.exp(sum(layer.count * math.log(layer.speedup(program)) for layer in complete) / weights)
            ranked = sorted(complete, key=lambda layer: layer.speedup(program))
            worst, best = ranked[0].config, ranked[-1].config
        result[program] = ProgramTotals(program, totals[program], speedup_total, geomean, worst, best)
    return SuiteTotals(len(layers), sum(layer.count for layer in layers), len(complete),
                       sum(layer.count for layer in complete), result)


def programs_for(choice: str, registered: tuple[str, ...]) -> tuple[str, ...]:
    """The programs a ``--program`` choice names: one, or "all" (classic first, the reference)."""
    if choice == "all":
        return (CLASSIC, *(p for p in registered if p != CLASSIC)) if CLASSIC in registered else registered
    if choice not in registered:
        raise ConfigurationError(f"unknown program {choice!r}; available: {', '.join((*registered, 'all'))}")
    return (choice,)
