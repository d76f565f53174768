"""A job's finished frames as one download: an NXmx file, or a zip of CBF, SMV or float files.

The NXmx file is written to a temporary file in the job's folder, streamed, then removed; a
zip is produced frame by frame while it streams (:func:`tiling.exports.archive.zip_frames`),
so the service holds one frame at a time whatever the job's length.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from engine.smv import ADC_OFFSET
from service.deps import JobParams
from service.errors import BadInput, NotFound, NotReady
from service.models import MAX_INDEX
from service.routers.jobs import ERRORS
from tiling.exports import open_store
from tiling.exports.series import (
    ExportInputError,
    FrameNotFinished,
    Scale,
    check_format,
    export_scale,
    parse_frames,
    select_frames,
)

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["exports"])

SeriesFormat = Literal["nexus", "cbf", "smv", "float"]
#: Largest gain (ADU per photon) and |ADC offset| (ADU) a request may ask for.
MAX_GAIN = 1e9
MAX_ADC = 1e9
NEXUS_TYPE = "application/x-hdf5"
ZIP_TYPE = "application/zip"


def _series(job: JobParams, fmt: str, frames: str | None, gain: float | None, adc: float | None):
    """(store, frames, scale) of the request, checked before any byte is sent."""
    try:
        reader = open_store(job.row["store"])
    except ExportInputError:
        raise NotFound("the job's store does not exist (any more)") from None
    try:
        check_format(reader, fmt)
        scale = export_scale(reader, gain, adc)
        return reader, select_frames(reader, parse_frames(frames, job.spec.frames)), scale
    except FrameNotFinished as err:
        raise NotReady(err.detail, field="frames", limit=err.limit) from None
    except ExportInputError as err:
        raise BadInput(err.detail, field=err.field, limit=err.limit) from None


def _nexus(job: JobParams, reader, frames: list[int], scale: Scale) -> FileResponse:
    from tiling.exports.nexus import write_nexus

    folder = FilePath(job.row["store"]).parent
    handle, path = tempfile.mkstemp(prefix=".export-", suffix=".nxs", dir=folder)
    os.close(handle)
    try:
        write_nexus(reader, frames, scale, path)
    except BaseException:
        os.remove(path)
        raise
    return FileResponse(
        path,
        media_type=NEXUS_TYPE,
        filename=f"{job.job_id}.nxs",
        background=BackgroundTask(os.remove, path),
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {NEXUS_TYPE: {}, ZIP_TYPE: {}}}, **ERRORS},
)
def export_series(
    job: Annotated[JobParams, Depends()],
    format: Annotated[
        SeriesFormat,
        Query(description="nexus: one NXmx file; cbf, smv, float: a zip of one file per frame"),
    ] = "nexus",
    frames: Annotated[
        str | None,
        Query(max_length=32, description="A:B: 0-based frames A..B-1 (default: every finished)"),
    ] = None,
    gain: Annotated[
        float | None,
        Query(gt=0, le=MAX_GAIN, allow_inf_nan=False, description="ADU per photon (1)"),
    ] = None,
    adc: Annotated[
        float | None,
        Query(
            ge=-MAX_ADC,
            le=MAX_ADC,
            allow_inf_nan=False,
            description=f"ADC offset, ADU ({ADC_OFFSET:g})",
        ),
    ] = None,
):
    """The job's finished frames (or ``frames``) as photons x gain + adc ADU, the same scale
    for every frame (float: the photons); a job that stored only the detector's image (no
    photons) as its ADU, without gain or adc (and no float); 404 naming a frame not finished
    yet."""
    reader, chosen, scale = _series(job, format, frames, gain, adc)
    if format == "nexus":
        return _nexus(job, reader, chosen, scale)
    from tiling.exports.archive import zip_frames

    folder = str(FilePath(job.row["store"]).parent)
    name = f"{job.job_id}_{format}.zip"
    return StreamingResponse(
        zip_frames(reader, format, chosen, scale, folder, name=job.job_id),
        media_type=ZIP_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _truth_store(job: JobParams):
    try:
        return open_store(job.row["store"])
    except ExportInputError:
        raise NotFound("the job's store does not exist (any more)") from None


@router.get("/truth.expt", responses={200: {"content": {"application/json": {}}}, **ERRORS})
def truth_expt(job: Annotated[JobParams, Depends()]) -> JSONResponse:
    """The ground truth of the job's planned frames as a dxtbx ExperimentList (JSON: one
    experiment per frame; ``dials`` loads it as ``truth.expt``)."""
    from tiling.truth import experiment_list

    reader = _truth_store(job)
    truths = [reader.frame_truth(k) for k in sorted(reader.truth_frames())]
    return JSONResponse(
        experiment_list([t for t in truths if t is not None]),
        headers={"Content-Disposition": f'attachment; filename="{job.job_id}.expt"'},
    )


@router.get("/frames/{frame}/truth", responses=ERRORS)
def frame_truth(
    job: Annotated[JobParams, Depends()],
    frame: Annotated[int, Path(description="frame index, 0-based", ge=0, le=MAX_INDEX)],
) -> dict[str, Any]:
    """What frame ``frame`` was rendered with (tiling.truth.FrameTruth): drawn values, the
    oriented crystal (dxtbx A = UB), beam, detector, phi; 404 before the frame is planned."""
    if frame >= job.spec.frames:
        raise NotFound(
            f"frame: {frame} is beyond the job's {job.spec.frames} frame(s)",
            field="frame",
            limit=job.spec.frames - 1,
        )
    truth = _truth_store(job).frame_truth(frame)
    if truth is None:
        raise NotReady(f"frame: {frame} is not planned yet", field="frame")
    return truth
