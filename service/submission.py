"""From a ``POST /v1/jobs`` request to a JobSpec: input files, nanoBragg flags or the typed
model, options and limits; and the summary a job record shows of its spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.model import Experiment
from service.errors import BadInput, TooLarge, describe
from service.inputs import check_files, parse_arguments, resolve_experiment, write_inputs
from service.models import JobRequest
from service.settings import Limits
from service.steps import pixel_work
from tiling.job import JobSpec
from tiling.pyramid import DEFAULT_MIN_SIZE
from tiling.store import geometry_attributes

#: Default tile side (pixels) when the request names none.
DEFAULT_TILE = 512


class JobOptions(BaseModel):
    """The options of a typed job (``{"job": {"experiment": ..., ...}}``) besides the model."""

    model_config = ConfigDict(extra="forbid")

    experiment: dict[str, Any]
    frames: int | None = Field(None, ge=1)
    tile: int | None = Field(None, ge=1)
    dtype: Literal["float32", "float64"] | None = None
    pyramid_min: int = Field(DEFAULT_MIN_SIZE, ge=1)
    response: dict[str, Any] | None = None
    photons: bool = True
    stills: bool = False
    variations: dict[str, str] = Field(default_factory=dict)
    seed: int = Field(0, ge=0, lt=2**63)
    frames_table: list[dict[str, Any]] | None = None


#: JobSpec fields only a typed job gives (errors name them job.FIELD).
TYPED_ONLY = ("pyramid_min", "response", "photons")


#: Frames of a dataset job whose inner steps per pixel are checked against the limit (their
#: mosaic domains and automatic oversampling follow the drawn values).
STEP_CHECK_FRAMES = 16


def spec_varies(spec: JobSpec) -> bool:
    """Whether the job's frames differ in more than their rotation."""
    return bool(spec.variations) or spec.frames_table is not None


#: Dataset fields of a request (the request's win over a typed job's own).
DATASET_FIELDS = ("stills", "variations", "seed", "frames_table")


def _dataset(request: JobRequest, options: JobOptions) -> dict[str, Any]:
    """The dataset options of a request: its own where given, else the typed job's."""
    given = request.model_dump(include=set(DATASET_FIELDS), exclude_unset=True)
    return {name: given.get(name, getattr(options, name)) for name in DATASET_FIELDS}


def _frames(request: JobRequest, options: JobOptions, table: list | None) -> int:
    return request.frames or options.frames or (len(table) if table else 1)


def _job_spec(request: JobRequest, options: JobOptions, experiment: Experiment) -> JobSpec:
    """The JobSpec of the request (BadInput naming the request field it cannot take)."""
    dataset = _dataset(request, options)
    try:
        return JobSpec(
            experiment=experiment,
            frames=_frames(request, options, dataset["frames_table"]),
            tile=request.tile or options.tile or DEFAULT_TILE,
            dtype=request.dtype or options.dtype or "float32",
            pyramid_min=options.pyramid_min,
            response=options.response,
            photons=options.photons,
            **dataset,
        )
    except ValidationError as err:
        first = err.errors()[0]
        if not first.get("loc"):
            first = {**first, "loc": ("frames_table",)}
        typed = first["loc"][0] in TYPED_ONLY
        raise BadInput(**describe(first, "job" if typed else "")) from None


def _experiment(request: JobRequest, inputs_dir: Path) -> tuple[Experiment, JobOptions]:
    """The request's experiment (files resolved in ``inputs_dir``) and its typed options."""
    if request.nanobragg is not None:
        experiment, dtype = parse_arguments(request.nanobragg, inputs_dir, request.inputs)
        return experiment, JobOptions(experiment={}, dtype=dtype)
    try:
        options = JobOptions.model_validate(request.job)
    except ValidationError as err:
        raise BadInput(**describe(err.errors()[0], "job")) from None
    try:
        experiment = Experiment.model_validate(options.experiment)
    except ValidationError as err:
        raise BadInput(**describe(err.errors()[0], "job.experiment")) from None
    return resolve_experiment(experiment, inputs_dir, request.inputs), options


def _check_limits(spec: JobSpec, limits: Limits, detector_field: str) -> None:
    if spec.frames > limits.max_frames:
        raise TooLarge(
            f"frames: {spec.frames} is more than the limit of {limits.max_frames}",
            field="frames",
            limit=limits.max_frames,
        )
    det = spec.experiment.detector
    pixels = det.slow_pixels * det.fast_pixels
    if pixels > limits.max_pixels:
        raise TooLarge(
            f"{detector_field}: {det.slow_pixels}x{det.fast_pixels} = {pixels} pixels per frame, "
            f"more than the limit of {limits.max_pixels}",
            field=detector_field,
            limit=limits.max_pixels,
        )
    if not limits.min_tile <= spec.tile <= limits.max_tile:
        bound = limits.min_tile if spec.tile < limits.min_tile else limits.max_tile
        raise BadInput(
            f"tile: must be between {limits.min_tile} and {limits.max_tile} pixels, "
            f"got {spec.tile}",
            field="tile",
            limit=bound,
        )


def _check_steps(experiment: Experiment, limits: Limits, field: str) -> None:
    work = pixel_work(experiment, limits.max_steps_per_pixel)
    if work.steps > limits.max_steps_per_pixel:
        raise TooLarge(
            f"{field}: inner steps per pixel {work.describe()}, more than the limit of "
            f"{limits.max_steps_per_pixel} (max_steps_per_pixel)",
            field=field,
            limit=limits.max_steps_per_pixel,
        )


def build_spec(request: JobRequest, inputs_dir: Path, limits: Limits) -> JobSpec:
    """The JobSpec of a request, its input files written into ``inputs_dir``; BadInput or
    TooLarge (naming the field or flag and the limit) when it is not acceptable. Request
    options win over a typed job's own."""
    write_inputs(inputs_dir, request.inputs, limits)
    experiment, options = _experiment(request, inputs_dir)
    spec = _job_spec(request, options, experiment)
    nanobragg = request.nanobragg is not None
    _check_limits(spec, limits, "-detpixels" if nanobragg else "job.experiment.detector")
    for frame in range(min(spec.frames, STEP_CHECK_FRAMES) if spec_varies(spec) else 1):
        _check_steps(
            spec.frame_experiment(frame), limits, "nanobragg" if nanobragg else "job.experiment"
        )
    check_files(experiment)
    return spec


def summary(spec: JobSpec) -> dict[str, Any]:
    """What a job record shows besides its state: shape, levels, grid and geometry."""
    geo = geometry_attributes(spec.experiment, spec.frames, spec.frame_phi0s())
    det = spec.experiment.detector
    return {
        "frames": spec.frames,
        "tile": spec.tile,
        "dtype": spec.dtype,
        "shape": [det.slow_pixels, det.fast_pixels],
        "levels": [list(s) for s in spec.level_shapes],
        "photons": spec.photons,
        "detector_itemsize": 0 if spec.response is None else spec.response.dtype.itemsize,
        "grid": list(spec.grid.shape),
        "geometry": {
            "wavelength_A": spec.experiment.beam.wavelength_A,
            "pixel_size_mm": geo["pixel_size_mm"],
            "distance_mm": geo["distance_mm"],
            "pix0_mm": [x * 1e3 for x in geo["pix0_vector_m"]],
            "fdet": geo["fdet_vector"],
            "sdet": geo["sdet_vector"],
            "beam": geo["beam_vector"],
        },
    }
