"""A render job: one experiment, a series of frames, a tile size and an output precision.

:class:`JobSpec` is a pydantic model: ``JobSpec.model_validate_json(text)`` and
``job.model_dump_json()`` round-trip it, and ``JobSpec.model_json_schema()`` documents every
field with its unit. It imports no torch (:func:`torch_dtype` does, when called).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from engine.model import Experiment, Scan
from engine.plan import frame_experiment
from engine.precision import Precision, torch_dtype
from engine.response import DetectorResponse
from tiling.grid import TileGrid
from tiling.pyramid import DEFAULT_MIN_SIZE, level_shapes

DEFAULT_TILE = 512
OPTION_FIELDS = ("frames", "tile", "dtype", "pyramid_min")


def _with_frames(experiment: Any, frames: Any) -> Any:
    """``experiment`` (model or dict, any spelling) with its scan's frame count set."""
    if isinstance(experiment, Experiment):
        scan = Scan.model_validate({**experiment.scan.model_dump(), "frames": frames})
        return experiment.model_copy(update={"scan": scan})
    if isinstance(experiment, dict):
        return {**experiment, "scan": {**(experiment.get("scan") or {}), "frames": frames}}
    return experiment


class JobSpec(BaseModel):
    """What a store holds: the frames of ``experiment``'s scan cut in ``tile`` squares.

    Frame k starts at phi0 + k*osc (degrees) with the experiment's phi steps within its own
    oscillation; ``frames`` is the scan's (``experiment.scan.frames``), and ``frames=`` given
    to the job sets it. ``pyramid_min`` is the size (pixels) below which no further level is
    made. ``JobSpec(experiment, frames=...)`` also takes the experiment positionally.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment: Experiment = Field(description="the experiment and its scan (frames)")
    tile: int = Field(DEFAULT_TILE, ge=1, description="tile (= zarr chunk) edge, pixels")
    dtype: Precision = Field("float32", description="precision of the render and the store")
    pyramid_min: int = Field(
        DEFAULT_MIN_SIZE, ge=1, description="no pyramid level below this size, pixels"
    )
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="input files the experiment names (HKL, Fdump) by file name -> sha256 of "
        "their contents; the files travel in the store (see tiling.inputs)",
    )
    response: DetectorResponse | None = Field(
        None,
        description="detector response (PSF, noise, gain, read-out noise, offset, overload): "
        "each tile's detector image (ADU) is stored beside the photons; None: photons only",
    )

    def __init__(self, experiment: Experiment | None = None, /, **data: Any) -> None:
        if experiment is not None:
            data["experiment"] = experiment
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _bare_experiment(cls, data: Any) -> Any:
        """Accept a bare experiment too, and ``frames`` as a job option (set on the scan)."""
        if isinstance(data, dict) and "experiment" not in data and "crystal" in data:
            data = {"experiment": data}
        if isinstance(data, dict) and "frames" in data:
            data = dict(data)
            data["experiment"] = _with_frames(data.get("experiment"), data.pop("frames"))
        return data

    @computed_field(description="consecutive oscillation frames (the scan's)")
    @property
    def frames(self) -> int:
        return self.experiment.scan.frames

    @property
    def torch_dtype(self):
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
        return frame_experiment(self.experiment, frame)

    def options(self) -> dict[str, Any]:
        """The job's options besides the experiment, JSON-ready (``response`` only if set)."""
        options = {name: getattr(self, name) for name in OPTION_FIELDS}
        if self.response is not None:
            options["response"] = self.response.model_dump(mode="json")
        return options

    @property
    def fingerprint(self) -> str:
        """sha256 of the experiment and options, input files' contents included (by digest):
        equal fingerprints mean the same pixels."""
        payload = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON; ``response`` left out when None, so jobs without one keep the
        fingerprint they had before it existed."""
        data = self.model_dump(mode="json")
        if data.get("response", 0) is None:
            del data["response"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """A job from its dict (current spelling, or the old one: see :mod:`engine.legacy`)."""
        return cls.model_validate(data)
