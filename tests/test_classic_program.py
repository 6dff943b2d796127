"""The classic grouped conv (``OptimizedConvNew``) end to end through ``ttsim.run(...,
program="classic")`` on small shapes: numerics against the float64 depthwise reference, the CB
table against the formulas of tt-metal's ``get_cb_info``, the dense block-diagonal weight matrix of
``prepare_conv2d_weights.cpp``,
``program="all"`` and the unsupported variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np
import pytest

import ttsim
from ttsim.config import conv_output_size, load_config
from ttsim.device.device import Device
from ttsim.device.spec import load_device
from ttsim.errors import UnsupportedFunctionality
from ttsim.formats import DataFormat, round_to_format
from ttsim.numerics import depthwise_conv2d_reference, generate_conv_inputs
from ttsim.programs.classic_conv import build_classic_program, grouped_weight_tiles, tiles_to_matrix
from ttsim.programs.conv_blocking import CLASSIC_CHANNEL_ALIGN, ClassicOverrides, determine_classic_block_config
from ttsim.programs.halo import build_halo_program
from ttsim.programs.parallel import determine_parallel_config
from ttsim.programs.sliding_window import ConvGeometry, build_halo_configs

import fpu_reference as ref
from conv_cases import BASE_CONV, assert_traced_run_matches

ROOT = Path(__file__).resolve().parents[1]
TILE_BYTES = {"bfloat16": 2048, "bfloat8_b": 1088}  # tt-metal tt_metal/api/tt-metalium/constants.hpp

# Height-sharded shapes with more than one tile row per core: 66 output tiles -> 33 cores x 2;
# 129 -> 43 cores x 3; 196 -> 49 cores x 4 (the core count search of determine_parallel_config).
TWO_ROWS = {"input_height": 48, "input_width": 44, "channels": 8}
THREE_ROWS = {"input_height": 48, "input_width": 86, "channels": 8}
FOUR_ROWS = {"input_height": 112, "input_width": 56, "channels": 8}
# Block sharded: 96 channels -> 6 input columns of 16, 3 output columns; 16 x 16 -> 8 rows.
BS96 = {"memory_layout": "block_sharded", "channels": 96, "input_height": 16, "input_width": 16}
BS128 = {"memory_layout": "block_sharded", "channels": 128, "input_height": 16, "input_width": 16}
# 24 x 24 = 18 output tiles -> 6 grid rows x 3 tile rows
BS_THREE_ROWS = {"memory_layout": "block_sharded", "channels": 128, "input_height": 24, "input_width": 24}

class Case(NamedTuple):
    conv: dict[str, Any]
    classic: dict[str, Any] = {}
    multi_block: bool = False
    """More than one act block per core (act_block_h_override)."""


CASES: dict[str, Case] = {
    "base_k3": Case({}),
    "k5_pad2": Case({"kernel": [5, 5], "padding": [2, 2]}),
    "k7_pad3": Case({"kernel": [7, 7], "padding": [3, 3], "input_height": 10, "input_width": 9}),
    "k7_no_pad": Case({"kernel": [7, 7], "padding": [0, 0], "input_height": 12, "input_width": 12}),
    "k3x5_asym_pad": Case({"kernel": [3, 5], "padding": [1, 2]}),
    "k5x3_pad2_0": Case({"kernel": [5, 3], "padding": [2, 0], "input_height": 9}),
    "stride2_pad1_0": Case({"stride": [2, 2], "padding": [1, 0], "input_height": 12, "input_width": 11}),
    "stride2x1_pad0_1": Case({"stride": [2, 1], "padding": [0, 1], "input_height": 9}),
    "dilation2": Case({"dilation": [2, 2], "padding": [2, 2]}),
    "dilation_w2": Case({"dilation": [1, 2], "padding": [1, 2], "channels": 40}),
    "dilation_h2_k5x3_pad0": Case({"dilation": [2, 1], "kernel": [5, 3], "padding": [0, 1],
                                   "input_height": 14}),
    "batch2": Case({"batch": 2, "input_height": 12, "input_width": 12}),
    "no_bias": Case({"bias": False}),
    "relu": Case({"activation": "relu"}),
    "relu6_lofi": Case({"activation": "relu6", "math_fidelity": "LoFi"}),
    "silu": Case({"activation": "silu"}),
    "gelu_no_bias": Case({"activation": "gelu", "bias": False}),
    "relu_no_bias": Case({"activation": "relu", "bias": False}),
    "channels_40": Case({"channels": 40}),
    "channels_320": Case({"channels": 320}),
    "bfp8_output": Case({"dtype": "bfloat8_b"}),
    "bfp8_weights": Case({"weights_dtype": "bfloat8_b"}),
    "bfp8_weights_k5_silu": Case({"weights_dtype": "bfloat8_b", "kernel": [5, 5], "padding": [2, 2],
                                  "activation": "silu"}),
    "bfp8_everything_72": Case({"weights_dtype": "bfloat8_b", "dtype": "bfloat8_b", "channels": 72}),
    "bs96": Case(BS96),
    "bs96_no_bias_gelu": Case({**BS96, "bias": False, "activation": "gelu"}),
    "bs128_s2_relu6": Case({**BS128, "stride": [2, 2], "activation": "relu6"}),
    "bs128_k5_pad2": Case({**BS128, "kernel": [5, 5], "padding": [2, 2]}),
    "bs128_asym_k3x5": Case({**BS128, "kernel": [3, 5], "padding": [0, 2], "dilation": [2, 1]}),
    "bs96_double_buffer_bfp8": Case({**BS96, "input_height": 24, "input_width": 24,
                                     "weights_dtype": "bfloat8_b", "dtype": "bfloat8_b",
                                     "activation": "silu"},
                                    {"enable_act_double_buffer": True, "enable_weights_double_buffer": True}),
    "split_reader": Case(TWO_ROWS, {"split_reader": True}),
    "split_reader_heuristic": Case({**TWO_ROWS, "channels": 32}),  # the heuristic picks it
    "split_reader_double_buffer": Case({**TWO_ROWS, "channels": 32, "activation": "relu6"},
                                       {"split_reader": True, "enable_act_double_buffer": True,
                                        "enable_weights_double_buffer": True}),
    "split_reader_odd_rows_bfp8": Case({**THREE_ROWS, "weights_dtype": "bfloat8_b", "activation": "silu"},
                                       {"split_reader": True}),
    "no_split_reader_two_rows": Case({**TWO_ROWS, "channels": 32}, {"split_reader": False}),
    "weights_double_buffer_hs": Case({"channels": 64}, {"enable_weights_double_buffer": True,
                                                        "enable_act_double_buffer": True}),
    "act_block_h_override": Case(TWO_ROWS, {"act_block_h_override": 32}, multi_block=True),
    "act_block_h_override_split": Case(FOUR_ROWS, {"act_block_h_override": 64, "split_reader": True},
                                       multi_block=True),
    "act_block_h_override_odd": Case(THREE_ROWS, {"act_block_h_override": 64}, multi_block=True),
    "act_block_h_override_bs": Case(BS_THREE_ROWS, {"act_block_h_override": 32}, multi_block=True),
}


def config(name: str = "t", seed: int = 0, classic: dict[str, Any] | None = None,
           **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": name, "seed": seed, "conv": {**BASE_CONV, **overrides}}
    if classic:
        cfg["classic"] = dict(classic)
    return cfg


def case_config(name: str) -> dict[str, Any]:
    return config(name, classic=CASES[name].classic, **CASES[name].conv)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Plain numpy Pearson correlation (independent of ttsim.numerics.pcc)."""
    return float(np.corrcoef(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64))[0, 1])


