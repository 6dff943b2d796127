"""Parameter sweeps: the cartesian grid of ``--param KEY=V1,V2,...`` over one config, run in
parallel on local processes or on a Dask distributed cluster, results appended to a CSV as each
point finishes (so an interrupted sweep resumes where it stopped).

A point that fails with a ttsim error (an L1 overflow, an undersized CB, a deadlock) is a
result: it is recorded with its message, not raised. Everything else is checked before the first
point runs: the parameters, the program, the device and the config of every point.

Rows are keyed by the full identity of a point (:func:`point_id`): the config file's content,
the program, the device and its preset's content, the ttsim version and the parameter values, so
resuming never takes a row of another sweep for one of this sweep's points. The CSV is locked
(``fcntl.flock``) while a sweep writes it: a second sweep on the same ``--out`` is refused. A last
row without its newline (a writer killed mid-row) is cut off and its point run again. Local
workers end with the main process (``PR_SET_PDEATHSIG`` on Linux, and a parent-pid watch).
"""

from __future__ import annotations

import csv
import ctypes
import fcntl
import hashlib
import io
import itertools
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable

from ttsim.config import load_config, parse_config_text, read_config_text
from ttsim.errors import ConfigurationError, TtsimError

RESULT_FIELDS = ["program", "op_code", "device_kernel_duration_ns", "device_kernel_duration_cycles",
                 "l1_used_bytes", "pcc", "status", "error"]
IDENTITY_FIELDS = ["preset", "config_sha256", "preset_sha256", "ttsim_version", "point_id"]
"""Columns after the results that say what was simulated (point_id hashes them and the values)."""
MAX_POINTS = 100_000
"""Largest grid a sweep runs (points)."""
MAX_OUT_BYTES = 1 << 28
"""Largest sweep CSV read back for resuming (bytes; a 100,000-point sweep writes ~60 MB)."""
PARENT_POLL_S = 1.0
"""How often a local worker checks that the main process still lives (s)."""

Todo = list[tuple[tuple[str, ...], dict[str, str]]]
"""Points to run: parameter values and the row's identity columns (with the program)."""


@dataclass(frozen=True)
class Param:
    """One swept key and its values (as YAML texts, parsed by the config loader)."""

    key: str
    values: tuple[str, ...]


def parse_param(text: str) -> Param:
    """``KEY=V1,V2,...``; commas inside brackets belong to a value (``conv.kernel=[3,3],[5,5]``).

    Repeated values (``relu,relu``; ``[3,3],[3, 3]``) are one value, the first spelling kept.
    """
    key, sep, rest = text.partition("=")
    if not sep or not key.strip() or not rest.strip():
        raise ConfigurationError(f"--param {_short(text)!r}: expected KEY=V1,V2,...")
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
        raise ConfigurationError(f"--param {_short(text)!r}: empty value")
    unique: dict[str, str] = {}
    for value in values:
        unique.setdefault(canonical_value(value), value)
    return Param(key.strip(), tuple(unique.values()))


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def canonical_value(text: str) -> str:
    """One spelling of a YAML value text (``[3, 3]`` and ``[3,3]`` agree); the text itself if it
    does not parse (the config loader reports that)."""
    try:
        return json.dumps(parse_config_text(text, "--param"), sort_keys=True, default=str)
    except TtsimError:
        return text


def grid(params: list[Param]) -> list[tuple[str, ...]]:
    """Every combination of values, in a fixed order (the first parameter varies slowest)."""
    keys = [p.key for p in params]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigurationError(f"--param {_short(key)}: given twice; list its values in one --param")
    size = 1
    for p in params:
        size *= len(p.values)
    if size > MAX_POINTS:
        raise ConfigurationError(f"--param: the grid has {size:,} points, more than the limit of {MAX_POINTS:,}")
    return list(itertools.product(*(p.values for p in params)))


