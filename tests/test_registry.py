"""The program registry: classic and pool are two registered definitions, and a third program
registered here (a test-only variant of the pool program with its own name, op code and options)
shows up everywhere programs are listed: config sections, ``ttsim.run``, ``--program``, ``ttsim
compare`` (paired by name and op code, whatever the order of the results) and the JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from click.testing import CliRunner

import ttsim
from ttsim.cli import main
from ttsim.config import ProgramOptions, load_config
from ttsim.errors import ConfigurationError
from ttsim.programs import registry
from ttsim.programs.depthwise_pool import POOL_OP_CODE, PoolProgram, build_pool_program, report_tensors
from ttsim.programs.registry import ConvSetup, ProgramDefinition
from ttsim.report.compare import Comparison, comparison_document

SMALL_CONV: dict[str, Any] = {
    "batch": 1, "input_height": 8, "input_width": 8, "channels": 32, "kernel": [3, 3],
    "stride": [1, 1], "dilation": [1, 1], "padding": [1, 1], "bias": True, "activation": "relu",
    "dtype": "bfloat16", "weights_dtype": "bfloat16", "memory_layout": "height_sharded",
    "math_fidelity": "LoFi",
}
DUMMY_OP_CODE = "DummyDepthwise"
BUILTIN_MODULES = {name: module for name, (module, _) in registry.BUILTIN_PROGRAMS.items()}


class DummyOptions(ProgramOptions):
    """The ``dummy:`` section: only the overrides every program accepts."""


def _build_dummy(setup: ConvSetup, options: DummyOptions) -> PoolProgram:
    built = build_pool_program(setup.device, setup.conv, setup.geom, setup.pc, setup.halo, setup.halo_buffer,
                               setup.weight, setup.bias, options.cb_pages())
    built.program.op_code = DUMMY_OP_CODE
    return built


DUMMY = ProgramDefinition(name="dummy", op_code=DUMMY_OP_CODE, options_model=DummyOptions, channel_align=32,
                          build=_build_dummy, report=report_tensors, description="pool kernels, another name")


@pytest.fixture
def dummy() -> Iterator[ProgramDefinition]:
    registry.register(DUMMY)
    try:
        yield DUMMY
    finally:
        registry.unregister("dummy")


def small_config(**sections: Any) -> dict[str, Any]:
    return {"name": "small", "conv": dict(SMALL_CONV), **sections}


def test_classic_and_pool_are_the_registered_programs_in_run_order() -> None:
    assert registry.names()[:2] == ("classic", "pool")
    assert registry.get("classic").op_code == "OptimizedConvNew"
    assert registry.get("pool").op_code == POOL_OP_CODE
    assert registry.get("pool").channel_align == 32 and registry.get("classic").channel_align == 8


def test_an_unknown_program_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown program 'matmul'; available: classic, pool, .*all"):
        registry.get("matmul")
    with pytest.raises(ConfigurationError, match="unknown program 'matmul'"):
        ttsim.run(small_config(), program="matmul")


@pytest.mark.parametrize(("name", "message"), [
    ("all", "program name 'all'"), ("conv", "program name 'conv'"), ("My-Prog", "program name 'My-Prog'"),
    ("options", "program name 'options'"),  # OpConfig.options reads the sections
    ("pool", "program 'pool' is already registered"),
])
def test_bad_or_taken_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        registry.register(ProgramDefinition(name=name, op_code="X", options_model=DummyOptions, channel_align=32,
                                            build=_build_dummy, report=report_tensors))
    assert registry.names()[:2] == ("classic", "pool")


def test_a_program_section_exists_by_registration_only(dummy: ProgramDefinition) -> None:
    config = load_config(small_config(dummy={"core_grid": [2, 1]}))
    assert config.options("dummy").core_grid == (2, 1)
    assert config.options("pool").core_grid is None  # another program's section is untouched
    with pytest.raises(ConfigurationError, match=r"<dict>: unknown key 'dummy\.bogus'"):
        load_config(small_config(dummy={"bogus": 1}))
    # the built-in sections keep their messages
    with pytest.raises(ConfigurationError, match=r"unknown key 'classic\.bogus'"):
        load_config(small_config(classic={"bogus": 1}))
    with pytest.raises(ConfigurationError, match=r"classic\.act_block_h_override: act_block_h_override must "
                                                 r"be a multiple of 32, got 7"):
        load_config(small_config(classic={"act_block_h_override": 7}))


def test_without_the_registration_the_section_is_an_unknown_key() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown key 'dummy'"):
        load_config(small_config(dummy={}))


def test_run_all_runs_every_registered_program(dummy: ProgramDefinition) -> None:
    results = ttsim.run(small_config(dummy={"core_grid": [1, 1]}))
    assert [(r.program, r.op_code) for r in results] == [
        ("classic", "HaloDeviceOperation"), ("classic", "OptimizedConvNew"),
        ("pool", "HaloDeviceOperation"), ("pool", POOL_OP_CODE),
        ("depthwise", "HaloDeviceOperation"), ("depthwise", "Conv2dDepthwise"),
        ("dummy", "HaloDeviceOperation"), ("dummy", DUMMY_OP_CODE)]
    pool, mine = results[3], results[7]
    assert mine.pcc is not None and mine.pcc > 0.999
    assert mine.profile.core_count == 1 < pool.profile.core_count  # its own section was applied
    assert mine.info["inputs"][1:] == pool.info["inputs"][1:]  # its report hook: the same weights, bias
    assert mine.info["program"] == "dummy" and mine.info["block_config"] is None


def test_a_definition_whose_builder_makes_another_op_is_refused(dummy: ProgramDefinition) -> None:
    registry.unregister("dummy")
    registry.register(ProgramDefinition(name="dummy", op_code="SomethingElse", options_model=DummyOptions,
                                        channel_align=32, build=_build_dummy, report=report_tensors))
    with pytest.raises(ConfigurationError, match="program 'dummy' built op 'DummyDepthwise'; its definition "
                                                 "says 'SomethingElse'"):
        ttsim.run(small_config(), program="dummy")


def test_compare_pairs_ops_by_program_name_not_position() -> None:
    results = ttsim.run(small_config())
    other = ttsim.run({**small_config(), "name": "other", "seed": 1})
    op_codes = {d.name: d.op_code for d in registry.definitions()}
    forward = Comparison.from_results("small", results, op_codes)
    shuffled = Comparison.from_results("small", [*reversed(results), *other], op_codes)
    assert forward == shuffled
    assert forward.ops["classic"] is results[1] and forward.ops["pool"] is results[3]
    speedup = results[1].device_kernel_duration_ns / results[3].device_kernel_duration_ns
    assert shuffled.speedup("pool") == pytest.approx(speedup, rel=1e-12)
    assert shuffled.speedup("classic") == pytest.approx(1.0)
    # a program with no op in the results is left out, not paired with a neighbour
    only_pool = Comparison.from_results("small", results[2:4], op_codes)
    assert list(only_pool.ops) == ["pool"] and only_pool.speedup("pool") is None


def test_cli_lists_runs_and_compares_a_registered_program(dummy: ProgramDefinition, tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small_config()))
    runner = CliRunner()
    help_text = runner.invoke(main, ["run", "--help"]).output
    assert "[classic|pool|depthwise|dummy|all]" in help_text
    assert "[classic|pool|depthwise|dummy]" in runner.invoke(main, ["sweep", "--help"]).output
    done = runner.invoke(main, ["run", str(path), "--program", "dummy"])
    assert done.exit_code == 0, done.output
    assert DUMMY_OP_CODE in done.output
    json_path = tmp_path / "compare.json"
    done = runner.invoke(main, ["compare", str(path), "--json", str(json_path)], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "dummy" in done.output
    op = json.loads(json_path.read_text())["ops"][0]
    results = ttsim.run(path)
    by_program = {r.program: r for r in results if r.op_code != "HaloDeviceOperation"}
    for name in ("classic", "pool", "dummy"):
        assert op[f"{name}_device_kernel_duration_ns"] == by_program[name].device_kernel_duration_ns
        assert op[f"{name}_pcc"] == by_program[name].pcc
    assert op["speedup_classic_over_dummy"] == pytest.approx(
        by_program["classic"].device_kernel_duration_ns / by_program["dummy"].device_kernel_duration_ns)
    assert "speedup_classic_over_classic" not in op
    doc = comparison_document([Comparison.from_results(
        "small", results, {d.name: d.op_code for d in registry.definitions()})])
    assert doc["ops"][0] == op


# -- built-in programs load on first use -------------------------------------------------------------

def _fresh_python(code: str) -> str:
    """stdout of ``code`` in a new interpreter (nothing imported yet); fails on an error."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _loaded(code: str) -> list[str]:
    """The built-in programs whose module is imported once ``code`` has run in a new interpreter."""
    return json.loads(_fresh_python(
        f"import json, sys\n{code}\n"
        f"print(json.dumps([n for n, m in {BUILTIN_MODULES!r}.items() if m in sys.modules]))"))