def bf16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def bfp8_alone(values: np.ndarray) -> np.ndarray:
    """bfloat8_b rounding of each value stored alone in its 16-value exponent block, which is how
    every weight sits in the block-diagonal matrix (one non-zero per matrix row)."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    blocks = np.zeros((flat.size, 16), dtype=np.float32)
    blocks[:, 0] = flat
    return round_to_format(blocks, DataFormat.BFLOAT8_B)[:, 0].reshape(np.shape(values))


@pytest.fixture(scope="module")
def results() -> dict[str, list]:
    return {name: ttsim.run(case_config(name), program="classic") for name in CASES}


# -- numerics ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_numerics_against_reference(results, case: str) -> None:
    conv = {**BASE_CONV, **CASES[case].conv}
    halo, op = results[case]
    n, h, w, c = conv["batch"], conv["input_height"], conv["input_width"], conv["channels"]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (conv["kernel"], conv["stride"], conv["padding"],
                                              conv["dilation"])
    out_h, out_w = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    assert [halo.op_code, op.op_code] == ["HaloDeviceOperation", "OptimizedConvNew"]
    assert halo.program == op.program == "classic"
    assert op.output.shape == (n, out_h, out_w, c)
    assert op.device_kernel_duration_cycles > 0 and halo.device_kernel_duration_cycles > 0

    x, weight, bias = generate_conv_inputs(load_config(case_config(case)).conv, 0)
    np.testing.assert_array_equal(op.inputs["input"], bf16(x))
    reference = depthwise_conv2d_reference(x, weight, bias, tuple(conv["stride"]), tuple(conv["padding"]),
                                           tuple(conv["dilation"]), conv["activation"])
    exact = conv["dtype"] == "bfloat16" and conv["weights_dtype"] == "bfloat16"
    threshold = 0.999 if exact else 0.99
    assert pearson(op.output, reference) >= threshold
    assert op.pcc >= threshold
    # not just correlated: the error is at bfloat16 (or bfloat8_b) scale, against the operands the
    # LoFi multipliers see (activations in srcB keep 7 significant bits, weights in srcA 5)
    if conv["math_fidelity"] == "LoFi":
        assert exact  # the truncated reference below assumes bfloat16 operands
        reference = depthwise_conv2d_reference(
            ref.srcb(bf16(x), 0), ref.srca(bf16(weight), 0), bias, tuple(conv["stride"]),
            tuple(conv["padding"]), tuple(conv["dilation"]), conv["activation"])
    scale = np.abs(reference).max()
    assert np.abs(op.output - reference).max() <= (0.03 if exact else 0.1) * scale


@pytest.mark.parametrize("case", [name for name in CASES if CASES[name].multi_block]
                         + ["split_reader", "bs96"])
def test_every_output_row_is_right(results, case: str) -> None:
    """Row by row: a wrong act block shows here even where a global PCC would hide it."""
    conv = {**BASE_CONV, **CASES[case].conv}
    _, op = results[case]
    b = op.inputs["bias"]
    reference = depthwise_conv2d_reference(
        op.inputs["input"].astype(np.float64), op.inputs["weight"].astype(np.float64),
        None if b is None else b.astype(np.float64), tuple(conv["stride"]), tuple(conv["padding"]),
        tuple(conv["dilation"]), conv["activation"])
    errors = np.abs(op.output - reference).reshape(-1, conv["channels"]).max(axis=1)
    assert np.count_nonzero(errors > 0.05 * np.abs(reference).max()) == 0


def test_block_configs_of_the_cases(results) -> None:
    """The cases exercise what their names say."""
    def block(name):
        return results[name][1].details["block_config"]

    def pc(name):
        return results[name][1].details["parallel_config"]

    for name in ("split_reader", "split_reader_heuristic", "split_reader_double_buffer"):
        assert block(name).split_reader and block(name).act_block_h_ntiles == 2, name
    assert block("split_reader_odd_rows_bfp8").split_reader
    assert block("split_reader_odd_rows_bfp8").act_block_h_ntiles == 3
    assert not block("no_split_reader_two_rows").split_reader
    for name in ("bs96", "bs128_s2_relu6", "bs96_double_buffer_bfp8", "act_block_h_override_bs"):
        assert pc(name).layout == "block_sharded" and pc(name).num_cores_c > 1, name
        assert pc(name).num_cores_nhw > 1, name
    assert block("bs96").num_cores_c_out < pc("bs96").num_cores_c  # idle compute columns
    assert (block("act_block_h_override").act_block_h_ntiles, block("act_block_h_override").num_blocks_act_h) == (1, 2)
    override_split = block("act_block_h_override_split")
    assert (override_split.act_block_h_ntiles, override_split.num_blocks_act_h) == (2, 2)
    assert override_split.split_reader
    assert (block("act_block_h_override_odd").act_block_h_ntiles, block("act_block_h_override_odd").num_blocks_act_h) == (1, 3)
    assert block("act_block_h_override_bs").num_blocks_act_h == 3
    assert block("bs96_double_buffer_bfp8").enable_act_double_buffer
    assert block("bs96_double_buffer_bfp8").enable_weights_double_buffer


def test_bias_and_activation_change_the_result(results) -> None:
    _, plain = results["base_k3"]
    _, no_bias = results["no_bias"]
    _, relu = results["relu"]
    _, relu_no_bias = results["relu_no_bias"]
    assert (plain.output < 0).any()
    assert not np.array_equal(plain.output, no_bias.output)
    np.testing.assert_array_equal(relu.output, np.maximum(plain.output, 0.0))
    np.testing.assert_array_equal(relu_no_bias.output, np.maximum(no_bias.output, 0.0))


def test_split_reader_and_double_buffers_do_not_change_the_numbers(results) -> None:
    """Same conv, different data movement: bit-identical outputs."""
    _, plain = results["no_split_reader_two_rows"]
    _, split = results["split_reader_heuristic"]
    np.testing.assert_array_equal(plain.output, split.output)
    _, base = ttsim.run(config(channels=64), program="classic")
    _, buffered = results["weights_double_buffer_hs"]
    np.testing.assert_array_equal(base.output, buffered.output)


# -- weights as the device sees them (prepare_conv2d_weights.cpp) ---------------------------------

@pytest.mark.parametrize("case", ["base_k3", "bfp8_weights", "bfp8_everything_72", "bs96",
                                  "bs96_double_buffer_bfp8", "k3x5_asym_pad"])
def test_weights_seen_are_the_rounded_originals(results, case: str) -> None:
    conv = {**BASE_CONV, **CASES[case].conv}
    _, op = results[case]
    _, weight, bias = generate_conv_inputs(load_config(case_config(case)).conv, 0)
    assert op.inputs["weight"].shape == weight.shape
    if conv["weights_dtype"] == "bfloat16":
        np.testing.assert_array_equal(op.inputs["weight"], bf16(weight))
        np.testing.assert_array_equal(op.inputs["bias"], bf16(bias))
    else:
        np.testing.assert_array_equal(op.inputs["weight"], bfp8_alone(weight))
        # the bias is one tile row: 16 consecutive channels share an exponent
        padded = np.zeros(-(-bias.size // 16) * 16, dtype=np.float32)
        padded[: bias.size] = bias
        np.testing.assert_array_equal(op.inputs["bias"], round_to_format(padded, DataFormat.BFLOAT8_B)[: bias.size])
        assert not np.array_equal(op.inputs["weight"], bf16(weight))  # really block float


def grouped_weight_matrix(weight: np.ndarray, geom: ConvGeometry, pc, block) -> np.ndarray:
    """The dense [K, N] weight matrix the tiles of :func:`grouped_weight_tiles` hold."""
    tile_ids, held, _ = grouped_weight_tiles(weight, geom, pc, block)
    width = block.num_cores_c_out * block.weight_block_w_ntiles
    tiles = np.zeros((block.k_ntiles * width, 1024), dtype=np.float32)
    tiles[tile_ids] = held
    return tiles_to_matrix(tiles, block.k_ntiles * 32, width * 32)


def _geometry_and_blocks(conv: dict[str, Any]):
    spec = load_config(config(**conv)).conv
    geom = ConvGeometry.from_spec(spec)
    pc = determine_parallel_config(geom, spec.memory_layout, 8, 8, channel_align=CLASSIC_CHANNEL_ALIGN)
    return spec, geom, pc, determine_classic_block_config(geom, pc, "wormhole_b0")


@pytest.mark.parametrize("conv", [
    {"channels": 40, "kernel": [3, 5], "padding": [1, 2]},
    {"channels": 32, "kernel": [5, 5], "padding": [2, 2], "dilation": [1, 1]},
    {**BS96, "kernel": [3, 5], "padding": [1, 2]},
    {**BS128, "kernel": [5, 3], "padding": [2, 1], "stride": [2, 2]},
], ids=["hs_c40_k3x5", "hs_c32_k5", "bs_c96_k3x5", "bs_c128_k5x3_s2"])
def test_grouped_weight_matrix_is_block_diagonal(conv: dict[str, Any]) -> None:
    spec, geom, pc, block = _geometry_and_blocks(conv)
    _, weight, _ = generate_conv_inputs(spec, 0)
    matrix = grouped_weight_matrix(weight, geom, pc, block)
    c, kh, kw, cpc = geom.channels, geom.kh, geom.kw, pc.channels_per_core
    assert matrix.shape == (block.k_ntiles * 32, block.num_cores_c_out * block.weight_block_w_ntiles * 32)
    assert block.k_ntiles == (pc.num_cores_c if pc.layout == "block_sharded" else 1) * kh * block.act_block_w_ntiles

    # K rows: (channel block, kernel row, kernel column, local channel), each (channel block,
    # kernel row) padded to act_block_w tiles (the docstring of grouped_weight_matrix)
    segment = block.act_block_w_ntiles * 32
    expected = {}
    for ch in range(c):
        c_block, local = divmod(ch, cpc) if pc.layout == "block_sharded" else (0, ch)
        for r in range(kh):
            for s in range(kw):
                expected[((c_block * kh + r) * segment + s * cpc + local, ch)] = weight[ch, 0, r, s]
    rows, cols = np.nonzero(matrix)
    assert len(rows) == c * kh * kw == len(expected)  # 1/C of a dense conv's weights
    assert set(zip(rows.tolist(), cols.tolist())) == set(expected)
    for (row, col), value in expected.items():
        assert matrix[row, col] == value
    assert np.count_nonzero(matrix, axis=1).max() == 1  # one non-zero per K row
    assert not matrix[:, c:].any()  # padding output columns


@pytest.mark.parametrize("conv", [
    {"channels": 40, "kernel": [3, 5], "padding": [1, 2], "input_height": 6, "input_width": 7},
    {**BS96, "kernel": [3, 3], "padding": [1, 0], "stride": [2, 1], "dilation": [1, 2],
     "input_height": 9, "input_width": 10},
], ids=["hs", "bs"])
def test_grouped_weight_matrix_times_im2col_is_the_depthwise_conv(conv: dict[str, Any]) -> None:
    """An im2col built in the documented K order, times the matrix, is the float64 conv."""
    spec, geom, pc, block = _geometry_and_blocks(conv)
    x, weight, _ = generate_conv_inputs(spec, 3)
    matrix = grouped_weight_matrix(weight, geom, pc, block).astype(np.float64)
    c_blocks = pc.num_cores_c if pc.layout == "block_sharded" else 1
    cpc, segment = pc.channels_per_core, block.act_block_w_ntiles * 32
    xp = np.zeros((geom.batch, geom.padded_h, geom.padded_w, c_blocks * cpc))
    xp[:, geom.ph : geom.ph + geom.in_h, geom.pw : geom.pw + geom.in_w, : geom.channels] = x
    im2col = np.zeros((geom.out_nhw, matrix.shape[0]))
    pixel = 0
    for n in range(geom.batch):
        for oh in range(geom.out_h):
            for ow in range(geom.out_w):
                for cb in range(c_blocks):
                    for r in range(geom.kh):
                        base = (cb * geom.kh + r) * segment
                        for s in range(geom.kw):
                            stick = xp[n, oh * geom.sh + r * geom.dh, ow * geom.sw + s * geom.dw]
                            im2col[pixel, base + s * cpc : base + (s + 1) * cpc] = stick[cb * cpc : (cb + 1) * cpc]
                pixel += 1
    out = (im2col @ matrix)[:, : geom.channels].reshape(geom.batch, geom.out_h, geom.out_w, geom.channels)
    reference = depthwise_conv2d_reference(x, weight, None, spec.stride, spec.padding, spec.dilation, "none")
    np.testing.assert_allclose(out, reference, rtol=1e-9, atol=1e-9)


# -- CB table (get_cb_info, conv2d_op_program_factory_common.cpp) --------------------------------

def build_only(cfg: dict[str, Any] | Path, overrides: ClassicOverrides | None = None):
    """The classic program as ``ttsim.simulate`` builds it, without running anything."""
    config_ = load_config(cfg)
    conv = config_.conv
    device = Device(load_device(config_.device))
    geom = ConvGeometry.from_spec(conv)
    pc = determine_parallel_config(geom, conv.memory_layout, *device.grid, channel_align=CLASSIC_CHANNEL_ALIGN)
    _, weight, bias = generate_conv_inputs(conv, config_.seed)
    stick_bytes = pc.channels_per_core * 2
    input_buffer = device.allocate_l1_buffer("conv_input", pc.cores(), pc.in_shard * stick_bytes)
    halo = build_halo_configs(geom, pc.out_shard, pc.in_shard, pc.num_cores_nhw)
    _, halo_buffer = build_halo_program(device, pc, halo, input_buffer, stick_bytes)
    device.free_l1_buffer(input_buffer)
    if overrides is None:
        overrides = ClassicOverrides.from_options(config_.classic)
    built = build_classic_program(device, conv, geom, pc, halo, halo_buffer, weight, bias, overrides)
    return conv, geom, pc, built, halo_buffer


def expected_cb_table(conv, geom, pc, block) -> list[tuple[str, int | None, int | None, bool]]:
    """(name, pages, page size, globally allocated) in get_cb_info order, zero-page CBs skipped;
    None where get_cb_info gives no number to check."""
    wt, ot = TILE_BYTES[conv.weights_dtype], TILE_BYTES[conv.dtype]
    hs = pc.layout == "height_sharded"
    abh, abw, wbw = block.act_block_h_ntiles, block.act_block_w_ntiles, block.weight_block_w_ntiles
    out_h = block.per_core_out_h_ntiles
    if hs and block.num_blocks_act_h > 1:
        weight_blocks = geom.kh  # fully buffered
    else:
        weight_blocks = 2 if block.enable_weights_double_buffer else 1
    act_buffers = 2 if block.enable_act_double_buffer else 1
    reader0 = -(-abh // 2) if block.split_reader else abh
    table = [("WEIGHTS", wbw * abw * weight_blocks, wt, False),
             ("MATMUL_PARTIALS", out_h * wbw, ot, True),
             ("ACT", reader0 * abw * act_buffers, 2048 if hs else ot, False)]
    if block.split_reader:
        table.append(("ACT_SECOND_READER", (abh // 2) * abw * act_buffers, 2048, False))
    table.append(("ACT_TILIZED", abh * abw, ot, False))
    if conv.bias:
        table.append(("BIAS", wbw, wt, False))
    if not hs:
        table.append(("ACT_ROW_MAJOR_BFLOAT16", abh * abw, 2048, False))
    table += [("OUT", out_h * wbw, ot, True),
              ("READER_INDICES", 1, None, True),
              ("L1_ARRAY", 1, 64, False),
              ("ACT_SHARDED", None, pc.channels_per_core * 2, True)]
    return table


CB_CASES = {
    # seed configs with their own classic: settings
    "mobilenetv2_op14": (ROOT / "configs" / "mobilenetv2_op14.yaml", None),
    "mobilenetv2_op27": (ROOT / "configs" / "mobilenetv2_op27.yaml", None),
    "mobilenetv2_op53": (ROOT / "configs" / "mobilenetv2_op53.yaml", None),
    "yolov10_op66": (ROOT / "configs" / "yolov10_op66.yaml", None),
    "yolov10_op79": (ROOT / "configs" / "yolov10_op79.yaml", None),
    # op 14 with tt-metal's defaults: the split reader (8 x 14 pages each, by get_cb_info's formulas)
    "mobilenetv2_op14_default": (ROOT / "configs" / "mobilenetv2_op14.yaml", ClassicOverrides()),
    "mobilenetv2_op14_override": (ROOT / "configs" / "mobilenetv2_op14.yaml",
                                  ClassicOverrides(act_block_h_override=128, enable_weights_double_buffer=True,
                                                   enable_act_double_buffer=True)),
    "yolov10_op66_weights_double_buffer": (ROOT / "configs" / "yolov10_op66.yaml",
                                           ClassicOverrides(enable_weights_double_buffer=True)),
    "small_split_odd": (case_config("split_reader_odd_rows_bfp8"), None),
    "small_override_bs": (case_config("act_block_h_override_bs"), None),
    "small_no_bias": (case_config("no_bias"), None),
}


@pytest.mark.parametrize("case", list(CB_CASES))
def test_cb_table_follows_get_cb_info(case: str) -> None:
    source, overrides = CB_CASES[case]
    conv, geom, pc, built, halo_buffer = build_only(source, overrides)
    block = built.block
    table = built.program.cb_table()
    expected = expected_cb_table(conv, geom, pc, block)
    assert [spec.config.name for spec in table] == [name for name, *_ in expected]
    assert [spec.config.index for spec in table] == list(range(len(table)))  # zero-page CBs skipped
    cores = set(pc.cores())
    for spec, (name, pages, page_size, global_) in zip(table, expected):
        assert set(spec.cores) == cores, name
        if pages is not None:
            assert spec.config.num_pages == pages, name
        if page_size is not None:
            assert spec.config.page_size == page_size, name
        assert spec.config.globally_allocated is global_, name
        assert (spec.buffer is not None) is global_, name
    by_name = {spec.config.name: spec for spec in table}
    # partials and output share the output shard; ACT_SHARDED is the halo output
    assert by_name["MATMUL_PARTIALS"].buffer is by_name["OUT"].buffer is built.output
    assert by_name["ACT_SHARDED"].buffer is halo_buffer
    assert by_name["READER_INDICES"].config.page_size >= block.per_core_out_h_ntiles * 32 * 2
    assert by_name["OUT"].config.total_size <= built.output.size_per_core


def test_cb_table_worked_example_of_4_3() -> None:
    """MNv2 HS 144 channels, split reader on: ACT and ACT_SECOND_READER 8 x 14 = 112 pages of 2048 B,
    ACT_TILIZED 224 pages of 1088 B."""
    _, _, _, built, _ = build_only(ROOT / "configs" / "mobilenetv2_op14.yaml", ClassicOverrides())
    by_name = {spec.config.name: spec.config for spec in built.program.cb_table()}
    assert (by_name["ACT"].num_pages, by_name["ACT"].page_size) == (112, 2048)
    assert (by_name["ACT_SECOND_READER"].num_pages, by_name["ACT_SECOND_READER"].page_size) == (112, 2048)
    assert (by_name["ACT_TILIZED"].num_pages, by_name["ACT_TILIZED"].page_size) == (224, 1088)
    assert by_name["WEIGHTS"].page_size == 1088 and by_name["WEIGHTS"].num_pages == 5 * 14


def test_run_reports_the_built_cb_table(results) -> None:
    """build_only mirrors what ttsim.run builds (so the CB tests above test the real thing)."""
    for case in ("split_reader_odd_rows_bfp8", "bs96_double_buffer_bfp8"):
        _, op = results[case]
        _, _, _, built, _ = build_only(case_config(case))
        assert [spec.config for spec in op.details["cb_table"]] == [spec.config for spec in built.program.cb_table()]


# -- program="all" and unsupported variants -------------------------------------------------------

@pytest.mark.parametrize("conv", [{}, {**BS128, "stride": [2, 2], "activation": "relu6"}],
                         ids=["height_sharded", "block_sharded"])
def test_program_all_runs_classic_then_pool_then_depthwise_and_they_agree(conv: dict[str, Any]) -> None:
    results_ = ttsim.run(config(**conv), program="all")
    assert [r.op_code for r in results_] == ["HaloDeviceOperation", "OptimizedConvNew",
                                            "HaloDeviceOperation", "Conv2dDepthwisePool",
                                            "HaloDeviceOperation", "Conv2dDepthwise"]
    assert [r.program for r in results_] == ["classic", "classic", "pool", "pool", "depthwise", "depthwise"]
    classic, pool = results_[1], results_[3]
    assert pearson(classic.output, results_[5].output) > 0.999
    assert classic.output.shape == pool.output.shape
    assert pearson(classic.output, pool.output) > 0.999
    np.testing.assert_array_equal(classic.inputs["input"], pool.inputs["input"])
    assert classic.pcc >= 0.999 and pool.pcc >= 0.999
    # the classic run is the same as a classic-only run
    alone = ttsim.run(config(**conv), program="classic")[1]
    assert alone.device_kernel_duration_cycles == classic.device_kernel_duration_cycles
    np.testing.assert_array_equal(alone.output, classic.output)


@pytest.mark.parametrize(("conv", "key"), [
    ({"output_layout": "row_major"}, "output_layout"),
    ({"memory_layout": "width_sharded"}, "memory_layout"),
])
def test_unsupported_classic_variants_raise(conv: dict[str, Any], key: str) -> None:
    with pytest.raises(UnsupportedFunctionality, match=key):
        ttsim.run(config(**conv), program="classic")


def test_same_config_twice_gives_identical_cycles() -> None:
    cfg = case_config("bs128_s2_relu6")
    first = ttsim.run(cfg, program="classic")
    second = ttsim.run(cfg, program="classic")
    for a, b in zip(first, second):
        assert a.device_kernel_duration_cycles == b.device_kernel_duration_cycles
    np.testing.assert_array_equal(first[1].output, second[1].output)


@pytest.mark.parametrize("program", ["classic", "depthwise"])
def test_traced_and_untraced_runs_charge_the_same_cycles(program: str) -> None:
    """Untraced, the compute and CB calls charge their threads inline (the hot path); traced (every
    core), through the helpers that also record the timeline: every kernel zone, stall and busy
    cycle, every CB statistic and the output are the same (matmul blocks, packer ReLU)."""
    cfg = {"name": "t", "conv": {**BASE_CONV, "channels": 64, "activation": "relu6",
                                 "weights_dtype": "bfloat8_b"}}
    plain = ttsim.run(cfg, program=program)
    traced = ttsim.run(cfg, program=program, trace=True)
    assert_traced_run_matches(plain, traced)
