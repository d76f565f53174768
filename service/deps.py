"""Dependency classes of the routers (in the manner of titiler): each resolves one thing.

- :class:`JobParams`: the job named in the path, or 404.
- :class:`FrameParams`: a frame of that job, its pixels opened read-only.
- :class:`RenderParams`: how pixels become a PNG (scale, vmin, vmax, colormap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Path, Query, Request

from service.colormaps import SCALES, TABLES, Colormap, Scale
from service.imaging import Contrast
from service.jobs import JobManager
from service.models import MAX_INDEX
from service.pixels import JobPixels
from tiling.job import JobSpec


def manager_of(request: Request) -> JobManager:
    """The job manager of the app serving ``request``."""
    return request.app.state.service.manager


@dataclass
class JobParams:
    """The job ``job_id`` of the path: its database row (NotFound -> 404)."""

    request: Request
    job_id: Annotated[str, Path(description="job id", max_length=64)]
    row: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.manager = manager_of(self.request)
        self.row = self.manager.row(self.job_id)
        self.request.app.state.service.retention.touch(self.job_id)

    @property
    def spec(self) -> JobSpec:
        return self.manager.spec(self.row)

    def pixels(self) -> JobPixels:
        return JobPixels(self.row["store"], self.spec)


@dataclass
class FrameParams:
    """Frame ``frame`` of the job ``job_id`` (0-based; NotFound beyond the job's frames)."""

    request: Request
    job_id: Annotated[str, Path(description="job id", max_length=64)]
    frame: Annotated[int, Path(description="frame index, 0-based", ge=0, le=MAX_INDEX)]

    def __post_init__(self) -> None:
        self.job = JobParams(self.request, self.job_id)
        self.store = self.job.pixels()
        self.store.check_frame(self.frame)


@dataclass
class RenderParams:
    """PNG rendering: values in [vmin, vmax] photons mapped by ``scale`` onto ``colormap``."""

    scale: Annotated[
        Scale, Query(description=f"one of {', '.join(SCALES)} (see /v1/colormaps)")
    ] = "linear"
    vmin: Annotated[
        float | None, Query(allow_inf_nan=False, description="photons shown as the lowest colour")
    ] = None
    vmax: Annotated[
        float | None, Query(allow_inf_nan=False, description="photons shown as the highest colour")
    ] = None
    colormap: Annotated[
        Colormap, Query(description=f"one of {', '.join(TABLES)} (see /v1/colormaps)")
    ] = "gray"

    @property
    def contrast(self) -> Contrast:
        return Contrast(self.scale, self.vmin, self.vmax, self.colormap)