def point_id(identity: dict[str, str], keys: tuple[str, ...], values: tuple[str, ...]) -> str:
    """Hash (hex) of everything a point's result depends on: program, identity columns, values."""
    document = {"program": identity["program"],
                **{k: identity[k] for k in IDENTITY_FIELDS if k != "point_id"},
                "params": [[k, canonical_value(v)] for k, v in zip(keys, values)]}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]


def run_point(config_text: str, label: str, keys: tuple[str, ...], values: tuple[str, ...],
              identity: dict[str, str]) -> dict[str, str]:
    """Simulate one point of the config text; returns its CSV row (never raises a ttsim error).

    ``identity`` holds the program, the resolved device and the other identity columns.
    """
    from ttsim.programs import registry  # imported in the worker process
    from ttsim.simulate import run

    row = dict(zip(keys, values))
    row.update({field: "" for field in RESULT_FIELDS})
    row.update(identity)
    try:
        config = load_config(parse_config_text(config_text, label), [f"{k}={v}" for k, v in zip(keys, values)],
                             label)
        op_code = registry.get(identity["program"]).op_code
        result = next(r for r in run(config, program=identity["program"], device=identity["preset"])
                      if r.op_code == op_code)
    except TtsimError as exc:
        row.update(status="error", error=" ".join(str(exc).split())[:500])
        return row
    row.update(op_code=result.op_code, status="ok",
               device_kernel_duration_ns=f"{result.device_kernel_duration_ns:.0f}",
               device_kernel_duration_cycles=str(result.device_kernel_duration_cycles),
               l1_used_bytes=str(result.profile.l1_used_bytes), pcc=f"{result.pcc:.6f}")
    return row


