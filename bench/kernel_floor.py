#!/usr/bin/env python3
"""The floor under a timing-only run: the kernels' own Python, with every kernel API call free.

A ttsim run executes each kernel line by line as a coroutine (a port of its tt-metal source), so
the kernel code's own loops, arithmetic and call sites cost the same however cheap the kernel API
and the device model behind it become. This script measures that floor per seed op and program:
it builds each op exactly as ``ttsim.run(..., timing_only=True)`` does, then, before the real
simulation, drives every kernel on every core once with a context whose calls return at once
(queries such as ``get_write_ptr`` or ``l1_load`` are answered by the real context; every other
call, blocking ones included, does nothing and returns an empty iterable). It then runs the real
simulation of the same program and reports both CPU times, the kernel API calls per output stick
(counted in a second, untimed pass) and whether the timing-only wall target can be met at all:
start-up floor (python with ttsim's dependencies) + ttsim's own import + kernel floor.

Usage:
  python bench/kernel_floor.py                                   # every seed op, every program
  python bench/kernel_floor.py configs/mobilenetv2_op14.yaml --program pool
  python bench/kernel_floor.py --json floor.json

CPU times are ``time.process_time`` of this process (one core), the minimum over ``--runs``.
Exits 1 when a simulated cycle count differs from its golden (the free pass must not disturb the
real run), 2 on a config ttsim refuses (its message, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bench_speed import DEPENDENCIES, RUN_IMPORTS, golden_cycles, interpreter_seconds
from child_usage import compile_package_bytecode

import ttsim
import ttsim.simulate
from ttsim.config import load_config
from ttsim.errors import TtsimError
from ttsim.host import Program, _allocate, _make_context
from ttsim.programs import registry
from ttsim.programs.sliding_window import ConvGeometry

ROOT = Path(__file__).resolve().parents[1]

QUERIES = frozenset({
    "get_compile_time_arg_val", "get_arg_val", "get_write_ptr", "get_read_ptr", "get_noc_addr",
    "get_noc_multicast_addr", "get_semaphore", "get_local_cb_interface", "l1_load",
})
"""Kernel API calls whose result a kernel uses: answered by the real context (they read host
arguments, CB pointers or L1 and change nothing)."""


def _free(*args: Any, **kwargs: Any) -> tuple:
    """A kernel API call that costs nothing: ``()`` also serves ``yield from`` of a blocking call."""
    return ()


class FreeContext:
    """Stands in for a kernel's context: queries go to the real one, every other call is
    ``call`` (by default :func:`_free`). Each name is looked up once and kept as a plain instance
    attribute, so later calls cost one attribute load and the call itself."""

    def __init__(self, real: Any, call: Callable[..., tuple] = _free) -> None:
        self._real = real
        self._call = call

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self._real, name) if name in QUERIES else self._call
        setattr(self, name, value)
        return value


class UnexpectedYield(RuntimeError):
    """A kernel yielded a value of its own where only ``yield from`` of API calls was expected."""


def _drive(program: Program, device: Any, call: Callable[..., tuple] = _free) -> float:
    """Run every kernel of ``program`` on every core to its end against free contexts; returns
    the CPU seconds the kernels' own code took. CBs are allocated for the queries and freed after."""
    _allocate(device, program)
    contexts = [(kernel, FreeContext(_make_context(device, kernel, xy, float("inf"), False, False), call))
                for kernel in program.kernels for xy in kernel.cores]
    start = time.process_time()
    for kernel, context in contexts:
        for value in kernel.function(context):
            raise UnexpectedYield(f"kernel '{kernel.name}' yielded {value!r}")
    seconds = time.process_time() - start
    device.free_program_cbs()
    return seconds


