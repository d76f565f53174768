"""Rectangular pixel windows of a detector frame, and the region of interest as one."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from engine.model import Experiment


class Window(NamedTuple):
    """Half-open pixel bounds of a frame rectangle: rows [slow0, slow1), columns [fast0, fast1)."""

    slow0: int
    slow1: int
    fast0: int
    fast1: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.slow1 - self.slow0, self.fast1 - self.fast0)

    @property
    def pixels(self) -> int:
        return max(0, self.slow1 - self.slow0) * max(0, self.fast1 - self.fast0)

    @classmethod
    def full(cls, slow_pixels: int, fast_pixels: int) -> Window:
        return cls(0, slow_pixels, 0, fast_pixels)

    def intersect(self, other: Window) -> Window | None:
        """The overlap of two windows, or None if they share no pixel."""
        s0, s1 = max(self.slow0, other.slow0), min(self.slow1, other.slow1)
        f0, f1 = max(self.fast0, other.fast0), min(self.fast1, other.fast1)
        if s0 >= s1 or f0 >= f1:
            return None
        return Window(s0, s1, f0, f1)

    def slices_in(self, outer: Window) -> tuple[slice, slice]:
        """The (slow, fast) slices of this window's pixels within an array of ``outer``'s."""
        return (
            slice(self.slow0 - outer.slow0, self.slow1 - outer.slow0),
            slice(self.fast0 - outer.fast0, self.fast1 - outer.fast0),
        )

    def part_of(self, window: Window) -> np.ndarray | None:
        """Boolean mask (``window``'s shape) of ``window``'s pixels that lie in this window,
        all False if none do; None if all do."""
        inside = window.intersect(self)
        if inside == window:
            return None
        mask = np.zeros(window.shape, dtype=bool)
        if inside is not None:
            mask[inside.slices_in(window)] = True
        return mask

    def mask(self, slow_pixels: int, fast_pixels: int) -> np.ndarray:
        """Boolean (slow, fast) mask of a frame: True inside this window."""
        mask = np.zeros((slow_pixels, fast_pixels), dtype=bool)
        mask[self.slow0 : self.slow1, self.fast0 : self.fast1] = True
        return mask

    def validate(self, slow_pixels: int, fast_pixels: int) -> Window:
        """Return self if it lies inside a slow_pixels x fast_pixels frame; else ValueError."""
        if not (0 <= self.slow0 <= self.slow1 <= slow_pixels):
            raise ValueError(
                f"window slow range [{self.slow0}, {self.slow1}) outside 0..{slow_pixels}"
            )
        if not (0 <= self.fast0 <= self.fast1 <= fast_pixels):
            raise ValueError(
                f"window fast range [{self.fast0}, {self.fast1}) outside 0..{fast_pixels}"
            )
        return self


def roi_window(experiment: Experiment) -> Window:
    """The ROI as a half-open pixel window clipped to the detector (the full frame if unset).

    nanoBragg's ``-roi xmin xmax ymin ymax`` is inclusive, fast = x, slow = y.
    """
    det = experiment.detector
    roi = experiment.sampling.roi
    if roi is None:
        return Window.full(det.slow_pixels, det.fast_pixels)
    slow0, fast0 = min(roi.ymin, det.slow_pixels), min(roi.xmin, det.fast_pixels)
    slow1 = max(slow0, min(roi.ymax + 1, det.slow_pixels))
    fast1 = max(fast0, min(roi.xmax + 1, det.fast_pixels))
    return Window(slow0, slow1, fast0, fast1)
