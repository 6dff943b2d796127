"""``ttsim`` command line: run configs and report simulated DEVICE KERNEL DURATION.

Every error a user can cause ends in one line on stderr and exit status 2; files are written
only after every run succeeded (nothing half-written).

Start-up: the module imports only click; each command imports the simulator, reports and rich
when it runs, and option help that lists presets or programs is computed when shown, so
``ttsim --help`` and a mistyped command answer at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ttsim.errors import TtsimError
from ttsim.output_paths import check_output_path, check_output_paths, write_atomically

if TYPE_CHECKING:
    from rich.console import Console

    from ttsim.report.compare import Comparison
    from ttsim.report.golden import CheckRow
    from ttsim.results import OpResult

EXIT_BAD_INPUT = 2


def _console() -> Console:
    """A console for tables; wide when the output is not a terminal (logs, CI, pipes)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)


def _fail(message: str) -> None:
    click.echo(f"ttsim: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


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
            raise TtsimError(f"--trace-cores: expected 'x,y[;x,y...]', got {item[:40]!r}") from None
        cores.add((x, y))
    return cores


class ProgramOption(click.Option):
    """``--program``: its help lists the programs registered when it is shown (not at import)."""

    def __init__(self, *args, with_all: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.with_all = with_all

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from ttsim.programs import registry

        choices = (*registry.names(), "all") if self.with_all else registry.names()
        self.help = f"program to simulate: {', '.join(choices)}"
        return super().get_help_record(ctx)


class DeviceOption(click.Option):
    """``--device``: its help lists the device presets when it is shown (not at import)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from ttsim.device.spec import available_devices

        self.help = ("device preset (overrides the config's 'device:'); "
                     f"one of {', '.join(available_devices())}, or a preset file (.yaml)")
        return super().get_help_record(ctx)


SET_OPTION = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="override a config value by dotted key, e.g. conv.channels=64 or pool.cb.in_cb.pages=4 "
         "(repeatable; validated like the file)")
TIMING_ONLY_OPTION = click.option(
    "--timing-only", "timing_only", is_flag=True,
    help="skip the numerics: the same cycles, but no tile values, output, reference or PCC "
         "(faster; every table and file says so)")


@main.command("run")
@click.argument("configs", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option("--program", "program", default="all", show_default=True, cls=ProgramOption)
@click.option("--device", "device", default=None, cls=DeviceOption)
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
@TIMING_ONLY_OPTION
def run_command(configs: tuple[Path, ...], program: str, device: str | None, json_path: Path | None,
                csv_path: Path | None, trace_path: Path | None, trace_cores: str,
                show_breakdown: bool, show_l1: bool, overrides: tuple[str, ...], timing_only: bool) -> None:
    """Simulate each CONFIG and print DEVICE KERNEL DURATION per device op."""
    from ttsim.config import load_config
    from ttsim.report.breakdown import breakdown_table
    from ttsim.report.ops_perf_csv import ops_perf_csv
    from ttsim.report.results import report_document
    from ttsim.report.table import l1_table, print_results
    from ttsim.report.trace import trace_document
    from ttsim.simulate import run

    console = _console()
    everything: list[OpResult] = []
    try:
        check_output_paths([("--json", json_path), ("--csv", csv_path), ("--trace", trace_path)], configs)
        cores = _parse_cores(trace_cores)
        for path in configs:
            config = load_config(path, list(overrides))
            results = run(config, program=program, device=device, trace=trace_path is not None,
                          trace_cores=cores, timing_only=timing_only)
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
            outputs.append(("--json", json_path, json.dumps(report_document(everything), indent=2) + "\n"))
        if csv_path is not None:
            outputs.append(("--csv", csv_path, ops_perf_csv(everything)))
        if trace_path is not None:
            outputs.append(("--trace", trace_path, json.dumps(trace_document(everything))))
        for option, path, text in outputs:
            write_atomically(option, path, text)
    except TtsimError as exc:
        _fail(str(exc))


@main.command("check")
@click.argument("configs", nargs=-1, type=click.Path(path_type=Path, readable=False))
@click.option("--golden", "golden_dir", default=Path("tests/golden"), show_default=True,
              type=click.Path(path_type=Path), help="folder of golden cycle counts")
@click.option("--tolerance", "tolerance_pct", default=0.0, show_default=True, type=float,
              help="percent difference still reported as ApproxMatch (and passing)")
@click.option("--update", is_flag=True, help="rewrite the goldens with the simulated cycles")
@TIMING_ONLY_OPTION
def check_command(configs: tuple[Path, ...], golden_dir: Path, tolerance_pct: float, update: bool,
                  timing_only: bool) -> None:
    """Run CONFIGs (default: configs/*.yaml) with every program against golden cycle counts.

    Prints Match / ApproxMatch / Mismatch per op; exits 1 on any Mismatch.
    """
    from ttsim.config import load_config
    from ttsim.report.golden import MISMATCH, compare_with_golden, golden_document, golden_path, load_golden
    from ttsim.report.table import check_table
    from ttsim.simulate import run

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
            results = run(config, program="all", timing_only=timing_only)
            target = golden_path(golden_dir, config.name)
            if update:
                write_atomically("--update", target, json.dumps(golden_document(config.name, results), indent=2) + "\n")
            rows += compare_with_golden(config.name, results, load_golden(target), tolerance_pct / 100)
    except TtsimError as exc:
        _fail(str(exc))
    console.print(check_table(rows))
    if timing_only:
        console.print("timing only: cycles checked, numerics not run")
    if any(row.status == MISMATCH for row in rows):
        sys.exit(1)


@main.command("compare")
@click.argument("configs", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option("--device", "device", default=None, help="device preset (overrides the config's 'device:')")
@click.option("--json", "json_path", default=None, type=click.Path(path_type=Path),
              help="also write the comparison as JSON to this path")
@SET_OPTION
@TIMING_ONLY_OPTION
def compare_command(configs: tuple[Path, ...], device: str | None, json_path: Path | None,
                    overrides: tuple[str, ...], timing_only: bool) -> None:
    """Run every registered program on each CONFIG and compare them (speedup against classic)."""
    from ttsim.config import load_config
    from ttsim.programs import registry
    from ttsim.report.compare import Comparison, comparison_document, comparison_table
    from ttsim.simulate import run

    console = _console()
    comparisons: list[Comparison] = []
    try:
        check_output_paths([("--json", json_path)], configs)
        for path in configs:
            config = load_config(path, list(overrides))
            results = run(config, program="all", device=device, timing_only=timing_only)
            op_codes = {d.name: d.op_code for d in registry.definitions()}
            comparisons.append(Comparison.from_results(config.name, results, op_codes,
                                                       config.measured.classic_device_kernel_duration_ns))
        console.print(comparison_table(comparisons))
        if json_path is not None:
            write_atomically("--json", json_path, json.dumps(comparison_document(comparisons), indent=2) + "\n")
    except TtsimError as exc:
        _fail(str(exc))


@main.command("sweep")
@click.argument("config", type=click.Path(path_type=Path, readable=False))
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
@TIMING_ONLY_OPTION
def sweep_command(config: Path, params: tuple[str, ...], program: str, device: str | None, out: Path,
                  workers: int, scheduler: str | None, timing_only: bool) -> None:
    """Run CONFIG over the cartesian grid of --param values; rank the points by duration."""
    from rich.progress import MofNCompleteColumn, Progress

    from ttsim.programs import registry
    from ttsim.report.table import sweep_table
    from ttsim.sweep import grid, pareto_front, parse_param, run_sweep

    console = _console()
    try:
        registry.get(program)  # an unknown program fails before any point runs
        check_output_path("--out", out)
        parsed = [parse_param(text) for text in params]
        total = len(grid(parsed))
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console,
                      transient=not sys.stdout.isatty()) as progress:
            task = progress.add_task(f"sweeping {config.name}", total=total)
            rows = run_sweep(str(config.resolve()), parsed, program, device, out, workers, scheduler,
                             on_result=lambda row: progress.advance(task), timing_only=timing_only)
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
    console.print(f"{len(rows)} points, {len(failed)} failed; results in {out}"
                  + ("; timing only: no numerics, PCC not computed" if timing_only else ""))


if __name__ == "__main__":
    main()
