"""Pixels of a job: tiles (npy/png) of any pyramid level, frame previews and C's file formats."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from service.deps import FrameParams, RenderParams
from service.models import MAX_INDEX
from service.routers.jobs import ERRORS
from service.serializers import Options, serializer

router = APIRouter(prefix="/v1/jobs/{job_id}/frames/{frame}", tags=["pixels"])

NPY = serializer("npy").media_type
PNG = serializer("png").media_type
TileFormat = Literal["npy", "png"]
ExportFormat = Literal["float", "smv"]
#: A tile, once served, never changes (its job's store is never rewritten).
FINAL_PIXELS = {"Cache-Control": "public, max-age=86400, immutable"}
IMAGE_RESPONSES = {200: {"content": {NPY: {}, PNG: {}}}, **ERRORS}


def _tile_response(
    frame: FrameParams, level: int, row: int, col: int, fmt: str, render: RenderParams
) -> Response:
    data = frame.store.tile(frame.frame, row, col, level)
    out = serializer(fmt)
    body = out.encode(data, None, Options(contrast=render.contrast))
    return Response(body, media_type=out.media_type, headers=FINAL_PIXELS)


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
    body = serializer("png").encode(data, None, Options(contrast=render.contrast))
    return Response(body, media_type=PNG)


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
)
def export(
    frame: Annotated[FrameParams, Depends()],
    format: Annotated[
        ExportFormat,
        Query(description="float: C's -floatfile (raw <f4); smv: C's -intfile"),
    ] = "float",
    adc: Annotated[float, Query(allow_inf_nan=False, description="smv: ADC offset, ADU")] = 40.0,
    scale: Annotated[
        float | None,
        Query(gt=0, allow_inf_nan=False, description="smv: ADU per photon (default 55000/max_I)"),
    ] = None,
) -> Response:
    """A finished frame in C nanoBragg's file formats."""
    out = serializer(format)
    body = frame.store.export(frame.frame, out, Options(adc=adc, scale=scale))
    name = f"{frame.job_id}_{frame.frame:05d}.{out.extension}"
    return Response(
        body,
        media_type=out.media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
