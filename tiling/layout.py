"""The layout of a job's store, written down once: names, chunk geometry, records, attributes.

Layout of ``OUT.zarr`` (zarr v3)::

    zarr.json     group attributes: "ome" (OME-Zarr 0.5 multiscales, axes t, y, x in pixels)
                  and "braggtile" (:class:`StoreAttributes`: software version, job options,
                  full experiment, derived geometry, per-frame statistics and completion)
    0/            level 0: (frames, slow, fast) photons/pixel, chunks (1, tile, tile) (cut to
                  the image where it is smaller: :func:`image_chunks`); absent when the job
                  stores no photons (``JobSpec.photons`` False)
    1/, 2/, ...   2x2-mean pyramid levels of level 0, chunked alike (none when
                  ``pyramid_min`` is at least the detector's longest side)
    detector/     only for a job with a detector response: (frames, slow, fast) the detector's
                  image in ADU (uint16, or uint32 for overloads above 65535), level 0's chunks,
                  Blosc with bit shuffle (lossless: most counts are small). In a store without
                  photons it is the multiscale's level 0 and levels 1, 2, ... are its 2x2 means
    tiles/        (frames, tile rows, tile cols, fields) float64 tile records, a chunk per 2 x 2
                  tiles (those of a level-1 chunk, written together), each a file of the
                  folder itself (``tiles/c.F.R.C.0``); stores of earlier releases have a chunk
                  per tile, in a folder each (``tiles/c/F/R/C/0``)
    truth/        (frames,) UTF-8 JSON, one chunk each: the frame's ground truth
                  (:class:`tiling.truth.FrameTruth`), written when the client plans the frame
    inputs/       the job's input files (see :mod:`tiling.inputs`)

Only this module and :mod:`tiling.store` (which opens, reads and writes stores through it) know
these names; everything else reads and writes through :class:`tiling.store.StoreReader` and
:class:`tiling.store.TileStore`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

from engine.statistics import FrameStatistics, TileStatistics
from engine.window import Window

if TYPE_CHECKING:
    from engine.model import Experiment

#: Group attribute holding :class:`StoreAttributes`.
ATTRS_KEY = "braggtile"
#: Group attribute holding the OME-Zarr metadata.
OME_KEY = "ome"
#: Array of the tile records.
RECORDS = "tiles"
#: Array of the detector's image (ADU), for jobs with a detector response.
DETECTOR = "detector"
#: Array of the frames' ground truths (JSON text, "" until written).
TRUTH = "truth"
LEVEL_DIMENSIONS = ("t", "y", "x")
RECORD_DIMENSIONS = ("t", "tile_y", "tile_x", "field")
#: Tiles a side of a chunk of the record array: a level-1 pyramid chunk's 2 x 2, all rendered
#: by one task (:mod:`tiling.graph`), which writes their records as one file.
RECORD_CHUNK_TILES = 2
#: Chunk key encoding of the record array: zarr v3's default with "." between the indices, so
#: the record files need no folder each (creating one costs about as much as a file).
RECORD_CHUNK_KEYS = {"name": "default", "separator": "."}
#: Key of a chunk of an image level: level, frame, chunk row, chunk column (zarr v3 default
#: chunk key encoding).
_LEVEL_CHUNK_KEY = re.compile(r"(\d+)/c/(\d+)/(\d+)/(\d+)")
_DETECTOR_CHUNK_KEY = re.compile(DETECTOR + r"/c/(\d+)/(\d+)/(\d+)")


def level_path(level: int, photons: bool = True) -> str:
    """The array path of pyramid ``level`` (0 = full resolution): ``"0"``, ``"1"``, ...; level
    0 of a store without photons is the detector's image."""
    return DETECTOR if level == 0 and not photons else str(level)


