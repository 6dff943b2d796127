#!/usr/bin/env python3
"""Time ``ttsim run`` on every seed config and check the performance targets.

Each config runs in its own subprocess (``python -m ttsim.cli run CONFIG --json ...``) so that
wall time includes interpreter start-up and imports, as a user sees it, and peak RSS is that
run's alone (``os.wait4`` returns the resource usage of exactly the child it reaps).

Prints one row per config: the simulated DEVICE KERNEL DURATION [ns] of the conv op of each
program (read from the JSON report), wall seconds, peak resident memory in MB, and whether the
run meets the targets (default <= 5 s and <= 2 GB). Exits 1 if any run misses a target or fails.

Usage: python bench/bench_seed_ops.py [--program pool] [--device wormhole_b0] [CONFIG ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from child_usage import compile_package_bytecode, spawn

from ttsim.programs import registry

ROOT = Path(__file__).resolve().parents[1]
HALO_OP_CODE = "HaloDeviceOperation"


def run_one(config: Path, program: str | None, device: str | None) -> dict:
    """Run one config in a subprocess; return wall s, peak MB, exit code, conv durations, stderr."""
    with tempfile.TemporaryDirectory(prefix="ttsim-bench-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [sys.executable, "-m", "ttsim.cli", "run", str(config), "--json", str(report)]
        if program:
            argv += ["--program", program]
        if device:
            argv += ["--device", device]
        run = spawn(argv)
        code = run.exit_code
        conv = {}
        if code == 0 and report.exists():
            for op in json.loads(report.read_text())["ops"]:
                if op["op_code"] != HALO_OP_CODE:
                    conv[f"{op['program']}:{op['op_code']}"] = op["device_kernel_duration_ns"]
        return {"wall": run.wall_s, "peak_mb": run.peak_mb, "code": code, "conv": conv, "stderr": run.stderr}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path,
                        help="configs to time (default: every configs/*.yaml)")
    parser.add_argument("--program", choices=registry.names(), default=None,
                        help="passed to ttsim run --program (default: the CLI's default)")
    parser.add_argument("--device", default=None, help="passed to ttsim run --device")
    parser.add_argument("--max-wall", type=float, default=5.0, help="wall-time target, s")
    parser.add_argument("--max-mb", type=float, default=2048.0, help="peak-RSS target, MB")
    args = parser.parse_args(argv)
    configs = args.configs or sorted((ROOT / "configs").glob("*.yaml"))
    if not configs:
        print("no configs found", file=sys.stderr)
        return 1

    header = f"{'config':22} {'conv DEVICE KERNEL DURATION [ns]':44} {'wall s':>7} {'peak MB':>8}  target"
    print(compile_package_bytecode())
    print(header)
    print("-" * len(header))
    misses = 0
    for config in configs:
        r = run_one(config, args.program, args.device)
        if r["code"] != 0:
            misses += 1
            first = r["stderr"].splitlines()[0] if r["stderr"] else ""
            print(f"{config.stem:22} {'FAILED (exit ' + str(r['code']) + ')':44} {r['wall']:7.2f} "
                  f"{r['peak_mb']:8.0f}  MISS  {first}")
            continue
        durations = ", ".join(f"{name.split(':')[0]} {ns:,.0f}" for name, ns in r["conv"].items())
        ok = r["wall"] <= args.max_wall and r["peak_mb"] <= args.max_mb
        misses += not ok
        why = []
        if r["wall"] > args.max_wall:
            why.append(f"wall > {args.max_wall:g} s")
        if r["peak_mb"] > args.max_mb:
            why.append(f"RSS > {args.max_mb:g} MB")
        print(f"{config.stem:22} {durations:44} {r['wall']:7.2f} {r['peak_mb']:8.0f}  "
              f"{'ok' if ok else 'MISS'}  {'; '.join(why)}")
    print(f"\n{len(configs) - misses} of {len(configs)} configs meet the targets "
          f"(<= {args.max_wall:g} s wall, <= {args.max_mb:g} MB peak RSS)")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
