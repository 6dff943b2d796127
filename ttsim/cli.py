"""``ttsim`` command line: run configs and report simulated DEVICE KERNEL DURATION.

Every error a user can cause ends in one line on stderr and exit status 2; files are written
only after every run succeeded (nothing half-written).

Start-up: the module imports only click; each command imports the simulator, reports and rich
when it runs, and option help or choices that list presets or programs are computed when used,
so ``ttsim --help`` and a mistyped command answer at once.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click

from ttsim.errors import TtsimError
from ttsim.output_paths import check_output_path, check_output_paths, write_atomically

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from ttsim.report.golden import CheckRow
    from ttsim.results import OpResult

EXIT_BAD_INPUT = 2


def _console(stderr: bool = False) -> Console:
    """A console for tables (on stderr when stdout carries JSON); wide when the output is not a
    terminal (logs, CI, pipes)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=120)


def _progress() -> Progress:
    """A progress bar on stderr, so stdout keeps only tables or JSON; drawn on a terminal only."""
    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress

    return Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=Console(stderr=True),
                    transient=True, disable=not sys.stderr.isatty())


class OneLineChoice(click.Choice):
    """A fixed choice (listed in --help) whose bad value ends like every other bad input: one
    line naming it and the choices, exit status 2."""

    def __init__(self, choices: tuple[str, ...], what: str) -> None:
        super().__init__(choices)
        self.what = what

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        if value not in self.choices:
            _fail(f"unknown {self.what} {str(value)[:60]!r}; available: {', '.join(self.choices)}")
        return super().convert(value, param, ctx)


class ProgramChoice(OneLineChoice):
    """``--program``: a fixed choice of the registered programs (and ``all`` where every program
    may run), read from the registry when used, so a program registered before the CLI runs is
    listed."""

    def __init__(self, with_all: bool) -> None:
        super().__init__((), "program")
        self.with_all = with_all

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        from ttsim.programs import registry

        return (*registry.names(), "all") if self.with_all else registry.names()

    @choices.setter
    def choices(self, _value: object) -> None:
        """click.Choice.__init__ assigns the choices; they come from the registry instead."""


PROGRAM_CHOICE = ProgramChoice(with_all=True)
"""``--program`` of run (the program registry's names, and all)."""
SINGLE_PROGRAM_CHOICE = ProgramChoice(with_all=False)
"""``--program`` where one program runs (sweep, plot)."""

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The ttsim checkout this package runs from (its configs/ and tests/golden/, when installed -e)."""

JSON_STDOUT = Path("-")
"""``--json -``: the JSON goes to stdout (and the tables to stderr)."""


class DeviceOption(click.Option):
    """``--device``: its help lists the device presets when it is shown (not at import)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from ttsim.device.spec import available_devices

        self.help = ("device preset (overrides the config's 'device:'); "
                     f"one of {', '.join(available_devices())}, or a preset file (.yaml)")
        return super().get_help_record(ctx)


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


SET_OPTION = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="override a config value by dotted key, e.g. conv.channels=64 or pool.cb.in_cb.pages=4 "
         "(repeatable; validated like the file)")
def SUITE_OPTIONS(command: Callable) -> Callable:
    """--jobs, --scheduler, --plot and --uncertainty (shared by run and compare)."""
    options = [
        click.option("--jobs", "jobs", default=2, show_default=True, type=click.IntRange(1, 64),
                     help="local worker processes for suites and uncertainty runs; given for op configs, "
                          "the programs run in that many processes at once, and one program's conv op "
                          "finishes its two halves of cores in two processes where that is exact (the "
                          "same results)"),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="run suite layers on this Dask distributed scheduler (e.g. tcp://host:8786)"),
        click.option("--plot", "plot_path", default=None, type=click.Path(path_type=Path),
                     help="also write a bar chart (.png, .svg, .pdf, ...) of per-layer conv durations per program"),
        click.option("--uncertainty", is_flag=True,
                     help="re-run with each ranged preset constant at its min and max; report duration "
                          "ranges, top constants and whether rankings and speedups hold"),
        click.option("--uncertainty-constants", "constants", default=None, metavar="NAME[,NAME...]",
                     help="with --uncertainty: perturb only these constants (dotted, e.g. "
                          "noc.read_issue_cycles); default every ranged constant"),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


