#!/usr/bin/env python3
"""Time whole model suites (``ttsim run configs/models/<model>``) with every program, as a user
runs them, and check the simulator's suite target (issue "Simulator speed": a whole model suite
with every program <= 60 s wall on the 2-core machine).

Each suite runs in its own child process (``python -m ttsim.cli run DIR --json REPORT``, with
``--timing-only`` in that mode), so wall time includes start-up, the suite's worker processes
(``--jobs``) and every layer of every program. Prints, per suite and mode: wall and CPU seconds
(CPU of the child and the workers it reaped), the largest resident set among them, the layers run, and the
model totals per program (simulated DEVICE KERNEL DURATION [ns] over the layers every program
ran, and the speedup of each program's total over classic's).

Usage: python bench/bench_suites.py [--modes timing_only,numerics] [--jobs 2] [SUITE_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from child_usage import compile_package_bytecode, spawn

ROOT = Path(__file__).resolve().parents[1]
MODES = ("timing_only", "numerics")


def run_suite(suite: Path, mode: str, jobs: int) -> dict:
    """One suite in a child process; wall / CPU / peak and the JSON report's totals."""
    with tempfile.TemporaryDirectory(prefix="ttsim-bench-") as tmp:
        report = Path(tmp) / "suite.json"
        argv = [sys.executable, "-m", "ttsim.cli", "run", str(suite), "--json", str(report), "--jobs", str(jobs)]
        if mode == "timing_only":
            argv.append("--timing-only")
        run = spawn(argv)
        if run.exit_code != 0 or not report.exists():
            lines = run.stderr.splitlines()
            return {"error": f"exit {run.exit_code}: {lines[-1] if lines else ''}"}
        data = json.loads(report.read_text())["suites"][0]
    totals = data["totals"]
    return {"wall_s": run.wall_s, "cpu_s": run.cpu_s, "peak_mb": run.peak_mb, "layers": totals["layers"],
            "complete_layers": totals["complete_layers"],
            "programs": {name: (t["total_device_kernel_duration_ns"], t["speedup_total"])
                         for name, t in totals["programs"].items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="*", type=Path, help="suite folders (default: every configs/models/*)")
    parser.add_argument("--modes", default="timing_only",
                        help="comma-separated: timing_only, numerics (default: timing_only)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes per suite (default 2)")
    parser.add_argument("--max-wall", type=float, default=60.0, help="target wall seconds per suite (default 60)")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements as JSON")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        parser.error(f"unknown mode(s) {', '.join(bad)}; choose from {', '.join(MODES)}")
    suites = args.suites or sorted(p for p in (ROOT / "configs" / "models").iterdir() if p.is_dir())

    rows, problems = [], 0
    print(compile_package_bytecode())
    print(f"{'suite':18} {'mode':12} {'wall s':>7} {'CPU s':>7} {'RSS MB':>7} {'layers':>7}  totals [ns] (speedup)")
    for suite in suites:
        for mode in modes:
            result = run_suite(suite, mode, args.jobs)
            rows.append({"suite": suite.name, "mode": mode, **result})
            if "error" in result:
                problems += 1
                print(f"{suite.name:18} {mode:12} FAILED {result['error']}")
                continue
            totals = "  ".join(f"{name} {ns:,.0f}" + (f" ({speedup:.2f}x)" if speedup else "")
                               for name, (ns, speedup) in result["programs"].items())
            miss = result["wall_s"] > args.max_wall
            problems += miss
            print(f"{suite.name:18} {mode:12} {result['wall_s']:7.1f} {result['cpu_s']:7.1f} {result['peak_mb']:7.0f} "
                  f"{result['complete_layers']:>3}/{result['layers']:<3}  {totals}"
                  + (f"  wall > {args.max_wall:g} s" if miss else ""))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"\n{problems} problem(s)" if problems else f"\nevery suite within {args.max_wall:g} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
