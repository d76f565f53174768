"""A job's OME-Zarr (zarr v3) store: :class:`StoreReader` reads it, :class:`TileStore` writes it.

The layout (array names, chunk geometry, tile records, group attributes) is defined in
:mod:`tiling.layout`; this module is the only one that opens stores. A reader opens the store
read-only (the service, exports, tests); the writer is opened by the client (creates, resumes,
sets the attributes) or by a worker (writes chunks and records only).

A tile record (its statistics partial, when it was rendered and how long it took) is written by
the worker that rendered the tile, only after the tile's level-0 chunk is written, so a record
is the durable mark of a finished tile. The records of a level-1 chunk's 2 x 2 tiles share a
file, written once those of its tiles the task renders are all written (a file costs about as
much to create as a small tile's chunk). Chunk and metadata writes of zarr's local store are
atomic (write then rename), so readers never see a partial chunk.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
from importlib import metadata
from typing import Any

import numpy as np
import zarr
import zarr.storage

from engine import config
from engine.errors import UserInputError
from engine.statistics import FrameStatistics
from engine.window import Window
from tiling.chunkio import ChunkIO, write_file
from tiling.inputs import pack_inputs, write_inputs
from tiling.job import JobSpec
from tiling.layout import (
    ATTRS_KEY,
    DETECTOR,
    LEVEL_DIMENSIONS,
    OME_KEY,
    RECORD_CHUNK_KEYS,
    RECORD_CHUNK_TILES,
    RECORD_DIMENSIONS,
    RECORD_FIELDS,
    RECORDS,
    TRUTH,
    FrameEntry,
    JobOptions,
    StoreAttributes,
    TileRecord,
    geometry_attributes,
    image_chunks,
    job_geometry,
    level_path,
    ome_attributes,
    record_done,
    record_table,
)

__all__ = [
    "ATTRS_KEY",
    "RECORDS",
    "RECORD_FIELDS",
    "LEVEL_CODECS",
    "StoreAttributes",
    "StoreMismatchError",
    "StoreReader",
    "TileRecord",
    "TileStore",
    "geometry_attributes",
    "detector_compressors",
    "level_compressors",
    "software_version",
    "store_location",
]


def store_location(path: str, read_only: bool = False) -> Any:
    """What zarr opens for ``path``: a local folder as is, or an fsspec URL (``file://``,
    ``s3://``, ``gs://``, ``memory://`` with the matching fsspec package) as an FsspecStore.
    Local-URL stores create their folders as chunks are written."""
    if "://" not in path:
        return path
    from zarr.storage import FsspecStore

    options = {"auto_mkdir": True} if path.startswith("file://") else {}
    return FsspecStore.from_url(path, storage_options=options, read_only=read_only)


#: Chunk codecs of the image levels (dask config ``braggtile.tiling.level-codec``) and of the
#: detector's image (``braggtile.tiling.detector-codec``), all zarr v3's ``blosc`` codec, read
#: by zarr-python, ome-zarr and napari. Measured on a 1024 x 1024 float32 seed tile (encode,
#: ratio): lz4 0.3 ms, 1.00; lz4-bitshuffle 2.7 ms, 1.18; zstd-bitshuffle 7.7 ms, 1.19.
#: Rendered photon counts have random low mantissa bits, so shuffling gains little but costs
#: as much as the render; plain LZ4 still shrinks the empty (zero) regions of a frame (outside
#: the ROI, beyond a resolution cut) to almost nothing. Detector counts are small integers
#: above an offset: on a 1024 x 1024 uint16 tile of the seed frame with photon noise,
#: lz4-bitshuffle 0.5 ms, ratio 54; lz4 0.3 ms, 37; zstd-bitshuffle 9 ms, 126 (1.5 ms, 96
#: at level 1); on Poisson counts of mean 60 lz4-bitshuffle 0.6 ms, 2.24 against zstd's
#: 2.3 ms, 2.25. Means of counts (the pyramid of a store without photons,
#: ``braggtile.tiling.means-codec``) are quarter-integers and the like: few mantissa bits, in
#: one byte of four once shuffled. On a 1024 x 1024 level-1 chunk of the seed frame's noisy
#: counts (encode, decode, ratio): lz4-shuffle 0.9 ms, 0.5 ms, 46; lz4-bitshuffle 2.5 ms,
#: 1.4 ms, 56; lz4 0.8 ms, 0.8 ms, 32.
LEVEL_CODECS = {
    "lz4": ("lz4", "noshuffle"),
    "lz4-shuffle": ("lz4", "shuffle"),
    "lz4-bitshuffle": ("lz4", "bitshuffle"),
    "zstd-bitshuffle": ("zstd", "bitshuffle"),
    "none": None,
}


def level_compressors(setting: str = "tiling.level-codec") -> list[Any]:
    """Chunk compressors of the image levels, from ``braggtile.tiling.level-codec`` (or the
    dask config key ``setting``, e.g. ``tiling.detector-codec``)."""
    from zarr.codecs import BloscCodec

    name = str(config.get(setting))
    if name not in LEVEL_CODECS:
        raise UserInputError(
            f"braggtile.{setting}: {name!r} is not one of {', '.join(LEVEL_CODECS)}"
        )
    codec = LEVEL_CODECS[name]
    if codec is None:
        return []
    return [BloscCodec(cname=codec[0], clevel=5, shuffle=codec[1])]


def detector_compressors() -> list[Any]:
    """Chunk compressors of the detector's image, from ``braggtile.tiling.detector-codec``."""
    return level_compressors("tiling.detector-codec")


#: The key of a store's root group metadata.
ROOT_METADATA = "zarr.json"


def _lay_out(group: zarr.Group, job: JobSpec, files: dict[str, bytes]) -> None:
    """Create the arrays and attributes of ``job``'s store in the empty ``group``."""
    write_inputs(group, job, files)
    tile = job.tile
    # levels of the photons, or (no photons) the means of the detector's counts
    codecs = level_compressors("tiling.level-codec" if job.photons else "tiling.means-codec")
    for level, (slow, fast) in enumerate(job.level_shapes):
        if level == 0 and not job.photons:
            continue
        group.create_array(
            level_path(level),
            shape=(job.frames, slow, fast),
            chunks=image_chunks(slow, fast, tile),
            dtype=job.dtype,
            fill_value=0.0,
            compressors=codecs,
            dimension_names=LEVEL_DIMENSIONS,
        )
    if job.response is not None:
        slow, fast = job.level_shapes[0]
        group.create_array(
            DETECTOR,
            shape=(job.frames, slow, fast),
            chunks=image_chunks(slow, fast, tile),
            dtype=job.response.dtype,
            fill_value=0,
            compressors=detector_compressors(),
            dimension_names=LEVEL_DIMENSIONS,
            attributes={"units": "ADU"},
        )
    rows, cols = job.grid.shape
    group.create_array(
        RECORDS,
        shape=(job.frames, rows, cols, len(RECORD_FIELDS)),
        chunks=(1, RECORD_CHUNK_TILES, RECORD_CHUNK_TILES, len(RECORD_FIELDS)),
        dtype="float64",
        fill_value=float("nan"),
        compressors=None,  # 320 bytes a chunk, written directly by workers (tiling.chunkio)
        chunk_key_encoding=RECORD_CHUNK_KEYS,
        dimension_names=RECORD_DIMENSIONS,
        attributes={"fields": list(RECORD_FIELDS), "tile": tile},
    )
    group.create_array(TRUTH, shape=(job.frames,), chunks=(1,), dtype=str, compressors=None)
    attributes = StoreAttributes(
        version=software_version(),
        fingerprint=job.fingerprint,
        job=JobOptions.model_validate(job.options()),
        inputs=job.inputs,
        experiment=job.experiment.model_dump(mode="json"),
        geometry=job_geometry(job.experiment, job.frames, job.frame_phi0s()),
    )
    group.update_attributes(
        {
            OME_KEY: ome_attributes(len(job.level_shapes), job.photons),
            ATTRS_KEY: attributes.to_json(),
        }
    )


def store_bytes(path: str) -> int:
    """Bytes of every file under the store folder ``path`` (0 if there is none)."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(folder, name)).st_size
    return total


def _write_folder(folder: str, files: dict[str, bytes]) -> None:
    """Replace the store at ``folder`` with ``files`` (key -> bytes), as zarr's local store
    lays keys out (``a/b`` is the file ``folder/a/b``), each written atomically; the root
    ``zarr.json`` last, so a reader finds the group only once its arrays are there."""
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    for key in sorted(files, key=lambda k: k == ROOT_METADATA):
        write_file(os.path.join(folder, *key.split("/")), files[key], folder)


class StoreMismatchError(UserInputError, ValueError):
    """The store at the path holds a different job (experiment or options); exit status 2."""


@functools.cache
def software_version() -> str:
    """The installed braggtile version ("unknown" when run from an uninstalled tree); looked
    up once per process (the package metadata scan took 5 ms of every store's creation)."""
    try:
        return metadata.version("braggtile")
    except metadata.PackageNotFoundError:
        return "unknown"


def _attributes(group: zarr.Group, path: str) -> StoreAttributes:
    if ATTRS_KEY not in group.attrs:
        raise StoreMismatchError(f"{path} is not a store written by braggtile")
    return StoreAttributes.model_validate(group.attrs[ATTRS_KEY])


class StoreReader:
    """Read-only access to a job's store: levels, tile records and attributes.

    ``StoreReader(path)`` opens the store read-only (FileNotFoundError if there is none);
    attributes are read as they were when it was opened.
    """

    def __init__(self, path: str, group: zarr.Group | None = None):
        self.path = path
        if group is None:
            group = zarr.open_group(store_location(path, read_only=True), mode="r")
        self.group = group
        self._arrays: dict[str, zarr.Array] = {}
        self._chunks: dict[str, ChunkIO] = {}
        self._job: JobSpec | None = None
        self._fingerprint: str | None = None
        self._attributes: StoreAttributes | None = None

    @property
    def attributes(self) -> StoreAttributes:
        """The "braggtile" group attributes (StoreMismatchError if the group has none), as
        they were when the store was opened or this object last wrote them."""
        if self._attributes is None:
            self._attributes = _attributes(self.group, self.path)
        return self._attributes

    @property
    def job(self) -> JobSpec:
        """The job the store holds (its input files named by file name and digest)."""
        if self._job is None:
            self._job = JobSpec.from_dict(self.attributes.job_dict())
        return self._job

    @property
    def fingerprint(self) -> str:
        """The fingerprint of :attr:`job`, computed once (it hashes the whole job)."""
        if self._fingerprint is None:
            self._fingerprint = self.job.fingerprint
        return self._fingerprint

    @property
    def ome(self) -> dict[str, Any]:
        """The OME-Zarr 0.5 group attributes."""
        return dict(self.group.attrs[OME_KEY])

    def _array(self, name: str) -> zarr.Array:
        if name not in self._arrays:
            node = self.group[name]
            assert isinstance(node, zarr.Array)
            self._arrays[name] = node
        return self._arrays[name]

    def _io(self, name: str) -> ChunkIO:
        if name not in self._chunks:
            root = None if "://" in self.path else self.path
            self._chunks[name] = ChunkIO(root, name, self._array(name))
        return self._chunks[name]

    # --- image levels ---------------------------------------------------------------------

    def has_photons(self) -> bool:
        """Whether the store holds the photons; a store without them (``JobSpec.photons``
        False) holds the detector's image as its level 0, in ADU."""
        return self.job.photons

    def _level(self, level: int) -> str:
        return level_path(level, self.has_photons())

    def level(self, level: int) -> zarr.Array:
        """Pyramid ``level`` (0 = full resolution): (frames, slow, fast) photons/pixel (ADU
        in a store without photons)."""
        return self._array(self._level(level))

    def levels(self) -> int:
        """How many pyramid levels the store has."""
        return len(self.ome["multiscales"][0]["datasets"])

    def read_frame(self, level: int, frame: int) -> np.ndarray:
        """The whole of ``level`` of ``frame`` (the fill value 0 where nothing is written)."""
        return np.asarray(self.level(level)[frame])

    def read_chunk(self, level: int, frame: int, row: int, col: int) -> np.ndarray:
        """Chunk (row, col) of ``level`` of ``frame``, cut to the level's shape."""
        return self._io(self._level(level)).read((frame, row, col))[0]

    def read_window(self, level: int, frame: int, window: Window) -> np.ndarray:
        """Pixels ``window`` of ``frame`` of ``level``, read chunk by chunk."""
        io = self._io(self._level(level))
        _, rows, cols = io.chunks  # cut to the level where it is smaller than a tile
        out = np.empty(window.shape, dtype=io.dtype)
        for r in range(window.slow0 // rows, -(-window.slow1 // rows)):
            for c in range(window.fast0 // cols, -(-window.fast1 // cols)):
                _, slow, fast = io.region((frame, r, c))
                w = Window(slow.start, slow.stop, fast.start, fast.stop)
                part = window.intersect(w)
                if part is not None:
                    chunk = io.read((frame, r, c))[0]
                    out[part.slices_in(window)] = chunk[part.slices_in(w)]
        return out

    # --- the detector's image (jobs with a detector response) --------------------------------

    def has_detector(self) -> bool:
        """Whether the store holds the detector's image (its job has a detector response)."""
        return DETECTOR in self.group

    def read_detector_frame(self, frame: int) -> np.ndarray:
        """The detector's image of ``frame`` in ADU (0 where nothing is written)."""
        return np.asarray(self._array(DETECTOR)[frame])

    def read_detector_chunk(self, frame: int, row: int, col: int) -> np.ndarray:
        """Chunk (row, col) of the detector's image of ``frame``, in ADU."""
        return self._io(DETECTOR).read((frame, row, col))[0]

    # --- tile records (done-set) ----------------------------------------------------------

    def record_chunk(self, row: int, col: int) -> tuple[int, int]:
        """The chunk (row, col) of the record array holding tile (row, col)'s record: the
        tiles of a level-1 chunk share one (:data:`~tiling.layout.RECORD_CHUNK_TILES`), each
        tile has its own in stores of earlier releases."""
        _, rows, cols, _ = self._io(RECORDS).chunks
        return row // rows, col // cols

    def tile_done(self, frame: int, row: int, col: int) -> bool:
        """Whether level-0 tile (row, col) of ``frame`` has its record (False out of range)."""
        io = self._io(RECORDS)
        index = (frame, row, col)
        if not all(0 <= i < n for i, n in zip(index, io.array.shape[:3], strict=True)):
            return False
        _, rows, cols, _ = io.chunks
        table = record_table(io.read((frame, *self.record_chunk(row, col), 0)))
        return bool(record_done(table)[0, row % rows, col % cols])

    def records(self) -> dict[tuple[int, int, int], TileRecord]:
        """Every finished tile, keyed (frame, row, col)."""
        data = self._array(RECORDS)[...]
        done = np.argwhere(record_done(record_table(data)))
        return {(int(f), int(r), int(c)): TileRecord.from_vector(data[f, r, c]) for f, r, c in done}

    # --- ground truth ---------------------------------------------------------------------

    def _truth_texts(self) -> list[str]:
        """Every frame's truth JSON ("" where none; all "" in stores older than truths)."""
        if TRUTH not in self.group:
            return [""] * self.attributes.job.frames
        return [str(t) for t in self._array(TRUTH)[...]]

    def truth_frames(self) -> set[int]:
        """Frames whose ground truth is written."""
        return {k for k, text in enumerate(self._truth_texts()) if text}

    def frame_truth(self, frame: int) -> dict[str, Any] | None:
        """Frame ``frame``'s ground truth (:class:`tiling.truth.FrameTruth` as JSON), or None."""
        if TRUTH not in self.group or not 0 <= frame < self.attributes.job.frames:
            return None
        text = str(self._array(TRUTH)[frame])
        return json.loads(text) if text else None

    # --- frames -----------------------------------------------------------------------------

    def frames(self) -> dict[int, FrameEntry]:
        """The frames with statistics in the attributes, by frame index."""
        return dict(self.attributes.frames)

    def complete_frames(self) -> set[int]:
        """Frames whose tiles, pyramid and outputs are all written."""
        return {k for k, entry in self.attributes.frames.items() if entry.complete}

    def frame_statistics(self, frame: int) -> FrameStatistics | None:
        """The statistics of ``frame`` (None before all its tiles are rendered)."""
        entry = self.attributes.frames.get(frame)
        return None if entry is None else entry.statistics


class TileStore(StoreReader):
    """A job's store opened for writing, by the client (creates, resumes, sets attributes) or a
    worker (writes chunks and records)."""

    def __init__(self, path: str, group: zarr.Group, job: JobSpec):
        super().__init__(path, group)
        self._job = job
        self._json: tuple[StoreAttributes, dict[str, Any]] | None = None  # attributes, JSON

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
                store = cls(path, group, job)
                found = store.attributes.fingerprint
                if found != job.fingerprint and not store._upgrade_old_spelling():
                    raise StoreMismatchError(
                        f"{path} holds another job (fingerprint {str(found)[:12]}); "
                        "use a new path or overwrite it"
                    )
                return store, True
            if group is not None and any(True for _ in group.keys()):
                raise StoreMismatchError(f"{path} is a zarr group not written by braggtile")
        return cls._create(path, job, files), False

    @classmethod
    def _create(cls, path: str, job: JobSpec, files: dict[str, bytes]) -> TileStore:
        """A new store of ``job`` at ``path`` (replacing what is there). A local one is laid
        out in memory and its files written at once (:func:`_write_folder`): zarr's own
        writes took an event-loop round trip and a file-thread hop per array (55-88 ms a store
        here, against 20-48 ms)."""
        location = store_location(path)
        if not isinstance(location, str):
            group = zarr.open_group(location, mode="w", zarr_format=3)
            _lay_out(group, job, files)
            return cls(path, group, job)
        laid_out: dict[str, Any] = {}  # key -> zarr Buffer
        memory = zarr.storage.MemoryStore(laid_out)
        _lay_out(zarr.open_group(memory, mode="w", zarr_format=3), job, files)
        _write_folder(location, {key: buf.to_bytes() for key, buf in laid_out.items()})
        return cls(path, zarr.open_group(location, mode="r+"), job)

    @classmethod
    def open(cls, path: str) -> TileStore:
        """Open an existing store for writing, whatever job it holds."""
        group = zarr.open_group(store_location(path), mode="r+")
        return cls(path, group, JobSpec.from_dict(_attributes(group, path).job_dict()))

    @classmethod
    def open_for_worker(cls, path: str, fingerprint: str) -> TileStore:
        """Open an existing store to write chunks; checks it still holds job ``fingerprint``."""
        group = zarr.open_group(store_location(path), mode="r+")
        attrs = _attributes(group, path)
        if attrs.fingerprint != fingerprint:
            raise StoreMismatchError(f"{path} no longer holds job {fingerprint[:12]}")
        return cls(path, group, JobSpec.from_dict(attrs.job_dict()))

    def _upgrade_old_spelling(self) -> bool:
        """Whether the store holds this job written in the old model spelling; if so, rewrite
        its experiment and fingerprint in the current spelling (client side, before any
        worker)."""
        from engine.legacy import is_legacy

        attrs = self.attributes
        if not is_legacy(attrs.experiment):
            return False
        try:
            stored = JobSpec.from_dict({"experiment": attrs.experiment, **attrs.job.model_dump()})
        except (ValueError, KeyError, TypeError):
            return False
        if stored != self.job:
            return False
        experiment = self.job.experiment.model_dump(mode="json")
        self._set_attributes(
            attrs.model_copy(update={"experiment": experiment, "fingerprint": self.job.fingerprint})
        )
        return True

    def _set_attributes(self, attributes: StoreAttributes, data: dict | None = None) -> None:
        """Write ``attributes`` (``data``: their JSON, when the caller has it)."""
        data = attributes.to_json() if data is None else data
        self.group.update_attributes({ATTRS_KEY: data})
        self._attributes = attributes
        self._json = (attributes, data)

    # --- chunks and records (workers) -----------------------------------------------------

    def chunks(self, level: int) -> ChunkIO:
        """Whole-chunk reads and writes of pyramid ``level`` (direct on local stores)."""
        return self._io(self._level(level))

    def write_chunk(self, level: int, frame: int, row: int, col: int, data: np.ndarray) -> None:
        """Write chunk (row, col) of ``level`` of ``frame`` whole (``data``: its pixels)."""
        self.chunks(level).write((frame, row, col), data[None])

    def write_detector_chunk(self, frame: int, row: int, col: int, data: np.ndarray) -> None:
        """Write chunk (row, col) of the detector's image of ``frame`` (ADU) whole."""
        self._io(DETECTOR).write((frame, row, col), data[None])

    def write_record(self, frame: int, row: int, col: int, record: TileRecord) -> None:
        """Mark tile (row, col) of ``frame`` finished; call only after its chunk is written."""
        self.write_records(frame, {(row, col): record})

    def write_records(self, frame: int, records: dict[tuple[int, int], TileRecord]) -> None:
        """Mark tiles ((row, col) -> record) of ``frame`` finished, one file write per record
        chunk (:meth:`record_chunk`); call only after their chunks are written. Records of a
        chunk's other tiles already in the store are kept (read back first), so only the one
        task that renders a level-1 chunk's tiles may write their records."""
        self._write_vectors(frame, {key: r.to_vector() for key, r in records.items()})

    def forget_tile(self, frame: int, row: int, col: int) -> None:
        """Unmark tile (row, col) of ``frame`` (as a crash before its record would leave it)."""
        self._write_vectors(frame, {(row, col): np.full(len(RECORD_FIELDS), np.nan)})

    def _write_vectors(self, frame: int, vectors: dict[tuple[int, int], np.ndarray]) -> None:
        """Write stored records ((row, col) -> float64 vector) of ``frame``, chunk by chunk."""
        io = self._io(RECORDS)
        _, rows, cols, _ = io.chunks
        by_chunk: dict[tuple[int, int], dict[tuple[int, int], np.ndarray]] = {}
        for (row, col), vector in vectors.items():
            by_chunk.setdefault(self.record_chunk(row, col), {})[(row, col)] = vector
        for (r, c), part in by_chunk.items():
            coords = (frame, r, c, 0)
            shape = tuple(s.stop - s.start for s in io.region(coords))
            if len(part) == shape[1] * shape[2]:
                table = np.full(shape, np.nan)
            else:  # the chunk's other tiles: their records as stored (NaN where none)
                table = np.array(io.read(coords), dtype=np.float64)
            for (row, col), vector in part.items():
                table[0, row % rows, col % cols] = vector
            io.write(coords, table)

    # --- attributes and truth (client only) ----------------------------------------------

    def write_truth(self, frame: int, truth: dict[str, Any]) -> None:
        """Record frame ``frame``'s ground truth (a JSON-ready dict); stores older than truths
        have no place for it and are left as they are."""
        self.write_truths({frame: truth})

    def write_truths(self, truths: dict[int, dict[str, Any]]) -> None:
        """Record the ground truth of each frame of ``truths`` (frame -> JSON-ready dict) in
        one write (its chunks written together), as :meth:`write_truth` does one."""
        if not truths or TRUTH not in self.group:
            return
        frames = list(truths)
        texts = np.array([json.dumps(truths[k], allow_nan=False) for k in frames])
        self._array(TRUTH).oindex[frames] = texts

    def set_frame(self, frame: int, statistics: FrameStatistics, complete: bool) -> None:
        """Record a frame's statistics (and whether its pyramid and outputs are written)."""
        self.set_frames({frame: (statistics, complete)})

    def set_frames(self, frames: dict[int, tuple[FrameStatistics, bool]]) -> None:
        """Record frames' (statistics, complete) in one write of the attributes. Only the new
        entries are converted to JSON (the others' JSON is kept from the last write): a series
        of N frames recorded one at a time converts N entries, not N^2 / 2."""
        attrs = self.attributes
        entries = {k: FrameEntry(statistics=s, complete=c) for k, (s, c) in frames.items()}
        data = self._json[1] if self._json is not None and self._json[0] is attrs else None
        data = dict(attrs.to_json() if data is None else data)
        new = {str(k): entry.model_dump(mode="json") for k, entry in entries.items()}
        data["frames"] = {**data["frames"], **new}
        self._set_attributes(attrs.model_copy(update={"frames": {**attrs.frames, **entries}}), data)

    def forget_frames(self) -> None:
        """Drop every frame's statistics and completion (a resume recomputes them)."""
        self._set_attributes(self.attributes.model_copy(update={"frames": {}}))
