#!/usr/bin/env python3
"""The depthwise program against its targets on the seed ops, and the ablation from the branch to it.

For every seed config: the simulated conv-op DEVICE KERNEL DURATION [ns] of ``classic``, of the
branch's ``pool`` program, of ``pool`` with each of the branch's TODO fixes alone and all
together, and of ``depthwise``; the depthwise program's speedup over classic, PCC and % of its
roofline (ttsim.programs.roofline). Prints a markdown table (docs/depthwise.md quotes it), then checks
the targets of issue 11 and exits 1 on a miss:

* depthwise >= 2x faster than classic on every op, >= 4x geomean;
* depthwise within 2x of its roofline (>= 50 % of it) on op14, op27, op66 and op79.

The speedup targets are checked on the standard-API program; the roofline target on the faster
of the standard-API program and its custom-LLK variant (``--set depthwise.srcb_reuse=true``,
whose columns are reported beside it), naming the variant that meets it.

Every row is one ``ttsim run CONFIG --program P [--set pool.X=...]``, so anyone can rerun it.

Usage: python bench/depthwise_targets.py [--device blackhole] [--quick] [CONFIG ...]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ttsim.config import load_config  # noqa: E402
from ttsim.simulate import run  # noqa: E402

FIXES = {
    "valid row": ["pool.sfpu_valid_row=true"],
    "packer relu": ["pool.packer_relu=true"],
    "dst batch 4": ["pool.dst_batch=4"],
    "fused mul+reduce": ["pool.fused_mul_reduce=true"],
    "min reconfig": ["pool.minimal_reconfig=true"],
}
ALL_FIXES = [item for sets in FIXES.values() for item in sets]
ROOFLINE_OPS = ("mobilenetv2_op14", "mobilenetv2_op27", "yolov10_op66", "yolov10_op79")
MIN_SPEEDUP, MIN_GEOMEAN, MIN_ROOFLINE = 2.0, 4.0, 0.5


def conv_op(path: Path, program: str, sets: list[str], device: str | None):
    """The conv op (second result) of one run."""
    return run(load_config(path, sets), program=program, device=device)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path, help="default: every configs/*.yaml")
    parser.add_argument("--device", default=None, help="device preset (default: the config's)")
    parser.add_argument("--quick", action="store_true", help="classic and depthwise only (no ablation)")
    args = parser.parse_args(argv)
    configs = args.configs or sorted((ROOT / "configs").glob("*.yaml"))
    columns = ["classic", "branch"] + ([] if args.quick else [f"+{f}" for f in FIXES] + ["all fixes"])
    columns += ["depthwise", "speedup", "PCC", "roofline [ns]", "bound by", "% of roofline",
                "custom LLK", "speedup", "PCC", "% of roofline"]
    print(f"conv-op DEVICE KERNEL DURATION [ns], device {args.device or 'of each config'}")
    print("| op | " + " | ".join(columns) + " |")
    print("|" + "---|" * (len(columns) + 1))
    speedups, custom_speedups, misses, notes = [], [], [], []
    for path in configs:
        name = load_config(path).name
        classic = conv_op(path, "classic", [], args.device)
        cells = [classic.device_kernel_duration_ns]
        if not args.quick:
            cells.append(conv_op(path, "pool", [], args.device).device_kernel_duration_ns)
            cells += [conv_op(path, "pool", sets, args.device).device_kernel_duration_ns for sets in FIXES.values()]
            cells.append(conv_op(path, "pool", ALL_FIXES, args.device).device_kernel_duration_ns)
        else:
            cells.append(conv_op(path, "pool", [], args.device).device_kernel_duration_ns)
        dw = conv_op(path, "depthwise", [], args.device)
        roof = dw.info["roofline"]
        speedup = classic.device_kernel_duration_ns / dw.device_kernel_duration_ns
        achieved = roof.achieved(dw.device_kernel_duration_cycles)
        speedups.append(speedup)
        custom = conv_op(path, "depthwise", ["depthwise.srcb_reuse=true"], args.device)
        custom_speedup = classic.device_kernel_duration_ns / custom.device_kernel_duration_ns
        row = [f"{c:,.0f}" for c in cells] + [f"{dw.device_kernel_duration_ns:,.0f}", f"{speedup:.2f}x",
                                             f"{dw.pcc:.5f}", f"{dw.profile.to_ns(roof.bound_cycles):,.0f}",
                                             roof.binding, f"{achieved:.0%}",
                                             f"{custom.device_kernel_duration_ns:,.0f}", f"{custom_speedup:.2f}x",
                                             f"{custom.pcc:.5f}", f"{roof.achieved(custom.device_kernel_duration_cycles):.0%}"]
        custom_speedups.append(custom_speedup)
        print(f"| {name} | " + " | ".join(row) + " |", flush=True)
        if speedup < MIN_SPEEDUP:
            misses.append(f"{name}: {speedup:.2f}x < {MIN_SPEEDUP}x over classic")
        if name in ROOFLINE_OPS:
            custom_achieved = roof.achieved(custom.device_kernel_duration_cycles)
            best, variant = max((achieved, "standard API"), (custom_achieved, "custom LLK"))
            if best < MIN_ROOFLINE:
                misses.append(f"{name}: {best:.0%} of the roofline ({variant}) < {MIN_ROOFLINE:.0%}")
            else:
                notes.append(f"{name}: {best:.0%} of the roofline with the {variant}")
    geomean = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
    custom_geomean = math.exp(sum(math.log(s) for s in custom_speedups) / len(custom_speedups))
    print(f"\ngeomean speedup of depthwise over classic: {geomean:.2f}x (target >= {MIN_GEOMEAN}x); "
          f"with the custom LLK (depthwise.srcb_reuse): {custom_geomean:.2f}x")
    if len(speedups) == 6 and geomean < MIN_GEOMEAN:
        misses.append(f"geomean {geomean:.2f}x < {MIN_GEOMEAN}x")
    for note in notes:
        print(f"met: {note}")
    for miss in misses:
        print(f"MISSED: {miss}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
