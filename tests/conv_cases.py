"""The small conv both program test files start from (8 x 8 x 32, 3 x 3, bf16, HS, tiled out);
each case overrides only what it varies."""

from __future__ import annotations

from typing import Any

import numpy as np

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


def assert_traced_run_matches(plain: list, traced: list) -> None:
    """A traced run (``trace=True``, whose compute calls go through the helpers that record the
    timeline) and the same run untraced (the inline hot paths) agree on every kernel zone, stall
    and busy cycle, every CB statistic and the conv output."""
    for a, b in zip(plain, traced):
        assert b.profile.events  # the traced run went through the helpers
        assert a.profile.zones == b.profile.zones
        assert a.profile.blocked == b.profile.blocked
        assert a.profile.busy == b.profile.busy
        assert a.profile.cbs == b.profile.cbs
    np.testing.assert_array_equal(plain[1].output, traced[1].output)
