"""Exports of a job's finished frames into the files data-processing programs read.

- ``nexus``: one NXmx HDF5 file for the series (:mod:`tiling.exports.nexus`)
- ``cbf``: one Pilatus-style mini-CBF per frame (:mod:`tiling.exports.cbf`)
- ``smv``, ``float``: one C nanoBragg SMV or raw float32 file per frame (the SMV beam centre
  as DIALS's reader takes it, :mod:`tiling.exports.frames`)

The store is read through :class:`tiling.store.StoreReader` only; nothing here imports torch,
so exports run beside a job that is still rendering, on the frames already finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from engine.errors import InputError
from tiling.exports.frames import FRAME_FORMATS
from tiling.exports.series import (
    ExportInputError,
    FrameFile,
    Scale,
    check_format,
    check_template,
    frame_path,
)
from tiling.store import StoreMismatchError, StoreReader

#: Every export format: the series formats, then the per-frame ones.
FORMATS = ("nexus", *FRAME_FORMATS)

Progress = Callable[[int], None]


def open_store(path: str) -> StoreReader:
    """The store at ``path`` read-only, its attributes checked (InputError("store") if it is
    not a braggtile store)."""
    try:
        reader = StoreReader(path)
        reader.attributes  # noqa: B018 - raises StoreMismatchError for a foreign zarr group
    except StoreMismatchError as err:
        raise ExportInputError("store", str(err)) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ExportInputError("store", f"{path} is not a braggtile store ({err})") from None
    return reader


def _folder_of(path: str) -> None:
    folder = os.path.dirname(path)
    if folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise ExportInputError("output", f"cannot create {folder}: {err.strerror}") from None


def export_frame(reader: StoreReader, fmt: str, frame: int, scale: Scale, path: str) -> None:
    """Write finished ``frame`` of ``reader`` in per-frame format ``fmt`` at ``path``."""
    writer, _ = FRAME_FORMATS[fmt]
    check_format(reader, fmt)
    item = FrameFile(reader, frame, reader.read_frame(0, frame))
    try:
        writer(item, scale, path)
    except OSError as err:
        raise ExportInputError("output", f"cannot write {path}: {err.strerror or err}") from None


def export_series(
    reader: StoreReader,
    fmt: str,
    output: str,
    frames: list[int],
    scale: Scale,
    progress: Progress | None = None,
) -> list[str]:
    """Write ``frames`` of ``reader`` in format ``fmt``: one file ``output`` (nexus) or one
    file per frame named by the ``#`` template ``output``; returns the files written."""
    if fmt not in FORMATS:
        raise InputError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    check_format(reader, fmt)
    if fmt == "nexus":
        from tiling.exports.nexus import write_nexus

        _folder_of(output)
        try:
            write_nexus(reader, frames, scale, output, progress)
        except OSError as err:
            raise ExportInputError("output", f"cannot write {output}: {err}") from None
        return [output]
    check_template(output)
    paths = []
    for frame in frames:
        path = frame_path(output, frame)
        _folder_of(path)
        export_frame(reader, fmt, frame, scale, path)
        paths.append(path)
        if progress is not None:
            progress(1)
    return paths