def level_chunk_of_key(key: str) -> tuple[int, int, int, int] | None:
    """(level, frame, row, col) of a store key naming a chunk of an image level, else None."""
    match = _LEVEL_CHUNK_KEY.fullmatch(key)
    return None if match is None else tuple(int(x) for x in match.groups())  # type: ignore[return-value]


def tile_chunk_of_key(key: str) -> tuple[int, int, int] | None:
    """(frame, row, col) of a store key naming a chunk written with a level-0 tile (before
    its record): a chunk of level 0 or of the detector's image; else None."""
    level = level_chunk_of_key(key)
    if level is not None:
        return level[1:] if level[0] == 0 else None
    match = _DETECTOR_CHUNK_KEY.fullmatch(key)
    return None if match is None else tuple(int(x) for x in match.groups())  # type: ignore[return-value]


# --- chunk geometry ---------------------------------------------------------------------


def chunk_window(shape: tuple[int, int], tile: int, row: int, col: int) -> Window:
    """Pixel window of chunk (row, col) of a (slow, fast) ``shape`` chunked tile x tile,
    clipped to the shape: level-0 tiles and pyramid chunks alike."""
    return Window(
        row * tile, min((row + 1) * tile, shape[0]), col * tile, min((col + 1) * tile, shape[1])
    )


def image_chunks(slow: int, fast: int, tile: int) -> tuple[int, int, int]:
    """Chunk shape of a (frames, slow, fast) image array: one frame of tile x tile pixels, cut
    to the image where it is smaller. A pyramid level below a tile is then one chunk of its
    own size, not a tile padded with the fill value (a 256 x 256 level of tile 1024 encodes,
    writes and reads 256 KiB, not 4 MiB), and chunk (row, col) is :func:`chunk_window` either
    way (stores of earlier releases pad, and read alike)."""
    return (1, min(tile, slow), min(tile, fast))


def chunk_counts(shape: tuple[int, int], tile: int) -> tuple[int, int]:
    """Chunk rows (slow) and columns (fast) of a (slow, fast) ``shape``, ragged ones included."""
    return math.ceil(shape[0] / tile), math.ceil(shape[1] / tile)


# --- tile records -----------------------------------------------------------------------


