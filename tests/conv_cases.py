"""The small conv both program test files start from (8 x 8 x 32, 3 x 3, bf16, HS, tiled out);
each case overrides only what it varies."""

from __future__ import annotations

from typing import Any

BASE_CONV: dict[str, Any] = {
    "batch": 1,
    "input_height": 8,
    "input_width": 8,
    "channels": 32,
    "kernel": [3, 3],
    "stride": [1, 1],
    "dilation": [1, 1],
    "padding": [1, 1],
    "bias": True,
    "activation": "none",
    "dtype": "bfloat16",
    "weights_dtype": "bfloat16",
    "memory_layout": "height_sharded",
    "math_fidelity": "HiFi4",
    "output_layout": "tile",
}