def test_listing_programs_and_validating_configs_import_no_program_module() -> None:
    assert _loaded("from ttsim.programs import registry\nprint(registry.names(), file=sys.stderr)") == []
    # every section is validated (an unknown key in classic: fails), yet no builder is imported
    code = (f"from ttsim.config import load_config\nfrom ttsim.errors import ConfigurationError\n"
            f"config = load_config({small_config(pool={'dst_batch': 2})!r})\n"
            f"assert config.options('pool').dst_batch == 2 and config.options('classic').act_block_h_override == 0\n"
            f"try:\n    load_config({small_config(classic={'bogus': 1})!r})\n"
            f"except ConfigurationError as error:\n    assert \"unknown key 'classic.bogus'\" in str(error)\n"
            f"else:\n    raise AssertionError('not refused')")
    assert _loaded(code) == []


@pytest.mark.parametrize("program", list(registry.BUILTIN_PROGRAMS))
def test_a_run_of_one_program_imports_that_program_alone(program: str) -> None:
    code = f"import ttsim\nttsim.run({small_config()!r}, program={program!r}, timing_only=True)"
    assert _loaded(code) == [program]
    assert _loaded("from ttsim.programs import registry\nregistry.definitions()") == list(BUILTIN_MODULES)


def test_the_builtin_options_models_are_the_programs_own() -> None:
    for name, (_, options_model) in registry.BUILTIN_PROGRAMS.items():
        assert registry.get(name).options_model is options_model
        assert registry.options_model(name) is options_model
    assert list(registry.options_models().values()) == [registry.get(n).options_model for n in registry.names()]


def test_a_builtin_name_is_taken_before_its_module_is_imported() -> None:
    code = ("import sys\nfrom ttsim.config import ProgramOptions\nfrom ttsim.errors import ConfigurationError\n"
            "from ttsim.programs import registry\n"
            "mine = registry.ProgramDefinition(name='depthwise', op_code='X', options_model=ProgramOptions,\n"
            "                                  channel_align=32, build=print, report=print)\n"
            "try:\n    registry.register(mine)\nexcept ConfigurationError as error:\n    print(error)\n"
            "print('ttsim.programs.depthwise' in sys.modules)\n"
            "registry.unregister('depthwise')\nprint(registry.names())\nregistry.register(mine)\n"
            "print(registry.names(), registry.get('depthwise') is mine)")
    lines = _fresh_python(code).splitlines()
    assert lines[0] == "program 'depthwise' is already registered (by ttsim.programs.depthwise)"
    assert lines[1] == "False"  # refused without importing the program
    others = tuple(n for n in BUILTIN_MODULES if n != "depthwise")
    assert lines[2] == str(others)  # unregistered: gone, and its name free
    assert lines[3] == f"{(*others, 'depthwise')} True"
