"""Values kernels and host code share, as tt-metal defines them for both sides.

``VALID`` / ``INVALID`` are the semaphore values of tt-metal's multicast handshakes
(tenstorrent/tt-metal ``tt_metal/hostdevcommon/api/hostdevcommon/common_values.hpp``). The tile
shape is re-exported from :mod:`ttsim.formats`, its one definition, so kernels need only the
kernel API.
"""

from ttsim.formats import TILE_H, TILE_W

INVALID = 0
"""Semaphore value: the data a receiver waits for has not arrived."""
VALID = 1
"""Semaphore value: the multicast data has landed and may be used."""

__all__ = ["INVALID", "TILE_H", "TILE_W", "VALID"]
