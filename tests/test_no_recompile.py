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


# frames of a varied dataset: every value differs, N anywhere above 1, mosaic domains in a bucket
VARIED = (
    "-cell 100 100 100 90 90 90 -N 2 -mosaic 0.5 -mosaic_domains 5 -lambda 1.0 -distance 100",
    "-cell 90 95 110 90 95 90 -N 6 -misset 3 7 11 -mosaic 1.0 -mosaic_domains 6 -lambda 1.1"
    " -distance 90 -fluence 1e25 -water 50",
    "-cell 80 80 120 90 90 120 -N 13 -misset 30 1 2 -mosaic 2.0 -mosaic_domains 5 -lambda 0.9"
    " -distance 120 -water 200",
    "-cell 70 75 85 90 90 90 -N 30 -mosaic 0.2 -mosaic_domains 6 -mosaic_seed 99 -lambda 1.3"
    " -distance 70 -flux 1e12 -exposure 2 -beamsize 0.1",
)


def test_varied_frames_share_one_compiled_kernel():
    """Frames differing only in values (cell, misset, N > 1, mosaic spread and domains
    within a bucket, wavelength, distance, fluence, water) run one compiled kernel, each
    frame's pixels those of its eager render. (The oversample is given: C's automatic one
    depends on N, cell and distance, and is a count the graph keeps.)"""
    kernels = kernel.KernelCache()
    setups = [
        prepare_frame(
            parse_nanobragg(f"{args} -default_F 50 -oversample 2 -detpixels 40".split()).experiment,
            torch.float64,
        )
        for args in VARIED
    ]
    assert len({setup.structure for setup in setups}) == 1
    assert {setup.n_orientations for setup in setups} == {5, 6}
    with dask.config.set({"braggtile.compile.mode": "on"}):
        before = kernels.compile_count()
        compiled = [kernel.render_window(s, Window.full(40, 40), kernels) for s in setups]
        assert not any(kernels.failed(setup) for setup in setups)
        assert kernels.compile_count() == before + 1
    with dask.config.set({"braggtile.compile.mode": "off"}):
        eager = [kernel.render_window(s, Window.full(40, 40), kernels) for s in setups]
    for ours, ref in zip(compiled, eager, strict=True):
        ours, ref = ours.numpy(), ref.numpy()
        assert np.abs(ref).max() > 0
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    assert not np.allclose(eager[0], eager[1])
