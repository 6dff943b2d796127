"""Rich tables of op results for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ttsim.report.golden import APPROX, MATCH, MISMATCH, CheckRow
from ttsim.report.results import RISCS
from ttsim.results import OpResult


def results_table(config_name: str, results: list[OpResult]) -> Table:
    """One table per config: a row per device op, durations named as in the profiler."""
    first = results[0]
    title = f"{config_name} on {first.device} @ {first.profile.clock_mhz:g} MHz"
    if any(r.timing_only for r in results):
        title += " (timing only: no numerics, PCC not computed)"
    table = Table(title=title, title_justify="left")
    table.add_column("OP CODE", no_wrap=True)
    table.add_column("program")
    table.add_column("cores", justify="right")
    table.add_column("DEVICE KERNEL\nDURATION \\[ns]", justify="right")
    table.add_column("\\[cycles]", justify="right")
    table.add_column("PCC", justify="right")
    for result in results:
        profile = result.profile
        table.add_row(
            result.op_code, result.program, str(profile.core_count),
            f"{profile.device_kernel_duration_ns:,.0f}", f"{profile.device_kernel_duration_cycles:,}",
            "-" if result.pcc is None else f"{result.pcc:.6f}",
        )
    return table


def results_roofline_table(results: list[OpResult]) -> Table:
    """Per device op: its roofline (the lower bound on its grid, docs/roofline.md), the binding
    engine and the fraction of the bound the simulation reaches; ``-`` for an op without one."""
    table = Table(title="roofline: lower bound \\[ns], binding engine, % of roofline = bound / duration",
                  title_justify="left")
    table.add_column("OP CODE", no_wrap=True)
    table.add_column("program", no_wrap=True)
    table.add_column("roofline \\[ns]", justify="right", no_wrap=True)
    table.add_column("bound by", no_wrap=True)
    table.add_column("% of roofline", justify="right", no_wrap=True)
    for result in results:
        profile = result.profile
        roof = result.info.get("roofline")
        table.add_row(
            result.op_code, result.program,
            "-" if roof is None else f"{profile.to_ns(roof.bound_cycles):,.0f}",
            "-" if roof is None else roof.binding,
            "-" if roof is None else f"{roof.achieved(profile.device_kernel_duration_cycles):.0%}",
        )
    return table


def risc_table(results: list[OpResult]) -> Table:
    """Per-RISC kernel durations (first start to last end over the cores), in ns; ``-`` for a RISC
    that ran no kernel in the op (the halo op has no compute kernel)."""
    table = Table(title="DEVICE <RISC> KERNEL DURATION \\[ns]", title_justify="left")
    table.add_column("OP CODE", no_wrap=True)
    for risc in RISCS:
        table.add_column(risc.value, justify="right")
    for result in results:
        profile = result.profile
        ran = {z.risc for z in profile.zones}
        table.add_row(result.op_code, *(f"{profile.risc_duration_ns[r]:,.0f}" if r in ran else "-"
                                        for r in RISCS))
    return table


def print_results(console: Console, config_name: str, results: list[OpResult]) -> None:
    console.print(results_table(config_name, results))
    console.print(risc_table(results))
    console.print(results_roofline_table(results))


def check_table(rows: list[CheckRow]) -> Table:
    """Golden check: one row per op with its status."""
    table = Table(title="golden DEVICE KERNEL DURATION \\[cycles]", title_justify="left")
    for name in ("config", "program", "OP CODE", "golden", "simulated", "delta", "status"):
        numeric = name in ("golden", "simulated", "delta")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=numeric or name == "status",
                         overflow="fold")
    styles = {MATCH: "green", APPROX: "yellow", MISMATCH: "bold red"}
    for row in rows:
        delta = row.delta
        table.add_row(row.config, row.program, row.op_code, "-" if row.golden is None else f"{row.golden:,}",
                      f"{row.simulated:,}", "-" if delta is None else f"{delta:+.2%}",
                      f"[{styles[row.status]}]{row.status}[/]")
    return table


def l1_table(result: OpResult) -> Table:
    """The op's CB table per core (cores with identical tables grouped) against the L1 budget."""
    profile = result.profile
    by_core: dict[tuple, list] = {}
    for record in profile.cbs:
        by_core.setdefault(record.core, []).append(record)
    groups: dict[tuple, list] = {}
    for core, records in sorted(by_core.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        key = tuple((r.index, r.name, r.address, r.page_size, r.num_pages) for r in records)
        groups.setdefault(key, []).append(core)
    budget = profile.l1_budget_bytes
    table = Table(title=f"{result.config} {result.op_code} ({result.program}): circular buffers per core; "
                        f"L1 budget {budget:,} B, peak use {profile.l1_used_bytes:,} B "
                        f"({profile.l1_used_bytes / budget:.0%})" if budget else "", title_justify="left")
    for name in ("cores", "CB", "name", "address", "page \\[B]", "pages", "bytes"):
        text = name in ("cores", "name")
        table.add_column(name, justify="left" if text else "right", no_wrap=not text, overflow="fold")
    for key, cores in groups.items():
        label = f"{len(cores)}: {cores[0]}" + (f"..{cores[-1]}" if len(cores) > 1 else "")
        total = 0
        for index, name, address, page, pages in key:
            aliased = any(r.globally_allocated for r in by_core[cores[0]] if r.index == index)
            size = page * pages
            total += 0 if aliased else size
            table.add_row(label, str(index), name + (" (tensor)" if aliased else ""), f"0x{address:06x}",
                          f"{page:,}", str(pages), f"{size:,}")
            label = ""
        table.add_row("", "", "CB total (tensor-aliased CBs not counted)", "", "", "", f"{total:,}",
                      end_section=True)
    return table


def sweep_table(keys: list[str], rows: list[dict[str, str]], front: set[int]) -> Table:
    """Sweep points that ran, fastest first, with L1 use; Pareto-optimal points marked."""
    table = Table(title="sweep: DEVICE KERNEL DURATION \\[ns] by point (* = on the duration-vs-L1 Pareto front)",
                  title_justify="left")
    for key in keys:
        table.add_column(key, overflow="fold")
    for name in ("DEVICE KERNEL DURATION [ns]", "L1 used [B]", "PCC", "Pareto"):
        table.add_column(name.replace("[", "\\["), justify="right", no_wrap=name != "DEVICE KERNEL DURATION [ns]")
    ok = sorted((i for i, row in enumerate(rows) if row["status"] == "ok"),
                key=lambda i: (float(rows[i]["device_kernel_duration_ns"]), int(rows[i]["l1_used_bytes"])))
    for i in ok:
        row = rows[i]
        table.add_row(*(row[k] for k in keys), f"{float(row['device_kernel_duration_ns']):,.0f}",
                      f"{int(row['l1_used_bytes']):,}", row["pcc"], "*" if i in front else "")
    return table
