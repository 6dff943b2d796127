"""The ``ttsim run`` / ``ttsim compare`` glue for suites and uncertainty runs: options, progress
bar, tables, JSON and the bar chart. Kept apart from cli.py so that the commands stay short."""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import click
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from ttsim.errors import TtsimError
from ttsim.report.suite import (bar_chart, failures, layer_table, suite_document, suite_record, totals_table,
                                totals_uncertainty_table, uncertainty_table)
from ttsim.programs import registry
from ttsim.results import OpResult
from ttsim.suite import (LayerResult, Outcome, Suite, is_suite, load_suite, programs_for, run_suite,
                         single_suite, suite_totals)
from ttsim.uncertainty import analyse_layer, analyse_totals, perturbations, run_perturbed

__all__ = ["SUITE_OPTIONS", "is_suite", "plot_results", "run_suites"]


def SUITE_OPTIONS(command: Callable) -> Callable:
    """--jobs, --scheduler, --plot and --uncertainty (shared by run and compare)."""
    options = [
        click.option("--jobs", "jobs", default=2, show_default=True, type=click.IntRange(1, 64),
                     help="local worker processes for suites and uncertainty runs"),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="run suite layers on this Dask distributed scheduler (e.g. tcp://host:8786)"),
        click.option("--plot", "plot_path", default=None, type=click.Path(path_type=Path),
                     help="also write a bar chart (.png or .svg) of per-layer durations per program"),
        click.option("--uncertainty", is_flag=True,
                     help="re-run with each ranged preset constant at its min and max; report duration "
                          "ranges, top constants and whether rankings and speedups hold"),
        click.option("--uncertainty-constants", "constants", default=None, metavar="NAME[,NAME...]",
                     help="with --uncertainty: perturb only these constants (dotted, e.g. "
                          "noc.read_issue_cycles); default every ranged constant"),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


def run_suites(console: Console, paths: tuple[Path, ...], program: str, device: str | None,
               json_path: Path | None, plot_path: Path | None, jobs: int, scheduler: str | None,
               uncertainty: bool, constants: str | None, overrides: tuple[str, ...],
               write: Callable[[Path, str], None]) -> None:
    """Run each path as a suite (a plain config is a one-layer suite) and print its reports."""
    programs = programs_for(program, registry.names())
    if constants is not None and not uncertainty:
        raise TtsimError("--uncertainty-constants needs --uncertainty")
    chosen = None if constants is None else tuple(c.strip() for c in constants.split(",") if c.strip())
    _check_output(json_path, "--json")
    _check_output(plot_path, "--plot")
    if plot_path is not None and plot_path.suffix.lower() not in (".png", ".svg"):
        raise TtsimError(f"--plot {plot_path}: expected a .png or .svg file name")
    suites = [load_suite(p, overrides) if is_suite(p) else single_suite(p, overrides) for p in paths]
    records, plotted = [], []
    for suite in suites:
        device_name = device or suite.entries[0].config.device
        layers, layer_bands, totals_band = _run(console, suite, programs, device, jobs, scheduler, uncertainty,
                                                chosen)
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
    if json_path is not None:
        write(json_path, json.dumps(suite_document(records), indent=2) + "\n")
    if plot_path is not None:
        _plot_atomically(plot_path, ", ".join(s.name for s in suites), plotted, programs)


def _run(console: Console, suite: Suite, programs: tuple[str, ...], device: str | None, jobs: int,
         scheduler: str | None, uncertainty: bool, constants: tuple[str, ...] | None):
    """The suite's layer results, and with ``uncertainty`` the per-layer and totals analyses."""
    points = 0
    if uncertainty:
        points = sum(len(perturbations(device or e.config.device, constants))
                     for e in suite.entries) // len(suite.entries)
    total = len(suite.entries) * len(programs) * (1 + points)
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console,
                  transient=not sys.stdout.isatty()) as progress:
        task = progress.add_task(f"running {suite.name}", total=total)
        advance: Callable[[Outcome], None] = lambda outcome: progress.advance(task)  # noqa: E731
        if not uncertainty:
            return run_suite(suite, programs, device, jobs, scheduler, advance), None, None
        layers, perturbed = run_perturbed(suite, programs, device, jobs, scheduler, advance, constants)
    bands = [analyse_layer(layer, perturbed, programs) for layer in layers]
    return layers, bands, analyse_totals(layers, perturbed, programs)


def _check_output(path: Path | None, option: str) -> None:
    if path is not None and not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise TtsimError(f"{option} {path}: folder {path.parent} does not exist")


def plot_results(path: Path, results: list[OpResult]) -> None:
    """The bar chart of a plain multi-config run: conv ops by config and program."""
    layers: dict[str, LayerResult] = {}
    for result in results:
        if result.pcc is None:  # the halo op
            continue
        layer = layers.setdefault(result.config, LayerResult(result.config, 1, None))
        layer.outcomes[result.program] = Outcome(result.config, result.program, "ok",
                                                 result.device_kernel_duration_ns)
    programs = tuple(dict.fromkeys(p for layer in layers.values() for p in layer.outcomes))
    _plot_atomically(path, ", ".join(layers), list(layers.values()), programs)


def _plot_atomically(path: Path, title: str, layers: list[LayerResult], programs: tuple[str, ...]) -> None:
    """Draw to a temporary file in the target folder, then rename (nothing half-written)."""
    _check_output(path, "--plot")
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.stem}.",
                               suffix=path.suffix)
    os.close(fd)
    try:
        bar_chart(Path(tmp), title, layers, programs)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