@dataclass(frozen=True)
class TileRecord:
    """A finished tile: its statistics partial, render time (unix s) and duration (s)."""

    statistics: TileStatistics
    rendered_at: float
    render_s: float

    def to_dict(self) -> dict[str, Any]:
        """The statistics' fields, then the record's own (the order of :data:`RECORD_FIELDS`)."""
        return {
            **self.statistics.to_dict(),
            "rendered_at": self.rendered_at,
            "render_s": self.render_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TileRecord:
        stats = TileStatistics.from_dict(data)
        return cls(stats, float(data["rendered_at"]), float(data["render_s"]))

    def to_vector(self) -> np.ndarray:
        """The record as stored: float64 values in the order of :data:`RECORD_FIELDS`."""
        own = {"rendered_at": self.rendered_at, "render_s": self.render_s}
        values = [own[n] if n in own else getattr(self.statistics, n) for n in RECORD_FIELDS]
        return np.array(values, dtype=np.float64)

    @classmethod
    def from_vector(cls, vector: np.ndarray) -> TileRecord:
        """A stored record; one of an earlier release lacks the appended fields (0 then)."""
        return cls.from_dict(dict(zip(RECORD_FIELDS, np.asarray(vector).tolist(), strict=False)))


#: Statistics fields added after the first release ("skipped": ROI pixels a ``-mask`` file
#: skips). They follow the record's own fields, so every earlier column keeps its index.
APPENDED_FIELDS = ("skipped",)
#: Fields of a stored tile record, derived from the types: the statistics' fields, then
#: "rendered_at" (unix time, s) and "render_s" (set-up look-up + render + write, s), then
#: :data:`APPENDED_FIELDS`. Records of earlier releases, narrower, read them as 0.
RECORD_FIELDS = (
    tuple(f.name for f in fields(TileStatistics) if f.name not in APPENDED_FIELDS)
    + tuple(f.name for f in fields(TileRecord) if f.name != "statistics")
    + APPENDED_FIELDS
)
#: One record as a numpy structured type: ``table.view(RECORD_DTYPE)`` names the last axis.
RECORD_DTYPE = np.dtype([(name, "<f8") for name in RECORD_FIELDS])
#: Bytes of one stored tile record, uncompressed.
RECORD_BYTES = RECORD_DTYPE.itemsize


def record_table(vectors: np.ndarray) -> np.ndarray:
    """Stored records (..., len(RECORD_FIELDS)) float64 as a structured array (...)."""
    data = np.ascontiguousarray(vectors, dtype="<f8")
    missing = len(RECORD_FIELDS) - data.shape[-1]
    if missing > 0:  # an earlier release's narrower record: the appended fields read as 0
        data = np.concatenate([data, np.zeros((*data.shape[:-1], missing))], axis=-1)
    return data.view(RECORD_DTYPE)[..., 0]


def record_done(table: np.ndarray) -> np.ndarray:
    """Which records of a :func:`record_table` are written (unwritten ones are NaN)."""
    return ~np.isnan(table["rendered_at"])


# --- group attributes -------------------------------------------------------------------

Statistics = Annotated[
    FrameStatistics,
    PlainValidator(lambda v: v if isinstance(v, FrameStatistics) else FrameStatistics.from_dict(v)),
    PlainSerializer(lambda s: s.to_dict()),
]


class FrameEntry(BaseModel):
    """A frame in the attributes: its statistics, and whether its pyramid and outputs are
    written (``complete``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    statistics: Statistics
    complete: bool = False


class JobOptions(BaseModel):
    """The job's options besides the experiment (see :class:`tiling.job.JobSpec`); those set
    only when they differ from their defaults ("response", "photons": false, the dataset
    options) are kept as extra keys."""

    model_config = ConfigDict(extra="allow", frozen=True)

    frames: int = Field(ge=1)
    tile: int = Field(ge=1, description="pixels")
    dtype: str
    pyramid_min: int = Field(ge=1, description="pixels")


class Centre(BaseModel):
    """A point on the detector: fast and slow coordinates."""

    model_config = ConfigDict(frozen=True)

    fast: float
    slow: float


Vector = tuple[float, float, float]


class Geometry(BaseModel):
    """Derived detector and scan geometry of the job (frame 0), as C nanoBragg reports it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    slow_pixels: int
    fast_pixels: int
    pixel_size_mm: float
    distance_mm: float = Field(description="along the beam to the detector plane")
    close_distance_mm: float = Field(description="perpendicular to the detector plane")
    beam_centre_mm: Centre = Field(description="from the first pixel's corner, mm")
    beam_centre_pixels: Centre = Field(description="pixel coordinates, pixel i spans [i, i+1)")
    orgx: float = Field(description="XDS ORGX, pixels")
    orgy: float = Field(description="XDS ORGY, pixels")
    pix0_vector_m: Vector = Field(description="sample to the first pixel's corner, m")
    fdet_vector: Vector
    sdet_vector: Vector
    odet_vector: Vector
    beam_vector: Vector
    polar_vector: Vector
    spindle_axis: Vector
    twotheta_deg: float
    convention: str
    phi0_deg: float
    osc_deg: float = Field(description="oscillation of one frame")
    phistep_deg: float
    phisteps: int = Field(description="phi steps within one frame")
    frame_phi0_deg: list[float] = Field(description="start angle of every frame")


class StoreAttributes(BaseModel):
    """The "braggtile" group attributes. Keys this version does not know are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: str = Field("unknown", description="braggtile version that created the store")
    fingerprint: str = Field(description="sha256 of the job (JobSpec.fingerprint)")
    job: JobOptions
    inputs: dict[str, str] = Field(default_factory=dict, description="file name -> sha256")
    experiment: dict[str, Any] = Field(description="the experiment, as its JSON")
    geometry: Geometry
    frames: dict[int, FrameEntry] = Field(default_factory=dict, description="frame -> entry")

    def job_dict(self) -> dict[str, Any]:
        """The job as :meth:`tiling.job.JobSpec.from_dict` reads it."""
        options = self.job.model_dump(mode="json")
        return {"experiment": self.experiment, **options, "inputs": self.inputs}

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def job_geometry(
    experiment: Experiment, frames: int, frame_phi0_deg: list[float] | None = None
) -> Geometry:
    """The derived detector and scan geometry of ``frames`` frames of ``experiment`` (from
    the torch-free frame plan); ``frame_phi0_deg``: each frame's start angle (default: the
    rotation series')."""
    from engine.plan import plan

    frame = plan(experiment)
    geo = frame.detector
    phi0, osc, phistep, phisteps = frame.phi0_deg, frame.osc_deg, frame.phistep_deg, frame.phisteps
    beam_slow, beam_fast = geo.beam_centre_pixels
    return Geometry(
        slow_pixels=geo.slow_pixels,
        fast_pixels=geo.fast_pixels,
        pixel_size_mm=geo.pixel_size * 1e3,
        distance_mm=geo.distance * 1e3,
        close_distance_mm=geo.close_distance * 1e3,
        beam_centre_mm=Centre(fast=geo.fbeam * 1e3, slow=geo.sbeam * 1e3),
        beam_centre_pixels=Centre(fast=beam_fast, slow=beam_slow),
        orgx=geo.orgx,
        orgy=geo.orgy,
        pix0_vector_m=tuple(geo.pix0),
        fdet_vector=tuple(geo.fdet),
        sdet_vector=tuple(geo.sdet),
        odet_vector=tuple(geo.odet),
        beam_vector=tuple(geo.beam),
        polar_vector=tuple(geo.polar),
        spindle_axis=tuple(geo.spindle),
        twotheta_deg=math.degrees(geo.twotheta),
        convention=geo.convention.value,
        phi0_deg=phi0,
        osc_deg=osc,
        phistep_deg=phistep,
        phisteps=phisteps,
        frame_phi0_deg=frame_phi0_deg or [phi0 + k * osc for k in range(frames)],
    )


def geometry_attributes(
    experiment: Experiment, frames: int, frame_phi0_deg: list[float] | None = None
) -> dict[str, Any]:
    """:func:`job_geometry` JSON-ready (mm, degrees, pixels, unit vectors)."""
    return job_geometry(experiment, frames, frame_phi0_deg).model_dump(mode="json")


def ome_attributes(levels: int, photons: bool = True) -> dict[str, Any]:
    """OME-Zarr 0.5 ``ome`` attributes: one multiscale of ``levels``, axes t, y, x, in pixels;
    of the photons, or (``photons`` False) of the detector's image in ADU."""
    datasets = []
    for level in range(levels):
        scale = float(1 << level)
        shift = (scale - 1.0) / 2.0  # centre of a binned pixel, in level-0 pixels
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [1.0, scale, scale]}]
        if level:
            transforms.append({"type": "translation", "translation": [0.0, shift, shift]})
        datasets.append(
            {"path": level_path(level, photons), "coordinateTransformations": transforms}
        )
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": "braggtile",
                "axes": [{"name": name, "type": kind} for name, kind in _OME_AXES],
                "datasets": datasets,
                "type": "mean",
                "metadata": {
                    "description": "level l+1 = 2x2 mean of level l; "
                    + ("photons" if photons else "detector ADU")
                    + " per level-0 pixel",
                    "units": "t: frame index; y (slow), x (fast): detector pixels",
                },
            }
        ],
    }


_OME_AXES = (("t", "time"), ("y", "space"), ("x", "space"))
