"""Multiscale pyramid: level l+1 is the 2x2 mean of level l, down to <= ``min_size`` pixels.

Every level is chunked (1, tile, tile) like level 0 (cut to the level where it is smaller,
:func:`tiling.layout.image_chunks`), so chunk (row, col) of level l+1 is made
from exactly the chunks (2row..2row+1, 2col..2col+1) of level l: one task per output chunk, whole
chunks only, no two tasks writing the same chunk. An odd edge row/column is averaged over the
pixels that exist. Values stay in photons per level-0 pixel (a mean, not a sum).
"""

from __future__ import annotations

import math

import numpy as np

from engine import pixels
from engine.window import Window
from tiling.grid import intersect
from tiling.layout import chunk_counts, chunk_window

#: Pyramid levels stop once both sides are at most this many pixels.
DEFAULT_MIN_SIZE = 256


def level_shapes(slow: int, fast: int, min_size: int = DEFAULT_MIN_SIZE) -> list[tuple[int, int]]:
    """(slow, fast) pixels of every level, level 0 first, halved (rounding up) to <= min_size."""
    if min_size < 1:
        raise ValueError(f"pyramid min_size must be >= 1, got {min_size}")
    shapes = [(slow, fast)]
    while max(shapes[-1]) > min_size:
        s, f = shapes[-1]
        shapes.append((math.ceil(s / 2), math.ceil(f / 2)))
    return shapes


def source_window(window: Window, source_shape: tuple[int, int]) -> Window:
    """The window of the level above (twice finer, ``source_shape``) that bins into ``window``."""
    return Window(
        2 * window.slow0,
        min(2 * window.slow1, source_shape[0]),
        2 * window.fast0,
        min(2 * window.fast1, source_shape[1]),
    )


def level_chunks(
    shapes: list[tuple[int, int]], level: int, tile: int, roi: Window
) -> list[tuple[int, int]]:
    """(row, col) of the chunks of ``level`` (>= 1) whose level-0 footprint meets the ROI."""
    shape = shapes[level]
    scale = 1 << level
    out = []
    rows, cols = chunk_counts(shape, tile)
    for row in range(rows):
        for col in range(cols):
            w = chunk_window(shape, tile, row, col)
            footprint = Window(w.slow0 * scale, w.slow1 * scale, w.fast0 * scale, w.fast1 * scale)
            if intersect(footprint, roi) is not None:
                out.append((row, col))
    return out


def children(
    level_shape_above: tuple[int, int], tile: int, row: int, col: int
) -> list[tuple[int, int]]:
    """Chunks of the level above (finer) that chunk (row, col) is binned from."""
    rows, cols = chunk_counts(level_shape_above, tile)
    return [
        (r, c)
        for r in (2 * row, 2 * row + 1)
        for c in (2 * col, 2 * col + 1)
        if r < rows and c < cols
    ]


def bin2x2(image: np.ndarray, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Mean of each 2x2 block of a 2-D array (odd edges: mean of the pixels present) as
    ``dtype`` (default float64), summed in float64 (:func:`engine.pixels.bin2x2`)."""
    return pixels.bin2x2(image, dtype)
