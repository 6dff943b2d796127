"""``ttsim`` command line: run configs and report simulated DEVICE KERNEL DURATION.

Every error a user can cause ends in one line on stderr and exit status 2; files are written
only after every run succeeded (nothing half-written).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from ttsim.config import load_config
from ttsim.device.spec import available_devices
from ttsim.errors import TtsimError
from ttsim.report.breakdown import breakdown_table
from ttsim.report.compare import Comparison, comparison_document, comparison_table, roofline_table
from ttsim.report.golden import MISMATCH, CheckRow, compare_with_golden, golden_document, golden_path, load_golden
from ttsim.report.ops_perf_csv import ops_perf_csv
from ttsim.report.table import check_table, l1_table, sweep_table
from ttsim.report.trace import trace_document
from ttsim.report.results import report_document
from ttsim.report.table import print_results
from ttsim.programs import registry
from ttsim.results import OpResult
from ttsim.simulate import run
from ttsim.sweep import grid, pareto_front, parse_param, run_sweep

EXIT_BAD_INPUT = 2


def _console() -> Console:
    """A console for tables; wide when the output is not a terminal (logs, CI, pipes)."""
    return Console() if sys.stdout.isatty() else Console(width=120)


def _fail(message: str) -> None:
    click.echo(f"ttsim: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder, then rename."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise TtsimError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ttsim")
def main() -> None:
    """Cycle-approximate simulator of Tenstorrent Tensix devices."""


def _parse_cores(text: str) -> set[tuple[int, int]] | None:
    """'0,0;1,0' -> {(0, 0), (1, 0)}; 'all' -> None (every core)."""
    if text.strip() == "all":
        return None
    cores = set()
    for item in text.replace(" ", "").split(";"):
        try:
            x, y = (int(v) for v in item.split(","))
        except ValueError:
            raise TtsimError(f"--trace-cores: expected 'x,y[;x,y...]', got {item!r}") from None
        cores.add((x, y))
    return cores


class ProgramOption(click.Option):
    """``--program``: its help lists the programs registered when it is shown (not at import)."""

    def __init__(self, *args, with_all: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.with_all = with_all

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        choices = (*registry.names(), "all") if self.with_all else registry.names()
        self.help = f"program to simulate: {', '.join(choices)}"
        return super().get_help_record(ctx)


SET_OPTION = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="override a config value by dotted key, e.g. conv.channels=64 or pool.cb.in_cb.pages=4 "
         "(repeatable; validated like the file)")


@main.command("run")
@click.argument("configs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--program", "program", default="all", show_default=True, cls=ProgramOption)
@click.option("--device", "device", default=None,
              help="device preset (overrides the config's 'device:'); "
                   f"one of {', '.join(available_devices())}, or a preset file (.yaml)")
@click.option("--json", "json_path", default=None, type=click.Path(path_type=Path),
              help="also write the results as JSON (schema_version 1) to this path")
@click.option("--csv", "csv_path", default=None, type=click.Path(path_type=Path),
              help="also write tt-metal's ops_perf_results CSV (one row per device op)")
@click.option("--trace", "trace_path", default=None, type=click.Path(path_type=Path),
              help="also write a Chrome/Perfetto trace JSON of the run")
@click.option("--trace-cores", "trace_cores", default="0,0", show_default=True,
              help="cores whose stalls, op groups and CB occupancy go in the trace: logical "
                   "'x,y;x,y' or 'all' (kernel zones of every core are always there)")
@click.option("--breakdown", "show_breakdown", is_flag=True,
              help="print per kernel busy time and time blocked per stall reason")
@click.option("--l1", "show_l1", is_flag=True, help="print each op's CB table per core against the L1 budget")
@SET_OPTION
def run_command(configs: tuple[Path, ...], program: str, device: str | None, json_path: Path | None,
                csv_path: Path | None, trace_path: Path | None, trace_cores: str,
                show_breakdown: bool, show_l1: bool, overrides: tuple[str, ...]) -> None:
    """Simulate each CONFIG and print DEVICE KERNEL DURATION per device op."""
    console = _console()
    everything: list[OpResult] = []
    try:
        cores = _parse_cores(trace_cores)
        for path in configs:
            config = load_config(path, list(overrides))
            results = run(config, program=program, device=device, trace=trace_path is not None,
                          trace_cores=cores)
            print_results(console, results[0].config, results)
            if show_l1:
                for result in results:
                    console.print(l1_table(result))
            if show_breakdown:
                for result in results:
                    console.print(breakdown_table(result))
            everything.extend(results)
        outputs = []
        if json_path is not None:
            outputs.append((json_path, json.dumps(report_document(everything), indent=2) + "\n"))
        if csv_path is not None:
            outputs.append((csv_path, ops_perf_csv(everything)))
        if trace_path is not None:
            outputs.append((trace_path, json.dumps(trace_document(everything))))
        for path, text in outputs:
            _write_atomically(path, text)
    except TtsimError as exc:
        _fail(str(exc))


@main.command("check")
@click.argument("configs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--golden", "golden_dir", default=Path("tests/golden"), show_default=True,
              type=click.Path(path_type=Path), help="folder of golden cycle counts")
@click.option("--tolerance", "tolerance_pct", default=0.0, show_default=True, type=float,
              help="percent difference still reported as ApproxMatch (and passing)")
@click.option("--update", is_flag=True, help="rewrite the goldens with the simulated cycles")
def check_command(configs: tuple[Path, ...], golden_dir: Path, tolerance_pct: float, update: bool) -> None:
    """Run CONFIGs (default: configs/*.yaml) with every program against golden cycle counts.

    Prints Match / ApproxMatch / Mismatch per op; exits 1 on any Mismatch.
    """
    console = _console()
    try:
        paths = list(configs) or sorted(Path("configs").glob("*.yaml"))
        if not paths:
            raise TtsimError("no configs given and none found in configs/")
        if tolerance_pct < 0:
            raise TtsimError(f"--tolerance must be >= 0, got {tolerance_pct}")
        if update:
            golden_dir.mkdir(parents=True, exist_ok=True)
        elif not golden_dir.is_dir():
            raise TtsimError(f"golden folder {golden_dir} does not exist (create it with --update)")
        rows: list[CheckRow] = []
        for path in paths:
            config = load_config(path)
            results = run(config, program="all")
            target = golden_path(golden_dir, config.name)
            if update:
                _write_atomically(target, json.dumps(golden_document(config.name, results), indent=2) + "\n")
            rows += compare_with_golden(config.name, results, load_golden(target), tolerance_pct / 100)
    except TtsimError as exc:
        _fail(str(exc))
    console.print(check_table(rows))
    if any(row.status == MISMATCH for row in rows):
        sys.exit(1)


@main.command("compare")
@click.argument("configs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--device", "device", default=None, help="device preset (overrides the config's 'device:')")
@click.option("--json", "json_path", default=None, type=click.Path(path_type=Path),
              help="also write the comparison as JSON to this path")
@SET_OPTION
def compare_command(configs: tuple[Path, ...], device: str | None, json_path: Path | None,
                    overrides: tuple[str, ...]) -> None:
    """Run every registered program on each CONFIG and compare them (speedup against classic, % of
    roofline)."""
    console = _console()
    comparisons: list[Comparison] = []
    try:
        for path in configs:
            config = load_config(path, list(overrides))
            results = run(config, program="all", device=device)
            op_codes = {d.name: d.op_code for d in registry.definitions()}
            comparisons.append(Comparison.from_results(config.name, results, op_codes,
                                                       config.measured.classic_device_kernel_duration_ns))
        console.print(comparison_table(comparisons))
        console.print(roofline_table(comparisons))
        if json_path is not None:
            _write_atomically(json_path, json.dumps(comparison_document(comparisons), indent=2) + "\n")
    except TtsimError as exc:
        _fail(str(exc))


@main.command("sweep")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--param", "params", multiple=True, required=True, metavar="KEY=V1,V2,...",
              help="a swept config key and its values (repeatable; the grid is their product)")
@click.option("--program", "program", default="pool", show_default=True, cls=ProgramOption, with_all=False)
@click.option("--device", "device", default=None, help="device preset (overrides the config's)")
@click.option("--out", "out", default=Path("sweep_results.csv"), show_default=True,
              type=click.Path(path_type=Path), help="CSV the results are appended to (resumable)")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="local worker processes")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="run the points on this Dask distributed scheduler (e.g. tcp://host:8786)")
def sweep_command(config: Path, params: tuple[str, ...], program: str, device: str | None, out: Path,
                  workers: int, scheduler: str | None) -> None:
    """Run CONFIG over the cartesian grid of --param values; rank the points by duration."""
    console = _console()
    try:
        registry.get(program)  # an unknown program fails before any point runs
        parsed = [parse_param(text) for text in params]
        total = len(grid(parsed))
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console,
                      transient=not sys.stdout.isatty()) as progress:
            task = progress.add_task(f"sweeping {config.name}", total=total)
            rows = run_sweep(str(config.resolve()), parsed, program, device, out, workers, scheduler,
                             on_result=lambda row: progress.advance(task))
            progress.update(task, completed=total)
    except TtsimError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"--out {out}: {exc.strerror or exc}")
    console.print(sweep_table([p.key for p in parsed], rows, pareto_front(rows)))
    failed = [row for row in rows if row["status"] != "ok"]
    for row in failed:
        point = ", ".join(f"{p.key}={row[p.key]}" for p in parsed)
        console.print(f"[red]failed[/] {point}: {row['error']}", highlight=False)
    console.print(f"{len(rows)} points, {len(failed)} failed; results in {out}")


if __name__ == "__main__":
    main()
