"""The OME-Zarr (zarr v3) store of a job: pyramid levels, per-tile records and attributes.

Layout of ``OUT.zarr``::

    zarr.json     group attributes: "ome" (OME-Zarr 0.5 multiscales, axes t, y, x in pixels)
                  and "braggtile" (software version, job options, full experiment, derived
                  geometry, per-frame statistics and completion)
    0/            level 0: (frames, slow, fast) photons/pixel, chunks (1, tile, tile)
    1/, 2/, ...   2x2-mean pyramid levels, same chunk shape
    tiles/        (frames, tile rows, tile cols, fields) float64 tile records, one chunk each

A tile record (:data:`RECORD_FIELDS`: its statistics partial, when it was rendered and how long
it took) is written by the worker that rendered the tile, only after the tile's level-0 chunk is
written, so a record is the durable mark of a finished tile. Workers write chunks only; the
group attributes are written by the client alone. Chunk and metadata writes of zarr's local
store are atomic (write then rename), so readers never see a partial chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import zarr

from engine import config
from engine.errors import UserInputError
from engine.statistics import FrameStatistics, TileStatistics
from engine.window import Window
from tiling.chunkio import ChunkIO
from tiling.inputs import pack_inputs, write_inputs
from tiling.job import JobSpec

RECORDS = "tiles"
RECORD_FIELDS = (
    "count",
    "mean",
    "m2",
    "sumsq",
    "max",
    "max_slow",
    "max_fast",
    "rendered_at",  # unix time, s
    "render_s",  # wall time of set-up lookup + render + write, s
)
ATTRS_KEY = "braggtile"


def store_location(path: str, read_only: bool = False) -> Any:
    """What zarr opens for ``path``: a local folder as is, or an fsspec URL (``file://``,
    ``s3://``, ``gs://``, ``memory://`` with the matching fsspec package) as an FsspecStore.
    Local-URL stores create their folders as chunks are written."""
    if "://" not in path:
        return path
    from zarr.storage import FsspecStore

    options = {"auto_mkdir": True} if path.startswith("file://") else {}
    return FsspecStore.from_url(path, storage_options=options, read_only=read_only)


#: Chunk codecs of the image levels (dask config ``braggtile.tiling.level-codec``), all zarr
#: v3's ``blosc`` codec, read by zarr-python, ome-zarr and napari. Measured on a 1024 x 1024
#: float32 seed tile (encode, ratio): lz4 0.3 ms, 1.00; lz4-bitshuffle 2.7 ms, 1.18;
#: zstd-bitshuffle 7.7 ms, 1.19. Rendered photon counts have random low mantissa bits, so
#: shuffling gains little but costs as much as the render; plain LZ4 still shrinks the empty
#: (zero) regions of a frame (outside the ROI, beyond a resolution cut) to almost nothing.
LEVEL_CODECS = {
    "lz4": ("lz4", "noshuffle"),
    "lz4-bitshuffle": ("lz4", "bitshuffle"),
    "zstd-bitshuffle": ("zstd", "bitshuffle"),
    "none": None,
}


def level_compressors() -> list[Any]:
    """Chunk compressors of the image levels, from ``braggtile.tiling.level-codec``."""
    from zarr.codecs import BloscCodec

    name = str(config.get("tiling.level-codec"))
    if name not in LEVEL_CODECS:
        raise UserInputError(
            f"braggtile.tiling.level-codec: {name!r} is not one of {', '.join(LEVEL_CODECS)}"
        )
    codec = LEVEL_CODECS[name]
    if codec is None:
        return []
    return [BloscCodec(cname=codec[0], clevel=5, shuffle=codec[1])]


class StoreMismatchError(UserInputError, ValueError):
    """The store at the path holds a different job (experiment or options); exit status 2."""


def _upgrade_old_spelling(group: zarr.Group, job: JobSpec) -> bool:
    """Whether the store holds ``job`` written in the old model spelling; if so, rewrite its
    experiment and fingerprint in the current spelling (client side, before any worker)."""
    from engine.legacy import is_legacy

    attrs = dict(group.attrs[ATTRS_KEY])
    if not is_legacy(attrs.get("experiment")):
        return False
    try:
        stored = JobSpec.from_dict({"experiment": attrs["experiment"], **attrs["job"]})
    except (ValueError, KeyError, TypeError):
        return False
    if stored != job:
        return False
    attrs.update(experiment=job.experiment.model_dump(mode="json"), fingerprint=job.fingerprint)
    group.update_attributes({ATTRS_KEY: attrs})
    return True


def software_version() -> str:
    """The installed braggtile version ("unknown" when run from an uninstalled tree)."""
    try:
        return metadata.version("braggtile")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class TileRecord:
    """A finished tile: its statistics partial, render time (unix s) and duration (s)."""

    statistics: TileStatistics
    rendered_at: float
    render_s: float

    def to_vector(self) -> np.ndarray:
        s = self.statistics
        return np.array(
            [s.count, s.mean, s.m2, s.sumsq, s.max, s.max_slow, s.max_fast]
            + [self.rendered_at, self.render_s],
            dtype=np.float64,
        )

    @classmethod
    def from_vector(cls, v: np.ndarray) -> TileRecord:
        stats = TileStatistics(
            count=int(v[0]),
            mean=float(v[1]),
            m2=float(v[2]),
            sumsq=float(v[3]),
            max=float(v[4]),
            max_slow=int(v[5]),
            max_fast=int(v[6]),
        )
        return cls(stats, float(v[7]), float(v[8]))


def geometry_attributes(job: JobSpec) -> dict[str, Any]:
    """Derived detector and scan geometry (mm, degrees, pixels, unit vectors), JSON-ready."""
    from engine.plan import plan

    frame = plan(job.experiment)
    geo = frame.detector
    phi0, osc, phistep, phisteps = frame.phi0_deg, frame.osc_deg, frame.phistep_deg, frame.phisteps
    px_mm = geo.pixel_size * 1e3
    return {
        "slow_pixels": geo.slow_pixels,
        "fast_pixels": geo.fast_pixels,
        "pixel_size_mm": px_mm,
        "distance_mm": geo.distance * 1e3,
        "close_distance_mm": geo.close_distance * 1e3,
        "beam_centre_mm": {"fast": geo.fbeam * 1e3, "slow": geo.sbeam * 1e3},
        "beam_centre_pixels": {
            "fast": geo.beam_centre_pixels[1],
            "slow": geo.beam_centre_pixels[0],
        },
        "orgx": geo.orgx,
        "orgy": geo.orgy,
        "pix0_vector_m": [float(x) for x in geo.pix0],
        "fdet_vector": [float(x) for x in geo.fdet],
        "sdet_vector": [float(x) for x in geo.sdet],
        "odet_vector": [float(x) for x in geo.odet],
        "beam_vector": [float(x) for x in geo.beam],
        "polar_vector": [float(x) for x in geo.polar],
        "spindle_axis": [float(x) for x in geo.spindle],
        "twotheta_deg": math.degrees(geo.twotheta),
        "convention": geo.convention.value,
        "phi0_deg": phi0,
        "osc_deg": osc,
        "phistep_deg": phistep,
        "phisteps": phisteps,
        "frame_phi0_deg": [phi0 + k * osc for k in range(job.frames)],
    }


def ome_attributes(job: JobSpec) -> dict[str, Any]:
    """OME-Zarr 0.5 ``ome`` attributes: one multiscale, axes t, y, x, scales in pixels."""
    datasets = []
    for level in range(len(job.level_shapes)):
        scale = float(1 << level)
        shift = (scale - 1.0) / 2.0  # centre of a binned pixel, in level-0 pixels
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [1.0, scale, scale]}]
        if level:
            transforms.append({"type": "translation", "translation": [0.0, shift, shift]})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": "braggtile",
                "axes": [
                    {"name": "t", "type": "time"},
                    {"name": "y", "type": "space"},
                    {"name": "x", "type": "space"},
                ],
                "datasets": datasets,
                "type": "mean",
                "metadata": {
                    "description": "level l+1 = 2x2 mean of level l; photons per level-0 pixel",
                    "units": "t: frame index; y (slow), x (fast): detector pixels",
                },
            }
        ],
    }


class TileStore:
    """A job's zarr store, opened by the client (creates, resumes, sets attributes) or a worker."""

    def __init__(self, path: str, group: zarr.Group, job: JobSpec):
        self.path = path
        self.group = group
        self.job = job
        self._arrays: dict[str, zarr.Array] = {}
        self._chunks: dict[str, ChunkIO] = {}

    @classmethod
    def open_or_create(
        cls, path: str, job: JobSpec, overwrite: bool = False
    ) -> tuple[TileStore, bool]:
        """Open the store of ``job`` at ``path`` for writing; returns (store, resumed).

        An existing store of the same job is resumed; one of another job raises
        :class:`StoreMismatchError` unless ``overwrite`` (then it is replaced). The job's input
        files are read here and travel in the store (:mod:`tiling.inputs`): ``store.job`` names
        them by file name and digest, so the fingerprint covers their contents.
        """
        job, files = pack_inputs(job)
        if not overwrite:
            try:
                group = zarr.open_group(store_location(path), mode="r+")
            except FileNotFoundError:
                group = None
            if group is not None and ATTRS_KEY in group.attrs:
                found = group.attrs[ATTRS_KEY].get("fingerprint")
                if found != job.fingerprint and not _upgrade_old_spelling(group, job):
                    raise StoreMismatchError(
                        f"{path} holds another job (fingerprint {str(found)[:12]}); "
                        "use a new path or overwrite it"
                    )
                return cls(path, group, job), True
            if group is not None and any(True for _ in group.keys()):
                raise StoreMismatchError(f"{path} is a zarr group not written by braggtile")
        return cls._create(path, job, files), False

    @classmethod
    def _create(cls, path: str, job: JobSpec, files: dict[str, bytes]) -> TileStore:
        group = zarr.open_group(store_location(path), mode="w", zarr_format=3)
        write_inputs(group, job, files)
        tile = job.tile
        for level, (slow, fast) in enumerate(job.level_shapes):
            group.create_array(
                str(level),
                shape=(job.frames, slow, fast),
                chunks=(1, tile, tile),
                dtype=job.dtype,
                fill_value=0.0,
                compressors=level_compressors(),
                dimension_names=("t", "y", "x"),
            )
        rows, cols = job.grid.shape
        group.create_array(
            RECORDS,
            shape=(job.frames, rows, cols, len(RECORD_FIELDS)),
            chunks=(1, 1, 1, len(RECORD_FIELDS)),
            dtype="float64",
            fill_value=float("nan"),
            compressors=None,  # 72 bytes a chunk, written directly by workers (tiling.chunkio)
            dimension_names=("t", "tile_y", "tile_x", "field"),
            attributes={"fields": list(RECORD_FIELDS), "tile": tile},
        )
        group.update_attributes(
            {
                "ome": ome_attributes(job),
                ATTRS_KEY: {
                    "version": software_version(),
                    "fingerprint": job.fingerprint,
                    "job": job.options(),
                    "inputs": job.inputs,
                    "experiment": job.experiment.model_dump(mode="json"),
                    "geometry": geometry_attributes(job),
                    "frames": {},
                },
            }
        )
        return cls(path, group, job)

    @classmethod
    def open_for_worker(cls, path: str, fingerprint: str) -> TileStore:
        """Open an existing store to write chunks; checks it still holds job ``fingerprint``."""
        group = zarr.open_group(store_location(path), mode="r+")
        attrs = group.attrs[ATTRS_KEY]
        if attrs.get("fingerprint") != fingerprint:
            raise StoreMismatchError(f"{path} no longer holds job {fingerprint[:12]}")
        job = JobSpec.from_dict(
            {"experiment": attrs["experiment"], **attrs["job"], "inputs": attrs.get("inputs", {})}
        )
        return cls(path, group, job)

    def array(self, name: str) -> zarr.Array:
        """Level ``name`` ("0", "1", ...) or the tile records, cached."""
        if name not in self._arrays:
            node = self.group[name]
            assert isinstance(node, zarr.Array)
            self._arrays[name] = node
        return self._arrays[name]

    def chunks(self, name: str) -> ChunkIO:
        """Whole-chunk reads and writes of array ``name`` (direct on local stores), cached."""
        if name not in self._chunks:
            root = None if "://" in self.path else self.path
            self._chunks[name] = ChunkIO(root, name, self.array(name))
        return self._chunks[name]

    def read_window(self, name: str, frame: int, window: Window) -> np.ndarray:
        """Pixels ``window`` of ``frame`` of level ``name``, read chunk by chunk."""
        io = self.chunks(name)
        _, rows, cols = io.array.chunks
        out = np.empty(window.shape, dtype=io.array.dtype)
        for r in range(window.slow0 // rows, -(-window.slow1 // rows)):
            for c in range(window.fast0 // cols, -(-window.fast1 // cols)):
                chunk = io.read((frame, r, c))
                s0, f0 = max(window.slow0, r * rows), max(window.fast0, c * cols)
                s1 = min(window.slow1, r * rows + chunk.shape[1])
                f1 = min(window.fast1, c * cols + chunk.shape[2])
                ds, df = s0 - window.slow0, f0 - window.fast0
                out[ds : ds + s1 - s0, df : df + f1 - f0] = chunk[
                    0, s0 - r * rows : s1 - r * rows, f0 - c * cols : f1 - c * cols
                ]
        return out

    # --- records (done-set) -------------------------------------------------------------

    def write_record(self, frame: int, row: int, col: int, record: TileRecord) -> None:
        """Mark tile (row, col) of ``frame`` finished; call only after its chunk is written."""
        vector = record.to_vector().reshape(1, 1, 1, len(RECORD_FIELDS))
        self.chunks(RECORDS).write((frame, row, col, 0), vector)

    def records(self) -> dict[tuple[int, int, int], TileRecord]:
        """Every finished tile, keyed (frame, row, col)."""
        data = self.array(RECORDS)[...]
        done = np.argwhere(~np.isnan(data[..., RECORD_FIELDS.index("rendered_at")]))
        return {(int(f), int(r), int(c)): TileRecord.from_vector(data[f, r, c]) for f, r, c in done}

    # --- attributes (client only) -------------------------------------------------------

    def frame_attributes(self) -> dict[str, Any]:
        return dict(self.group.attrs[ATTRS_KEY].get("frames", {}))

    def complete_frames(self) -> set[int]:
        return {int(k) for k, v in self.frame_attributes().items() if v.get("complete")}

    def set_frame(self, frame: int, statistics: FrameStatistics, complete: bool) -> None:
        """Record a frame's statistics (and whether its pyramid and outputs are written)."""
        attrs = dict(self.group.attrs[ATTRS_KEY])
        frames = dict(attrs.get("frames", {}))
        frames[str(frame)] = {"statistics": statistics.to_dict(), "complete": complete}
        attrs["frames"] = frames
        self.group.update_attributes({ATTRS_KEY: attrs})
