"""The detector's image of a tile (jobs with a detector response), written beside level 0.

The response (:mod:`engine.response`) is keyed by detector pixel, so a tile's image equals the
same pixels of a whole frame's; a PSF reaches across tile edges, so the tile's photons are
extended by a halo of the kernel's radius, rendered here (deterministic, and no wait for the
neighbouring tiles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.response import detector_image, halo_window, psf_radius
from engine.window import Window

if TYPE_CHECKING:
    from engine.frame import FrameSetup
    from engine.kernel import KernelCache
    from tiling.store import TileStore


def write_detector_tile(
    store: TileStore,
    setup: FrameSetup,
    kernels: KernelCache,
    frame: int,
    row: int,
    col: int,
    pixels: np.ndarray,
    inside: np.ndarray | None,
) -> np.ndarray | None:
    """Write the detector's image (ADU) of tile (row, col) of ``frame`` if the job has a
    response, and return it (None without a response). ``pixels``: the tile's photons;
    ``inside``: its ROI mask (None: all inside)."""
    response = store.job.response
    if response is None:
        return None
    grid = store.job.grid
    window = grid.window(row, col)
    geo = setup.detector
    radius = psf_radius(response, geo.pixel_size)
    big = halo_window(window, radius, geo.slow_pixels, geo.fast_pixels)
    photons = _with_halo(setup, kernels, window, big, pixels)
    adu, _ = detector_image(
        photons,
        big,
        response,
        frame,
        geo.fast_pixels,
        geo.pixel_size,
        crop=window,
        inside=inside,
    )
    store.write_detector_chunk(frame, row, col, adu)
    return adu


def _with_halo(
    setup: FrameSetup, kernels: KernelCache, window: Window, big: Window, pixels: np.ndarray
) -> np.ndarray:
    """The photons of ``big``: the tile's own ``pixels`` at ``window``, and the halo around it
    rendered as four strips (the tile itself is not rendered again)."""
    if big == window:
        return pixels
    from engine.kernel import render_window

    photons = np.empty(big.shape, dtype=pixels.dtype)
    photons[window.slices_in(big)] = pixels
    for strip in _halo_strips(window, big):
        photons[strip.slices_in(big)] = render_window(setup, strip, kernels).cpu().numpy()
    return photons


def _halo_strips(window: Window, big: Window) -> list[Window]:
    """The pixels of ``big`` outside ``window`` as rectangles: above and below (full width),
    left and right (the window's rows); empty ones left out."""
    strips = [
        Window(big.slow0, window.slow0, big.fast0, big.fast1),
        Window(window.slow1, big.slow1, big.fast0, big.fast1),
        Window(window.slow0, window.slow1, big.fast0, window.fast0),
        Window(window.slow0, window.slow1, window.fast1, big.fast1),
    ]
    return [w for w in strips if w.slow1 > w.slow0 and w.fast1 > w.fast0]
