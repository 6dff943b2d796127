"""The ``ttsim run`` / ``ttsim compare`` glue for suites and uncertainty runs: options, progress
bar, tables, JSON and the bar chart. Kept apart from cli.py so that the commands stay short."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from ttsim.errors import TtsimError
from ttsim.output_paths import check_output_paths, write_atomically
from ttsim.report import plot
from ttsim.report.suite import (failures, layer_durations, layer_table, suite_document, suite_record,
                                totals_table, totals_uncertainty_table, uncertainty_table)
from ttsim.programs import registry
from ttsim.results import OpResult
from ttsim.suite import (Outcome, Suite, is_suite, load_suite, programs_for, run_suite, single_suite,
                         suite_totals)
from ttsim.uncertainty import analyse_layer, analyse_totals, perturbations, run_perturbed

__all__ = ["is_suite", "plot_results", "run_suites"]

STDOUT = Path("-")


def run_suites(console: Console, paths: tuple[Path, ...], program: str, device: str | None,
               json_path: Path | None, plot_path: Path | None, jobs: int, scheduler: str | None,
               uncertainty: bool, constants: str | None, overrides: tuple[str, ...],
               timing_only: bool = False) -> None:
    """Run each path as a suite (a plain config is a one-layer suite) and print its reports
    (``timing_only``: no numerics, as ``--timing-only``; uncertainty re-runs never need them).

    ``json_path`` ``-`` writes the JSON to stdout (``console`` is then on stderr)."""
    programs = programs_for(program, registry.names())
    if constants is not None and not uncertainty:
        raise TtsimError("--uncertainty-constants needs --uncertainty")
    chosen = None if constants is None else tuple(c.strip() for c in constants.split(",") if c.strip())
    if plot_path is not None:
        plot.check_picture_path(plot_path)
    to_stdout = json_path == STDOUT
    check_output_paths([("--json", None if to_stdout else json_path), ("--plot", plot_path)], paths)
    suites = [load_suite(p, overrides) if is_suite(p) else single_suite(p, overrides) for p in paths]
    records, plotted = [], []
    for suite in suites:
        device_name = device or suite.entries[0].config.device
        layers, layer_bands, totals_band = _run(console, suite, programs, device, jobs, scheduler, uncertainty,
                                                chosen, timing_only)
        totals = suite_totals(layers, programs)
        console.print(layer_table(suite.name, device_name, layers, programs))
        for line in failures(layers):
            console.print(f"[red]failed[/] {line}", highlight=False)
        if len(layers) > 1 or any(layer.count > 1 for layer in layers):
            console.print(totals_table(suite.name, totals))
        if layer_bands is not None:
            console.print(uncertainty_table(f"suite {suite.name}", layer_bands))
            if totals_band is not None and len(layers) > 1:
                console.print(totals_uncertainty_table(suite.name, totals, totals_band))
        records.append(suite_record(suite.name, device_name, programs, layers, totals, layer_bands, totals_band))
        plotted += layers
    document = json.dumps(suite_document(records), indent=2) + "\n"
    if json_path is not None and not to_stdout:
        write_atomically("--json", json_path, document)
    if plot_path is not None:
        title = f"{', '.join(s.name for s in suites)}: conv op per layer occurrence"
        plot.save(plot.model_layers(layer_durations(plotted, programs), title), plot_path)
    if to_stdout:
        sys.stdout.write(document)


def _run(console: Console, suite: Suite, programs: tuple[str, ...], device: str | None, jobs: int,
         scheduler: str | None, uncertainty: bool, constants: tuple[str, ...] | None, timing_only: bool):
    """The suite's layer results, and with ``uncertainty`` the per-layer and totals analyses."""
    points = 0
    if uncertainty:
        points = sum(len(perturbations(device or e.config.device, constants))
                     for e in suite.entries) // len(suite.entries)
    total = len(suite.entries) * len(programs) * (1 + points)
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=Console(stderr=True),
                  transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"running {suite.name}", total=total)
        advance: Callable[[Outcome], None] = lambda outcome: progress.advance(task)  # noqa: E731
        if not uncertainty:
            return run_suite(suite, programs, device, jobs, scheduler, advance, timing_only), None, None
        layers, perturbed = run_perturbed(suite, programs, device, jobs, scheduler, advance, constants,
                                          timing_only)
    bands = [analyse_layer(layer, perturbed, programs) for layer in layers]
    return layers, bands, analyse_totals(layers, perturbed, programs)


def plot_results(path: Path, results: list[OpResult]) -> None:
    """The bar chart of a plain run: each config's conv op per program."""
    convs = {d.op_code for d in registry.definitions()}
    durations = plot.layer_durations([r for r in results if r.op_code in convs])
    plot.save(plot.model_layers(durations, "conv op per config"), path)
