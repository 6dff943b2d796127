"""The compute API's caches of values derived from L1 bytes (ttsim/kernel_api/tile_cache.py)."""

from __future__ import annotations

import numpy as np

from ttsim.kernel_api.tile_cache import KeptByBytes, KeptByContent, keep


def test_a_value_is_returned_only_for_the_bytes_it_was_computed_from() -> None:
    cache = KeptByBytes(4)
    value = np.arange(3)
    assert cache.put("tiles at 0x100", b"\x01\x02", value) is value
    assert cache.get("tiles at 0x100", b"\x01\x02") is value
    assert cache.get("tiles at 0x100", b"\x01\x03") is None  # the tile was rewritten
    assert cache.get("tiles at 0x200", b"\x01\x02") is None  # same bytes elsewhere: another key


def test_a_pinned_object_must_be_the_same_object() -> None:
    cache = KeptByBytes(4)
    columns, equal_columns = np.array([0, 1]), np.array([0, 1])
    cache.put(("bias", id(columns)), b"x", "broadcast", columns)
    assert cache.get(("bias", id(columns)), b"x", columns) == "broadcast"
    assert cache.get(("bias", id(columns)), b"x", equal_columns) is None
    assert cache.get(("bias", id(columns)), b"x") is None


def test_a_full_cache_is_emptied_before_the_next_value() -> None:
    cache = KeptByBytes(2)
    cache.put("a", b"a", 1)
    cache.put("b", b"b", 2)
    cache.put("c", b"c", 3)
    assert [cache.get(key, key.encode()) for key in "abc"] == [None, None, 3]
    entries: dict = {"x": 0}
    assert keep(entries, 1, "y", 5) == 5 and entries == {"y": 5}
    assert keep(entries, 2, "z", 6) == 6 and entries == {"y": 5, "z": 6}


def test_content_kept_values_need_the_same_head_and_content() -> None:
    """KeptByContent: a value for the content (an array compared element-wise with a view) it was
    computed from, under its key; a different head is a miss without a comparison."""
    cache = KeptByContent(4, 2)
    l1 = np.arange(64, dtype=np.uint64)
    kept = np.array(l1[8:16])
    assert cache.put("run at 8", kept, b"h", "prepared") == "prepared"
    assert cache.get("run at 8", l1[8:16], b"h") == "prepared"
    l1[12] += 1  # a tile rewritten
    assert cache.get("run at 8", l1[8:16], b"h") is None
    assert cache.get("run at 8", kept, b"other head") is None
    assert cache.get("run at 16", kept, b"h") is None


def test_content_kept_keeps_the_newest_versions_per_key() -> None:
    """Each key keeps the values of its ``versions`` newest contents; a full cache is emptied."""
    cache = KeptByContent(2, 2)
    contents = [np.full(4, i, dtype=np.uint64) for i in range(3)]
    for i, content in enumerate(contents):
        cache.put("weights", content, b"", i)
    assert [cache.get("weights", c, b"") for c in contents] == [None, 1, 2]
    cache.put("a", contents[0], b"", "a")
    cache.put("b", contents[0], b"", "b")
    assert cache.get("weights", contents[2], b"") is None and cache.get("b", contents[0], b"") == "b"
