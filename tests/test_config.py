"""Op-config loading: the shipped configs load, and every bad input is one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ttsim.config import OpConfig, load_config
from ttsim.errors import ConfigurationError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NAMES = [
    "mobilenetv2_op14",
    "mobilenetv2_op27",
    "mobilenetv2_op40",
    "mobilenetv2_op53",
    "yolov10_op66",
    "yolov10_op79",
]
# (N, H, W, C, layout, measured us) from the depthwise branch's "Depthwise Conv2d Optimization Plan".
BASELINE = {
    "mobilenetv2_op14": (10, 56, 56, 144, "height_sharded", 171.009),
    "mobilenetv2_op27": (10, 14, 14, 576, "block_sharded", 137.788),
    "mobilenetv2_op40": (10, 7, 7, 960, "block_sharded", 126.492),
    "mobilenetv2_op53": (10, 7, 7, 112, "height_sharded", 18.451),
    "yolov10_op66": (1, 80, 80, 320, "height_sharded", 232.140),
    "yolov10_op79": (1, 40, 40, 640, "block_sharded", 181.828),
}


def _valid() -> dict[str, Any]:
    """A minimal valid config as a fresh mapping."""
    return {
        "name": "t",
        "conv": {
            "batch": 1,
            "input_height": 4,
            "input_width": 4,
            "channels": 32,
            "kernel": [3, 3],
            "stride": [1, 1],
            "dilation": [1, 1],
            "padding": [1, 1],
            "bias": True,
            "activation": "relu",
            "dtype": "bfloat16",
            "weights_dtype": "bfloat16",
            "memory_layout": "height_sharded",
            "math_fidelity": "LoFi",
        },
    }


def _error(source: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        load_config(source)
    return str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    n, h, w, c, layout, us = BASELINE[name]
    conv = cfg.conv
    assert cfg.name == name and cfg.device == "wormhole_b0"
    assert (conv.batch, conv.input_height, conv.input_width, conv.channels) == (n, h, w, c)
    assert conv.memory_layout == layout
    assert conv.kernel == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
    assert conv.dilation == (1, 1) and conv.bias and conv.math_fidelity == "LoFi"
    assert conv.activation == ("relu6" if name.startswith("mobilenetv2") else "silu")
    assert cfg.measured.classic_device_kernel_duration_ns == pytest.approx(us * 1000)


def test_dict_source_defaults_and_tuples() -> None:
    cfg = load_config(_valid())
    assert isinstance(cfg, OpConfig)
    assert cfg.seed == 0 and cfg.measured.classic_device_kernel_duration_ns is None
    assert cfg.conv.kernel == (3, 3) and cfg.conv.output_layout == "tile"


def test_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: t\nconv: {batch: 1, input_height: 4, input_width: 4, channels: 32, kernal: [3, 3],\n"
        "  kernel: [3, 3], stride: [1, 1], dilation: [1, 1], padding: [1, 1], bias: true,\n"
        "  activation: relu, dtype: bfloat16, weights_dtype: bfloat16,\n"
        "  memory_layout: height_sharded, math_fidelity: LoFi}\n"
    )
    message = _error(path)
    assert message == f"{path}: unknown key 'conv.kernal' (did you mean 'conv.kernel'?)"


def test_bad_literal() -> None:
    data = _valid()
    data["conv"]["activation"] = "relu7"
    message = _error(data)
    assert "conv.activation" in message and "'relu7'" in message
    assert len(message.splitlines()) == 1


def test_negative_stride() -> None:
    data = _valid()
    data["conv"]["stride"] = [-1, 1]
    message = _error(data)
    assert "conv.stride[0]" in message and "-1" in message


def test_kernel_larger_than_padded_input() -> None:
    data = _valid()
    data["conv"]["kernel"] = [7, 3]
    message = _error(data)
    assert message.startswith("<dict>: conv.kernel: ")
    assert "height" in message and "6" in message


def test_bfloat8_output_requires_tile() -> None:
    data = _valid()
    data["conv"]["dtype"] = "bfloat8_b"
    data["conv"]["output_layout"] = "row_major"
    assert "conv.output_layout" in _error(data)


def test_wrong_types_one_line_each() -> None:
    data = _valid()
    data["conv"]["batch"] = "2"
    data["conv"]["bias"] = "yes"
    data["conv"]["kernel"] = 3
    data["seed"] = -1
    data["measured"] = {"classic_device_kernel_duration_ns": 0}
    lines = _error(data).splitlines()
    assert len(lines) == 5
    keys = ["conv.batch", "conv.bias", "conv.kernel", "seed", "measured.classic_device"]
    for key in keys:
        assert any(line.startswith(f"<dict>: {key}") for line in lines), key


def test_missing_key() -> None:
    data = _valid()
    del data["conv"]["channels"]
    assert _error(data) == "<dict>: conv.channels: missing required key"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    message = _error(path)
    assert message.startswith(str(path)) and "not found" in message


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: t\nconv: [1, 2\n")
    message = _error(path)
    assert message.startswith(f"{path}: line ") and "YAML syntax error" in message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(("text", "what"), [("- 1\n- 2\n", "list"), ("", "empty")])
def test_non_mapping(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "top.yaml"
    path.write_text(text)
    message = _error(path)
    assert message.startswith(f"{path}: top level must be a mapping") and what in message
