"""Run one child process and measure it as the benchmarks report it: wall seconds, CPU seconds
(user + sys) and peak resident memory of exactly that child.

``os.wait4`` returns the resource usage of the one child it reaps, so neither other load on the
machine nor earlier children leak into the figures (``resource.getrusage(RUSAGE_CHILDREN)`` would
sum every child reaped so far).
"""

from __future__ import annotations

import compileall
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ttsim"


@dataclass(frozen=True)
class ChildRun:
    wall_s: float
    cpu_s: float
    """User + system CPU seconds of the child."""
    peak_mb: float
    """The child's maximum resident set size, MB."""
    exit_code: int
    stderr: str


def spawn(argv: list[str]) -> ChildRun:
    """Run ``argv`` with stdout discarded and stderr captured, and measure it."""
    with tempfile.TemporaryFile() as err, open(os.devnull, "wb") as devnull:
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, dict(os.environ),
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull.fileno(), 1),
                                           (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode(errors="replace").strip()
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return ChildRun(wall, usage.ru_utime + usage.ru_stime, peak_mb, os.waitstatus_to_exitcode(status), stderr)


def compile_package_bytecode(package: Path = PACKAGE) -> str:
    """Write the bytecode of ttsim's modules if the children would not write it themselves.

    An installed package carries its bytecode (pip compiles it at install time) and an editable
    one writes it on its first run, unless ``PYTHONDONTWRITEBYTECODE`` is set: then every child
    compiles every module again (about 0.1 s a run on the 2-core machine), which no user of an
    installed ttsim pays. Returns a line for the report saying what was done.
    """
    if not sys.flags.dont_write_bytecode:
        return "bytecode: as the interpreter writes it (PYTHONDONTWRITEBYTECODE is not set)"
    compileall.compile_dir(package, quiet=1)
    return ("bytecode: ttsim's modules compiled before measuring (PYTHONDONTWRITEBYTECODE is set, "
            "so the children would compile them on every run; an installed package has its bytecode)")
