"""Reports of a model suite: per-layer table, model totals, uncertainty, JSON and a bar chart.

Durations are the conv op's DEVICE KERNEL DURATION [ns] (the halo op, the same device op for
every program, is in the JSON as ``halo_device_kernel_duration_ns``); speedup = classic / program.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.table import Table

from ttsim.suite import CLASSIC, LayerResult, Outcome, SuiteTotals
from ttsim.uncertainty import LayerUncertainty, Mover, RankingCheck, TotalsUncertainty

SCHEMA_VERSION = 1


def _ns(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def layer_table(suite: str, device: str, layers: list[LayerResult], programs: tuple[str, ...]) -> Table:
    """One row per layer: count, duration per program, speedup of each program against classic."""
    table = Table(title=f"suite {suite} on {device}: conv DEVICE KERNEL DURATION \\[ns]; speedup = classic / program",
                  title_justify="left")
    table.add_column("layer", no_wrap=True)
    table.add_column("count", justify="right")
    for program in programs:
        table.add_column(program, justify="right")
    others = [p for p in programs if p != CLASSIC] if CLASSIC in programs else []
    for program in others:
        table.add_column(f"speedup\n{program}", justify="right")
    roofline = [p for p in programs if any(layer.outcomes[p].roofline_ns is not None for layer in layers)]
    for program in roofline:
        table.add_column(f"% of\nroofline\n{program}", justify="right")
    for layer in layers:
        cells = [_ns(o.device_kernel_duration_ns) if o.ok else f"[red]{_failure(o)}[/]"
                 for o in layer.outcomes.values()]
        fractions = [layer.outcomes[p].roofline_fraction for p in roofline]
        table.add_row(layer.config, str(layer.count), *cells, *(_x(layer.speedup(p)) for p in others),
                      *("-" if f is None else f"{f:.0%}" for f in fractions))
    return table


def _failure(outcome: Outcome) -> str:
    """Short cell text for a failed run; the full message is printed under the table."""
    return {"L1OverflowError": "L1 overflow", "UnsupportedFunctionality": "unsupported"}.get(outcome.error_type, "failed")


def failures(layers: list[LayerResult]) -> list[str]:
    """One line per failed (layer, program) with its message."""
    return [f"{o.config} ({o.program}): {o.error}" for layer in layers for o in layer.outcomes.values() if not o.ok]


def totals_table(suite: str, totals: SuiteTotals) -> Table:
    """Model totals: sum of count x duration over the layers every program ran."""
    table = Table(title=f"suite {suite}: model totals over {totals.complete_layers} of {totals.layers} layers "
                        f"({totals.complete_occurrences} of {totals.occurrences} with counts) that every "
                        "program ran", title_justify="left")
    for name in ("program", "total \\[ns]", "speedup\n(totals)", "speedup\n(geomean)", "worst layer", "best layer"):
        table.add_column(name, justify="left" if "layer" in name or name == "program" else "right", no_wrap=True)
    for t in totals.programs.values():
        table.add_row(t.program, _ns(t.total_ns), _x(t.speedup_total), _x(t.speedup_geomean),
                      t.worst_layer or "-", t.best_layer or "-")
    return table


def _movers_text(movers: tuple[Mover, ...]) -> str:
    def delta(d: float | None) -> str:
        return "fail" if d is None else f"{d:+,.0f}"
    return "\n".join(f"{m.constant} {delta(m.delta_min_ns)}/{delta(m.delta_max_ns)}" for m in movers) or "-"


def _check_text(check: RankingCheck | None) -> tuple[str, str]:
    if check is None:
        return "-", "-"
    ranking = ("holds" if check.ranking_holds else "[red]breaks[/] at " + ", ".join(check.ranking_breakers))
    speedups = "\n".join(f"{p} {lo:.2f}-{hi:.2f}x " + ("holds" if check.speedup_holds[p] else "[red]crosses 1[/]")
                         for p, (lo, hi) in check.speedup_range.items()) or "-"
    return ranking, speedups


def uncertainty_table(title: str, layers: list[LayerUncertainty]) -> Table:
    """Per layer and program: duration range, top movers (delta at min/max), ranking and speedup checks."""
    table = Table(title=f"{title}: DEVICE KERNEL DURATION \\[ns] with each ranged preset constant at its "
                        "min and max, one at a time", title_justify="left")
    for name in ("layer", "program", "nominal", "range", "spread", "top constants (delta at min/max, ns)",
                 "ranking", "speedup vs classic"):
        table.add_column(name, justify="right" if name in ("nominal", "range", "spread") else "left",
                         no_wrap=name.startswith("top"), overflow="fold")
    for layer in layers:
        ranking, speedups = _check_text(layer.check)
        for i, (program, op) in enumerate(layer.ops.items()):
            spread = ("-" if op.nominal_ns is None or op.low_ns is None
                      else f"-{(op.nominal_ns - op.low_ns) / op.nominal_ns:.1%}/+{(op.high_ns - op.nominal_ns) / op.nominal_ns:.1%}")
            table.add_row(layer.config if i == 0 else "", program, _ns(op.nominal_ns),
                          f"{_ns(op.low_ns)}-{_ns(op.high_ns)}", spread, _movers_text(op.movers),
                          ranking if i == 0 else "", speedups if i == 0 else "", end_section=i == len(layer.ops) - 1)
    return table


def totals_uncertainty_table(suite: str, totals: SuiteTotals, band: TotalsUncertainty) -> Table:
    table = Table(title=f"suite {suite}: model totals \\[ns] with each ranged constant at its min and max "
                        "(one at a time; joint errors are not bounded)", title_justify="left")
    for name in ("program", "nominal", "band", "top constants (delta at min/max, ns)"):
        table.add_column(name, justify="right" if name in ("nominal", "band") else "left")
    for program, (lo, hi) in band.band_ns.items():
        table.add_row(program, _ns(totals.programs[program].total_ns), f"{_ns(lo)}-{_ns(hi)}",
                      _movers_text(band.movers[program]))
    ranking, speedups = _check_text(band.check)
    table.caption = f"ranking of the totals: {ranking}; speedup of the totals: {speedups}".replace("\n", "; ")
    return table


def suite_record(suite: str, device: str, programs: tuple[str, ...], layers: list[LayerResult],
                 totals: SuiteTotals, uncertainty: list[LayerUncertainty] | None = None,
                 totals_band: TotalsUncertainty | None = None) -> dict[str, Any]:
    """One suite as the JSON report writes it (durations in ns)."""
    record: dict[str, Any] = {
        "suite": suite, "device": device, "programs": list(programs),
        "layers": [{
            "config": layer.config, "count": layer.count, "source": layer.source,
            "results": {p: _outcome_record(o) for p, o in layer.outcomes.items()},
            "speedup_vs_classic": ({p: layer.speedup(p) for p in programs if p != CLASSIC}
                                   if CLASSIC in programs else {}),
        } for layer in layers],
        "totals": {
            "layers": totals.layers, "occurrences": totals.occurrences,
            "complete_layers": totals.complete_layers, "complete_occurrences": totals.complete_occurrences,
            "programs": {p: {"total_device_kernel_duration_ns": t.total_ns, "speedup_total": t.speedup_total,
                             "speedup_geomean": t.speedup_geomean, "worst_layer": t.worst_layer,
                             "best_layer": t.best_layer} for p, t in totals.programs.items()},
        },
    }
    if uncertainty is not None:
        record["uncertainty"] = {"layers": [_jsonable(asdict(u)) for u in uncertainty],
                                 "totals": None if totals_band is None else _jsonable(asdict(totals_band))}
    return record


def _outcome_record(outcome: Outcome) -> dict[str, Any]:
    return {"status": outcome.status, "device_kernel_duration_ns": outcome.device_kernel_duration_ns,
            "device_kernel_duration_cycles": outcome.device_kernel_duration_cycles,
            "halo_device_kernel_duration_ns": outcome.halo_duration_ns, "pcc": outcome.pcc,
            "l1_used_bytes": outcome.l1_used_bytes, "roofline_ns": outcome.roofline_ns, "error": outcome.error,
            "error_type": outcome.error_type}


def _jsonable(value: Any) -> Any:
    """Dataclass dicts with tuple keys or tuples made JSON-friendly (lists, string keys)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def suite_document(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "suites": records}


def layer_durations(layers: list[LayerResult], programs: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{"<layer> x<count>": {program: conv ns}}`` for ttsim.report.plot.model_layers (failed runs: gaps)."""
    return {f"{layer.config} x{layer.count}": {p: layer.outcomes[p].device_kernel_duration_ns for p in programs
                                                if layer.outcomes[p].ok} for layer in layers}
