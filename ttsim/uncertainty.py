"""How far to trust a simulated duration: re-run with each uncertain preset constant at its ends.

Every constant of the device preset with a ``range`` (confidence M, L or fitted; see
:class:`ttsim.device.spec.Param`) is set to its min and then its max, one constant at a time, the
rest nominal; every layer runs on every program at each of these points (in parallel, through
:func:`ttsim.sweep.execute`). From them, per layer and program: the range of DEVICE KERNEL
DURATION, the three constants that move it most, and whether the ranking of the programs and the
side of 1 of each speedup against classic hold at every point. For a suite, the same for the
model totals. One-at-a-time ends bound each constant's own effect; they do not bound joint
errors (several constants wrong together), which the report says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection

from ttsim.device.spec import load_device
from ttsim.errors import ConfigurationError
from ttsim.suite import CLASSIC, LayerResult, Outcome, Suite, run_layer
from ttsim.sweep import execute

ENDS = ("min", "max")
TOP_MOVERS = 3


@dataclass(frozen=True)
class Mover:
    """A constant and the duration change its two ends cause (ns; None if the run failed)."""

    constant: str
    delta_min_ns: float | None
    delta_max_ns: float | None

    @property
    def spread_ns(self) -> float:
        return max(abs(d) for d in (self.delta_min_ns, self.delta_max_ns, 0.0) if d is not None)


@dataclass(frozen=True)
class OpUncertainty:
    """One layer on one program over every perturbation."""

    config: str
    program: str
    nominal_ns: float | None
    low_ns: float | None
    high_ns: float | None
    movers: tuple[Mover, ...]  # the TOP_MOVERS largest, largest first
    failures: tuple[str, ...]  # "constant=end: message" for perturbed runs that failed


@dataclass(frozen=True)
class RankingCheck:
    """Whether the programs' order and each speedup's side of 1 hold at every perturbation."""

    ranking: tuple[str, ...]  # nominal, fastest first
    ranking_holds: bool
    ranking_breakers: tuple[str, ...]  # "constant=end" points where the order changes
    speedup_range: dict[str, tuple[float, float]]  # program -> (min, max) speedup vs classic
    speedup_holds: dict[str, bool]  # program -> faster (or slower) than classic at every point


@dataclass(frozen=True)
class LayerUncertainty:
    config: str
    ops: dict[str, OpUncertainty]
    check: RankingCheck | None  # None when a program failed nominally


@dataclass(frozen=True)
class TotalsUncertainty:
    """The model totals (complete layers, x count) over every perturbation."""

    band_ns: dict[str, tuple[float, float]]
    movers: dict[str, tuple[Mover, ...]]
    check: RankingCheck
    incomplete_points: tuple[str, ...]  # perturbations at which some complete layer failed


Key = tuple[str, str, str, str]  # (config, program, constant, end)


def perturbations(device: str, constants: Collection[str] | None = None) -> list[tuple[str, str, Any]]:
    """(constant, end, value) for both ends of every ranged constant of a device preset (or of
    those named in ``constants``)."""
    params = load_device(device).params()
    unknown = sorted(set(constants or ()) - {name for name, p in params.items() if p.range is not None})
    if unknown:
        raise ConfigurationError(f"device {device}: no ranged constant {unknown[0]!r}")
    return [(name, end, getattr(param.range, end)) for name, param in params.items()
            if param.range is not None and (constants is None or name in constants) for end in ENDS]


def run_perturbed(suite: Suite, programs: tuple[str, ...], device: str | None, jobs: int = 2,
                  scheduler: str | None = None, on_result: Callable[[Outcome], None] = lambda o: None,
                  constants: Collection[str] | None = None, timing_only: bool = False
                  ) -> tuple[list[LayerResult], dict[Key, Outcome]]:
    """Nominal and perturbed runs of every layer and program, all in one parallel batch (the
    perturbed ones timing only; the nominal ones too with ``timing_only``)."""
    tasks = []
    for entry in suite.entries:
        for program in programs:
            tasks.append((str(entry.path), suite.overrides, program, device, None, timing_only))
            for point in perturbations(device or entry.config.device, constants):
                tasks.append((str(entry.path), suite.overrides, program, device, point))
    nominal: dict[tuple[str, str], Outcome] = {}
    perturbed: dict[Key, Outcome] = {}
    for outcome in execute(run_layer, tasks, jobs, scheduler):
        if outcome.perturbation is None:
            nominal[(outcome.config, outcome.program)] = outcome
        else:
            perturbed[(outcome.config, outcome.program, *outcome.perturbation)] = outcome
        on_result(outcome)
    layers = [LayerResult(e.config.name, e.config.count, e.config.source,
                          {p: nominal[(e.config.name, p)] for p in programs}) for e in suite.entries]
    return layers, perturbed


def points_of(perturbed: dict[Key, Outcome]) -> list[tuple[str, str]]:
    """Every (constant, end) that ran, in first-seen order."""
    return list(dict.fromkeys((constant, end) for _, _, constant, end in perturbed))


def analyse_layer(layer: LayerResult, perturbed: dict[Key, Outcome], programs: tuple[str, ...]) -> LayerUncertainty:
    points = points_of({k: v for k, v in perturbed.items() if k[0] == layer.config})
    ops = {}
    durations: dict[tuple[str, str], dict[str, float | None]] = {}
    for program in programs:
        nominal = layer.outcomes[program].device_kernel_duration_ns
        by_point = {}
        failures = []
        for constant, end in points:
            outcome = perturbed[(layer.config, program, constant, end)]
            by_point[(constant, end)] = outcome.device_kernel_duration_ns if outcome.ok else None
            if not outcome.ok:
                failures.append(f"{constant}={end}: {outcome.error}")
        for point, value in by_point.items():
            durations.setdefault(point, {})[program] = value
        ok = [v for v in by_point.values() if v is not None] + ([nominal] if nominal is not None else [])
        movers = () if nominal is None else _movers(by_point, nominal)
        ops[program] = OpUncertainty(layer.config, program, nominal, min(ok) if ok else None,
                                     max(ok) if ok else None, movers, tuple(failures))
    check = None
    if layer.complete:
        check = _check({p: layer.outcomes[p].device_kernel_duration_ns for p in programs}, durations, programs)
    return LayerUncertainty(layer.config, ops, check)


def analyse_totals(layers: list[LayerResult], perturbed: dict[Key, Outcome], programs: tuple[str, ...]
                   ) -> TotalsUncertainty | None:
    """The totals over the nominally complete layers at every perturbation (None if none is complete)."""
    complete = [layer for layer in layers if layer.complete]
    if not complete:
        return None
    nominal = {p: sum(layer.count * layer.outcomes[p].device_kernel_duration_ns for layer in complete)
               for p in programs}
    totals: dict[tuple[str, str], dict[str, float | None]] = {}
    incomplete = []
    for constant, end in points_of(perturbed):
        point = {}
        for program in programs:
            runs = [perturbed[(layer.config, program, constant, end)] for layer in complete]
            point[program] = (sum(layer.count * run.device_kernel_duration_ns for layer, run in zip(complete, runs))
                              if all(run.ok for run in runs) else None)
        if any(v is None for v in point.values()):
            incomplete.append(f"{constant}={end}")
        totals[(constant, end)] = point
    band, movers = {}, {}
    for program in programs:
        values = [nominal[program]] + [t[program] for t in totals.values() if t[program] is not None]
        band[program] = (min(values), max(values))
        movers[program] = _movers({pt: t[program] for pt, t in totals.items()}, nominal[program])
    return TotalsUncertainty(band, movers, _check(nominal, totals, programs), tuple(incomplete))


def _movers(by_point: dict[tuple[str, str], float | None], nominal: float) -> tuple[Mover, ...]:
    constants = dict.fromkeys(constant for constant, _ in by_point)
    movers = []
    for constant in constants:
        deltas = [None if by_point.get((constant, end)) is None else by_point[(constant, end)] - nominal
                  for end in ENDS]
        movers.append(Mover(constant, *deltas))
    movers.sort(key=lambda m: (-m.spread_ns, m.constant))
    return tuple(movers[:TOP_MOVERS])


def _check(nominal: dict[str, float], points: dict[tuple[str, str], dict[str, float | None]],
           programs: tuple[str, ...]) -> RankingCheck:
    """Order of the programs and speedup sides at every point where every program ran."""
    ranking = _rank(nominal)
    breakers = []
    speedups = {p: [nominal[CLASSIC] / nominal[p]] for p in programs if p != CLASSIC and CLASSIC in programs}
    for (constant, end), durations in points.items():
        if any(durations.get(p) is None for p in programs):
            continue
        if _rank(durations) != ranking:
            breakers.append(f"{constant}={end}")
        for program in speedups:
            speedups[program].append(durations[CLASSIC] / durations[program])
    speedup_range = {p: (min(v), max(v)) for p, v in speedups.items()}
    holds = {p: all((s > 1) == (v[0] > 1) for s in v) for p, v in speedups.items()}
    return RankingCheck(ranking, not breakers, tuple(breakers), speedup_range, holds)


def _rank(durations: dict[str, float | None]) -> tuple[str, ...]:
    return tuple(sorted(durations, key=lambda p: (durations[p], p)))