TIMING_ONLY_OPTION = click.option(
    "--timing-only", "timing_only", is_flag=True,
    help="skip the numerics: the same cycles, but no tile values, output, reference or PCC "
         "(faster; every table and file says so)")


@main.command("run")
@click.argument("configs", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option("--program", "program", default="all", show_default=True, type=PROGRAM_CHOICE,
              help="program to simulate (all: every registered program, one after the other)")
@click.option("--device", "device", default=None, cls=DeviceOption)
@click.option("--json", "json_path", default=None, type=click.Path(path_type=Path, allow_dash=True),
              help="also write the results as JSON (schema_version 1) to this path ('-': stdout, "
                   "tables then go to stderr)")
@click.option("--csv", "csv_path", default=None, type=click.Path(path_type=Path),
              help="also write tt-metal's ops_perf_results CSV (one row per device op; one file "
                   "per program, PATH_<program>.csv, when several run)")
@click.option("--trace", "trace_path", default=None, type=click.Path(path_type=Path),
              help="also write a Chrome/Perfetto trace JSON of the run")
@click.option("--trace-cores", "trace_cores", default="0,0", show_default=True,
              help="cores whose stalls, op groups and CB occupancy go in the trace: logical "
                   "'x,y;x,y' or 'all' (kernel zones of every core are always there)")
@click.option("--breakdown", "show_breakdown", is_flag=True,
              help="print per kernel busy time and time blocked per stall reason")
@click.option("--l1", "show_l1", is_flag=True, help="print each op's CB table per core against the L1 budget")
@SET_OPTION
@SUITE_OPTIONS
@TIMING_ONLY_OPTION
def run_command(configs: tuple[Path, ...], program: str, device: str | None, json_path: Path | None,
                csv_path: Path | None, trace_path: Path | None, trace_cores: str,
                show_breakdown: bool, show_l1: bool, overrides: tuple[str, ...], jobs: int,
                scheduler: str | None, plot_path: Path | None, uncertainty: bool, constants: str | None,
                timing_only: bool) -> None:
    """Simulate each CONFIG (an op config, a suite folder or a suite file) and print DEVICE KERNEL
    DURATION per device op, or per layer with model totals for suites."""
    from ttsim.config import load_config
    from ttsim.programs import registry
    from ttsim.report.breakdown import breakdown_table
    from ttsim.report.ops_perf_csv import csv_file_paths, ops_perf_csv_files
    from ttsim.report.results import report_document
    from ttsim.report.table import l1_table, print_results
    from ttsim.report.trace import trace_document
    from ttsim.simulate import run
    from ttsim.suite import is_suite

    _freeze_imported_objects()
    console = _console(stderr=json_path == JSON_STDOUT)
    everything: list[OpResult] = []
    try:
        if uncertainty or constants is not None or any(is_suite(path) for path in configs):
            import ttsim.suite_cli as suite_cli

            if csv_path or trace_path or show_breakdown or show_l1:
                raise TtsimError("--csv, --trace, --breakdown and --l1 apply to op configs, not to suites "
                                 "or --uncertainty runs")
            suite_cli.run_suites(console, configs, program, device, json_path, plot_path, jobs, scheduler,
                                 uncertainty, constants, overrides, timing_only)
            return
        programs = list(registry.names()) if program == "all" else [program]
        csv_paths = [] if csv_path is None else list(csv_file_paths(csv_path, programs).values())
        check_output_paths([("--json", None if json_path == JSON_STDOUT else json_path),
                            *(("--csv", target) for target in csv_paths), ("--trace", trace_path),
                            ("--plot", plot_path)], configs)
        cores = _parse_cores(trace_cores)
        processes = _op_config_jobs(jobs)
        for path in configs:
            config = load_config(path, list(overrides))
            results = run(config, program=program, device=device, trace=trace_path is not None,
                          trace_cores=cores, timing_only=timing_only, jobs=processes)
            print_results(console, results[0].config, results)
            if show_l1:
                for result in results:
                    console.print(l1_table(result))
            if show_breakdown:
                for result in results:
                    console.print(breakdown_table(result))
            everything.extend(results)
        outputs = []
        document = json.dumps(report_document(everything), indent=2) + "\n"
        if json_path is not None and json_path != JSON_STDOUT:
            outputs.append(("--json", json_path, document))
        if csv_path is not None:
            outputs.extend(("--csv", target, text) for target, text in ops_perf_csv_files(everything, csv_path))
        if trace_path is not None:
            outputs.append(("--trace", trace_path, json.dumps(trace_document(everything))))
        for option, path, text in outputs:
            write_atomically(option, path, text)
        if plot_path is not None:
            from ttsim.suite_cli import plot_results

            plot_results(plot_path, everything)
        if json_path == JSON_STDOUT:
            sys.stdout.write(document)
    except TtsimError as exc:
        _fail(str(exc))


def _freeze_imported_objects() -> None:
    """Put every object the simulator's imports made (modules, classes, pydantic schemas) out of
    the garbage collector's scans: a run allocates many short-lived objects, and each collection
    would scan these again (about 4 % of a small op's instructions). The results do not depend
    on the collector."""
    import gc

    gc.freeze()


def _op_config_jobs(jobs: int) -> int:
    """Processes for the programs of an op config: ``--jobs`` when given, else 1. Every count
    gives the serial results (ttsim.run's ``jobs``); by default an op config runs in one process,
    because two did not pay on the 2-core machine (bench/README.md: the main job took 5.81 s
    serially and 5.79 s in two processes, whose numpy/OpenBLAS work then competes for the cores)."""
    given = click.get_current_context().get_parameter_source("jobs") is click.core.ParameterSource.COMMANDLINE
    return jobs if given else 1


def _project_folders(configs_dir: Path | None, golden_dir: Path | None,
                     need_configs: bool = True) -> tuple[Path, Path]:
    """The configs and goldens ``check`` uses: those given, else ``configs/`` and ``tests/golden/``
    of the current folder when it has a configs/ folder, else of the ttsim checkout."""
    base = Path(".") if Path("configs").is_dir() else PROJECT_ROOT
    configs_dir = configs_dir if configs_dir is not None else base / "configs"
    golden_dir = golden_dir if golden_dir is not None else base / "tests" / "golden"
    if need_configs and not configs_dir.is_dir():
        raise TtsimError(f"no configs folder {configs_dir} (run from the ttsim checkout, or give "
                         "--configs DIR and --golden DIR)")
    return configs_dir, golden_dir


@main.command("check")
@click.argument("configs", nargs=-1, type=click.Path(path_type=Path, readable=False))
@click.option("--configs", "configs_dir", default=None, type=click.Path(path_type=Path),
              help="folder of configs run when none are given [default: configs/ here, else the checkout's]")
@click.option("--golden", "golden_dir", default=None, type=click.Path(path_type=Path),
              help="folder of golden cycle counts [default: tests/golden/ here when configs/ is here, "
                   "else the checkout's]")
@click.option("--tolerance", "tolerance_pct", default=0.0, show_default=True, type=float,
              help="percent difference still reported as ApproxMatch (and passing)")
@click.option("--update", is_flag=True, help="rewrite the goldens with the simulated cycles")
@click.option("--jobs", "jobs", default=1, show_default=True, type=click.IntRange(1, 64),
              help="processes for the programs of each config at once (every count gives the same "
                   "results)")
@TIMING_ONLY_OPTION
def check_command(configs: tuple[Path, ...], configs_dir: Path | None, golden_dir: Path | None,
                  tolerance_pct: float, update: bool, jobs: int, timing_only: bool) -> None:
    """Run CONFIGs (default: configs/*.yaml) with every program against golden cycle counts.

    Prints Match / ApproxMatch / Mismatch per op; exits 1 on any Mismatch.
    """
    from ttsim.config import load_config
    from ttsim.report.golden import MISMATCH, compare_with_golden, golden_document, golden_path, load_golden
    from ttsim.report.table import check_table
    from ttsim.simulate import run

    _freeze_imported_objects()
    console = _console()
    try:
        configs_dir, golden_dir = _project_folders(configs_dir, golden_dir, need_configs=not configs)
        paths = list(configs) or sorted(configs_dir.glob("*.yaml"))
        if not paths:
            raise TtsimError(f"no configs given and none found in {configs_dir}/ (give --configs DIR)")
        if tolerance_pct < 0:
            raise TtsimError(f"--tolerance must be >= 0, got {tolerance_pct}")
        if update:
            golden_dir.mkdir(parents=True, exist_ok=True)
        elif not golden_dir.is_dir():
            raise TtsimError(f"golden folder {golden_dir} does not exist (give --golden DIR, or create it "
                             "with --update)")
        rows: list[CheckRow] = []
        with _progress() as progress:
            task = progress.add_task("checking", total=len(paths))
            for path in paths:
                progress.update(task, description=f"checking {path.stem}")
                config = load_config(path)
                results = run(config, program="all", timing_only=timing_only, jobs=jobs)
                target = golden_path(golden_dir, config.name)
                if update:
                    write_atomically("--update", target, json.dumps(golden_document(config.name, results), indent=2) + "\n")
                rows += compare_with_golden(config.name, results, load_golden(target), tolerance_pct / 100)
                progress.advance(task)
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
@click.option("--json", "json_path", default=None, type=click.Path(path_type=Path, allow_dash=True),
              help="also write the comparison as JSON to this path ('-': stdout, the table then goes "
                   "to stderr)")
@SET_OPTION
@SUITE_OPTIONS
@TIMING_ONLY_OPTION
def compare_command(configs: tuple[Path, ...], device: str | None, json_path: Path | None,
                    overrides: tuple[str, ...], jobs: int, scheduler: str | None, plot_path: Path | None,
                    uncertainty: bool, constants: str | None, timing_only: bool) -> None:
    """Run every registered program on each CONFIG (op config, suite folder or suite file) and
    compare them (speedup against classic, % of roofline); suites get the per-layer table and model totals."""
    from ttsim.config import load_config
    from ttsim.programs import registry
    from ttsim.report.compare import Comparison, comparison_document, comparison_table, roofline_table
    from ttsim.simulate import run
    from ttsim.suite import is_suite

    _freeze_imported_objects()
    console = _console(stderr=json_path == JSON_STDOUT)
    comparisons: list[Comparison] = []
    try:
        if uncertainty or constants is not None or plot_path is not None or any(
                is_suite(path) for path in configs):
            import ttsim.suite_cli as suite_cli

            suite_cli.run_suites(console, configs, "all", device, json_path, plot_path, jobs, scheduler,
                                 uncertainty, constants, overrides, timing_only)
            return
        check_output_paths([("--json", None if json_path == JSON_STDOUT else json_path)], configs)
        op_codes = {d.name: d.op_code for d in registry.definitions()}
        with _progress() as progress:
            task = progress.add_task("comparing", total=len(configs))
            for path in configs:
                progress.update(task, description=f"comparing {path.stem}")
                config = load_config(path, list(overrides))
                results = run(config, program="all", device=device, timing_only=timing_only,
                              jobs=_op_config_jobs(jobs))
                comparisons.append(Comparison.from_results(config.name, results, op_codes,
                                                           config.measured.classic_device_kernel_duration_ns))
                progress.advance(task)
        console.print(comparison_table(comparisons))
        console.print(roofline_table(comparisons))
        document = json.dumps(comparison_document(comparisons), indent=2) + "\n"
        if json_path == JSON_STDOUT:
            sys.stdout.write(document)
        elif json_path is not None:
            write_atomically("--json", json_path, document)
    except TtsimError as exc:
        _fail(str(exc))


@main.command("sweep")
@click.argument("config", type=click.Path(path_type=Path, readable=False))
@click.option("--param", "params", multiple=True, required=True, metavar="KEY=V1,V2,...",
              help="a swept config key and its values (repeatable; the grid is their product)")
@click.option("--program", "program", default="pool", show_default=True, type=SINGLE_PROGRAM_CHOICE,
              help="program to simulate at every point")
@click.option("--device", "device", default=None, help="device preset (overrides the config's)")
@click.option("--out", "out", default=Path("sweep_results.csv"), show_default=True,
              type=click.Path(path_type=Path), help="CSV the results are appended to (resumable)")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="local worker processes")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="run the points on this Dask distributed scheduler (e.g. tcp://host:8786)")
