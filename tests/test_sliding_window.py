"""Sliding-window geometry and halo configs, checked against a directly padded image."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ttsim.config import ConvSpec
from ttsim.numerics import depthwise_conv2d_reference
from ttsim.programs.parallel import determine_parallel_config
from ttsim.programs.sliding_window import ConvGeometry, HaloCoreConfig, build_halo_configs


def _spec(
    batch: int,
    h: int,
    w: int,
    c: int,
    kernel: tuple[int, int] = (3, 3),
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    layout: str = "height_sharded",
) -> ConvSpec:
    return ConvSpec(
        batch=batch,
        input_height=h,
        input_width=w,
        channels=c,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=False,
        activation="none",
        dtype="bfloat16",
        weights_dtype="bfloat16",
        memory_layout=layout,
        math_fidelity="LoFi",
    )


def test_geometry_hand_case() -> None:
    geom = ConvGeometry.from_spec(_spec(2, 5, 6, 4, stride=(2, 2)))
    assert (geom.out_h, geom.out_w, geom.padded_h, geom.padded_w) == (3, 3, 7, 8)
    assert (geom.in_nhw, geom.out_nhw) == (60, 18)
    assert geom.window_span == 2 * 8 + 2
    assert [geom.top_left(o) for o in (0, 1, 2, 3, 4, 8, 9, 13)] == [0, 2, 4, 16, 18, 36, 56, 74]
    expected = [geom.top_left(o) for o in range(geom.out_nhw)]
    assert geom.top_lefts(0, geom.out_nhw).tolist() == expected
    assert geom.top_lefts(5, 11).tolist() == expected[5:11]


def test_geometry_dilation_and_asymmetric_kernel() -> None:
    geom = ConvGeometry.from_spec(_spec(1, 9, 7, 1, kernel=(5, 3), padding=(0, 2), dilation=(2, 1)))
    assert (geom.out_h, geom.out_w, geom.padded_w) == (1, 9, 11)
    assert geom.window_span == 4 * 2 * 11 + 2
    assert geom.top_left(8) == 8


def _reconstruct(cfg: HaloCoreConfig, shards: np.ndarray, in_shard: int) -> np.ndarray:
    """Fill a halo buffer from the runs, checking that every stick is written exactly once."""
    buf = np.full((cfg.length, shards.shape[-1]), np.nan)
    for dst, length in cfg.pad_runs:
        assert length > 0 and np.isnan(buf[dst : dst + length]).all()
        buf[dst : dst + length] = 0.0
    for core, src, dst, length in cfg.copy_runs:
        assert length > 0 and src + length <= in_shard
        assert np.isnan(buf[dst : dst + length]).all()
        buf[dst : dst + length] = shards[core, src : src + length]
    assert not np.isnan(buf).any()
    return buf


def _assert_maximal(cfg: HaloCoreConfig) -> None:
    """No two adjacent runs could have been merged."""
    runs = sorted(
        [(dst, length, None) for dst, length in cfg.pad_runs]
        + [(dst, length, (core, src)) for core, src, dst, length in cfg.copy_runs]
    )
    for (d0, n0, s0), (d1, _, s1) in zip(runs, runs[1:]):
        assert d0 + n0 == d1
        if s0 is None or s1 is None:
            assert (s0 is None) != (s1 is None)
        else:
            assert not (s0[0] == s1[0] and s0[1] + n0 == s1[1])


def _check_halo(spec: ConvSpec, out_shard: int, in_shard: int, num_cores: int) -> None:
    geom = ConvGeometry.from_spec(spec)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((geom.batch, geom.in_h, geom.in_w, geom.channels))
    weight = rng.standard_normal((geom.channels, 1, geom.kh, geom.kw))
    sticks = np.zeros((num_cores * in_shard, geom.channels))
    sticks[: geom.in_nhw] = x.reshape(-1, geom.channels)
    shards = sticks.reshape(num_cores, in_shard, geom.channels)
    padded = np.pad(x, ((0, 0), (geom.ph, geom.ph), (geom.pw, geom.pw), (0, 0)))
    padded_sticks = padded.reshape(-1, geom.channels)
    taps = np.array(
        [i * geom.dh * geom.padded_w + j * geom.dw for i in range(geom.kh) for j in range(geom.kw)]
    )
    flat_weight = weight[:, 0].reshape(geom.channels, -1).T  # [taps, C]

    configs = build_halo_configs(geom, out_shard, in_shard, num_cores)
    assert len(configs) == num_cores
    outputs = []
    for core, cfg in enumerate(configs):
        expected_outputs = max(0, min(out_shard, geom.out_nhw - core * out_shard))
        assert cfg.num_outputs == expected_outputs == len(cfg.reader_indices)
        assert cfg.reader_indices.dtype == np.uint32
        if cfg.num_outputs == 0:
            assert cfg.length == 0 and not cfg.pad_runs and not cfg.copy_runs
            continue
        assert cfg.reader_indices[0] == 0
        assert int(cfg.reader_indices.max()) + geom.window_span < cfg.length
        buf = _reconstruct(cfg, shards, in_shard)
        np.testing.assert_array_equal(buf, padded_sticks[cfg.start : cfg.start + cfg.length])
        _assert_maximal(cfg)
        windows = buf[cfg.reader_indices.astype(np.int64)[:, None] + taps]  # [out, taps, C]
        outputs.append(np.einsum("otc,tc->oc", windows, flat_weight))
    reference = depthwise_conv2d_reference(
        x, weight, None, spec.stride, spec.padding, spec.dilation, "none"
    )
    np.testing.assert_allclose(
        np.concatenate(outputs), reference.reshape(-1, geom.channels), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(
    "spec",
    [
        _spec(2, 9, 10, 3),
        _spec(2, 11, 9, 2, stride=(2, 2)),
        _spec(1, 12, 11, 2, dilation=(2, 2), padding=(2, 2)),
        _spec(2, 10, 9, 2, kernel=(5, 5), padding=(2, 2)),
        _spec(2, 13, 10, 2, kernel=(5, 3), stride=(2, 1), padding=(2, 0), dilation=(1, 2)),
    ],
    ids=["s1", "s2", "dil2", "k5", "mixed_nopad_w"],
)
def test_halo_height_sharded(spec: ConvSpec) -> None:
    parallel = determine_parallel_config(ConvGeometry.from_spec(spec), "height_sharded", 8, 8)
    _check_halo(spec, parallel.out_shard, parallel.in_shard, parallel.num_cores_nhw)


@pytest.mark.parametrize(
    ("out_shard", "in_shard", "num_cores"), [(7, 16, 14), (13, 32, 6), (96, 200, 1)]
)
def test_halo_uneven_shards(out_shard: int, in_shard: int, num_cores: int) -> None:
    """Odd shard sizes: runs split at input-shard edges, trailing cores hold 0 outputs."""
    spec = _spec(2, 7, 9, 2, stride=(2, 1))
    _check_halo(spec, out_shard, in_shard, num_cores)
    configs = build_halo_configs(ConvGeometry.from_spec(spec), out_shard, in_shard, num_cores)
    shard_splits = [
        (a, b)
        for cfg in configs
        for a, b in zip(cfg.copy_runs, cfg.copy_runs[1:])
        if a[2] + a[3] == b[2] and b[0] == a[0] + 1 and b[1] == 0
    ]
    assert bool(shard_splits) == (in_shard < 100)


def test_halo_rejects_short_cover() -> None:
    geom = ConvGeometry.from_spec(_spec(1, 8, 8, 1))
    with pytest.raises(ValueError):
        build_halo_configs(geom, 32, 32, 1)


@pytest.mark.parametrize(
    ("batch", "h", "w", "c"), [(10, 56, 56, 144), (1, 80, 80, 320), (10, 14, 14, 576)]
)
def test_halo_build_is_fast(batch: int, h: int, w: int, c: int) -> None:
    spec = _spec(batch, h, w, c)
    geom = ConvGeometry.from_spec(spec)
    parallel = determine_parallel_config(geom, "height_sharded", 8, 8)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        configs = build_halo_configs(
            geom, parallel.out_shard, parallel.in_shard, parallel.num_cores_nhw
        )
        best = min(best, time.perf_counter() - t0)
    assert sum(cfg.num_outputs for cfg in configs) == geom.out_nhw
    assert best < 0.2  # budget 50 ms; slack for slow CI machines
