"""Frame statistics as C nanoBragg prints them, built from mergeable per-tile partials.

C nanoBragg reports, over the rendered (ROI) pixels of a frame::

    max_I = <largest pixel>  at <its position>
    mean= sum/n  rms= sqrt(sumsq/(n-1))  rmsd= sqrt(sum((x-mean)^2)/(n-1))

with ``n`` raised to 1 for the mean and to 2 for rms/rmsd when fewer pixels were rendered, and
``max_I`` starting at 0 and replaced only by a strictly larger pixel (so the first maximum in
raster order, slow-major, wins, and a frame with no positive pixel reports ``max_I = 0``).

:class:`TileStatistics` holds the partial sums of one rectangle of pixels in float64 (count,
mean and M2 merged with Chan et al.'s pairwise update, sum of squares, max and where); partials of
disjoint tiles merge in any order to the statistics of their union, and :meth:`summary` turns the
merged partial into :class:`FrameStatistics`. Intensities are in photons per pixel; positions are
pixel indices (slow = row = y, fast = column = x) of the whole frame.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from engine.window import Window

if TYPE_CHECKING:
    import torch

#: Position reported while no pixel has exceeded C's initial max_I of 0.
NO_PIXEL = -1


_S = TypeVar("_S", bound="_Serialised")
#: How a field's value is read back, by its annotation.
_CASTS = {"int": int, "float": float}


class _Serialised:
    """The one serialisation of the statistics types (store records and attributes, task
    results, event payloads): a dict of the dataclass's fields, read back with their types."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_S], data: Mapping[str, Any]) -> _S:
        """Read the fields from ``data`` (other keys are ignored), each cast to its type; a
        field missing from ``data`` (written before the field existed) takes its default."""
        values = {f.name: _CASTS[str(f.type)](data[f.name]) for f in fields(cls) if f.name in data}
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FrameStatistics(_Serialised):
    """What C prints for a frame: max_I at (max_slow, max_fast) in pixels, mean, rms, rmsd.

    ``max_slow``/``max_fast`` are -1 when no pixel is > 0 (C then prints max_I = 0 at 0 0);
    ``pixels`` is the number of rendered pixels the statistics cover.
    """

    max_I: float
    max_slow: int
    max_fast: int
    mean: float
    rms: float
    rmsd: float
    pixels: int


@dataclass(frozen=True)
class TileStatistics(_Serialised):
    """Mergeable float64 partial statistics of a set of pixels (one tile, or a merged union).

    ``mean`` and ``m2`` (sum of squared deviations from ``mean``) follow Welford/Chan;
    ``sumsq`` is the plain sum of squares C uses for rms; ``max`` starts at 0 as in C, with
    position (-1, -1) until a pixel exceeds it.
    """

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    sumsq: float = 0.0
    max: float = 0.0
    max_slow: int = NO_PIXEL
    max_fast: int = NO_PIXEL
    skipped: int = 0  # ROI pixels -mask skipped: only in C's rmsd, as 0 - mean

    @classmethod
    def from_tile(
        cls,
        values: torch.Tensor | np.ndarray,
        window: Window,
        roi_mask: torch.Tensor | np.ndarray | None = None,
        skipped: np.ndarray | None = None,
    ) -> TileStatistics:
        """Partial statistics of the pixels of ``values`` (shape ``window.shape``, photons).

        ``window`` places the tile in the frame (for the position of the maximum);
        ``roi_mask`` (bool, same shape, True = rendered) restricts the statistics to the ROI;
        ``skipped`` (bool, same shape, True = skipped by ``-mask``, inside the ROI) leaves
        pixels out of all but C's rmsd, which counts them as 0.
        Sums run in float64 in eight lanes in raster order (:mod:`engine.pixels`: compiled or
        numpy, the same bits), so a tile gives the same bits on any worker.
        """
        from engine import pixels

        x = _as_numpy(values)
        if tuple(x.shape) != window.shape:
            raise ValueError(f"tile of shape {tuple(x.shape)} does not match window {window}")
        mask = None if roi_mask is None else _as_numpy(roi_mask).astype(bool, copy=False)
        n_skipped = 0
        if skipped is not None and skipped.any():
            n_skipped = int(np.count_nonzero(skipped))
            mask = ~skipped if mask is None else mask & ~skipped
        if mask is not None and mask.shape != x.shape:
            raise ValueError(f"roi_mask of shape {tuple(mask.shape)} does not match {window}")
        count = x.size if mask is None else int(np.count_nonzero(mask))
        if count == 0:
            return cls(skipped=n_skipped)
        lanes, peak, flat = pixels.moments(x, mask)
        total = pixels.combine(lanes)
        mean = total / count
        m2 = pixels.combine(pixels.deviations(x, mean, mask))
        sumsq = m2 + total * mean  # sum of x^2 = m2 + n mean^2: a sum of non-negative terms
        if flat < 0:  # no pixel above C's initial max_I of 0
            return cls(count, mean, m2, sumsq, 0.0, NO_PIXEL, NO_PIXEL, n_skipped)
        width = window.fast1 - window.fast0
        slow, fast = window.slow0 + flat // width, window.fast0 + flat % width
        return cls(count, mean, m2, sumsq, peak, slow, fast, n_skipped)

    def merge(self, other: TileStatistics) -> TileStatistics:
        """Statistics of the union of two disjoint pixel sets (order-independent)."""
        skipped = self.skipped + other.skipped
        if other.count == 0:
            return dataclasses.replace(self, skipped=skipped)
        if self.count == 0:
            return dataclasses.replace(other, skipped=skipped)
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
        best = self if self._beats(other) else other
        return TileStatistics(
            count=n,
            mean=mean,
            m2=m2,
            sumsq=self.sumsq + other.sumsq,
            max=best.max,
            max_slow=best.max_slow,
            max_fast=best.max_fast,
            skipped=skipped,
        )

    def _beats(self, other: TileStatistics) -> bool:
        """True if this maximum wins: larger, or equal and earlier in raster order (slow-major).

        "No pixel yet" (C's initial 0) wins every tie, as C replaces max_I only when exceeded.
        """
        if self.max != other.max:
            return self.max > other.max
        if self.max_slow == NO_PIXEL or other.max_slow == NO_PIXEL:
            return self.max_slow == NO_PIXEL
        return (self.max_slow, self.max_fast) <= (other.max_slow, other.max_fast)

    def summary(self) -> FrameStatistics:
        """Frame statistics exactly as C computes them from these sums.

        C's rmsd runs over every ROI pixel, the ones ``-mask`` skipped (at 0) included."""
        n_rms = self.count if self.count > 1 else 2
        n_rmsd = self.count + self.skipped
        n_rmsd = n_rmsd if n_rmsd > 1 else 2
        m2 = self.m2 + self.skipped * self.mean * self.mean  # skipped: (0 - mean)^2 each
        return FrameStatistics(
            max_I=self.max,
            max_slow=self.max_slow,
            max_fast=self.max_fast,
            mean=self.mean,  # sum/n; 0 for no pixels, as C's sum/1
            rms=math.sqrt(self.sumsq / (n_rms - 1)),
            rmsd=math.sqrt(m2 / (n_rmsd - 1)),
            pixels=self.count,
        )


def _as_numpy(values: Any) -> np.ndarray:
    """A numpy view of an array or tensor (copied to the host if it lives on a GPU)."""
    if hasattr(values, "detach"):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def merge_all(partials: list[TileStatistics] | tuple[TileStatistics, ...]) -> TileStatistics:
    """Merge any number of partials (empty input gives the empty partial)."""
    total = TileStatistics()
    for part in partials:
        total = total.merge(part)
    return total
