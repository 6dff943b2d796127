"""Sweeps that cannot mix results (issue 15): rows keyed by the full identity of a point, a lock
on ``--out``, duplicate values collapsed, torn rows recomputed, the program and the device
checked before the grid, and local workers that die with the main process.

op53 runs in ~0.1 s per point; every sweep here has at most 4 points except the orphan test's.
"""

from __future__ import annotations

import csv
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttsim.config import load_config
from ttsim.errors import ConfigurationError
from ttsim.simulate import run
from ttsim.sweep import MAX_POINTS, Param, grid, parse_param, run_sweep

ROOT = Path(__file__).resolve().parents[1]
OP53 = ROOT / "configs" / "mobilenetv2_op53.yaml"
KEY = "conv.activation"


def sweep(config: Path, out: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttsim.cli", "sweep", str(config), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"})


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def cycles(program: str, activation: str, config: Path = OP53) -> str:
    """The independent reference: the point simulated through the Python API."""
    return str(run(load_config(config, [f"{KEY}={activation}"]), program=program)[-1].device_kernel_duration_cycles)


def test_another_program_on_the_same_out_is_not_taken_for_this_one(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    assert sweep(OP53, out, "--param", f"{KEY}=relu", "--program", "pool").returncode == 0
    done = sweep(OP53, out, "--param", f"{KEY}=relu", "--program", "classic")
    assert done.returncode == 0, done.stderr
    rows = rows_of(out)
    assert [(r["program"], r["device_kernel_duration_cycles"]) for r in rows] == [
        ("pool", cycles("pool", "relu")), ("classic", cycles("classic", "relu"))]
    assert rows[0]["point_id"] != rows[1]["point_id"]
    table = [line for line in done.stdout.splitlines() if line.startswith("│")]
    assert len(table) == 1 and f"{int(rows[1]['device_kernel_duration_ns']):,}" in table[0]
    assert "1 points, 0 failed" in done.stdout


def test_an_edited_config_or_another_device_is_run_again(tmp_path: Path) -> None:
    config = tmp_path / "op53.yaml"
    config.write_text(OP53.read_text())
    out = tmp_path / "s.csv"
    assert sweep(config, out, "--param", f"{KEY}=relu").returncode == 0
    config.write_text(OP53.read_text().replace("channels: 112", "channels: 64"))
    assert sweep(config, out, "--param", f"{KEY}=relu").returncode == 0
    assert sweep(config, out, "--param", f"{KEY}=relu", "--device", "blackhole").returncode == 0
    rows = rows_of(out)
    assert len(rows) == 3 and len({r["point_id"] for r in rows}) == 3
    assert len({r["config_sha256"] for r in rows}) == 2
    assert [r["preset"] for r in rows] == ["wormhole_b0", "wormhole_b0", "blackhole"]
    assert rows[1]["device_kernel_duration_cycles"] == cycles("pool", "relu", config)
    assert rows[0]["device_kernel_duration_cycles"] != rows[1]["device_kernel_duration_cycles"]


@pytest.mark.parametrize("args, expected", [
    (["--device", "zz"], "unknown device 'zz'; available: blackhole, wormhole_b0"),
    (["--param", f"{KEY}=relu6"], f"--param {KEY}: given twice"),
])
def test_bad_device_or_repeated_key_exits_2_before_the_grid(tmp_path: Path, args: list[str], expected: str) -> None:
    out = tmp_path / "never.csv"
    start = time.perf_counter()
    done = sweep(OP53, out, "--param", f"{KEY}=relu,relu6", *args)
    assert time.perf_counter() - start < 30
    assert done.returncode == 2
    assert done.stderr.startswith("ttsim: error: ") and expected in done.stderr
    assert done.stderr.count("\n") == 1
    assert not out.exists()


def test_api_refuses_an_unknown_program_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "never.csv"
    with pytest.raises(ConfigurationError, match="--program 'bogus': unknown; available: classic, pool"):
        run_sweep(str(OP53), [parse_param(f"{KEY}=relu")], "bogus", None, out)
    assert not out.exists()


def test_duplicate_values_are_one_point(tmp_path: Path) -> None:
    assert parse_param(f"{KEY}=relu,relu,relu6,relu") == Param(KEY, ("relu", "relu6"))
    assert parse_param("conv.kernel=[3,3],[3, 3],[5,5]") == Param("conv.kernel", ("[3,3]", "[5,5]"))
    out = tmp_path / "s.csv"
    done = sweep(OP53, out, "--param", f"{KEY}=relu,relu")
    assert done.returncode == 0, done.stderr
    assert [r[KEY] for r in rows_of(out)] == ["relu"]


def test_grid_size_is_bounded() -> None:
    values = tuple(str(v) for v in range(1000))
    with pytest.raises(ConfigurationError, match=f"the grid has 1,000,000 points, more than the limit of {MAX_POINTS:,}"):
        grid([Param("a", values), Param("b", values)])


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    with out.open("a") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)  # what a running sweep holds
        done = sweep(OP53, out, "--param", f"{KEY}=relu,relu6")
    assert done.returncode == 2
    assert done.stderr == (f"ttsim: error: --out {out}: another sweep is writing this file; wait for it or "
                           "choose another --out\n")
    assert out.read_text() == ""
    again = sweep(OP53, out, "--param", f"{KEY}=relu,relu6")  # the lock is gone with its holder
    assert again.returncode == 0, again.stderr
    assert len(rows_of(out)) == 2


