"""Pydantic models at the HTTP edge: job requests, job records, lists, presets, health."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Status = Literal["accepted", "running", "successful", "failed", "dismissed"]
#: Statuses after which a job never changes again.
FINAL: frozenset[str] = frozenset({"successful", "failed", "dismissed"})
#: Largest frame, tile row/column or pyramid level a path may name.
MAX_INDEX = 2**31 - 1
#: Longest ``nanobragg`` argument string, characters (a real command line is under 4 kB).
MAX_NANOBRAGG_CHARS = 16384


def unencodable(value: Any) -> str | None:
    """The first string in ``value`` (nested dicts and lists, keys too) that is not valid
    Unicode (a lone surrogate such as ``"\\ud800"``, legal in JSON), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


class JobRequest(BaseModel):
    """``POST /v1/jobs``: nanoBragg flags or the typed job model, plus options and input files."""

    model_config = ConfigDict(extra="forbid")

    nanobragg: str | None = Field(
        None,
        max_length=MAX_NANOBRAGG_CHARS,
        description='nanoBragg flags, e.g. "-cell 100 100 100 90 90 90 -N 5 ..."',
    )
    job: dict[str, Any] | None = Field(
        None,
        description='typed job: {"experiment": {...}, "frames", "tile", "dtype"} (engine model)',
    )
    frames: int | None = Field(None, ge=1, description="consecutive oscillation frames")
    tile: int | None = Field(None, ge=1, description="tile (= zarr chunk) side, pixels")
    dtype: Literal["float32", "float64"] | None = Field(None, description="precision")
    stills: bool = Field(
        False, description="independent still frames (no rotation between them), as --stills"
    )
    variations: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description='per-frame draws, as --vary: {"orientation": "random", "mosaic": '
        '"uniform:0.1,0.5"} (see engine.dataset)',
    )
    seed: int | None = Field(None, ge=0, lt=2**63, description="seed of the per-frame draws")
    frames_table: list[dict[str, Any]] | None = Field(
        None,
        description="one row per frame: phi, misset or umat, cell, mosaic, N, lambda, flux, "
        "distance, beam_center, water (sets the frame count)",
    )
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description='files the arguments name: {"P1.hkl": "<text>"}; binary files (an SMV '
        '-mask or -img) as "base64:<data>" (at most --max-inputs files; plain names of at most '
        "255 bytes of UTF-8)",
    )

    @field_validator("nanobragg", "job", "inputs", "variations")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        bad = unencodable(value)
        if bad is not None:
            shown = bad[:40].encode("utf-8", "backslashreplace").decode()
            raise ValueError(f"not valid Unicode (a lone surrogate) in {shown!r}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> JobRequest:
        if (self.nanobragg is None) == (self.job is None):
            raise ValueError("give exactly one of 'nanobragg' (flags) or 'job' (typed model)")
        return self


class Link(BaseModel):
    rel: str
    href: str
    type: str | None = None


class Geometry(BaseModel):
    """Enough geometry to compute the resolution of any pixel (mm, Angstrom, unit vectors).

    Pixel (fast f, slow s) centre = pix0 + (f+0.5)*pixel*fdet + (s+0.5)*pixel*sdet (lab frame,
    from the sample); 2theta = angle(beam, centre); d = wavelength / (2 sin(theta)).
    """

    wavelength_A: float
    pixel_size_mm: float
    distance_mm: float
    pix0_mm: list[float]
    fdet: list[float]
    sdet: list[float]
    beam: list[float]


class JobRecord(BaseModel):
    """A job as the API reports it (OGC API - Processes status vocabulary)."""

    id: str
    jobID: str = Field(description="the id again, under OGC API - Processes' name")
    type: Literal["process"] = "process"
    processID: Literal["render"] = "render"
    status: Status
    progress: float = Field(description="tiles done / tiles total, percent")
    tiles_done: int
    tiles_total: int
    created: datetime
    started: datetime | None
    finished: datetime | None
    message: str | None
    frames: int
    tile: int
    dtype: str
    shape: list[int] = Field(description="[slow, fast] pixels of a frame")
    levels: list[list[int]] = Field(description="[slow, fast] of each pyramid level, 0 first")
    photons: bool = Field(
        True, description="level 0 holds photons; false: the detector's ADU (no photons stored)"
    )
    grid: list[int] = Field(description="[tile rows, tile cols] of level 0")
    geometry: Geometry
    nanobragg: str | None
    links: list[Link]


class JobList(BaseModel):
    jobs: list[JobRecord]
    total: int
    links: list[Link]


class Preset(BaseModel):
    name: str
    description: str
    nanobragg: str


class WorkerInfo(BaseModel):
    """A Dask worker of the service's cluster."""

    address: str
    name: str
    kind: Literal["cpu", "gpu"] = Field(description="gpu: the worker declares a GPU resource")
    threads: int = Field(description="Dask task threads")
    memory_limit: int | None = Field(description="bytes")
    gpu_index: int | None = Field(description="CUDA device of a GPU worker")
    torch_threads: int | None = Field(description="torch threads its tasks use")


class Health(BaseModel):
    status: Literal["ok"]
    workers: int = Field(description="Dask workers connected")
    jobs_running: int = Field(description="jobs rendering now")
    jobs_queued: int = Field(description="jobs accepted and waiting for a render thread")
    disk_free_bytes: int = Field(description="bytes free on the disk of --data")
    worker_info: list[WorkerInfo]
    version: str


class EventTicket(BaseModel):
    """A ticket for one job's event stream: ``GET href`` (``?ticket=``) until ``expires``."""

    ticket: str
    expires: datetime
    href: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx body."""

    detail: str
    field: str | None = None
    limit: Any = None


class ScaleDefinition(BaseModel):
    """A scale: its formula in t (the value's place in [vmin, vmax]) and its parameters."""

    formula: str
    parameters: dict[str, float]


class Colormaps(BaseModel):
    """``GET /v1/colormaps``: every colormap's RGB table and every scale (service.colormaps)."""

    size: int = Field(description="entries of each table")
    index: str = Field(description="the table entry of a scaled value")
    t: str = Field(description="a value's place in [vmin, vmax]")
    colormaps: dict[str, list[list[int]]] = Field(description="name -> size [r, g, b] (0-255)")
    scales: dict[str, ScaleDefinition]
