"""No mid-job compiles: every tile size runs the compiled graph the first window built."""

from __future__ import annotations

import dask.config
import numpy as np
import torch

from engine import kernel
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame
from engine.window import Window

# a structure (N 4, 300 px) that no other test compiles, so the first render builds its graph
ARGS = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 4 -distance 100 -detpixels 300"


def _tiled(setup, tile: int, kernels: kernel.KernelCache) -> np.ndarray:
    image = np.zeros((300, 300), dtype=np.float32)
    for s0 in range(0, 300, tile):
        for f0 in range(0, 300, tile):
            w = Window(s0, min(300, s0 + tile), f0, min(300, f0 + tile))
            block = kernel.render_window(setup, w, kernels).numpy()
            image[w.slow0 : w.slow1, w.fast0 : w.fast1] = block
    return image


def test_block_shape_is_the_largest_within_the_pixel_budget():
    """Rows are 16 x a power of 4 with 512 columns on a CPU, the most that fit the budget."""
    setup = prepare_frame(parse_nanobragg(ARGS.split()).experiment, torch.float32)
    cases = {8192: 16, 32767: 16, 32768: 64, 1 << 18: 256, (1 << 19) - 1: 256, 1 << 19: 1024}
    for budget, rows in cases.items():
        assert kernel.block_shape(setup, max_pixels=budget) == (rows, 512), budget


def test_second_tile_size_builds_no_new_graph():
    setup = prepare_frame(parse_nanobragg(ARGS.split()).experiment, torch.float32)
    kernels = kernel.KernelCache()
    with dask.config.set({"braggtile.compile.mode": "on"}):
        before = kernels.compile_count()
        full = kernel.render_window(setup, Window.full(300, 300), kernels).numpy()
        assert not kernels.failed(setup)
        first = kernels.compile_count()
        assert first > before  # the first window compiled the structure's graph
        tiles = {tile: _tiled(setup, tile, kernels) for tile in (64, 100, 128, 256)}
        assert kernels.compile_count() == first
    for image in tiles.values():
        np.testing.assert_array_equal(image, full)
