"""``ttsim sweep``: parameter parsing, the grid, a local sweep through the CLI (CSV, table order,
Pareto marks), failed points, resuming from the CSV, and the same sweep on a Dask cluster.

The seed config mobilenetv2_op53 runs in ~0.1 s per point, so a 4-point sweep takes about a second.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttsim.config import load_config
from ttsim.errors import ConfigurationError
from ttsim.simulate import run
import hashlib

import ttsim
from ttsim.report.pareto import pareto_front
from ttsim.sweep import IDENTITY_FIELDS, RESULT_FIELDS, Param, grid, parse_param

ROOT = Path(__file__).resolve().parents[1]
OP53 = ROOT / "configs" / "mobilenetv2_op53.yaml"
PARAMS = ["pool.cb.in_cb.pages=2,4", "conv.activation=relu,relu6"]
KEYS = ["pool.cb.in_cb.pages", "conv.activation"]
POINTS = [("2", "relu"), ("2", "relu6"), ("4", "relu"), ("4", "relu6")]


def sweep_cli(out: Path, *params: str, extra: tuple[str, ...] = (), timeout: float = 120
              ) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "ttsim.cli", "sweep", str(OP53)]
    for param in params:
        args += ["--param", param]
    args += ["--out", str(out), *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"})


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def table_rows(stdout: str, n_keys: int) -> list[list[str]]:
    """Data rows of the sweep table: key values, duration, L1, PCC, Pareto mark."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in stdout.splitlines()
            if line.startswith("│")]
    assert all(len(row) == n_keys + 4 for row in rows), rows
    return rows


def dominated(point: tuple[float, int], others: list[tuple[float, int]]) -> bool:
    d, b = point
    return any(od <= d and ob <= b and (od, ob) != (d, b) for od, ob in others)


@pytest.fixture(scope="module")
def expected_cycles() -> dict[tuple[str, str], int]:
    """Each point simulated directly through the Python API (the independent reference)."""
    cycles = {}
    for pages, activation in POINTS:
        config = load_config(OP53, [f"pool.cb.in_cb.pages={pages}", f"conv.activation={activation}"])
        cycles[(pages, activation)] = run(config, program="pool")[-1].device_kernel_duration_cycles
    return cycles


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("sweep") / "local.csv"
    return sweep_cli(out, *PARAMS), out


# -- parse_param and grid -------------------------------------------------------------------------

@pytest.mark.parametrize("text, key, values", [
    ("pool.cb.in_cb.pages=2,4,8", "pool.cb.in_cb.pages", ("2", "4", "8")),
    ("conv.kernel=[3,3],[5,5]", "conv.kernel", ("[3,3]", "[5,5]")),
    ("conv.kernel=[3, 3], [5, 5]", "conv.kernel", ("[3, 3]", "[5, 5]")),
    ("pool.cb={in_cb: {pages: 2}},{mul_cb: {pages: 8}}", "pool.cb",
     ("{in_cb: {pages: 2}}", "{mul_cb: {pages: 8}}")),
    ("x=[[1,2],[3]],[4]", "x", ("[[1,2],[3]]", "[4]")),
    (" conv.activation = relu , relu6 ", "conv.activation", ("relu", "relu6")),
    ("conv.channels=64", "conv.channels", ("64",)),
])
def test_parse_param(text: str, key: str, values: tuple[str, ...]) -> None:
    assert parse_param(text) == Param(key, values)