@click.option("--plot", "plot_path", default=None, type=click.Path(path_type=Path),
              help="also draw the duration-vs-L1 Pareto front to this picture (.png, .svg, .pdf)")
@TIMING_ONLY_OPTION
def sweep_command(config: Path, params: tuple[str, ...], program: str, device: str | None, out: Path,
                  workers: int, scheduler: str | None, plot_path: Path | None, timing_only: bool) -> None:
    """Run CONFIG over the cartesian grid of --param values; rank the points by duration."""
    from rich.progress import MofNCompleteColumn, Progress

    from ttsim.programs import registry
    from ttsim.report import plot
    from ttsim.report.pareto import pareto_front
    from ttsim.report.table import sweep_table
    from ttsim.sweep import grid, parse_param, run_sweep

    console = _console()
    try:
        registry.get(program)  # an unknown program fails before any point runs
        check_output_path("--out", out)
        if plot_path is not None:
            plot.check_picture_path(plot_path)
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
    if plot_path is not None:
        try:
            plot.save(plot.sweep_pareto(rows, [p.key for p in parsed]), plot_path)
        except TtsimError as exc:
            _fail(str(exc))


# -- pictures ----------------------------------------------------------------------------------------

PLOT_OUT = click.option("--out", "-o", "out", required=True, type=click.Path(path_type=Path),
                        help="picture to write; the format follows the suffix (.png, .svg, .pdf)")
