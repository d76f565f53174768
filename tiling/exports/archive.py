"""A zip of per-frame export files, produced as a stream of bytes, one frame at a time.

The archive is written into a sink that only collects what zipfile writes since the last
frame (zipfile writes data descriptors when its output cannot seek), so whoever streams the
bytes never holds more than one frame's file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator

from tiling.exports import export_frame
from tiling.exports.frames import FRAME_FORMATS
from tiling.exports.series import Scale, frame_path
from tiling.store import StoreReader


class _Sink:
    """A write-only, non-seekable file that hands over what was written so far."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._offset = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        """The bytes written since the last call."""
        data, self._parts = b"".join(self._parts), []
        return data


def zip_frames(
    reader: StoreReader,
    fmt: str,
    frames: list[int],
    scale: Scale,
    folder: str,
    name: str = "img",
) -> Iterator[bytes]:
    """The zip of ``frames`` in per-frame format ``fmt`` (``name``_00001.ext, ... as DIALS
    templates number them), in pieces; each frame's file is written in a temporary folder
    under ``folder`` and removed once it is in the archive."""
    _, extension = FRAME_FORMATS[fmt]
    work = tempfile.mkdtemp(prefix=".export-", dir=folder)
    sink = _Sink()
    try:
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for frame in frames:
                arcname = frame_path(f"{name}_#####.{extension}", frame)
                path = os.path.join(work, arcname)
                export_frame(reader, fmt, frame, scale, path)
                archive.write(path, arcname)
                os.remove(path)
                yield sink.take()
        yield sink.take()
    finally:
        shutil.rmtree(work, ignore_errors=True)