def measure(config: Path, program: str) -> dict[str, Any]:
    """Kernel floor, API calls and real simulation CPU of ``program``'s ops on ``config``."""
    real_run = ttsim.simulate.run_program
    ops: list[dict[str, Any]] = []

    def measured_run(device, built: Program, **kwargs):
        calls = [0]

        def counted(*args: Any, **kw: Any) -> tuple:
            calls[0] += 1
            return ()

        floor_s = _drive(built, device)
        _drive(built, device, counted)
        start = time.process_time()
        profile = real_run(device, built, **kwargs)
        ops.append({"op_code": built.op_code, "kernel_floor_s": floor_s, "api_calls": calls[0],
                    "simulation_s": time.process_time() - start})
        return profile

    ttsim.simulate.run_program = measured_run
    try:
        results = ttsim.run(str(config), program=program, timing_only=True)
    finally:
        ttsim.simulate.run_program = real_run
    for op, result in zip(ops, results):
        op["cycles"] = result.device_kernel_duration_cycles
    sticks = ConvGeometry.from_spec(load_config(str(config)).conv).out_nhw
    return {"config": config.stem, "program": program, "sticks": sticks, "ops": ops,
            "kernel_floor_s": sum(op["kernel_floor_s"] for op in ops),
            "simulation_s": sum(op["simulation_s"] for op in ops),
            "api_calls": sum(op["api_calls"] for op in ops)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path, help="configs (default: every configs/*.yaml)")
    parser.add_argument("--program", choices=registry.names(), default=None,
                        help="one program (default: every registered program)")
    parser.add_argument("--runs", type=int, default=1, help="runs per measurement; the minimum is kept")
    parser.add_argument("--max-wall-timing", type=float, default=0.5, help="timing_only wall target, s")
    parser.add_argument("--json", type=Path, default=None, help="also write every measurement here")
    args = parser.parse_args(argv)
    configs = args.configs or sorted((ROOT / "configs").glob("*.yaml"))
    programs = (args.program,) if args.program else registry.names()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    for config in configs:  # a bad config fails before the start-up is timed
        try:
            load_config(str(config))
        except TtsimError as error:
            parser.exit(2, f"{error}\n")
    print(compile_package_bytecode())
    deps_wall, deps_cpu = interpreter_seconds(3, DEPENDENCIES)
    run_imports_wall, run_imports_cpu = interpreter_seconds(3, RUN_IMPORTS)
    print(f"start-up: python + ttsim's dependencies {deps_wall:.3f} s wall ({deps_cpu:.3f} s CPU), "
          f"import ttsim.simulate {run_imports_wall:.3f} s wall ({run_imports_cpu:.3f} s CPU): "
          "what a run costs before it simulates")
    start_up = min(run_imports_wall, run_imports_cpu)  # load inflates wall; numpy's threads, CPU
    header = (f"{'config':18} {'program':9} {'sticks':>7} {'API calls':>10} {'calls/stick':>11} "
              f"{'floor s':>8} {'us/stick':>8} {'sim s':>7} {'sim/floor':>9}  {'target':>6}")
    print(header)
    print("-" * len(header))
    rows = []
    failures = 0
    for config in configs:
        for program in programs:
            try:
                samples = [measure(config, program) for _ in range(args.runs)]
            except TtsimError as error:  # a bad config: ttsim's own one-line message, exit 2
                print(f"{config}: {error}", file=sys.stderr)
                return 2
            row = min(samples, key=lambda r: r["kernel_floor_s"])
            row["simulation_s"] = min(r["simulation_s"] for r in samples)
            row["best_wall_s"] = start_up + row["kernel_floor_s"]
            row["target_reachable"] = row["best_wall_s"] <= args.max_wall_timing
            rows.append(row)
            golden = golden_cycles(row["config"]).get(program)
            changed = [op["op_code"] for op in row["ops"]
                       if golden is not None and golden.get(op["op_code"]) != op["cycles"]]
            if changed:
                failures += 1
                print(f"{row['config']:18} {program:9} cycles of {', '.join(changed)} differ from the golden")
            print(f"{row['config']:18} {program:9} {row['sticks']:7,} {row['api_calls']:10,} "
                  f"{row['api_calls'] / row['sticks']:11.1f} {row['kernel_floor_s']:8.3f} "
                  f"{row['kernel_floor_s'] / row['sticks'] * 1e6:8.2f} {row['simulation_s']:7.2f} "
                  f"{row['simulation_s'] / row['kernel_floor_s']:9.1f}  "
                  f"{'yes' if row['target_reachable'] else 'no':>6}")
    print(f"target: 'yes' when import ttsim.simulate (the lesser of wall and CPU) + the kernel floor "
          f"<= {args.max_wall_timing} s; 'no' means no kernel API, however cheap, meets the timing_only "
          "wall target on this machine")
    if args.json:
        args.json.write_text(json.dumps({"dependencies_import_s": deps_wall, "run_imports_s": run_imports_wall,
                                         "run_imports_cpu_s": run_imports_cpu, "rows": rows}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
