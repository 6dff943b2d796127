#!/usr/bin/env python3
"""Simulator speed per seed op and program, with and without ``timing_only``, and proof that
nothing changed (cycles against tests/golden, output bytes against a stored digest).

Each measurement is one fresh subprocess (this script with ``--child``) that imports ttsim and
calls ``ttsim.run`` for one config and one program, as a user's script would: its wall time
includes interpreter start-up and imports. The parent reads the child's CPU time (user + sys)
and peak RSS from ``os.wait4``, which reports exactly the child it reaps. The child reports
the SimPy events the run scheduled (every ``Environment``'s event counter) and, per op, the
simulated cycles and the sha256 of the output tensor (float32 C-order bytes of
``OpResult.output``; none with ``timing_only``).

The machine may be shared: every figure is the minimum over ``--runs`` runs, and CPU time,
which waiting for a loaded CPU does not inflate, is printed next to wall.

Usage:
  python bench/bench_speed.py                      # every configs/*.yaml, every program, both modes
  python bench/bench_speed.py --runs 3 --json bench_speed.json
  python bench/bench_speed.py --modes numerics configs/yolov10_op79.yaml --program classic
  python bench/bench_speed.py --write-digests tests/data/output_sha256.json   # record digests

Exits 1 when a cycle count differs from its golden, a digest differs from the stored one, a run
fails, or a target is missed (targets: ``--max-wall`` with numerics, ``--max-wall-timing`` with
``timing_only``, ``--max-import`` for ``import ttsim``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from child_usage import compile_package_bytecode, spawn

from ttsim.programs import registry

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
DIGESTS = ROOT / "tests" / "data" / "output_sha256.json"
MODES = ("numerics", "timing_only")


# -- child: one run in this process -------------------------------------------------------------
def child(config: str, program: str, mode: str, out: str, jobs: str = "1") -> None:
    """Run one config and program (with ``jobs`` processes); write cycles, digests, events and
    output sticks to ``out``."""
    import simpy

    environments: list[simpy.Environment] = []
    original_init = simpy.Environment.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        environments.append(self)

    simpy.Environment.__init__ = recording_init
    import ttsim

    kwargs = {"timing_only": True} if mode == "timing_only" else {}
    results = ttsim.run(config, program=program, jobs=int(jobs), **kwargs)
    ops = []
    for result in results:
        digest = None
        if result.output is not None:
            digest = hashlib.sha256(result.output.astype("float32").tobytes(order="C")).hexdigest()
        ops.append({"op_code": result.op_code, "cycles": result.device_kernel_duration_cycles,
                    "output_sha256": digest})
    conv = results[-1]
    sticks = None
    outputs = conv.info.get("outputs") if conv.info else None
    if outputs:
        sticks = outputs[0].logical_shape[2]  # [1, 1, N*H*W, C]: one stick per output pixel
    events = sum(next(env._eid) for env in environments)  # simpy's event counter (ids issued)
    Path(out).write_text(json.dumps({"config": results[0].config, "ops": ops, "events": events,
                                     "sticks": sticks}))


# -- parent ---------------------------------------------------------------------------------------
def measure(config: Path, program: str, mode: str, runs: int, jobs: int = 1) -> dict:
    """Min wall / CPU and max RSS over ``runs`` child runs, with the last run's report."""
    walls, cpus, peaks = [], [], []
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="ttsim-bench-") as tmp:
        out = Path(tmp) / "child.json"
        for _ in range(runs):
            argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(config), program, mode,
                    str(out), str(jobs)]
            run = spawn(argv)
            if run.exit_code != 0:
                lines = run.stderr.splitlines()
                return {"error": f"exit {run.exit_code}: {lines[-1] if lines else ''}"}
            walls.append(run.wall_s)
            cpus.append(run.cpu_s)
            peaks.append(run.peak_mb)
            report = json.loads(out.read_text())
    return {"wall_s": min(walls), "cpu_s": min(cpus), "peak_mb": max(peaks), **report}


def interpreter_seconds(runs: int, statement: str) -> tuple[float, float]:
    """Min (wall, CPU) seconds of a fresh interpreter running ``statement``."""
    samples = [spawn([sys.executable, "-c", statement]) for _ in range(runs)]
    return min(s.wall_s for s in samples), min(s.cpu_s for s in samples)


REFERENCE_LOOP = "s = 0\nfor i in range(5_000_000):\n    s += i * i % 7"
"""A fixed pure-Python workload (about the interpreter work of the kernel API's hot paths). Its CPU
time says how fast this machine runs Python: the project's machines have differed by 2.5x between
sessions, so compare tables (and read the targets) only next to this figure."""


DEPENDENCIES = ("import numpy, simpy, yaml\nfrom pydantic import BaseModel\n"
                "class Model(BaseModel):\n    x: int")
"""What a run imports before any of ttsim's own code: numpy, SimPy, PyYAML and pydantic, with the
one model class that makes pydantic load its schema machinery. A floor under every run's wall
time, which no change to ttsim lowers; the targets are read against it."""
RUN_IMPORTS = "import ttsim.simulate"
"""Everything a ``ttsim.run`` imports before it simulates (its program's builder comes later)."""


