"""The seed ops' output tensors are byte-identical to those recorded before the simulator was
sped up (tests/data/output_sha256.json: sha256 of each conv op's output, float32 C order, per
config and program, written by ``bench/bench_speed.py --write-digests`` before the numerics were
restructured). A speed change that alters one rounding changes a digest.

If a deliberate numerics change (a new FPU model, a format fix) alters the outputs, record the
digests again with the bench and say which changed and why.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

import ttsim

REPO = Path(__file__).resolve().parents[1]
DIGESTS = REPO / "tests" / "data" / "output_sha256.json"
CONFIG_FILES = sorted((REPO / "configs").glob("*.yaml"))
PROGRAMS = ("classic", "pool", "depthwise")


def output_sha256(result: ttsim.OpResult) -> str:
    return hashlib.sha256(result.output.astype("float32").tobytes(order="C")).hexdigest()


def test_the_digests_cover_every_seed_op_and_program() -> None:
    stored = json.loads(DIGESTS.read_text())
    names = {yaml.safe_load(p.read_text())["name"] for p in CONFIG_FILES}
    assert {k for k in stored if k != "about"} == names
    for name in names:
        assert set(stored[name]) == set(PROGRAMS)
        assert all(len(d) == 64 and int(d, 16) >= 0 for d in stored[name].values())


def test_a_changed_value_changes_the_digest() -> None:
    result = ttsim.run({"name": "d", "conv": {"batch": 1, "input_height": 8, "input_width": 8, "channels": 32,
                                             "kernel": [3, 3], "stride": [1, 1], "dilation": [1, 1],
                                             "padding": [1, 1], "bias": False, "activation": "none",
                                             "dtype": "bfloat16", "weights_dtype": "bfloat16",
                                             "memory_layout": "height_sharded", "math_fidelity": "LoFi"}},
                       program="pool")[-1]
    before = output_sha256(result)
    result.output.flat[0] = result.output.flat[0] + 1
    assert output_sha256(result) != before


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.stem for p in CONFIG_FILES])
def test_output_bytes_are_unchanged(path: Path) -> None:
    stored = json.loads(DIGESTS.read_text())
    for result in ttsim.run(path, program="all")[1::2]:  # the conv op of each program
        assert output_sha256(result) == stored[result.config][result.program], \
            f"{result.config} {result.program}: output bytes differ from the recorded digest"