PLOT_DEVICE = click.option("--device", "device", default=None, help="device preset (overrides the config's)")


@main.group("plot")
def plot_group() -> None:
    """Draw pictures of simulated runs (needs matplotlib: pip install 'ttsim[plot]')."""


def _one_op(config_path: Path, program: str, op: str, device: str | None, overrides: tuple[str, ...],
            trace_cores: set[tuple[int, int]] | None = None) -> OpResult:
    """The halo or conv op of one program's run of a config."""
    from ttsim.config import load_config
    from ttsim.simulate import run

    config = load_config(config_path, list(overrides))
    halo, conv = run(config, program=program, device=device, trace=trace_cores is not None,
                     trace_cores=trace_cores)
    return halo if op == "halo" else conv


OP_OPTION = click.option("--op", "op", default="conv", show_default=True, type=OneLineChoice(("halo", "conv"), "op"),
                         help="which device op of the program")


@plot_group.command("timeline")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--program", "program", default="pool", show_default=True, type=SINGLE_PROGRAM_CHOICE,
              help="program to simulate")
@OP_OPTION
@click.option("--core", "core", default="0,0", show_default=True, help="logical core 'x,y' to draw")
@PLOT_DEVICE
@SET_OPTION
@PLOT_OUT
def plot_timeline(config: Path, program: str, op: str, core: str, device: str | None,
                  overrides: tuple[str, ...], out: Path) -> None:
    """A Gantt of one op's RISCs on one core: kernel zones, stalls by reason, compute op groups."""
    from ttsim.report import plot

    try:
        plot.check_picture_path(out)
        cores = _parse_cores(core)
        if cores is None or len(cores) != 1:
            raise TtsimError(f"--core: expected one core 'x,y', got {core!r}")
        result = _one_op(config, program, op, device, overrides, cores)
        plot.save(plot.risc_timeline(result, next(iter(cores))), out)
    except TtsimError as exc:
        _fail(str(exc))


