"""Reading a job's store for the pixel endpoints: tiles, levels, frames and C's file formats.

The store is opened read-only per request; a tile counts as rendered only once its record is
written (after its chunk), and a pyramid level of a frame only once the frame is complete.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import zarr

from engine.plan import plan
from engine.smv import int_image, smv_header, smv_header_bytes
from engine.statistics import FrameStatistics
from service.errors import NotFound, NotReady
from tiling.job import JobSpec
from tiling.pyramid import chunk_window
from tiling.store import ATTRS_KEY, RECORD_FIELDS, RECORDS


class JobPixels:
    """Read access to the pixels of the job ``spec`` stored at ``path``."""

    def __init__(self, path: str, spec: JobSpec):
        self.spec = spec
        try:
            self.group = zarr.open_group(path, mode="r")
        except FileNotFoundError:
            raise NotFound("the job's store does not exist (any more)") from None

    def check_frame(self, frame: int) -> None:
        if not 0 <= frame < self.spec.frames:
            raise NotFound(
                f"frame {frame} out of range: the job has frames 0..{self.spec.frames - 1}",
                field="frame",
                limit=self.spec.frames - 1,
            )

    def frame_attrs(self, frame: int) -> dict[str, Any]:
        return self.group.attrs[ATTRS_KEY].get("frames", {}).get(str(frame), {})

    def frame_complete(self, frame: int) -> bool:
        return bool(self.frame_attrs(frame).get("complete"))

    def level_shape(self, level: int) -> tuple[int, int]:
        shapes = self.spec.level_shapes
        if not 0 <= level < len(shapes):
            raise NotFound(
                f"level {level} out of range: the pyramid has levels 0..{len(shapes) - 1}",
                field="level",
                limit=len(shapes) - 1,
            )
        return shapes[level]

    def tile_done(self, frame: int, row: int, col: int) -> bool:
        """Whether level-0 tile (row, col) of ``frame`` has its record (False out of range)."""
        records = self.group[RECORDS]
        if not all(0 <= i < n for i, n in zip((frame, row, col), records.shape[:3], strict=False)):
            return False
        return not np.isnan(records[frame, row, col, RECORD_FIELDS.index("rendered_at")])

    def tile(self, frame: int, row: int, col: int, level: int = 0) -> np.ndarray:
        """Chunk (row, col) of ``level`` of ``frame``; NotReady until it is written."""
        self.check_frame(frame)
        shape = self.level_shape(level)
        tile = self.spec.tile
        rows, cols = math.ceil(shape[0] / tile), math.ceil(shape[1] / tile)
        if not (0 <= row < rows and 0 <= col < cols):
            raise NotFound(
                f"tile ({row}, {col}) out of range: level {level} has {rows}x{cols} tiles",
                field="row" if not 0 <= row < rows else "col",
                limit=(rows if not 0 <= row < rows else cols) - 1,
            )
        if level == 0:
            if not self.tile_done(frame, row, col):
                raise NotReady(f"tile ({row}, {col}) of frame {frame} is not rendered yet")
        elif not self.frame_complete(frame):
            raise NotReady(
                f"level {level} of frame {frame} is made once all the frame's tiles are rendered"
            )
        w = chunk_window(shape, tile, row, col)
        return np.asarray(self.group[str(level)][frame, w.slow0 : w.slow1, w.fast0 : w.fast1])

    def frame(self, frame: int, level: int = 0) -> np.ndarray:
        """The whole of ``level`` of ``frame`` (0 where nothing is rendered yet)."""
        self.check_frame(frame)
        self.level_shape(level)
        return np.asarray(self.group[str(level)][frame])

    def default_level(self, longest: int = 1024) -> int:
        """The finest level whose longest side is at most ``longest`` pixels."""
        for level, shape in enumerate(self.spec.level_shapes):
            if max(shape) <= longest:
                return level
        return len(self.spec.level_shapes) - 1

    def statistics(self, frame: int) -> FrameStatistics:
        self.check_frame(frame)
        if not self.frame_complete(frame):
            raise NotReady(f"frame {frame} is not complete yet")
        return FrameStatistics.from_dict(self.frame_attrs(frame)["statistics"])

    def roi_mask(self) -> np.ndarray:
        roi = self.spec.grid.roi
        det = self.spec.experiment.detector
        mask = np.zeros((det.slow_pixels, det.fast_pixels), dtype=bool)
        mask[roi.slow0 : roi.slow1, roi.fast0 : roi.fast1] = True
        return mask

    def float_file(self, frame: int) -> bytes:
        """C's ``-floatfile``: raw little-endian float32, slow-major, no header."""
        self.statistics(frame)
        return np.ascontiguousarray(self.frame(frame), dtype="<f4").tobytes()

    def smv_file(self, frame: int, adc: float = 40.0, scale: float | None = None) -> bytes:
        """C's ``-intfile``: SMV with C's header; scale 55000/max_I unless given."""
        stats = self.statistics(frame)
        header = smv_header(plan(self.spec.frame_experiment(frame)))
        adu, _ = int_image(self.frame(frame), scale, adc, self.roi_mask(), max_i=stats.max_I)
        out = io.BytesIO()
        out.write(smv_header_bytes(header))
        out.write(np.ascontiguousarray(adu, dtype="<u2").tobytes())
        return out.getvalue()


def npy_bytes(data: np.ndarray) -> bytes:
    """``data`` as a .npy file, little-endian."""
    out = io.BytesIO()
    np.save(out, np.asarray(data, dtype=data.dtype.newbyteorder("<")))
    return out.getvalue()