@pytest.mark.parametrize("text, expected", [
    ("conv.channels", "expected KEY=V1,V2,..."),
    ("=1,2", "expected KEY=V1,V2,..."),
    ("conv.channels=", "expected KEY=V1,V2,..."),
    ("conv.channels=  ", "expected KEY=V1,V2,..."),
    ("conv.channels=32,,64", "empty value"),
    ("conv.channels=32,", "empty value"),
    ("conv.kernel=[3,3],", "empty value"),
])
def test_parse_param_rejects(text: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_param(text)
    assert str(info.value) == f"--param {text!r}: {expected}"


def test_grid_is_the_cartesian_product_first_parameter_slowest() -> None:
    params = [Param("a", ("1", "2")), Param("b", ("x", "y", "z")), Param("c", ("p", "q"))]
    expected = [(a, b, c) for a in ("1", "2") for b in ("x", "y", "z") for c in ("p", "q")]
    assert grid(params) == expected
    assert len(grid(params)) == 2 * 3 * 2
    assert grid([Param("a", ("1",))]) == [("1",)]


def test_pareto_front_on_hand_made_rows() -> None:
    def row(duration, l1, status="ok"):
        return {"device_kernel_duration_ns": str(duration), "l1_used_bytes": str(l1), "status": status}

    rows = [row(100, 500), row(90, 600), row(90, 600), row(80, 900), row(95, 700), row(120, 400),
            row("", "", "error"), row(85, 950)]
    # 95/700 is beaten by 90/600; 85/950 by 80/900; equal points do not beat each other
    assert pareto_front(rows) == {0, 1, 2, 3, 5}
    assert pareto_front([row("", "", "error")]) == set()


# -- a local sweep through the CLI ----------------------------------------------------------------

def test_local_sweep_writes_one_ok_row_per_point(local_sweep, expected_cycles) -> None:
    done, out = local_sweep
    assert done.returncode == 0, done.stderr
    fields, rows = read_csv(out)
    assert fields == [*KEYS, *RESULT_FIELDS, *IDENTITY_FIELDS]
    assert {r["preset"] for r in rows} == {"wormhole_b0"}
    assert {r["config_sha256"] for r in rows} == {hashlib.sha256(OP53.read_bytes()).hexdigest()}
    preset = ROOT / "ttsim" / "device" / "presets" / "wormhole_b0.yaml"
    assert {r["preset_sha256"] for r in rows} == {hashlib.sha256(preset.read_bytes()).hexdigest()}
    assert {r["ttsim_version"] for r in rows} == {ttsim.__version__}
    assert len({r["point_id"] for r in rows}) == len(POINTS)
    assert sorted((r[KEYS[0]], r[KEYS[1]]) for r in rows) == POINTS
    for r in rows:
        assert r["status"] == "ok" and r["error"] == ""
        assert r["program"] == "pool" and r["op_code"] == "Conv2dDepthwisePool"
        assert int(r["device_kernel_duration_cycles"]) == expected_cycles[(r[KEYS[0]], r[KEYS[1]])]
        assert float(r["pcc"]) > 0.999
    l1 = {r[KEYS[0]]: set() for r in rows}
    for r in rows:
        l1[r[KEYS[0]]].add(int(r["l1_used_bytes"]))
    assert len(l1["2"]) == len(l1["4"]) == 1  # L1 depends on the CB pages, not the activation
    assert l1["4"].pop() - l1["2"].pop() == 2 * 2048
    assert "4 points, 0 failed; results in" in done.stdout


def test_local_sweep_table_is_sorted_with_pareto_marks(local_sweep) -> None:
    done, out = local_sweep
    assert done.returncode == 0, done.stderr
    _, rows = read_csv(out)
    table = table_rows(done.stdout, len(KEYS))
    assert len(table) == len(rows)
    durations = [float(t[2].replace(",", "")) for t in table]
    assert durations == sorted(durations)
    by_point = {(r[KEYS[0]], r[KEYS[1]]): (float(r["device_kernel_duration_ns"]), int(r["l1_used_bytes"]))
                for r in rows}
    assert [(float(t[2].replace(",", "")), int(t[3].replace(",", ""))) for t in table] == \
        sorted(by_point.values())
    points = list(by_point.values())
    for t in table:
        point = by_point[(t[0], t[1])]
        assert float(t[2].replace(",", "")) == point[0] and int(t[3].replace(",", "")) == point[1]
        assert t[5] == ("" if dominated(point, points) else "*"), t
    marks = [t[5] for t in table]
    assert "*" in marks and "" in marks  # the data has both: the check is not vacuous


def test_failed_points_are_results(tmp_path: Path) -> None:
    out = tmp_path / "failing.csv"
    done = sweep_cli(out, "pool.cb.in_cb.pages=1,4,2000")
    assert done.returncode == 0, done.stderr
    _, rows = read_csv(out)
    status = {r["pool.cb.in_cb.pages"]: r for r in rows}
    assert sorted(status) == ["1", "2000", "4"]
    assert status["4"]["status"] == "ok" and status["4"]["error"] == ""
    undersized, overflow = status["1"], status["2000"]
    for r in (undersized, overflow):
        assert r["status"] == "error"
        assert r["device_kernel_duration_ns"] == "" and r["l1_used_bytes"] == ""
    assert "cb_reserve_back(CB 0 'in_cb', 2)" in undersized["error"]
    assert "holds 1 pages" in undersized["error"]
    assert "L1 overflow on core (0,0): allocating 'in_cb' (4,096,000 B)" in overflow["error"]
    assert "\n" not in overflow["error"]  # one CSV line per point
    flat = " ".join(done.stdout.split())
    assert "failed pool.cb.in_cb.pages=1: kernel 'reader_pool_2d' will call cb_reserve_back" in flat
    assert "failed pool.cb.in_cb.pages=2000: L1 overflow" in flat
    assert "3 points, 2 failed" in flat
    table = table_rows(done.stdout, 1)
    assert [t[0] for t in table] == ["4"] and table[0][4] == "*"  # only ok points are ranked


# -- resume ---------------------------------------------------------------------------------------

def test_resume_runs_only_the_missing_points(local_sweep, tmp_path: Path) -> None:
    done, full = local_sweep
    assert done.returncode == 0
    lines = full.read_bytes().splitlines(keepends=True)
    header, data = lines[0], lines[1:]
    assert len(data) == 4
    # keep 2 rows, the first with a sentinel duration no simulation produces; drop the other 2
    first_row = next(csv.reader(io.StringIO(data[0].decode())))
    first_row[len(KEYS) + RESULT_FIELDS.index("device_kernel_duration_ns")] = "7"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(first_row)
    partial = tmp_path / "partial.csv"
    partial.write_bytes(header + buffer.getvalue().encode() + data[1])
    before = partial.read_bytes()

    again = sweep_cli(partial, *PARAMS)
    assert again.returncode == 0, again.stderr
    after = partial.read_bytes()
    assert after.startswith(before)  # untouched rows byte-identical, new rows appended
    _, rows = read_csv(partial)
    assert len(rows) == 4
    assert sorted((r[KEYS[0]], r[KEYS[1]]) for r in rows) == POINTS
    sentinel = rows[0]
    assert sentinel["device_kernel_duration_ns"] == "7"  # not re-run
    # the re-run points are the dropped ones and agree with the first run
    _, original = read_csv(full)
    first = {(r[KEYS[0]], r[KEYS[1]]): r for r in original}
    for r in rows[2:]:
        assert r == first[(r[KEYS[0]], r[KEYS[1]])]
    # the table ranks the kept rows as they are in the file
    table = table_rows(again.stdout, len(KEYS))
    assert (table[0][0], table[0][1], table[0][2]) == (sentinel[KEYS[0]], sentinel[KEYS[1]], "7")
    assert "4 points, 0 failed" in " ".join(again.stdout.split())


def test_resume_of_a_complete_sweep_changes_nothing(local_sweep, tmp_path: Path) -> None:
    _, full = local_sweep
    copy = tmp_path / "complete.csv"
    copy.write_bytes(full.read_bytes())
    start = time.perf_counter()
    again = sweep_cli(copy, *PARAMS)
    assert again.returncode == 0, again.stderr
    assert copy.read_bytes() == full.read_bytes()
    assert len(table_rows(again.stdout, len(KEYS))) == 4
    assert time.perf_counter() - start < 30  # a hang guard: the resumed sweep simulates nothing


def test_csv_of_a_different_sweep_is_rejected(local_sweep, tmp_path: Path) -> None:
    _, full = local_sweep
    other = tmp_path / "other.csv"
    other.write_bytes(full.read_bytes())
    before = other.read_bytes()
    done = sweep_cli(other, "conv.activation=relu,relu6")  # one key, not two
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"ttsim: error: {other}: holds a different sweep (columns ")
    assert "choose another --out" in done.stderr
    assert other.read_bytes() == before


