"""Tilize one block from a row-major CB into a tiled CB: the wait / reserve / ``tilize_block`` /
push / pop sequence tt-metal's compute kernels repeat around ``fast_tilize_block`` (e.g.
``conv_bmm_tilize.cpp``'s activation tilize and ``compute_pool_2d.cpp``'s output tilize), under a
tilize configuration the caller set up (``fast_tilize_init*``) and tears down."""

from __future__ import annotations

from ttsim.kernel_api import ComputeContext


def tilize_pages(ctx: ComputeContext, in_cb: int, in_pages: int, out_cb: int, tiles: int):
    """Wait for ``in_pages`` row-major pages of ``in_cb``, tilize them into ``tiles`` tiles of
    ``out_cb`` (``fast_tilize_block`` of ``tiles`` tile columns), push those, pop the pages
    (run with ``yield from``)."""
    yield from ctx.cb_wait_front(in_cb, in_pages)
    yield from ctx.cb_reserve_back(out_cb, tiles)
    ctx.fast_tilize_block(in_cb, tiles, out_cb)
    ctx.cb_push_back(out_cb, tiles)
    ctx.cb_pop_front(in_cb, in_pages)
