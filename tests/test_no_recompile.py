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


def _tiled(setup, tile: int) -> np.ndarray:
    image = np.zeros((300, 300), dtype=np.float32)
    for s0 in range(0, 300, tile):
        for f0 in range(0, 300, tile):
            w = Window(s0, min(300, s0 + tile), f0, min(300, f0 + tile))
            image[w.slow0 : w.slow1, w.fast0 : w.fast1] = kernel.render_window(setup, w).numpy()
    return image


def test_block_shape_ignores_the_window():
    setup = prepare_frame(parse_nanobragg(ARGS.split()).experiment, torch.float32)
    shapes = {kernel.block_shape(setup, r, c) for r in (1, 64, 100, 4096) for c in (1, 64, 4096)}
    assert len(shapes) == 1


def test_second_tile_size_builds_no_new_graph():
    setup = prepare_frame(parse_nanobragg(ARGS.split()).experiment, torch.float32)
    with dask.config.set({"braggtile.compile.mode": "on"}):
        before = kernel.compile_count()
        full = kernel.render_window(setup, Window.full(300, 300)).numpy()
        assert not kernel.failed(setup)
        first = kernel.compile_count()
        assert first > before  # the first window compiled the structure's graph
        tiles = {tile: _tiled(setup, tile) for tile in (64, 100, 128, 256)}
        assert kernel.compile_count() == first
    for image in tiles.values():
        np.testing.assert_array_equal(image, full)
