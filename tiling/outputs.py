"""C nanoBragg's per-frame output files (float, SMV int, PGM, noise), written from the store.

Only the files named on the ``--nanobragg`` command line are written (``braggtile render`` has
the zarr store as its main output; C's default file names are not written unasked). A series
writes one file per frame, ``name_00000.ext``, ``name_00001.ext``, .... Runs on a worker once
the frame's statistics are known (the int image's scale comes from max_I).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np

from engine.cli_args import Outputs
from engine.flags import FLAGS
from engine.frame import FrameSetup
from engine.statistics import FrameStatistics

#: Output flags of nanoBragg (and their aliases) -> Outputs field, from the flag table.
_IMAGES = ("floatfile", "intfile", "pgmfile", "noisefile")
FILE_FLAGS = {
    name: flag.target.split(".")[1]
    for flag in FLAGS
    if flag.kinds == "s" and flag.target in {f"outputs.{image}" for image in _IMAGES}
    for name in flag.names
}


def requested_outputs(argv: list[str], outputs: Outputs) -> Outputs | None:
    """``outputs`` with only the files named in ``argv`` kept (absolute paths); None if none."""
    named = {FILE_FLAGS[tok] for tok in argv if tok in FILE_FLAGS}
    changes: dict[str, object] = {}
    for name in ("floatfile", "intfile", "pgmfile", "noisefile"):
        value = getattr(outputs, name)
        changes[name] = os.path.abspath(value) if name in named and value else None
    if not any(changes.values()):
        return None
    changes["dumpfile"] = ""  # the structure-factor dump is not a frame output
    changes["progress"] = False
    if changes["noisefile"] and outputs.seed is None:
        changes["seed"] = int(time.time())  # one seed for the whole series, as frames differ
    return dataclasses.replace(outputs, **changes)


def frame_path(path: str, frame: int, frames: int) -> str:
    """``path`` for a single frame; ``stem_NNNNN.ext`` for frame ``frame`` of a series."""
    if frames == 1:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}_{frame:05d}{ext}"


@dataclass(frozen=True)
class NanoBraggFiles:
    """Frame writer (see :data:`tiling.worker.FrameWriter`) for C nanoBragg's output files."""

    outputs: Outputs
    frames: int

    def __call__(
        self,
        setup: FrameSetup,
        image: np.ndarray,
        statistics: FrameStatistics,
        roi_mask: np.ndarray,
        frame: int,
    ) -> list[str]:
        from engine.outputs import write_outputs

        names = {
            name: frame_path(value, frame, self.frames) if value else value
            for name in ("floatfile", "intfile", "pgmfile", "noisefile")
            for value in [getattr(self.outputs, name)]
        }
        outputs = dataclasses.replace(self.outputs, **names)
        return write_outputs(setup, image, statistics, outputs, roi_mask, frame=frame)