def read_sweep_results(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The swept keys and the rows of a sweep's results CSV (for plotting it afterwards)."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: sweep results not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigurationError(f"{path}: cannot read sweep results: {exc}") from None
    tail = [*RESULT_FIELDS, *IDENTITY_FIELDS]
    keys = fields[: -len(tail)]
    if fields[-len(tail):] != tail or not keys:
        raise ConfigurationError(f"{path}: not a ttsim sweep results CSV (columns {fields})")
    return keys, rows



def run_sweep(config_path: str, params: list[Param], program: str, device: str | None, out: Path,
              workers: int = 2, scheduler: str | None = None,
              on_result: Callable[[dict[str, str]], None] = lambda row: None) -> list[dict[str, str]]:
    """Run every point whose row is not already in ``out``; append each row as it finishes.

    Returns this sweep's rows (those found in ``out`` first). Raises a TtsimError before any point
    runs for a bad parameter, program, device, point config or ``out``, or when another sweep
    holds ``out``. Rows of other sweeps in ``out`` are kept and ignored.
    """
    from ttsim.output_paths import check_output_path

    keys = tuple(p.key for p in params)
    points = grid(params)
    text = read_config_text(config_path, config_path)
    identities = [_identity(text, config_path, keys, values, program, device) for values in points]
    check_output_path("--out", out)
    fields = [*keys, *RESULT_FIELDS, *IDENTITY_FIELDS]
    with out.open("a+", newline="") as handle:
        _lock(handle, out)
        done: dict[str, dict[str, str]] = {}
        for row in _read_rows(handle, out, fields):
            done.setdefault(row["point_id"], row)
        ours = {identity["point_id"] for identity in identities}
        rows = [row for row in done.values() if row["point_id"] in ours]
        todo = [(values, identity) for values, identity in zip(points, identities)
                if identity["point_id"] not in done]
        writer = csv.DictWriter(handle, fieldnames=fields)
        if handle.tell() == 0:
            writer.writeheader()
            _sync(handle)
        for row in _execute(text, config_path, keys, todo, workers, scheduler, handle.fileno()):
            writer.writerow(row)
            _sync(handle)
            rows.append(row)
            on_result(row)
    return rows


def _identity(text: str, label: str, keys: tuple[str, ...], values: tuple[str, ...], program: str,
              device: str | None) -> dict[str, str]:
    """Validate one point's program, config and device; returns its identity columns."""
    from ttsim.device.spec import preset_text
    from ttsim.version import __version__
    from ttsim.programs import registry

    if program not in registry.names():
        raise ConfigurationError(f"--program {_short(str(program), 40)!r}: unknown; "
                                 f"available: {', '.join(registry.names())}")
    config = load_config(parse_config_text(text, label), [f"{k}={v}" for k, v in zip(keys, values)], label)
    name = device or config.device
    identity = {"program": program, "preset": name,
                "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "preset_sha256": hashlib.sha256(preset_text(name).encode()).hexdigest(),
                "ttsim_version": __version__}
    identity["point_id"] = point_id(identity, keys, values)
    return identity


def _lock(handle: IO[str], out: Path) -> None:
    """Take the sweep lock on ``out`` or refuse: two sweeps must not both write one CSV."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ConfigurationError(
            f"--out {out}: another sweep is writing this file; wait for it or choose another --out") from None


def _sync(handle: IO[str]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _read_rows(handle: IO[str], out: Path, fields: list[str]) -> list[dict[str, str]]:
    """The rows of the locked ``out``; a torn last row (no newline) is cut off the file."""
    size = os.fstat(handle.fileno()).st_size
    if size > MAX_OUT_BYTES:
        raise ConfigurationError(f"{out}: {size:,} B, larger than a sweep CSV can be ({MAX_OUT_BYTES:,} B); "
                                 "choose another --out")
    handle.seek(0)
    try:
        content = handle.read()
        lines = content.splitlines(keepends=True)
        header = next(csv.reader(lines[:1]), []) if lines else []
        if lines and header != fields and not (len(lines) == 1 and _header_line(fields).startswith(lines[0])):
            raise ConfigurationError(
                f"{out}: holds a different sweep (columns {header[:12]}); choose another --out")
        if lines and not lines[-1].endswith("\n"):  # torn by a killed writer: run that point again
            content = "".join(lines[:-1])
            handle.truncate(len(content.encode()))
        handle.seek(0, io.SEEK_END)
        reader = csv.reader(io.StringIO(content, newline=""))
        next(reader, None)
        rows = []
        for cells in reader:
            if len(cells) != len(fields) or cells[fields.index("status")] not in ("ok", "error"):
                raise ConfigurationError(
                    f"{out}: line {reader.line_num}: not a row of this sweep ({len(cells)} fields, "
                    f"expected {len(fields)}); remove it or choose another --out")
            rows.append(dict(zip(fields, cells)))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigurationError(f"{out}: not a sweep CSV ({_short(str(exc), 80)}); choose another --out") from None
    return rows


def _header_line(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(fields)
    return buffer.getvalue()


def _execute(text: str, label: str, keys: tuple[str, ...], todo: Todo, workers: int,
             scheduler: str | None, lock_fd: int) -> Iterable[dict[str, str]]:
    if not todo:
        return
    if scheduler is not None:
        yield from _execute_dask(text, label, keys, todo, scheduler)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                             initargs=(os.getpid(), lock_fd)) as pool:
        futures = [pool.submit(run_point, text, label, keys, values, identity) for values, identity in todo]
        for future in as_completed(futures):
            yield future.result()


def _worker_init(parent: int, lock_fd: int) -> None:
    """Make a local worker end when the main process does, and close its copy of the locked fd
    (inherited by fork: an orphan must not keep the CSV locked)."""
    try:
        os.close(lock_fd)
    except OSError:
        pass
    if sys.platform.startswith("linux"):
        try:
            pr_set_pdeathsig = 1  # linux/prctl.h
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the main process died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """Exit the worker once its main process is gone (where PR_SET_PDEATHSIG is not available)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _execute_dask(text: str, label: str, keys: tuple[str, ...], todo: Todo,
                  scheduler: str) -> Iterable[dict[str, str]]:
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
        futures = [client.submit(run_point, text, label, keys, values, identity, pure=False)
                   for values, identity in todo]
        for future in dask_completed(futures):
            yield future.result()
