"""Reading a job's store for the pixel endpoints: tiles, levels, frames and exported files.

The store is opened read-only per request (:class:`tiling.store.StoreReader`); a tile counts
as rendered only once its record is written (after its chunk), and a pyramid level of a frame
only once the frame is complete. Files are made by the serializers of
:mod:`service.serializers`.
"""

from __future__ import annotations

import numpy as np

from engine.plan import plan
from engine.smv import smv_header
from engine.statistics import FrameStatistics
from service.errors import BadInput, NotFound, NotReady
from service.serializers import FrameContext, Options, Serializer
from tiling.job import JobSpec
from tiling.layout import chunk_counts
from tiling.store import StoreReader


class JobPixels:
    """Read access to the pixels of the job ``spec`` stored at ``path``."""

    def __init__(self, path: str, spec: JobSpec):
        self.spec = spec
        try:
            self.reader = StoreReader(path)
        except FileNotFoundError:
            raise NotFound("the job's store does not exist (any more)") from None

    def check_frame(self, frame: int) -> None:
        if not 0 <= frame < self.spec.frames:
            raise NotFound(
                f"frame {frame} out of range: the job has frames 0..{self.spec.frames - 1}",
                field="frame",
                limit=self.spec.frames - 1,
            )

    def frame_complete(self, frame: int) -> bool:
        return frame in self.reader.complete_frames()

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
        return self.reader.tile_done(frame, row, col)

    def tile(self, frame: int, row: int, col: int, level: int = 0) -> np.ndarray:
        """Chunk (row, col) of ``level`` of ``frame``; NotReady until it is written."""
        self.check_frame(frame)
        rows, cols = chunk_counts(self.level_shape(level), self.spec.tile)
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
        return self.reader.read_chunk(level, frame, row, col)

    def frame(self, frame: int, level: int = 0) -> np.ndarray:
        """The whole of ``level`` of ``frame`` (0 where nothing is rendered yet)."""
        self.check_frame(frame)
        self.level_shape(level)
        return self.reader.read_frame(level, frame)

    def default_level(self, longest: int = 1024) -> int:
        """The finest level whose longest side is at most ``longest`` pixels."""
        for level, shape in enumerate(self.spec.level_shapes):
            if max(shape) <= longest:
                return level
        return len(self.spec.level_shapes) - 1

    def statistics(self, frame: int) -> FrameStatistics:
        self.check_frame(frame)
        stats = self.reader.frame_statistics(frame)
        if stats is None or not self.frame_complete(frame):
            raise NotReady(f"frame {frame} is not complete yet")
        return stats

    def frame_context(self, frame: int) -> FrameContext:
        """What whole-frame formats need: statistics (NotReady until complete), ROI mask, and
        the SMV header of the frame's experiment."""
        stats = self.statistics(frame)
        experiment = self.spec.frame_experiment(frame)
        header = smv_header(plan(experiment))
        det = experiment.detector
        mask = self.spec.grid.roi.mask(det.slow_pixels, det.fast_pixels)
        return FrameContext(stats, mask, header)

    def export(self, frame: int, fmt: Serializer, options: Options) -> bytes:
        """Frame ``frame`` (level 0) in format ``fmt``; whole-frame formats only once the
        frame is complete. C's float and SMV files are made from photons: a job that stored
        only the detector's image has its ADU in the series exports instead."""
        if fmt.whole_frame and not self.reader.has_photons():
            raise BadInput(
                f"format={fmt.name}: this job stored only the detector's image (no photons); "
                "its ADU are in the series export (/export?format=nexus|cbf|smv)",
                field="format",
            )
        context = self.frame_context(frame) if fmt.whole_frame else None
        return fmt.encode(self.frame(frame), context, options)
