"""The tile grid of a frame: square tiles over (slow, fast) pixels, ragged at the far edges.

Tile (row, col) covers pixels [row*tile, (row+1)*tile) x [col*tile, (col+1)*tile), clipped to the
detector, so every tile is exactly one zarr chunk of shape (1, tile, tile) at level 0. Only tiles
that intersect the region of interest are rendered; the rest stay at the store's fill value 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.model import Experiment
from engine.window import Window, roi_window
from tiling.layout import chunk_counts, chunk_window


@dataclass(frozen=True, order=True)
class Tile:
    """One tile: its grid position (row = slow index, col = fast index) and pixel window."""

    row: int
    col: int
    window: Window


def intersect(a: Window, b: Window) -> Window | None:
    """The overlap of two windows, or None if they share no pixel."""
    return a.intersect(b)


@dataclass(frozen=True)
class TileGrid:
    """A slow_pixels x fast_pixels frame cut into tile x tile squares, restricted to ``roi``."""

    slow_pixels: int
    fast_pixels: int
    tile: int
    roi: Window

    def __post_init__(self) -> None:
        if self.tile < 1:
            raise ValueError(f"tile size must be >= 1 pixel, got {self.tile}")
        if self.slow_pixels < 1 or self.fast_pixels < 1:
            raise ValueError(
                f"detector must be at least 1x1, got {self.slow_pixels}x{self.fast_pixels}"
            )

    @classmethod
    def for_experiment(cls, experiment: Experiment, tile: int) -> TileGrid:
        det = experiment.detector
        return cls(det.slow_pixels, det.fast_pixels, tile, roi_window(experiment))

    @property
    def shape(self) -> tuple[int, int]:
        """Number of tile rows (slow) and columns (fast), ragged ones included."""
        return chunk_counts((self.slow_pixels, self.fast_pixels), self.tile)

    def window(self, row: int, col: int) -> Window:
        """Pixel window of tile (row, col), clipped to the detector."""
        return chunk_window((self.slow_pixels, self.fast_pixels), self.tile, row, col)

    def tiles(self) -> list[Tile]:
        """Tiles that intersect the ROI, in raster order (slow-major)."""
        rows, cols = self.shape
        out = []
        for r in range(rows):
            for c in range(cols):
                w = self.window(r, c)
                if intersect(w, self.roi) is not None:
                    out.append(Tile(r, c, w))
        return out

    def rendered_pixels(self, tile: Tile) -> int:
        """Pixels of ``tile`` inside the ROI (the ones the engine renders)."""
        w = intersect(tile.window, self.roi)
        return 0 if w is None else w.pixels

    def ordered(self, beam_slow: float, beam_fast: float) -> list[Tile]:
        """ROI tiles nearest the beam centre first (pixel coordinates, pixel i spans [i, i+1)).

        Distance is from the beam centre to the nearest point of the tile (0 for the tile that
        contains it); ties go to the nearer tile centre, then raster order.
        """

        def key(tile: Tile) -> tuple[float, float, int, int]:
            w = tile.window
            ds = max(w.slow0 - beam_slow, 0.0, beam_slow - w.slow1)
            df = max(w.fast0 - beam_fast, 0.0, beam_fast - w.fast1)
            cs = (w.slow0 + w.slow1) / 2 - beam_slow
            cf = (w.fast0 + w.fast1) / 2 - beam_fast
            return (math.hypot(ds, df), math.hypot(cs, cf), tile.row, tile.col)

        return sorted(self.tiles(), key=key)


def beam_centre_pixels(experiment: Experiment) -> tuple[float, float]:
    """Where the direct beam meets the detector plane, in (slow, fast) pixel coordinates."""
    from engine.geometry import detector_geometry

    return detector_geometry(experiment).beam_centre_pixels
