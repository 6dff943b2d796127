"""Pictures (ttsim/report/plot.py, ``ttsim plot``): each kind rendered from a real run to a file,
and its figure checked against the run it draws (rows, bars, their sizes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttsim.errors import TtsimError
from ttsim.report import plot
from ttsim.report.breakdown import breakdown
from ttsim.simulate import run
from ttsim.report.pareto import pareto_front
from ttsim.sweep import run_point

CONV: dict[str, Any] = {
    "batch": 1, "input_height": 16, "input_width": 16, "channels": 64, "kernel": [3, 3], "stride": [1, 1],
    "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu6", "dtype": "bfloat16",
    "weights_dtype": "bfloat16", "memory_layout": "height_sharded", "math_fidelity": "LoFi",
}
SMALL = {"name": "plot_small", "conv": CONV}
SMALL_S2 = {"name": "plot_s2", "conv": {**CONV, "stride": [2, 2]}}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results():
    """Both programs of SMALL, traced on core (0, 0)."""
    return run(SMALL, program="all", trace=True, trace_cores=[(0, 0)])


def rendered(figure, path: Path) -> bytes:
    plot.save(figure, path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000
    return data


def rectangles(ax) -> int:
    """Bars drawn by broken_barh (one path per bar in each collection)."""
    return sum(len(c.get_paths()) for c in ax.collections)


@pytest.mark.parametrize("index", [0, 3])  # classic halo, pool conv
def test_timeline_has_a_row_per_risc_and_a_bar_per_zone_and_event(results, tmp_path: Path, index: int) -> None:
    result = results[index]
    figure = plot.risc_timeline(result, (0, 0))
    rendered(figure, tmp_path / "timeline.png")
    ax = figure.axes[0]
    ran = [z.risc.value for z in result.profile.zones if z.core == (0, 0)]
    expected_rows = [r for r in ("BRISC", "NCRISC", "TRISC0", "TRISC1", "TRISC2") if r in ran]
    assert [t.get_text() for t in ax.get_yticklabels()] == expected_rows
    if result.op_code == "HaloDeviceOperation":
        assert expected_rows == ["BRISC", "NCRISC"]
    events = [e for e in result.profile.events if e[0] == (0, 0)]
    assert events
    assert rectangles(ax) == len(ran) + len(events)
    # the longest bar is the op's span on this core, in µs
    zones = [z for z in result.profile.zones if z.core == (0, 0)]
    end_us = max(z.end for z in zones) - min(z.start for z in result.profile.zones)
    assert ax.get_xlim()[1] >= end_us / result.profile.clock_mhz


def test_timeline_of_a_core_without_kernels_is_an_error(results) -> None:
    with pytest.raises(TtsimError, match=r"ran no kernel on core \(7, 7\)"):
        plot.risc_timeline(results[3], (7, 7))


def test_stall_breakdown_rows_add_up_to_the_kernel_zone(results, tmp_path: Path) -> None:
    result = results[3]
    figure = plot.stall_breakdown(result)
    rendered(figure, tmp_path / "stalls.png")
    ax = figure.axes[0]
    rows = breakdown(result)
    assert len(ax.get_yticklabels()) == len(rows)
    totals = [0.0] * len(rows)
    for bar in ax.patches:
        totals[round(bar.get_y() + bar.get_height() / 2)] += bar.get_width()
    us = 1 / result.profile.clock_mhz
    for row, total in zip(rows, totals):  # busy + stalls = the zone, per (core, RISC)
        assert total == pytest.approx(row.duration * us, rel=1e-9), row


def test_program_durations_bars_and_the_roofline_hook(results, tmp_path: Path) -> None:
    figure = plot.program_durations(results, roofline_ns={"plot_small": 5000.0})
    rendered(figure, tmp_path / "durations.png")
    ax = figure.axes[0]
    heights = sorted(round(bar.get_height() * 1000, 6) for bar in ax.patches)
    assert heights == sorted(round(r.device_kernel_duration_ns, 6) for r in results)
    tops = {}
    for bar in ax.patches:
        tops[bar.get_x()] = max(tops.get(bar.get_x(), 0.0), bar.get_y() + bar.get_height())
    per_program = sorted(sum(r.device_kernel_duration_ns for r in results if r.program == p) / 1000
                         for p in ("classic", "pool", "depthwise"))
    assert sorted(tops.values()) == pytest.approx(per_program)  # halo and conv stacked per program
    (line,) = ax.collections
    assert line.get_segments()[0][0][1] == pytest.approx(5.0)  # 5000 ns, drawn in µs
    assert len(plot.program_durations(results).axes[0].collections) == 0  # no roofline given


def test_sweep_pareto_marks_the_front(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    keys = ("pool.cb.in_cb.pages",)
    identity = {"program": "pool", "preset": "wormhole_b0"}
    rows = [run_point(config.read_text(), str(config), keys, (pages,), identity) for pages in ("1", "2", "4")]
    rows.append(run_point(config.read_text(), str(config), keys, ("0",), identity))  # invalid: a failed point
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "error"]
    figure = plot.sweep_pareto(rows, list(keys))
    rendered(figure, tmp_path / "sweep.png")
    ax = figure.axes[0]
    points, front = ax.collections
    assert len(points.get_offsets()) == 3
    assert len(front.get_offsets()) == len(pareto_front(rows))
    assert [t.get_text() for t in ax.texts] == [f"pool.cb.in_cb.pages={rows[i]['pool.cb.in_cb.pages']}"
                                                for i in sorted(pareto_front(rows),
                                                                key=lambda i: int(rows[i]["l1_used_bytes"]))]
    with pytest.raises(TtsimError, match="no sweep point ran successfully"):
        plot.sweep_pareto(rows[3:], list(keys))


def test_model_layers_a_bar_per_layer_and_program(results, tmp_path: Path) -> None:
    layers = plot.layer_durations(results + run(SMALL_S2, program="all"))
    assert list(layers) == ["plot_small", "plot_s2"]
    figure = plot.model_layers(layers)
    rendered(figure, tmp_path / "layers.png")
    ax = figure.axes[0]
    assert len(ax.patches) == 6  # 2 layers x (classic, pool, depthwise)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["plot_small", "plot_s2"]
    expected = sorted(sum(r.device_kernel_duration_ns for r in results if r.program == p) / 1000
                      for p in ("classic", "pool", "depthwise"))
    small_bars = sorted(bar.get_height() for bar in ax.patches if bar.get_x() < 0.5)
    assert small_bars == pytest.approx(expected)
    # a program missing for a layer leaves a gap, not a zero bar
    assert len(plot.model_layers({"a": {"pool": 1.0, "classic": 2.0}, "b": {"pool": 3.0}}).axes[0].patches) == 3


def test_missing_matplotlib_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(TtsimError, match=r"plotting needs matplotlib: pip install 'ttsim\[plot\]'"):
        plot.model_layers({"a": {"pool": 1.0}})


def ttsim_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_cli_plots_each_kind(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    commands = {
        "timeline.png": ["plot", "timeline", config, "--program", "pool", "--core", "1,0"],
        "stalls.svg": ["plot", "stalls", config, "--program", "classic"],
        "durations.png": ["plot", "durations", config],
        "layers.png": ["plot", "layers", config, config],
    }
    for name, argv in commands.items():
        done = ttsim_cli(*argv, "-o", tmp_path / name)
        assert done.returncode == 0, (name, done.stderr)
        assert (tmp_path / name).stat().st_size > 2000, name
    assert (tmp_path / "stalls.svg").read_text().lstrip().startswith("<?xml")
    sweep = ttsim_cli("sweep", config, "--param", "pool.cb.in_cb.pages=1,2", "--workers", "1",
                      "--out", tmp_path / "sweep.csv", "--plot", tmp_path / "front.png")
    assert sweep.returncode == 0, sweep.stderr
    again = ttsim_cli("plot", "sweep", tmp_path / "sweep.csv", "-o", tmp_path / "front2.png")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "front.png").read_bytes()[:8] == (tmp_path / "front2.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("argv, needle", [
    (["plot", "timeline", "{config}", "-o", "{tmp}/x.bmpx"], "unknown picture format '.bmpx'"),
    (["plot", "timeline", "{config}", "-o", "{tmp}/no_dir/x.png"], "does not exist"),
    (["plot", "timeline", "{config}", "--core", "0,0;1,0", "-o", "{tmp}/x.png"], "expected one core"),
    (["plot", "stalls", "{config}", "--program", "pol", "-o", "{tmp}/x.png"], "unknown program 'pol'"),
    (["plot", "sweep", "{config}", "-o", "{tmp}/x.png"], "not a ttsim sweep results CSV"),
])
def test_cli_plot_bad_input_is_one_line(tmp_path: Path, argv: list[str], needle: str) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    done = ttsim_cli(*(a.format(config=config, tmp=tmp_path) for a in argv))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("ttsim: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert needle in done.stderr
    assert not [p for p in tmp_path.iterdir() if p.name != "small.yaml"]  # nothing written
