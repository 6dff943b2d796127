"""What a device can hold: a conv checked against its device preset before anything is built.

Field validation (:mod:`ttsim.config`) bounds each integer on its own; the device a config runs on
is known only once its preset is loaded (``--device`` may override the config's), so the sizes
are checked here, from the preset's L1, grid and DRAM figures, before any host array or device
buffer is made. Every check is a lower bound on what any program needs (a program's own
allocator still checks its exact CB and buffer sizes), so no conv that fits is refused:

- the input and the output tensors are sharded over the compute grid's L1 (tt-metal's sharded
  conv keeps both in L1), each stick at least ``channels`` bfloat16 values (output: one byte per
  value for bfloat8_b) aligned to the L1 alignment;
- a core holds whole shards of 32 sticks (a tile height) of at least its share of the channels;
- the halo buffer of a core holds at least the padded input rows of one output row, i.e. the
  dilated kernel height times the padded width, in sticks of its channel share;
- the depthwise weights (channels x kh x kw) fit in DRAM.
"""

from __future__ import annotations

from ttsim.config import ConvSpec, conv_output_size
from ttsim.device.spec import DeviceSpec
from ttsim.errors import ConfigurationError

MAX_NAME = 100
"""Longest program or device name accepted (characters); the real ones are under 16."""
SHARD_STICKS = 32
"""Sticks per shard are whole tiles (32 rows), tt-metal's sharded conv."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _ceil_div(a, b) * b


def check_conv_fits(conv: ConvSpec, spec: DeviceSpec) -> None:
    """Raise ConfigurationError naming the conv keys and the device limit a conv exceeds."""
    grid_x, grid_y = spec.chip.compute_grid.value
    cores = grid_x * grid_y
    usable = spec.l1.usable_bytes
    align = spec.l1.alignment_bytes.value
    grid_l1 = cores * usable
    where = f"{spec.name} ({grid_x}x{grid_y} cores x {usable:,} B of usable L1)"
    (kh, kw), (sh, sw) = conv.kernel, conv.stride
    (ph, pw), (dh, dw) = conv.padding, conv.dilation
    n, h, w, c = conv.batch, conv.input_height, conv.input_width, conv.channels
    out_h = conv_output_size(h, kh, sh, ph, dh)
    out_w = conv_output_size(w, kw, sw, pw, dw)

    in_bytes = n * h * w * _round_up(2 * c, align)
    if in_bytes > grid_l1:
        raise ConfigurationError(
            f"conv: the input (batch {n} x input_height {h} x input_width {w} x channels {c}, "
            f"bfloat16) needs at least {in_bytes:,} B, more than the L1 of {where}")
    out_value_bytes = 1 if conv.dtype == "bfloat8_b" else 2
    out_bytes = n * out_h * out_w * _round_up(out_value_bytes * c, align)
    if out_bytes > grid_l1:
        raise ConfigurationError(
            f"conv: the output (batch {n} x {out_h} x {out_w} x channels {c}, {conv.dtype}; from "
            f"conv.padding {list(conv.padding)} and conv.stride {list(conv.stride)}) needs at least "
            f"{out_bytes:,} B, more than the L1 of {where}")

    # cores that may split the channels (tt-metal's determine_parallel_config): none for HS, the
    # grid columns for BS, every core for WS
    channel_cores = {"height_sharded": 1, "block_sharded": grid_x, "width_sharded": cores}[conv.memory_layout]
    stick = _round_up(2 * _ceil_div(c, channel_cores), align)  # bytes of one stick on one core
    if SHARD_STICKS * stick > usable:
        raise ConfigurationError(
            f"conv.channels: {c} channels ({conv.memory_layout}: at least {_ceil_div(c, channel_cores)} "
            f"per core) need {SHARD_STICKS * stick:,} B per {SHARD_STICKS}-stick shard, more than "
            f"the {usable:,} B of usable L1 per core of {spec.name}")
    window_rows = dh * (kh - 1) + 1
    halo_bytes = window_rows * (w + 2 * pw) * stick
    if halo_bytes > usable:
        raise ConfigurationError(
            f"conv.kernel: one output row reads {window_rows} padded input rows (conv.kernel "
            f"{list(conv.kernel)}, conv.dilation {list(conv.dilation)}) of {w + 2 * pw} sticks "
            f"(input_width {w} + 2 x padding {pw}): {halo_bytes:,} B, more than the {usable:,} B "
            f"of usable L1 per core of {spec.name}")
    weight_bytes = c * kh * kw * (1 if conv.weights_dtype == "bfloat8_b" else 2)
    if weight_bytes > spec.dram.capacity_bytes:
        raise ConfigurationError(
            f"conv: the weights (channels {c} x kernel {kh}x{kw}) need {weight_bytes:,} B, more than "
            f"the {spec.dram.capacity_bytes:,} B of DRAM of {spec.name}")


def check_run_arguments(program: object, device: object, trace: object, trace_cores: object) -> None:
    """Type checks of :func:`ttsim.run`'s arguments besides the config (which
    :func:`ttsim.config.load_config` checks), so a wrong type is a ConfigurationError, never a
    TypeError from deep inside."""
    if not isinstance(program, str) or len(program) > MAX_NAME:
        raise ConfigurationError(
            f"program: expected a program name (str of at most {MAX_NAME} characters), got {type(program).__name__}")
    if device is not None and (not isinstance(device, str) or len(device) > MAX_NAME):
        raise ConfigurationError(f"device: expected a device preset name (str of at most {MAX_NAME} "
                                 f"characters) or None, got {type(device).__name__}")
    if not isinstance(trace, bool):
        raise ConfigurationError(f"trace: expected True or False, got {type(trace).__name__}")
    if trace_cores is None:
        return
    if isinstance(trace_cores, (str, bytes)) or not hasattr(trace_cores, "__iter__"):
        raise ConfigurationError(
            f"trace_cores: expected a collection of (x, y) core coordinates or None, got {type(trace_cores).__name__}")
    for count, core in enumerate(trace_cores):
        ok = (isinstance(core, tuple) and len(core) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in core))
        if not ok or count > 10_000:
            raise ConfigurationError("trace_cores: expected (x, y) tuples of ints (at most 10,000)")
