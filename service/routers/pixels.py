"""Pixels of a job: tiles (npy/png) of any pyramid level, frame previews and C's file formats."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from service.deps import FrameParams, RenderParams
from service.imaging import to_png
from service.models import MAX_INDEX
from service.pixels import npy_bytes
from service.routers.jobs import ERRORS

router = APIRouter(prefix="/v1/jobs/{job_id}/frames/{frame}", tags=["pixels"])

NPY = "application/x-npy"
PNG = "image/png"
TileFormat = Literal["npy", "png"]
#: A tile, once served, never changes (its job's store is never rewritten).
FINAL_PIXELS = {"Cache-Control": "public, max-age=86400, immutable"}
IMAGE_RESPONSES = {200: {"content": {NPY: {}, PNG: {}}}, **ERRORS}


def _tile_response(
    frame: FrameParams, level: int, row: int, col: int, fmt: str, render: RenderParams
) -> Response:
    data = frame.store.tile(frame.frame, row, col, level)
    if fmt == "png":
        return Response(to_png(data, render.contrast), media_type=PNG, headers=FINAL_PIXELS)
    return Response(npy_bytes(data), media_type=NPY, headers=FINAL_PIXELS)


@router.get("/tiles/{row}/{col}", response_class=Response, responses=IMAGE_RESPONSES)
def tile(
    frame: Annotated[FrameParams, Depends()],
    render: Annotated[RenderParams, Depends()],
    row: Annotated[int, Path(ge=0, le=MAX_INDEX, description="tile row (slow)")],
    col: Annotated[int, Path(ge=0, le=MAX_INDEX, description="tile column (fast)")],
    format: Annotated[TileFormat, Query(description="npy: exact values; png: a picture")] = "npy",
) -> Response:
    """Level-0 tile (row, col): photons/pixel; 404 until it is rendered."""
    return _tile_response(frame, 0, row, col, format, render)


@router.get("/levels/{level}/tiles/{row}/{col}", response_class=Response, responses=IMAGE_RESPONSES)
def level_tile(
    frame: Annotated[FrameParams, Depends()],
    render: Annotated[RenderParams, Depends()],
    level: Annotated[
        int, Path(ge=0, le=MAX_INDEX, description="pyramid level (0 = full resolution)")
    ],
    row: Annotated[int, Path(ge=0, le=MAX_INDEX, description="chunk row")],
    col: Annotated[int, Path(ge=0, le=MAX_INDEX, description="chunk column")],
    format: Annotated[TileFormat, Query(description="npy: exact values; png: a picture")] = "npy",
) -> Response:
    """Chunk (row, col) of pyramid ``level`` (tile x tile, 2x2 means of the level above)."""
    return _tile_response(frame, level, row, col, format, render)


@router.get("/preview.png", response_class=Response, responses={200: {"content": {PNG: {}}}})
def preview(
    frame: Annotated[FrameParams, Depends()],
    render: Annotated[RenderParams, Depends()],
    level: Annotated[
        int | None,
        Query(ge=0, le=MAX_INDEX, description="pyramid level (default: finest <= 1024 pixels)"),
    ] = None,
) -> Response:
    """The whole frame from pyramid ``level`` as PNG (0 where nothing is rendered yet)."""
    store = frame.store
    data = store.frame(frame.frame, store.default_level() if level is None else level)
    return Response(to_png(data, render.contrast), media_type=PNG)


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
)
def export(
    frame: Annotated[FrameParams, Depends()],
    format: Annotated[
        Literal["float", "smv"],
        Query(description="float: C's -floatfile (raw <f4); smv: C's -intfile"),
    ] = "float",
    adc: Annotated[float, Query(allow_inf_nan=False, description="smv: ADC offset, ADU")] = 40.0,
    scale: Annotated[
        float | None,
        Query(gt=0, allow_inf_nan=False, description="smv: ADU per photon (default 55000/max_I)"),
    ] = None,
) -> Response:
    """A finished frame in C nanoBragg's file formats."""
    store = frame.store
    if format == "smv":
        body, ext = store.smv_file(frame.frame, adc, scale), "img"
    else:
        body, ext = store.float_file(frame.frame), "bin"
    name = f"{frame.job_id}_{frame.frame:05d}.{ext}"
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
