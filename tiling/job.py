"""A render job: one experiment, a series of frames, a tile size and an output precision."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.model import Experiment
from engine.precision import PRECISIONS, Precision, torch_dtype
from tiling.grid import TileGrid
from tiling.pyramid import DEFAULT_MIN_SIZE, level_shapes

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class JobSpec:
    """What a store holds: ``frames`` oscillation frames of ``experiment`` cut in ``tile`` squares.

    Frame k starts at phi0 + k*osc (degrees) with the experiment's phi steps within its own
    oscillation. ``pyramid_min`` is the size (pixels) below which no further level is made.
    """

    experiment: Experiment
    frames: int = 1
    tile: int = 512
    dtype: Precision = "float32"
    pyramid_min: int = DEFAULT_MIN_SIZE

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.tile < 1:
            raise ValueError(f"tile must be >= 1 pixel, got {self.tile}")
        if self.dtype not in PRECISIONS:
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.pyramid_min < 1:
            raise ValueError(f"pyramid_min must be >= 1 pixel, got {self.pyramid_min}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch_dtype(self.dtype)

    @property
    def grid(self) -> TileGrid:
        return TileGrid.for_experiment(self.experiment, self.tile)

    @property
    def level_shapes(self) -> list[tuple[int, int]]:
        det = self.experiment.detector
        return level_shapes(det.slow_pixels, det.fast_pixels, self.pyramid_min)

    def frame_experiment(self, frame: int) -> Experiment:
        """The experiment of frame ``frame`` of the series (frame 0 is the experiment itself)."""
        return self.experiment if frame == 0 else self.experiment.with_frame(frame)

    def options(self) -> dict[str, Any]:
        """The job's options besides the experiment, JSON-ready."""
        return {
            "frames": self.frames,
            "tile": self.tile,
            "dtype": self.dtype,
            "pyramid_min": self.pyramid_min,
        }

    @property
    def fingerprint(self) -> str:
        """sha256 of the experiment and options: equal fingerprints mean the same pixels."""
        payload = json.dumps(
            {"experiment": self.experiment.model_dump(mode="json"), **self.options()},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment.model_dump(mode="json"), **self.options()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        return cls(
            experiment=Experiment.model_validate(data["experiment"]),
            frames=int(data["frames"]),
            tile=int(data["tile"]),
            dtype=data["dtype"],
            pyramid_min=int(data["pyramid_min"]),
        )