def test_torn_last_row_is_discarded_and_recomputed(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    assert sweep(OP53, out, "--param", f"{KEY}=relu,relu6").returncode == 0
    whole = rows_of(out)
    text = out.read_text()
    out.write_text(text[:-25])  # an outside writer cut the last row
    done = sweep(OP53, out, "--param", f"{KEY}=relu,relu6")
    assert done.returncode == 0, done.stderr
    rows = rows_of(out)
    assert rows == whole  # the torn row was cut off and its point run again, nothing glued
    assert out.read_text() == text
    assert "2 points, 0 failed" in done.stdout


def test_a_malformed_row_inside_the_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    assert sweep(OP53, out, "--param", f"{KEY}=relu,relu6").returncode == 0
    lines = out.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:40] + "\n"
    out.write_text("".join(lines))
    before = out.read_bytes()
    done = sweep(OP53, out, "--param", f"{KEY}=relu,relu6")
    assert done.returncode == 2
    assert done.stderr.startswith(f"ttsim: error: {out}: line 2: not a row of this sweep")
    assert out.read_bytes() == before


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_workers_end_when_the_main_process_is_killed(tmp_path: Path) -> None:
    seeds = ",".join(str(s) for s in range(40))
    main = subprocess.Popen([sys.executable, "-m", "ttsim.cli", "sweep", str(OP53), "--param", f"seed={seeds}",
                             "--out", str(tmp_path / "s.csv"), "--workers", "2"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline and main.poll() is None:
            time.sleep(0.2)
            workers = _children(main.pid)
        assert len(workers) >= 2, "the sweep never started its workers"
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)


def test_another_ttsim_version_is_run_again(tmp_path: Path, monkeypatch) -> None:
    """Through the API in-process: the same sweep under another ttsim version is not resumed."""
    import ttsim.version

    out = tmp_path / "s.csv"
    params = [parse_param(f"{KEY}=relu")]
    first = run_sweep(str(OP53), params, "pool", None, out, workers=1)
    assert run_sweep(str(OP53), params, "pool", None, out, workers=1) == first  # resumed: same row
    monkeypatch.setattr(ttsim.version, "__version__", "99.0.0")
    second = run_sweep(str(OP53), params, "pool", None, out, workers=1)
    rows = rows_of(out)
    assert [r["ttsim_version"] for r in rows] == [first[0]["ttsim_version"], "99.0.0"]
    assert second[0]["point_id"] != first[0]["point_id"]
    assert second[0]["device_kernel_duration_cycles"] == cycles("pool", "relu")
