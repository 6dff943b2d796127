"""The per-core L1 allocator: CBs bottom-up, buffers top-down, the usable budget, overflow
messages, and sharded L1 buffers on a device."""

from __future__ import annotations

import numpy as np
import pytest

from ttsim.device.device import Device
from ttsim.device.l1 import L1Memory, align_up
from ttsim.device.spec import load_device
from ttsim.errors import L1OverflowError

# wormhole_b0 (TM soc descriptor worker_l1_size; dev_mem_map.h + wh_hal_tensix.cpp): L1 1,499,136 B,
# first unreserved address 103,424 B,
# l1_small_size 16,384 B reserved at the top by the application.
WH_L1 = 1_499_136
WH_BASE = 103_424
WH_SMALL = 16_384
WH_BUDGET = WH_L1 - WH_BASE - WH_SMALL  # 1,379,328


def _wh_core_l1() -> L1Memory:
    return Device(load_device("wormhole_b0")).core((0, 0)).l1


def test_align_up() -> None:
    assert [align_up(v, 16) for v in (0, 1, 15, 16, 17, 103_424)] == [0, 16, 16, 16, 32, 103_424]


def test_wormhole_budget_and_bounds() -> None:
    l1 = _wh_core_l1()
    assert l1.base == WH_BASE
    assert l1.end == WH_L1 - WH_SMALL
    assert l1.budget_bytes == WH_BUDGET == 1_379_328
    assert l1.data.size == WH_L1
    assert l1.used_bytes == 0


def test_cbs_bottom_up_aligned_to_16() -> None:
    l1 = L1Memory("(0,0)", 4096, base=100, end=4000, alignment=16)
    a = l1.allocate_cb("a", 10)
    b = l1.allocate_cb("b", 33)
    c = l1.allocate_cb("c", 16)
    assert a == 112  # 100 rounded up to 16
    assert b == 128  # 122 rounded up
    assert c == 176  # 161 rounded up
    assert [(x.name, x.kind) for x in l1.allocations] == [("a", "cb"), ("b", "cb"), ("c", "cb")]


def test_buffers_top_down_aligned_to_16() -> None:
    l1 = L1Memory("(0,0)", 4096, base=96, end=4000, alignment=16)
    x = l1.allocate_buffer("x", 100)
    y = l1.allocate_buffer("y", 64)
    assert x == 3888  # (4000 - 100) = 3900 rounded down to 16
    assert y == 3824  # 3888 - 64
    assert x + 100 <= 4000 and y + 64 <= x
    cb = l1.allocate_cb("cb", 32)
    assert cb == 96  # CBs still start at the bottom


def test_whole_budget_fits_and_one_more_byte_overflows() -> None:
    l1 = _wh_core_l1()
    assert l1.allocate_cb("everything", WH_BUDGET) == WH_BASE
    assert l1.used_bytes == WH_BUDGET
    with pytest.raises(L1OverflowError) as info:
        l1.allocate_cb("one_more", 16)
    message = str(info.value)
    assert "'one_more'" in message
    assert "(16 B over)" in message
    assert f"{WH_BUDGET:,} B usable budget" in message
    assert "everything" in message  # the allocation table lists what is there


def test_buffer_overflow_message_names_allocation_and_excess() -> None:
    l1 = _wh_core_l1()
    l1.allocate_cb("cbs", 1_000_000)
    l1.allocate_buffer("shard", 300_000)
    with pytest.raises(L1OverflowError) as info:
        l1.allocate_buffer("halo_output", 100_000)
    message = str(info.value)
    over = 1_000_000 + 300_000 + 100_000 - WH_BUDGET  # 20,672 B
    assert "core (0,0)" in message
    assert "'halo_output' (100,000 B)" in message
    assert f"({over:,} B over)" in message
    assert "cbs" in message and "shard" in message


def test_cb_overflow_against_buffers() -> None:
    l1 = _wh_core_l1()
    l1.allocate_buffer("input", WH_BUDGET - 4096)
    l1.allocate_cb("small", 4096)  # exactly fills the budget
    with pytest.raises(L1OverflowError, match=r"'in_cb' \(2,048 B\).*\(2,048 B over\)"):
        l1.allocate_cb("in_cb", 2048)


def test_overflow_from_alignment_padding_reports_positive_excess() -> None:
    l1 = L1Memory("(0,0)", 200, base=0, end=100, alignment=16)
    l1.allocate_cb("a", 1)
    with pytest.raises(L1OverflowError) as info:
        l1.allocate_cb("b", 99)  # placed at 16: ends at 115, 15 B past the end
    assert "(15 B over)" in str(info.value)


def test_free_cbs_keeps_buffers() -> None:
    l1 = _wh_core_l1()
    buffer = l1.allocate_buffer("output", 8192)
    first = l1.allocate_cb("a", 1000)
    l1.allocate_cb("b", 1000)
    l1.free_cbs()
    assert [(a.name, a.kind, a.address) for a in l1.allocations] == [("output", "buffer", buffer)]
    assert l1.used_bytes == WH_L1 - WH_SMALL - buffer
    assert l1.allocate_cb("c", 64) == first == WH_BASE  # CBs start again from the bottom
    assert l1.allocate_buffer("next", 16) == buffer - 16  # buffers keep stacking down


def test_read_write_bytes() -> None:
    l1 = _wh_core_l1()
    l1.write(WH_BASE + 4, np.arange(8, dtype=np.uint8))
    assert list(l1.read(WH_BASE, 12)) == [0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7]


def test_device_allocate_l1_buffer_per_core_addresses() -> None:
    device = Device(load_device("wormhole_b0"))
    top = WH_L1 - WH_SMALL
    both = device.allocate_l1_buffer("both", [(0, 0), (1, 0)], 1000)
    expected = (top - 1000) // 16 * 16
    assert both.addresses == {(0, 0): expected, (1, 0): expected}
    assert both.size_per_core == 1000
    only = device.allocate_l1_buffer("only_first", [(0, 0)], 512)
    assert only.address((0, 0)) == expected - 512
    third = device.allocate_l1_buffer("third", [(0, 0), (1, 0)], 256)
    assert third.address((0, 0)) == expected - 512 - 256
    assert third.address((1, 0)) == expected - 256
    assert device.core((2, 0)).l1.allocations == []  # other cores untouched
    with pytest.raises(L1OverflowError, match=r"core \(1,0\).*'huge'"):
        device.allocate_l1_buffer("huge", [(1, 0)], WH_BUDGET)


def test_l1_words_are_the_native_uint32_at_any_address() -> None:
    """A core's 32-bit words (semaphores) read and store as a numpy uint32 view of the 4 bytes
    at the address does, word-aligned or not, up to the last whole word of L1."""
    core = Device(load_device("wormhole_b0")).core((0, 0))
    data = core.l1.data
    rng = np.random.default_rng(3)
    data[:] = rng.integers(0, 256, data.size, dtype=np.uint8)
    for address in (0, 4, 0x1000, 0x1002, 0x1007, data.size - 8, data.size - 5, data.size - 4):
        assert core.read_word(address) == int(data[address : address + 4].view(np.uint32)[0])
        value = int(rng.integers(0, 2**32))
        expected = data.copy()
        expected[address : address + 4].view(np.uint32)[0] = value
        core.write_word(address, value - 2**32 if address & 1 else value)  # stored modulo 2**32
        np.testing.assert_array_equal(data, expected)
        assert core.read_word(address) == value
        core.add_word(address, 2**32 + 5)
        assert core.read_word(address) == (value + 5) % 2**32
