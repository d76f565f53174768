"""Files a nanoBragg run writes: float image, SMV int image, PGM and noise image."""

from __future__ import annotations

import numpy as np

from engine.cli_args import Outputs
from engine.setup import FrameSetup
from engine.statistics import FrameStatistics


def write_outputs(
    setup: FrameSetup, image: np.ndarray, stats: FrameStatistics, outputs: Outputs
) -> None:
    """Write the outputs requested in ``outputs`` for a rendered frame (float32 photons)."""
    if outputs.floatfile:
        np.ascontiguousarray(image, dtype="<f4").tofile(outputs.floatfile)
        print(f"writing {outputs.floatfile} as {image.size} 4-byte floats")
