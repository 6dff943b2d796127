"""The depthwise program end to end through ``ttsim.run`` on small shapes: numerics against an
independent float64 reference across layouts, kernels, strides, dilations, activations and
formats, its design switches, and its L1 and CB errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ttsim
from ttsim.config import conv_output_size
from ttsim.errors import CBRequestError, ConfigurationError, DeadlockError, L1OverflowError
from ttsim.numerics import depthwise_conv2d_reference
from ttsim.programs.depthwise import block_pattern, group_segments

from conv_cases import BASE_CONV

CASES: dict[str, dict[str, Any]] = {
    "base_k3": {},
    "k5_pad2": {"kernel": [5, 5], "padding": [2, 2]},
    "k7_no_pad": {"kernel": [7, 7], "padding": [0, 0], "input_height": 12, "input_width": 12},
    "k3x5_asym_pad": {"kernel": [3, 5], "padding": [1, 2]},
    "k1_split_reader": {"kernel": [1, 1], "padding": [0, 0]},  # one tap: the readers take it in turn
    "stride2_pad1_0": {"stride": [2, 2], "padding": [1, 0], "input_height": 12, "input_width": 11},
    "dilation2_k5x3": {"dilation": [2, 1], "kernel": [5, 3], "padding": [0, 1], "input_height": 14},
    "block_sharded_s2_relu6": {"memory_layout": "block_sharded", "channels": 96, "input_height": 16,
                               "input_width": 16, "stride": [2, 2], "activation": "relu6"},
    "width_sharded": {"memory_layout": "width_sharded", "channels": 128},
    "batch2": {"batch": 2, "input_height": 12, "input_width": 12},
    "no_bias_relu": {"bias": False, "activation": "relu"},
    "relu6_lofi": {"activation": "relu6", "math_fidelity": "LoFi"},
    "silu": {"activation": "silu"},
    "gelu_math_thread": {"activation": "gelu", "bias": False},
    "row_major": {"output_layout": "row_major"},
    "channels_40": {"channels": 40},
    "channels_320_silu": {"channels": 320, "activation": "silu"},
    "channels_320_row_major": {"channels": 320, "output_layout": "row_major", "bias": False},
    "bfp8_weights_k5_silu": {"weights_dtype": "bfloat8_b", "kernel": [5, 5], "padding": [2, 2],
                             "activation": "silu"},
    "bfp8_everything_lofi": {"weights_dtype": "bfloat8_b", "dtype": "bfloat8_b", "channels": 72,
                             "math_fidelity": "LoFi"},
}
OPTIONS: dict[str, dict[str, Any]] = {
    "gelu_math_thread": {"sfpu_on_pack": False},
    "relu6_lofi": {"packer_relu": False, "split_reader": False},
}


def config(name: str, **conv: Any) -> dict[str, Any]:
    return {"name": name, "conv": {**BASE_CONV, **conv}, "depthwise": OPTIONS.get(name, {})}


@pytest.fixture(scope="module")
def results() -> dict[str, list]:
    return {name: ttsim.run(config(name, **over), program="depthwise") for name, over in CASES.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_numerics_against_independent_reference(results, case: str) -> None:
    conv = {**BASE_CONV, **CASES[case]}
    halo, op = results[case]
    assert (halo.op_code, op.op_code, op.program) == ("HaloDeviceOperation", "Conv2dDepthwise", "depthwise")
    out_h = conv_output_size(conv["input_height"], conv["kernel"][0], conv["stride"][0], conv["padding"][0],
                             conv["dilation"][0])
    out_w = conv_output_size(conv["input_width"], conv["kernel"][1], conv["stride"][1], conv["padding"][1],
                             conv["dilation"][1])
    assert op.output.shape == (conv["batch"], out_h, out_w, conv["channels"])
    bias = op.inputs["bias"]
    reference = depthwise_conv2d_reference(
        op.inputs["input"].astype(np.float64), op.inputs["weight"].astype(np.float64),
        None if bias is None else bias.astype(np.float64), tuple(conv["stride"]), tuple(conv["padding"]),
        tuple(conv["dilation"]), conv["activation"])
    corr = float(np.corrcoef(op.output.ravel().astype(np.float64), reference.ravel())[0, 1])
    bf16_hifi4 = conv["weights_dtype"] == "bfloat16" and conv["math_fidelity"] == "HiFi4"
    assert corr >= (0.999 if bf16_hifi4 else 0.99)
    assert op.pcc == pytest.approx(corr, abs=1e-9)
    # LoFi multiplies with SrcA's top 4 mantissa bits (ttsim.fpu): held to the LoFi promise
    exact = conv["dtype"] == conv["weights_dtype"] == "bfloat16" and conv["math_fidelity"] != "LoFi"
    assert np.abs(op.output - reference).max() <= (0.02 if exact else 0.1) * np.abs(reference).max()


def test_row_major_and_tile_outputs_agree(results) -> None:
    np.testing.assert_array_equal(results["base_k3"][1].output, results["row_major"][1].output)


def test_the_packer_and_the_sfpu_give_the_same_relu6() -> None:
    sfpu = ttsim.run({**config("a", activation="relu6"), "depthwise": {"packer_relu": False}}, program="depthwise")
    packer = ttsim.run(config("b", activation="relu6"), program="depthwise")
    np.testing.assert_array_equal(sfpu[1].output, packer[1].output)
    assert packer[1].device_kernel_duration_cycles < sfpu[1].device_kernel_duration_cycles


def test_silu_from_the_pack_thread_equals_silu_from_math() -> None:
    math = ttsim.run({**config("a", channels=320, activation="silu"), "depthwise": {"sfpu_on_pack": False}},
                     program="depthwise")
    pack = ttsim.run(config("b", channels=320, activation="silu"), program="depthwise")
    np.testing.assert_array_equal(math[1].output, pack[1].output)


def test_block_pattern_repeats_the_channels_over_32_sticks() -> None:
    values = np.arange(64, dtype=np.float32)
    pages = block_pattern(values)
    assert pages.shape == (2, 1024)
    np.testing.assert_array_equal(pages.reshape(32, 64), np.broadcast_to(values, (32, 64)))


def test_group_segments_split_at_row_wraps() -> None:
    tops = np.array([0, 1, 2, 5, 6, 9], dtype=np.uint32)
    assert group_segments(tops, 6) == [((0, 0, 3), (3, 5, 2), (5, 9, 1))]
    assert [len(g) for g in group_segments(np.arange(70, dtype=np.uint32), 70)] == [1, 1, 1]


def _segments_group_by_group(tops: np.ndarray, num_outputs: int) -> list[tuple[tuple[int, int, int], ...]]:
    """The runs of each 32-stick group found on its own, stick by stick."""
    groups = []
    for start in range(0, num_outputs, 32):
        group = [int(t) for t in tops[start : min(start + 32, num_outputs)]]
        runs: list[list[int]] = []
        for row, top in enumerate(group):
            if runs and top == runs[-1][1] + runs[-1][2]:
                runs[-1][2] += 1
            else:
                runs.append([row, top, 1])
        groups.append(tuple(tuple(run) for run in runs))
    return groups


@pytest.mark.parametrize("seed", range(20))
def test_group_segments_match_a_group_by_group_scan(seed: int) -> None:
    rng = np.random.default_rng(seed)
    steps = rng.choice([1, 1, 1, 2, 7, 0], size=int(rng.integers(0, 200)))
    tops = np.cumsum(steps).astype(np.uint32)
    num_outputs = int(rng.integers(0, tops.size + 1))  # the indices CB may hold more than the outputs
    assert group_segments(tops, num_outputs) == _segments_group_by_group(tops, num_outputs)


def test_an_undersized_window_cb_is_rejected_before_running() -> None:
    cfg = {**config("t", channels=320), "depthwise": {"cb": {"win_cb0": {"pages": 3}}}}
    with pytest.raises(CBRequestError, match="'win_cb0', 50\\).*it needs at least 50 pages"):
        ttsim.run(cfg, program="depthwise")


def test_a_row_major_cb_smaller_than_a_tilize_batch_is_refused_before_the_run() -> None:
    """The compute waits for a whole tilize batch (8 groups of 2 pages here) in rm_cb at once."""
    cfg = {**config("t", channels=64, input_height=16, input_width=16),
           "depthwise": {"core_grid": [1, 1], "cb": {"rm_cb": {"pages": 2}}}}
    with pytest.raises(CBRequestError, match="compute_depthwise.*cb_wait_front\\(CB \\d+ 'rm_cb', 16\\).*2 pages"):
        ttsim.run(cfg, program="depthwise")


def test_a_row_major_cb_of_one_batch_deadlocks_with_a_message() -> None:
    """rm_cb must hold the groups packed before their tilize: with one batch (8 groups), the pack
    thread waits for room the unpack thread only makes two groups later."""
    cfg = {**config("t", channels=64, input_height=24, input_width=24),
           "depthwise": {"core_grid": [1, 1], "cb": {"rm_cb": {"pages": 16}}}}
    with pytest.raises(DeadlockError, match="compute_depthwise.*cb_reserve_back\\(CB \\d+ 'rm_cb', 2\\)"):
        ttsim.run(cfg, program="depthwise")


def test_a_window_beyond_l1_is_an_l1_overflow() -> None:
    cfg = {**config("t", channels=320), "depthwise": {"cb": {"win_cb0": {"pages": 800}}}}
    with pytest.raises(L1OverflowError):
        ttsim.run(cfg, program="depthwise")


def test_faster_than_the_pool_program_on_a_small_conv() -> None:
    pool = ttsim.run(config("p", channels=64), program="pool")[1]
    depthwise = ttsim.run(config("d", channels=64), program="depthwise")[1]
    assert depthwise.device_kernel_duration_cycles < pool.device_kernel_duration_cycles


@pytest.mark.parametrize("over", [{"channels": 160, "activation": "relu6"},
                                  {"channels": 320, "activation": "silu", "weights_dtype": "bfloat8_b"}])
def test_custom_llk_srcb_reuse_gives_the_same_output_faster(over: dict[str, Any]) -> None:
    standard = ttsim.run(config("a", **over), program="depthwise")[1]
    custom = ttsim.run({**config("b", **over), "depthwise": {"srcb_reuse": True}}, program="depthwise")[1]
    np.testing.assert_array_equal(custom.output, standard.output)
    assert custom.device_kernel_duration_cycles < standard.device_kernel_duration_cycles


def test_custom_llk_srcb_reuse_rejects_a_pattern_longer_than_a_srcb_bank() -> None:
    cfg = {**config("t", channels=928, input_height=4, input_width=4), "depthwise": {"srcb_reuse": True}}
    with pytest.raises(ConfigurationError, match="at most 896 channels per core"):
        ttsim.run(cfg, program="depthwise")
