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
) -> None:
    """Write the detector's image (ADU) of tile (row, col) of ``frame``, if the job has a
    response. ``pixels``: the tile's photons; ``inside``: its ROI mask (None: all inside)."""
    response = store.job.response
    if response is None:
        return
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


def _with_halo(
    setup: FrameSetup, kernels: KernelCache, window: Window, big: Window, pixels: np.ndarray
) -> np.ndarray:
    """The photons of ``big``: the tile's own ``pixels`` at ``window``, the halo rendered."""
    if big == window:
        return pixels
    from engine.kernel import render_window

    photons = render_window(setup, big, kernels).cpu().numpy()
    photons[window.slices_in(big)] = pixels
    return photons
