"""Hostile inputs (issue 15): huge values, pathological YAML, special files, unreadable configs,
bad output paths and bad Python API arguments each end in one ``ttsim: error:`` line, exit
status 2, within seconds, with nothing simulated or written.

The CLI runs in-process (click's CliRunner) except where a blocking open must be bounded by a
subprocess timeout (the FIFO).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import ttsim
from ttsim.cli import main
from ttsim.bounded_yaml import MAX_YAML_DEPTH, MAX_YAML_NODES
from ttsim.config import MAX_INT, load_config
from ttsim.errors import ConfigurationError, TtsimError

ROOT = Path(__file__).resolve().parents[1]
OP53 = ROOT / "configs" / "mobilenetv2_op53.yaml"
SECONDS = 15  # generous: the machine is shared; the real cases take well under a second


def cli(*args: str | Path) -> tuple[int, str, str, float]:
    """Run ``ttsim ARGS`` in-process: exit status, stdout, stderr, seconds taken."""
    start = time.perf_counter()
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr, time.perf_counter() - start


def assert_one_error(args: list[str | Path], *expected: str) -> str:
    """The command exits 2 within seconds with exactly one ``ttsim: error:`` line naming ``expected``."""
    code, out, err, seconds = cli(*args)
    assert code == 2, (out, err)
    assert seconds < SECONDS
    assert err.startswith("ttsim: error: ") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err
    assert "Traceback" not in err and "Usage:" not in err
    return err


def config_with(tmp_path: Path, text_replacements: dict[str, str]) -> Path:
    text = OP53.read_text()
    for old, new in text_replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    return path


# -- huge values: in the file and via --set ------------------------------------------------------

DEVICE_LIMIT_CASES = [
    ("channels", "1000000000", "the input (batch 10 x input_height 7 x input_width 7 x channels 1000000000"),
    ("input_height", "1000000", "input_height 1000000"),
    ("batch", "10000000", "batch 10000000"),
    ("padding", "[1000000, 1000000]", "conv.padding [1000000, 1000000]"),
]


@pytest.mark.parametrize("key, value, expected", DEVICE_LIMIT_CASES)
@pytest.mark.parametrize("where", ["file", "set"])
def test_sizes_beyond_the_device_name_the_key_and_the_l1(tmp_path: Path, key: str, value: str,
                                                         expected: str, where: str) -> None:
    config = OP53 if where == "set" else tmp_path / "huge.yaml"
    if where == "file":
        data = yaml.safe_load(OP53.read_text())
        data["conv"][key] = yaml.safe_load(value)
        config.write_text(yaml.safe_dump(data))
    extra = ["--set", f"conv.{key}={value}"] if where == "set" else []
    err = assert_one_error(["run", config, "--program", "pool", *extra], expected)
    assert "B of usable L1)" in err and "wormhole_b0 (8x8 cores x 1,379,328" in err


def test_huge_integer_is_bounded_by_the_field_limit() -> None:
    assert_one_error(["run", OP53, "--set", f"conv.channels={10**40}"],
                     f"conv.channels: Input should be less than or equal to {MAX_INT}", "(got 1000000")


@pytest.mark.parametrize("digits", [101, 5000])
def test_integer_literal_too_long_is_a_yaml_limit(tmp_path: Path, digits: int) -> None:
    path = config_with(tmp_path, {"channels: 112": "channels: " + "9" * digits})
    assert_one_error(["run", path], f"integer of {digits:,} characters exceeds the limit of 100")
    assert_one_error(["run", OP53, "--set", "conv.channels=" + "7" * digits],
                     "--set conv.channels: line 1, column 1: YAML limit: integer of")


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, "{a: " * 3000 + "1" + "}" * 3000])
def test_deep_nesting_in_the_file_and_via_set(tmp_path: Path, nested: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(f"name: deep\nconv: {nested}\n")
    assert_one_error(["run", path], f"YAML limit: nesting deeper than {MAX_YAML_DEPTH} levels")
    assert_one_error(["run", OP53, "--set", f"conv.kernel={nested}"], "--set conv.kernel:",
                     f"nesting deeper than {MAX_YAML_DEPTH} levels")


def test_deeply_dotted_set_key() -> None:
    assert_one_error(["run", OP53, "--set", "a" + ".a" * 5000 + "=1"],
                     f"more than {MAX_YAML_DEPTH} dotted parts")


def alias_bomb(levels: int) -> str:
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
    refs = ",".join(["*l{}"] * 9)
    lines += [f"l{i}: &l{i} [{refs.format(*[i - 1] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [9, 10])  # 9**9 and 9**10 strings once expanded
def test_alias_bomb_is_refused_quickly(tmp_path: Path, levels: int) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels))
    assert len(path.read_bytes()) < 500
    assert_one_error(["run", path], f"more than {MAX_YAML_NODES:,} values (aliases expanded)")


def test_aliases_of_small_values_still_work(tmp_path: Path) -> None:
    text = OP53.read_text().replace("stride: [1, 1]", "stride: &one [1, 1]").replace(
        "dilation: [1, 1]", "dilation: *one")
    path = tmp_path / "alias.yaml"
    path.write_text(text)
    assert load_config(path) == load_config(OP53)


def test_config_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(OP53.read_text() + "#" * (1 << 20) + "\n")
    assert_one_error(["run", path], "exceeds the limit of 1,048,576 B")


def test_error_messages_stay_short_on_huge_values() -> None:
    """Only a bounded representation of a bad value is formatted (a list of 5,000 long strings)."""
    huge = {"name": "x", "conv": {"kernel": ["y" * 10_000] * 2}}
    with pytest.raises(ConfigurationError) as info:
        load_config(huge)
    assert max(len(line) for line in str(info.value).splitlines()) < 300


# -- special and unreadable config files --------------------------------------------------------

def test_fifo_config_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ttsim.cli", "run", str(fifo)], capture_output=True,
                          text=True, timeout=60)
    assert time.perf_counter() - start < 60
    assert done.returncode == 2
    assert done.stderr == f"ttsim: error: {fifo}: not a regular file (a FIFO)\n"


def test_directory_and_device_configs(tmp_path: Path) -> None:
    # a folder is a model suite (issue 12): an empty one is one clear error
    assert_one_error(["run", tmp_path], f"{tmp_path}: suite folder holds no *.yaml configs")
    assert_one_error(["run", "/dev/zero"], "/dev/zero: not a regular file (a character device)")


def test_unreadable_config_is_one_line_not_a_usage_error(tmp_path: Path, monkeypatch) -> None:
    """As root every file is readable, so the denial is simulated where the OS reports it: click's
    own readability check (os.access) and the open itself."""
    path = tmp_path / "secret.yaml"
    path.write_text(OP53.read_text())
    real_access, real_open = os.access, os.open
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(path) else real_access(p, mode, **kw))

    def denied(p, flags, *args, **kwargs):
        if str(p) == str(path):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    for command in (["run"], ["compare"], ["check"], ["sweep", "--param", "conv.activation=relu",
                                                       "--out", str(tmp_path / "s.csv")]):
        err = assert_one_error([command[0], path, *command[1:]])
        assert err == f"ttsim: error: {path}: cannot read config file: Permission denied\n"


# -- output paths: checked before any simulation ------------------------------------------------

def _read_only_folder(tmp_path: Path) -> Path:
    """A folder where no file can be created: chmod 555, or /proc for root (who ignores modes)."""
    if os.geteuid() == 0:
        return Path("/proc")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def _bad_outputs(tmp_path: Path) -> list[tuple[str, str]]:
    return [
        (str(tmp_path), "is a directory, not a regular file"),
        ("", "expected a file path"),
        ("/proc/version", "/proc/version: "),
        (str(_read_only_folder(tmp_path) / "out.json"), "cannot create files in"),
        ("/dev/full", "/dev/full: is a character device, not a regular file"),
        (str(tmp_path / "missing" / "out.json"), "does not exist"),
    ]


@pytest.mark.parametrize("command, option", [
    (["run", "--program", "pool"], "--json"), (["run", "--program", "pool"], "--csv"),
    (["run", "--program", "pool"], "--trace"), (["compare"], "--json"),
    (["sweep", "--param", "conv.activation=relu"], "--out")])
def test_bad_output_paths_fail_before_any_simulation(tmp_path: Path, command: list[str], option: str) -> None:
    for path, expected in _bad_outputs(tmp_path):
        code, out, err, seconds = cli(command[0], OP53, *command[1:], option, path)
        assert code == 2, (path, out, err)
        assert err.startswith(f"ttsim: error: {option} ") and err.count("\n") == 1, err
        assert expected in err, (path, err)
        assert out == ""  # nothing was simulated or printed
        assert seconds < SECONDS
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # never replaced by a regular file


def test_two_outputs_on_one_file_and_output_over_the_config(tmp_path: Path) -> None:
    out = tmp_path / "same"
    assert_one_error(["run", OP53, "--program", "pool", "--json", out, "--csv", out],
                     f"--csv {out}: the same file as --json")
    # with several programs the CSVs are <stem>_<program>.csv, checked the same way
    assert_one_error(["run", OP53, "--json", tmp_path / "same_pool", "--csv", out],
                     f"--csv {tmp_path / 'same_pool'}: the same file as --json")
    copy = tmp_path / "op53.yaml"
    copy.write_text(OP53.read_text())
    assert_one_error(["run", copy, "--trace", copy], f"--trace {copy}: is the input config")
    assert copy.read_text() == OP53.read_text()


def test_good_output_is_written_whole(tmp_path: Path) -> None:
    out = tmp_path / "ok.json"
    out.write_text("old")
    code, _, err, _ = cli("run", OP53, "--program", "pool", "--json", out)
    assert code == 0, err
    assert out.read_text().startswith("{") and not list(tmp_path.glob(".ok.json.*"))


# -- the Python API ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [None, 123, 1.5, b"configs/mobilenetv2_op53.yaml", ["a"], ("a",), object()])
def test_api_rejects_bad_configs_with_a_typed_error(bad) -> None:
    with pytest.raises(ConfigurationError, match=f"got {type(bad).__name__}"):
        ttsim.run(bad)


@pytest.mark.parametrize("kwargs, expected", [
    ({"program": None}, "program: expected a program name"),
    ({"program": 123}, "program: expected a program name"),
    ({"program": ["pool"]}, "program: expected a program name"),
    ({"program": "x" * 10_000}, "program: expected a program name"),
    ({"device": []}, "device: expected a device preset name"),
    ({"device": b"wormhole_b0"}, "device: expected a device preset name"),
    ({"trace": "yes"}, "trace: expected True or False"),
    ({"trace_cores": 5}, "trace_cores: expected a collection"),
    ({"trace_cores": "0,0"}, "trace_cores: expected a collection"),
    ({"trace_cores": [(0, "a")]}, "trace_cores: expected (x, y) tuples"),
])
def test_api_rejects_bad_arguments_with_a_typed_error(kwargs: dict, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ttsim.run(OP53, **kwargs)
    assert str(info.value).startswith(expected)
    assert len(str(info.value)) < 200


def test_api_paths_with_nul_or_huge_names() -> None:
    with pytest.raises(TtsimError, match="embedded null byte"):
        ttsim.run("configs/a\0b.yaml")
    with pytest.raises(TtsimError) as info:
        ttsim.run("y" * 100_000)
    assert len(str(info.value)) < 300


def test_api_overrides_must_be_strings() -> None:
    with pytest.raises(ConfigurationError, match="overrides: expected a list of 'KEY=VALUE' strings"):
        load_config(OP53, [1])
    with pytest.raises(ConfigurationError, match="overrides: expected a list"):
        load_config(OP53, "conv.channels=32")
