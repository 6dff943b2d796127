"""Parameter sweeps: the cartesian grid of ``--param KEY=V1,V2,...`` over one config, run in
parallel on local processes or on a Dask distributed cluster, results appended to a CSV as each
point finishes (so an interrupted sweep resumes where it stopped).

A point that fails with a ttsim error (an L1 overflow, an undersized CB, a deadlock) is a
result: it is recorded with its message, not raised.
"""

from __future__ import annotations

import csv
import itertools
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ttsim.config import load_config
from ttsim.errors import ConfigurationError, TtsimError

RESULT_FIELDS = ["program", "op_code", "device_kernel_duration_ns", "device_kernel_duration_cycles",
                 "l1_used_bytes", "pcc", "status", "error"]


@dataclass(frozen=True)
class Param:
    """One swept key and its values (as YAML texts, parsed by the config loader)."""

    key: str
    values: tuple[str, ...]


def parse_param(text: str) -> Param:
    """``KEY=V1,V2,...``; commas inside brackets belong to a value (``conv.kernel=[3,3],[5,5]``)."""
    key, sep, rest = text.partition("=")
    if not sep or not key.strip() or not rest.strip():
        raise ConfigurationError(f"--param {text!r}: expected KEY=V1,V2,...")
    values, depth, current = [], 0, ""
    for char in rest:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    if any(not v for v in values):
        raise ConfigurationError(f"--param {text!r}: empty value")
    return Param(key.strip(), tuple(values))


def grid(params: list[Param]) -> list[tuple[str, ...]]:
    """Every combination of values, in a fixed order (the first parameter varies slowest)."""
    return list(itertools.product(*(p.values for p in params)))


def run_point(config_path: str, keys: tuple[str, ...], values: tuple[str, ...], program: str,
              device: str | None) -> dict[str, str]:
    """Simulate one point; returns its CSV row (never raises a ttsim error)."""
    from ttsim.programs import registry  # imported in the worker process
    from ttsim.simulate import run

    row = dict(zip(keys, values))
    row.update({field: "" for field in RESULT_FIELDS})
    row["program"] = program
    try:
        config = load_config(config_path, [f"{k}={v}" for k, v in zip(keys, values)])
        op_code = registry.get(program).op_code
        result = next(r for r in run(config, program=program, device=device) if r.op_code == op_code)
    except TtsimError as exc:
        row.update(status="error", error=" ".join(str(exc).split())[:500])
        return row
    row.update(op_code=result.op_code, status="ok",
               device_kernel_duration_ns=f"{result.device_kernel_duration_ns:.0f}",
               device_kernel_duration_cycles=str(result.device_kernel_duration_cycles),
               l1_used_bytes=str(result.profile.l1_used_bytes), pcc=f"{result.pcc:.6f}")
    return row


def read_done(path: Path, keys: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows already in ``path`` (a previous, maybe interrupted, run of the same sweep)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != [*keys, *RESULT_FIELDS]:
            raise ConfigurationError(
                f"{path}: holds a different sweep (columns {reader.fieldnames}); choose another --out")
        return list(reader)


def pareto_front(rows: list[dict[str, str]]) -> set[int]:
    """Indices of ok rows that no other ok row beats on both duration and L1 bytes."""
    ok = [(i, float(r["device_kernel_duration_ns"]), int(r["l1_used_bytes"]))
          for i, r in enumerate(rows) if r["status"] == "ok"]
    front = set()
    for i, duration, l1 in ok:
        dominated = any(d <= duration and b <= l1 and (d < duration or b < l1) for _, d, b in ok)
        if not dominated:
            front.add(i)
    return front


def run_sweep(config_path: str, params: list[Param], program: str, device: str | None, out: Path,
              workers: int = 2, scheduler: str | None = None,
              on_result: Callable[[dict[str, str]], None] = lambda row: None) -> list[dict[str, str]]:
    """Run every point not already in ``out``; append each row to ``out`` as it finishes."""
    keys = tuple(p.key for p in params)
    load_config(config_path, [f"{k}={p.values[0]}" for k, p in zip(keys, params)])  # fail fast on bad keys
    if not out.parent.is_dir():
        raise ConfigurationError(f"--out {out}: folder {out.parent} does not exist")
    done = read_done(out, keys)
    finished = {tuple(row[k] for k in keys) for row in done}
    todo = [values for values in grid(params) if values not in finished]
    handle = None
    try:
        for row in _execute(config_path, keys, todo, program, device, workers, scheduler):
            if handle is None:  # opened at the first result: a sweep that never ran writes nothing
                new_file = not out.exists()
                handle = out.open("a", newline="")
                writer = csv.DictWriter(handle, fieldnames=[*keys, *RESULT_FIELDS])
                if new_file:
                    writer.writeheader()
            writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())
            done.append(row)
            on_result(row)
    finally:
        if handle is not None:
            handle.close()
    return done


def _execute(config_path: str, keys: tuple[str, ...], todo: list[tuple[str, ...]], program: str,
             device: str | None, workers: int, scheduler: str | None) -> Iterable[dict[str, str]]:
    if not todo:
        return
    if scheduler is not None:
        yield from _execute_dask(config_path, keys, todo, program, device, scheduler)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_point, config_path, keys, values, program, device) for values in todo]
        for future in as_completed(futures):
            yield future.result()


def _execute_dask(config_path: str, keys: tuple[str, ...], todo: list[tuple[str, ...]], program: str,
                  device: str | None, scheduler: str) -> Iterable[dict[str, str]]:
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise ConfigurationError(
            "--scheduler needs Dask distributed: pip install 'ttsim[dask]'") from None
    try:
        client = Client(scheduler, timeout="5s")
    except (OSError, TimeoutError) as exc:
        raise ConfigurationError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    with client:
        futures = [client.submit(run_point, config_path, keys, values, program, device, pure=False)
                   for values in todo]
        for future in dask_completed(futures):
            yield future.result()