@plot_group.command("stalls")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--program", "program", default="pool", show_default=True, type=SINGLE_PROGRAM_CHOICE,
              help="program to simulate")
@OP_OPTION
@PLOT_DEVICE
@SET_OPTION
@PLOT_OUT
def plot_stalls(config: Path, program: str, op: str, device: str | None, overrides: tuple[str, ...],
                out: Path) -> None:
    """Busy time and time blocked per stall reason, per kernel and RISC (as --breakdown)."""
    from ttsim.report import plot

    try:
        plot.check_picture_path(out)
        plot.save(plot.stall_breakdown(_one_op(config, program, op, device, overrides)), out)
    except TtsimError as exc:
        _fail(str(exc))


def _all_programs(configs: tuple[Path, ...], device: str | None, overrides: tuple[str, ...]) -> list[OpResult]:
    from ttsim.config import load_config
    from ttsim.simulate import run

    results: list[OpResult] = []
    with _progress() as progress:
        task = progress.add_task("simulating", total=len(configs))
        for path in configs:
            progress.update(task, description=f"simulating {path.stem}")
            results += run(load_config(path, list(overrides)), program="all", device=device)
            progress.advance(task)
    return results


@plot_group.command("durations")
@click.argument("configs", nargs=-1, required=True, type=click.Path(path_type=Path))
@PLOT_DEVICE
@SET_OPTION
@PLOT_OUT
def plot_durations(configs: tuple[Path, ...], device: str | None, overrides: tuple[str, ...], out: Path) -> None:
    """DEVICE KERNEL DURATION per config and program (halo and conv stacked)."""
    from ttsim.report import plot

    try:
        plot.check_picture_path(out)
        plot.save(plot.program_durations(_all_programs(configs, device, overrides)), out)
    except TtsimError as exc:
        _fail(str(exc))


@plot_group.command("layers")
@click.argument("configs", nargs=-1, required=True, type=click.Path(path_type=Path))
@PLOT_DEVICE
@SET_OPTION
@PLOT_OUT
def plot_layers(configs: tuple[Path, ...], device: str | None, overrides: tuple[str, ...], out: Path) -> None:
    """Each CONFIG a layer of a model: its duration (halo + conv) per program, as grouped bars."""
    from ttsim.report import plot

    try:
        plot.check_picture_path(out)
        plot.save(plot.model_layers(plot.layer_durations(_all_programs(configs, device, overrides))), out)
    except TtsimError as exc:
        _fail(str(exc))


@plot_group.command("sweep")
@click.argument("results_csv", type=click.Path(path_type=Path))
@PLOT_OUT
def plot_sweep(results_csv: Path, out: Path) -> None:
    """A sweep's results CSV (``ttsim sweep --out``): duration against L1 use, the Pareto front."""
    from ttsim.report import plot
    from ttsim.sweep import read_sweep_results

    try:
        keys, rows = read_sweep_results(results_csv)
        plot.save(plot.sweep_pareto(rows, keys), out)
    except TtsimError as exc:
        _fail(str(exc))


if __name__ == "__main__":
    main()
