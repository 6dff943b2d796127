"""DRAM interleaved buffers: the host's page writes land where page_location says."""

from __future__ import annotations

import numpy as np
import pytest

from ttsim.device.dram import Dram
from ttsim.device.spec import load_device


@pytest.mark.parametrize("page_size, num_pages", [(2048, 36), (1088, 7), (100, 29), (64, 1)])
def test_write_pages_puts_every_page_at_its_page_location(page_size: int, num_pages: int) -> None:
    dram = Dram(load_device("wormhole_b0"))
    earlier = dram.allocate_interleaved("earlier", 96, 5)  # the buffer does not start at 0
    buffer = dram.allocate_interleaved("pages", page_size, num_pages)
    assert buffer.base_address > earlier.base_address
    rng = np.random.default_rng(page_size + num_pages)
    pages = rng.integers(1, 256, size=(num_pages, page_size), dtype=np.uint8)  # no zero byte
    dram.write_pages(buffer, pages)
    expected = [np.zeros_like(bank.data) for bank in dram.banks]
    for page_id in range(num_pages):  # the definition, page by page
        bank, address = buffer.page_location(page_id)
        expected[bank][address : address + page_size] = pages[page_id]
    for bank, want in zip(dram.banks, expected):
        np.testing.assert_array_equal(bank.data, want)