def golden_cycles(config_name: str) -> dict[str, dict[str, int]]:
    path = GOLDEN / f"{config_name}.json"
    return json.loads(path.read_text())["device_kernel_duration_cycles"] if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(*argv[1:6])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path, help="configs (default: every configs/*.yaml)")
    parser.add_argument("--program", choices=registry.names(), default=None,
                        help="one program (default: every registered program)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated: numerics, timing_only (default: both)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the minimum is kept")
    parser.add_argument("--jobs", type=int, default=1,
                        help="ttsim.run(jobs=N): with 2, each conv op may finish its halves of cores in two "
                             "processes (CPU then counts both)")
    parser.add_argument("--digests", type=Path, default=DIGESTS, help="stored output digests to check")
    parser.add_argument("--write-digests", type=Path, default=None,
                        help="write the output digests of the numerics runs to this path")
    parser.add_argument("--json", type=Path, default=None, help="also write every measurement here")
    parser.add_argument("--max-wall", type=float, default=1.5, help="wall target with numerics, s")
    parser.add_argument("--max-wall-timing", type=float, default=0.5, help="wall target, timing_only, s")
    parser.add_argument("--max-import", type=float, default=0.3, help="`import ttsim` wall target, s")
    args = parser.parse_args(argv)
    configs = args.configs or sorted((ROOT / "configs").glob("*.yaml"))
    programs = (args.program,) if args.program else registry.names()
    modes = [m for m in args.modes.split(",") if m]
    if not configs or any(m not in MODES for m in modes) or args.runs < 1 or args.jobs < 1:
        parser.error("need configs, --modes from numerics,timing_only, --runs >= 1 and --jobs >= 1")
    stored = json.loads(args.digests.read_text()) if args.digests.exists() else {}

    print(compile_package_bytecode())
    failures = 0
    rows = []
    imp_wall, imp_cpu = interpreter_seconds(args.runs, "import ttsim")
    help_wall, help_cpu = interpreter_seconds(args.runs, "import sys; from ttsim.cli import main; "
                                                    "sys.argv = ['ttsim', '--help']; main()")
    ref_wall, ref_cpu = interpreter_seconds(args.runs, REFERENCE_LOOP)
    deps_wall, deps_cpu = interpreter_seconds(args.runs, DEPENDENCIES)
    run_imp_wall, run_imp_cpu = interpreter_seconds(args.runs, RUN_IMPORTS)
    print(f"machine: the reference loop (5M iterations of pure Python) takes {ref_cpu:.2f} s CPU")
    print(f"start-up: python + numpy, SimPy, PyYAML, pydantic (one model) {deps_wall:.3f} s wall; "
          f"import ttsim.simulate (all a run imports) {run_imp_wall:.3f} s wall")
    header = (f"{'config':18} {'program':8} {'mode':11} {'wall s':>7} {'CPU s':>6} {'RSS MB':>7} "
              f"{'events':>9} {'events/s':>9} {'CPU us/stick':>12}  check")
    print(header)
    print("-" * len(header))
    digests: dict[str, dict[str, str]] = {}
    for config in configs:
        for program in programs:
            for mode in modes:
                r = measure(config, program, mode, args.runs, args.jobs)
                row = {"config": config.stem, "program": program, "mode": mode, **r}
                rows.append(row)
                if "error" in r:
                    failures += 1
                    print(f"{config.stem:18} {program:8} {mode:11} FAILED {r['error']}")
                    continue
                problems = []
                golden = golden_cycles(r["config"]).get(program, {})
                for op in r["ops"]:
                    if golden.get(op["op_code"]) != op["cycles"]:
                        problems.append(f"{op['op_code']} {op['cycles']} cycles, golden "
                                        f"{golden.get(op['op_code'])}")
                    if mode == "numerics" and op["output_sha256"]:
                        digests.setdefault(r["config"], {})[program] = op["output_sha256"]
                        want = stored.get(r["config"], {}).get(program)
                        if want is not None and want != op["output_sha256"]:
                            problems.append("output bytes differ from the stored digest")
                        elif want is None and stored:
                            problems.append("no stored digest")
                    if mode == "timing_only" and op["output_sha256"]:
                        problems.append("timing_only produced an output")
                target = args.max_wall if mode == "numerics" else args.max_wall_timing
                if r["wall_s"] > target:
                    problems.append(f"wall > {target:g} s")
                hard = [p for p in problems if not p.startswith("wall")]
                failures += bool(problems)
                row["problems"] = problems
                per_stick = 1e6 * r["cpu_s"] / r["sticks"] if r.get("sticks") else float("nan")
                print(f"{config.stem:18} {program:8} {mode:11} {r['wall_s']:7.2f} {r['cpu_s']:6.2f} "
                      f"{r['peak_mb']:7.0f} {r['events']:9,} {r['events'] / r['cpu_s']:9,.0f} "
                      f"{per_stick:12.1f}  {'; '.join(problems) or ('ok' if not hard else '')}")
    print(f"\nimport ttsim: {imp_wall:.3f} s wall, {imp_cpu:.3f} s CPU (target <= {args.max_import:g} s); "
          f"ttsim --help: {help_wall:.3f} s wall, {help_cpu:.3f} s CPU")
    failures += imp_wall > args.max_import
    if args.write_digests is not None:
        args.write_digests.write_text(json.dumps(
            {"about": "sha256 of the conv op's output tensor (float32, C order) per config and program "
                      "(bench/bench_speed.py --write-digests); tests/test_output_bytes.py and the bench "
                      "check it",
             **{k: digests[k] for k in sorted(digests)}}, indent=2) + "\n")
        print(f"digests written to {args.write_digests}")
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": args.runs, "reference_loop_s": [ref_wall, ref_cpu],
                                         "import_ttsim_s": [imp_wall, imp_cpu],
                                         "ttsim_help_s": [help_wall, help_cpu],
                                         "dependencies_import_s": [deps_wall, deps_cpu],
                                         "run_imports_s": [run_imp_wall, run_imp_cpu], "rows": rows}, indent=2))
    print(f"{failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
