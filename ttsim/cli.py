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

from ttsim.config import load_config
from ttsim.device.spec import available_devices
from ttsim.errors import TtsimError
from ttsim.report.compare import Comparison, comparison_document, comparison_table
from ttsim.report.results import report_document
from ttsim.report.table import print_results
from ttsim.simulate import PROGRAM_CHOICES, OpResult, run

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
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ttsim")
def main() -> None:
    """Cycle-approximate simulator of Tenstorrent Tensix devices."""


@main.command("run")
@click.argument("configs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--program", "program", default="all", show_default=True,
              help=f"program to simulate: {', '.join(PROGRAM_CHOICES)}")
@click.option("--device", "device", default=None,
              help="device preset (overrides the config's 'device:'); "
                   f"one of {', '.join(available_devices())}")
@click.option("--json", "json_path", default=None, type=click.Path(path_type=Path),
              help="also write the results as JSON (schema_version 1) to this path")
def run_command(configs: tuple[Path, ...], program: str, device: str | None,
                json_path: Path | None) -> None:
    """Simulate each CONFIG and print DEVICE KERNEL DURATION per device op."""
    console = _console()
    everything: list[OpResult] = []
    try:
        for path in configs:
            results = run(path, program=program, device=device)
            print_results(console, results[0].config, results)
            everything.extend(results)
        if json_path is not None:
            _write_atomically(json_path, json.dumps(report_document(everything), indent=2) + "\n")
    except TtsimError as exc:
        _fail(str(exc))


@main.command("compare")
@click.argument("configs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--device", "device", default=None, help="device preset (overrides the config's 'device:')")
@click.option("--json", "json_path", default=None, type=click.Path(path_type=Path),
              help="also write the comparison as JSON to this path")
def compare_command(configs: tuple[Path, ...], device: str | None, json_path: Path | None) -> None:
    """Run the classic and the pool program on each CONFIG and compare them."""
    console = _console()
    comparisons: list[Comparison] = []
    try:
        for path in configs:
            config = load_config(path)
            results = run(config, program="all", device=device)
            classic, pool = results[1], results[3]
            comparisons.append(Comparison(config.name, classic, pool,
                                          config.measured.classic_device_kernel_duration_ns))
        console.print(comparison_table(comparisons))
        if json_path is not None:
            _write_atomically(json_path, json.dumps(comparison_document(comparisons), indent=2) + "\n")
    except TtsimError as exc:
        _fail(str(exc))


if __name__ == "__main__":
    main()