@pytest.mark.parametrize("param, expected", [
    ("pool.cb.in_cb.pages", "--param 'pool.cb.in_cb.pages': expected KEY=V1,V2,..."),
    ("pool.cb.in_cb.pages=2,,4", "--param 'pool.cb.in_cb.pages=2,,4': empty value"),
    ("=2,4", "--param '=2,4': expected KEY=V1,V2,..."),
    ("conv.bogus=1,2", "unknown key 'conv.bogus'"),
])
def test_bad_param_exits_2_before_writing(tmp_path: Path, param: str, expected: str) -> None:
    out = tmp_path / "never.csv"
    done = sweep_cli(out, param)
    assert done.returncode == 2
    assert done.stderr.startswith("ttsim: error: ") and expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_out_in_a_missing_folder_exits_2(tmp_path: Path) -> None:
    done = sweep_cli(tmp_path / "missing" / "x.csv", "pool.cb.in_cb.pages=2,4")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


# -- Dask -----------------------------------------------------------------------------------------

def _points_run(cluster) -> int:
    """run_point tasks the scheduler has seen finish (the cluster is in this process)."""
    prefix = cluster.scheduler.task_prefixes.get("run_point")
    return 0 if prefix is None else prefix.state_counts["memory"]


def test_dask_sweep_matches_the_local_one(cluster, local_sweep, tmp_path: Path) -> None:
    _, local_out = local_sweep
    out = tmp_path / "dask.csv"
    ran = _points_run(cluster)
    done = sweep_cli(out, *PARAMS, extra=("--scheduler", cluster.scheduler_address))
    assert done.returncode == 0, done.stderr
    assert _points_run(cluster) - ran == 4  # every point ran on the cluster
    _, rows = read_csv(out)
    _, local = read_csv(local_out)
    key = lambda r: (r[KEYS[0]], r[KEYS[1]])  # noqa: E731
    assert sorted(rows, key=key) == sorted(local, key=key)

    # resume on the cluster: only the dropped point is submitted
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-1]))
    ran = _points_run(cluster)
    again = sweep_cli(out, *PARAMS, extra=("--scheduler", cluster.scheduler_address))
    assert again.returncode == 0, again.stderr
    assert _points_run(cluster) - ran == 1
    _, resumed = read_csv(out)
    assert sorted(resumed, key=key) == sorted(local, key=key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # distributed retries for the client's 10 s connect timeout
def test_unreachable_scheduler_exits_2(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.perf_counter()
    done = sweep_cli(tmp_path / "u.csv", "pool.cb.in_cb.pages=2,4", extra=("--scheduler", address), timeout=60)
    assert time.perf_counter() - start < 30
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"ttsim: error: --scheduler {address}: cannot connect (")
