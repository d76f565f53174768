"""A series of finished frames to export: which frames, the ADU scale, file names.

Frames are 0-based store indices; file numbers (the ``#`` characters of a template, as DIALS
spells them) are frame + 1. The scale is one linear map for every frame of a job, never an
automatic per-frame scale: ADU = photons x gain + offset, rounded to the nearest integer and
clipped to the format's range. A store without photons (rendered with ``--no-photons``) holds
the detector's image in ADU: it is exported as stored (the identity scale, :func:`export_scale`),
and the float format, which is photons, is refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from engine.errors import InputError
from engine.smv import ADC_OFFSET
from tiling.store import StoreReader

_TEMPLATE_RUN = re.compile(r"#+")


@dataclass(frozen=True)
class FrameFile:
    """A finished frame to write: the store, its 0-based index and its level-0 pixels (slow,
    fast): photons, or the detector's ADU in a store without photons."""

    reader: StoreReader
    frame: int
    photons: np.ndarray


class ExportInputError(InputError):
    """A bad export request: the field at fault, why, and the limit it broke (if any)."""

    def __init__(self, field: str, message: str, limit: object = None):
        super().__init__(field, message)
        self.limit = limit

    def __reduce__(self):
        return (type(self), (self.field, self.detail, self.limit))


class FrameNotFinished(ExportInputError):
    """A frame asked for is not rendered (with its pyramid and statistics) yet."""


@dataclass(frozen=True)
class Scale:
    """Photons -> ADU: ``gain`` ADU per photon (> 0) plus ``offset`` ADU."""

    gain: float = 1.0
    offset: float = ADC_OFFSET

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gain) and self.gain > 0.0):
            raise ExportInputError(
                "gain", f"must be a finite number > 0 ADU per photon, not {self.gain}", limit=0
            )
        if not math.isfinite(self.offset):
            raise ExportInputError(
                "adc-offset", f"must be a finite number of ADU, not {self.offset}"
            )

    def adu(self, photons: np.ndarray, top: int, dtype: str) -> np.ndarray:
        """``photons`` as ``dtype`` ADU: floor(clip(photons x gain + offset, 0, top) + 0.5)."""
        values = np.asarray(photons, dtype=np.float64) * self.gain
        values += self.offset
        np.clip(values, 0.0, float(top), out=values)
        values += 0.5
        np.floor(values, out=values)
        return values.astype(dtype)

    def highest(self, max_photons: float) -> float:
        """The ADU of ``max_photons`` (before clipping)."""
        return max(0.0, max_photons) * self.gain + self.offset


def parse_frames(text: str | None, total: int) -> range | None:
    """``A:B`` (frames A..B-1, either end may be left out), or ``K`` (frame K) of a job of
    ``total`` frames; None for None (every finished frame). InputError("frames") if bad."""
    if text is None:
        return None
    start, colon, stop = text.partition(":")
    try:
        first = int(start) if start.strip() else 0
        end = (int(stop) if stop.strip() else total) if colon else first + 1
    except ValueError:
        raise ExportInputError("frames", f"{text!r} is not A:B or K (0-based frames)") from None
    if not 0 <= first < end <= total:
        raise ExportInputError(
            "frames",
            f"{text!r} is outside the job's frames 0..{total - 1} (A:B means A..B-1)",
            limit=total,
        )
    return range(first, end)


def select_frames(reader: StoreReader, frames: range | None) -> list[int]:
    """The frames to export: ``frames`` (InputError naming the first one not finished yet),
    or else every finished frame (InputError if there is none)."""
    done = reader.complete_frames()
    if frames is None:
        if not done:
            raise FrameNotFinished("frames", f"no frame of {reader.path} is finished yet")
        return sorted(done)
    for frame in frames:
        if frame not in done:
            raise FrameNotFinished(
                "frames",
                f"frame {frame} is not finished yet ({len(done)} of "
                f"{reader.attributes.job.frames} frames are); ask for finished frames only",
            )
    return list(frames)


def check_template(template: str) -> str:
    """``template`` if it has a run of ``#`` in its file name (InputError("output") if not)."""
    name = template.replace("\\", "/").rsplit("/", 1)[-1]
    if not _TEMPLATE_RUN.search(name):
        raise ExportInputError(
            "output", f"{template!r}: give the frame number as # characters (img_#####.cbf)"
        )
    return template


def frame_path(template: str, frame: int) -> str:
    """The file of 0-based ``frame``: the last run of ``#`` becomes frame + 1, zero-padded
    (InputError("output") when the number does not fit)."""
    runs = list(_TEMPLATE_RUN.finditer(check_template(template)))
    run = runs[-1]
    number = f"{frame + 1:0{len(run.group())}d}"
    if len(number) > len(run.group()):
        raise ExportInputError(
            "output", f"{template!r}: frame number {frame + 1} needs more # characters"
        )
    return template[: run.start()] + number + template[run.end() :]


def max_photons(reader: StoreReader, frames: list[int]) -> float:
    """The largest level-0 value of ``frames``: photons, from their stored statistics; in a
    store without photons the detector's overload (ADU), the most its response makes."""
    if not reader.has_photons():
        return float(reader.job.response.overload)  # type: ignore[union-attr]
    values = [reader.frame_statistics(k) for k in frames]
    return max((float(s.max_I) for s in values if s is not None), default=0.0)


#: Exported as stored: a store without photons already holds ADU.
IDENTITY = Scale(1.0, 0.0)


def export_scale(reader: StoreReader, gain: float | None, offset: float | None) -> Scale:
    """The photons -> ADU map of an export of ``reader``: ``gain`` and ``offset`` (None: 1
    and 40); for a store without photons :data:`IDENTITY`, and an ExportInputError naming
    ``gain`` or ``adc-offset`` when either is given."""
    if reader.has_photons():
        return Scale(1.0 if gain is None else gain, ADC_OFFSET if offset is None else offset)
    for field, value in (("gain", gain), ("adc-offset", offset)):
        if value is not None:
            raise ExportInputError(
                field,
                "the store holds the detector's image in ADU (rendered with --no-photons), "
                "exported as stored: leave out the gain and ADC offset",
            )
    return IDENTITY


def check_format(reader: StoreReader, fmt: str) -> None:
    """ExportInputError("format") if ``reader`` cannot give format ``fmt``: float files are
    photons, which a store rendered with ``--no-photons`` does not hold."""
    if fmt == "float" and not reader.has_photons():
        raise ExportInputError(
            "format",
            "float files are photons, and this store holds only the detector's image "
            "(rendered with --no-photons): export nexus, cbf or smv",
        )
