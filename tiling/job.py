"""A render job: one experiment, a series of frames, a tile size and an output precision.

:class:`JobSpec` is a pydantic model: ``JobSpec.model_validate_json(text)`` and
``job.model_dump_json()`` round-trip it, and ``JobSpec.model_json_schema()`` documents every
field with its unit. It imports no torch (:func:`torch_dtype` does, when called).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from engine import dataset
from engine.dataset import FrameValues
from engine.model import Experiment, Scan
from engine.plan import frame_experiment
from engine.precision import Precision, torch_dtype
from engine.response import DetectorResponse
from tiling.grid import TileGrid
from tiling.pyramid import DEFAULT_MIN_SIZE, level_shapes

DEFAULT_TILE = 512
OPTION_FIELDS = ("frames", "tile", "dtype", "pyramid_min")
#: Dataset options: stored and fingerprinted only when they differ from their defaults, so the
#: fingerprint of a plain rotation series is what it was before datasets.
DATASET_FIELDS = ("stills", "variations", "seed", "frames_table")


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
    photons: bool = Field(
        True,
        description="store the photons (level 0); false (needs a response): store only the "
        "detector's image, which is then level 0 of the store's pyramid",
    )

    stills: bool = Field(
        False,
        description="independent still frames: no rotation between frames (each frame "
        "still rotates through the scan's oscillation)",
    )
    variations: dict[str, str] = Field(
        default_factory=dict,
        description="parameter -> distribution drawn per frame, e.g. orientation=random, "
        "mosaic=uniform:0.1,0.5 (see engine.dataset)",
    )
    seed: int = Field(
        0,
        ge=0,
        lt=dataset.SEED_LIMIT,
        description="seed of the per-frame draws: frame k's values depend on (seed, k) alone",
    )
    frames_table: list[FrameValues] | None = Field(
        None,
        description="one row per frame of explicit values (phi, misset or umat, cell, "
        "mosaic, N, lambda, flux, distance, beam_center, water); sets the frame count",
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
        if isinstance(data, dict) and data.get("frames_table") and data.get("frames") is None:
            data = {**data, "frames": len(data["frames_table"])}
        if isinstance(data, dict) and "frames" in data:
            data = dict(data)
            data["experiment"] = _with_frames(data.get("experiment"), data.pop("frames"))
        return data

    @field_validator("photons")
    @classmethod
    def _photons_or_response(cls, value: bool, info: ValidationInfo) -> bool:
        if not value and info.data.get("response") is None:
            raise ValueError(
                "without photons a job needs a detector response (--noise, --gain, --psf, "
                "...): the detector's image is all it stores"
            )
        return value

    @field_validator("variations")
    @classmethod
    def _known_variations(cls, value: dict[str, str]) -> dict[str, str]:
        dataset.parse_variations(value)
        return value

    @model_validator(mode="after")
    def _table_fits(self) -> JobSpec:
        if self.frames_table is not None:
            if len(self.frames_table) != self.frames:
                raise ValueError(
                    f"frames_table has {len(self.frames_table)} rows for {self.frames} frames"
                )
            if self.variations:
                raise ValueError("give variations or a frames_table, not both")
        return self

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

    def frame_values(self, frame: int) -> dict[str, Any]:
        """Frame ``frame``'s drawn or tabled values (see :mod:`engine.dataset`); {} if none."""
        if self.frames_table is not None:
            return self.frames_table[frame].model_dump(mode="json", exclude_none=True)
        if self.variations:
            return dataset.draw(self.variations, self.seed, frame, self.experiment)
        return {}

    def frame_experiment(self, frame: int) -> Experiment:
        """The experiment of frame ``frame``: the series' (phi0 + frame*osc) unless ``stills``,
        with the frame's values set; frame 0 of a plain series is the experiment itself."""
        experiment = self.experiment if self.stills else frame_experiment(self.experiment, frame)
        values = self.frame_values(frame)
        return dataset.apply(experiment, values) if values else experiment

    def frame_phi0_deg(self, frame: int) -> float:
        """The spindle angle at the start of frame ``frame``, degrees."""
        row = self.frames_table[frame] if self.frames_table is not None else None
        if row is not None and row.phi is not None:
            return row.phi
        return frame_experiment(self.experiment, 0 if self.stills else frame).scan.phi0_deg

    def frame_phi0s(self) -> list[float] | None:
        """Every frame's start angle (degrees) when they are not the rotation series', else
        None."""
        if not self.stills and self.frames_table is None:
            return None
        return [self.frame_phi0_deg(k) for k in range(self.frames)]

    def options(self) -> dict[str, Any]:
        """The job's options besides the experiment, JSON-ready (``response``, ``photons`` and
        the dataset options only when set)."""
        options = {name: getattr(self, name) for name in OPTION_FIELDS}
        if self.response is not None:
            options["response"] = self.response.model_dump(mode="json")
        if not self.photons:
            options["photons"] = False
        return options | self._dataset_options()

    def _dataset_options(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", include=set(DATASET_FIELDS), exclude_none=True)
        defaults = {"stills": False, "variations": {}, "seed": 0, "frames_table": None}
        return {k: v for k, v in data.items() if v != defaults[k]}

    @property
    def fingerprint(self) -> str:
        """sha256 of the experiment and options, input files' contents included (by digest):
        equal fingerprints mean the same pixels."""
        payload = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON; ``response``, ``photons`` and the dataset options
        (:data:`DATASET_FIELDS`) left out when not set, so jobs without them keep the
        fingerprint they had before."""
        data = self.model_dump(mode="json", exclude=set(DATASET_FIELDS))
        if data.get("response", 0) is None:
            del data["response"]
        if data.get("photons") is True:
            del data["photons"]
        return data | self._dataset_options()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """A job from its dict (current spelling, or the old one: see :mod:`engine.legacy`)."""
        return cls.model_validate(data)
