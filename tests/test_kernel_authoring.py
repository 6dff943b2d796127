"""The kernel-authoring guide's example, examples/eltwise_add.py: its output against an
independent numpy computation, its timing behaviour, and the guide's code and output staying
the example's (so docs/kernel-authoring.md cannot drift from tested code)."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "eltwise_add.py"
GUIDE = ROOT / "docs" / "kernel-authoring.md"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ttsim_example_eltwise_add", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 -> float32 with round-to-nearest-even, by bit arithmetic (finite values)."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


def bf16_truncate(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def random_tiles(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((n, 1024)) * 3).astype(np.float32)
    b = (rng.standard_normal((n, 1024)) * 3).astype(np.float32)
    return a, b


def test_bf16_reference_rounds_to_nearest_even() -> None:
    one = np.float32(1.0)
    step = np.float32(2.0 ** -7)  # bf16 spacing at 1.0
    values = np.array([one + step / 2, one + step * 1.5, one + step * 0.75, -(one + step * 0.25)], np.float32)
    expected = np.array([one, one + 2 * step, one + step, -one], np.float32)
    assert np.array_equal(bf16_round(values), expected)


@pytest.mark.parametrize("n, num_cores", [(12, 4), (7, 3), (5, 1)])
def test_output_is_relu_of_the_bf16_sum(example: ModuleType, n: int, num_cores: int) -> None:
    a, b = random_tiles(n, seed=n)
    out, profile = example.eltwise_add(a, b, num_cores=num_cores)
    expected = bf16_round(np.maximum(bf16_round(a) + bf16_round(b), 0))
    assert out.shape == (n, 1024) and out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    # the check can tell rounding from truncation, and catches a missing ReLU
    assert not np.array_equal(out, bf16_truncate(np.maximum(bf16_round(a) + bf16_round(b), 0)))
    assert (out == 0).mean() > 0.3 and (out >= 0).all()
    assert profile.device_kernel_duration_ns > 0 and profile.device_kernel_duration_cycles > 0
    assert profile.core_count == num_cores
    assert profile.op_code == "EltwiseAddRelu"


def test_more_cores_are_faster_for_enough_tiles(example: ModuleType) -> None:
    a, b = random_tiles(32, seed=3)
    cycles = {}
    for cores in (1, 2, 4, 8):
        out, profile = example.eltwise_add(a, b, num_cores=cores)
        assert profile.core_count == cores
        np.testing.assert_array_equal(out, bf16_round(np.maximum(bf16_round(a) + bf16_round(b), 0)))
        cycles[cores] = profile.device_kernel_duration_cycles
    assert cycles[1] > cycles[2] > cycles[4] > cycles[8]
    assert cycles[8] < cycles[1] / 2  # 4 tiles per core instead of 32


# -- the guide stays the example ------------------------------------------------------------------

def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def _without_docstring(source: str) -> str:
    """A function's source with its docstring lines removed."""
    source = textwrap.dedent(source)
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    first = function.body[0]
    lines = source.splitlines()
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        del lines[first.lineno - 1 : first.end_lineno]
    return "\n".join(lines)


def _normalised(code: str) -> str:
    return " ".join(code.split())


@pytest.mark.parametrize("name", ["reader", "compute"])
def test_guide_shows_the_examples_kernels(example: ModuleType, name: str) -> None:
    blocks = [b for b in _python_blocks(GUIDE.read_text()) if b.lstrip().startswith(f"def {name}(")]
    assert len(blocks) == 1, f"the guide shows `{name}` once"
    in_example = _without_docstring(inspect.getsource(getattr(example, name)))
    assert _normalised(blocks[0]) == _normalised(in_example)


def test_the_comparison_notices_a_changed_line(example: ModuleType) -> None:
    """Control: the normalisation does not hide a real difference."""
    in_example = _without_docstring(inspect.getsource(example.reader))
    changed = in_example.replace("cb_push_back(CB_B, 1)", "cb_push_back(CB_B, 2)")
    assert changed != in_example and _normalised(changed) != _normalised(in_example)


def test_running_the_example_prints_the_guides_duration_line(example: ModuleType) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    match = re.fullmatch(r"DEVICE KERNEL DURATION ([\d,]+) ns on (\d+) cores; max \|error\| (\S+)", line)
    assert match, line
    # the printed numbers are the function's, on the script's inputs
    rng = np.random.default_rng(0)
    a = rng.standard_normal((16, 1024)).astype(np.float32)
    b = rng.standard_normal((16, 1024)).astype(np.float32)
    out, profile = example.eltwise_add(a, b)
    assert match.group(1) == f"{profile.device_kernel_duration_ns:,.0f}"
    assert int(match.group(2)) == profile.core_count == 4
    assert float(match.group(3)) == pytest.approx(float(f"{np.abs(out - np.maximum(a + b, 0)).max():.3g}"))
    # and the guide quotes that very line
    guide = GUIDE.read_text()
    assert f"$ python examples/eltwise_add.py\n{line}\n" in guide


# -- the reports work on a user-written program's results --------------------------------------

def test_every_report_writer_takes_the_examples_results(example: ModuleType) -> None:
    import csv
    import io

    from ttsim.device.core import Risc
    from ttsim.report.breakdown import breakdown, breakdown_table
    from ttsim.report.ops_perf_csv import ops_perf_csv
    from ttsim.report.results import report_document
    from ttsim.report.trace import trace_document
    from ttsim.results import OpResult

    a, b = random_tiles(8, seed=5)
    _, profile = example.eltwise_add(a, b, num_cores=2)
    result = OpResult.from_profile(profile, device="wormhole_b0")
    assert (result.program, result.op_code, result.device) == ("EltwiseAddRelu", "EltwiseAddRelu", "wormhole_b0")
    assert repr(result).startswith("OpResult(config='user', program='EltwiseAddRelu'")
    # breakdown: one row per kernel and RISC, busy + blocked = the kernel zone on every core
    rows = {(row.kernel, row.risc) for row in breakdown(result)}
    assert {("reader", Risc.BRISC), ("writer", Risc.NCRISC), ("compute", Risc.TRISC1)} <= rows
    for row in breakdown(result):
        assert row.cores == 2
        assert row.busy + sum(row.stalls.values()) == pytest.approx(row.duration)
    assert "EltwiseAddRelu" in str(breakdown_table(result).title)
    # ops perf CSV: one row whose durations are the profile's
    (row,) = list(csv.DictReader(io.StringIO(ops_perf_csv([result]))))
    assert row["OP CODE"] == "EltwiseAddRelu" and row["CORE COUNT"] == "2"
    assert row["DEVICE KERNEL DURATION [ns]"] == f"{profile.device_kernel_duration_ns:.0f}"
    assert row["DEVICE BRISC KERNEL DURATION [ns]"] == f"{result.risc_duration_ns[Risc.BRISC]:.0f}"
    # trace: a kernel zone event per kernel zone of the profile
    zones = [e for e in trace_document([result])["traceEvents"] if e["ph"] == "X" and e["cat"] == "kernel"]
    assert len(zones) == len(profile.zones) > 0
    # JSON report
    (op,) = report_document([result])["ops"]
    assert op["device_kernel_duration_cycles"] == profile.device_kernel_duration_cycles
    assert op["risc_duration_ns"]["TRISC1"] == pytest.approx(result.risc_duration_ns[Risc.TRISC1])
