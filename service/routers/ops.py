"""Operations: health, Prometheus metrics, viewer presets, colormaps and the viewer page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from service.auth import require
from service.colormaps import document
from service.health import health
from service.models import Colormaps, Health, Preset
from service.presets import PRESETS

router = APIRouter(tags=["operations"])
STATIC = Path(__file__).resolve().parents[1] / "static"
COLORMAPS = document()


@router.get("/healthz", response_model=Health)
def healthz(request: Request) -> Health:
    """Liveness: the service answers; its workers (CPU or GPU), jobs running and queued, and
    the bytes free on the disk of ``--data``."""
    return health(request.app.state.service)


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text: braggtile_jobs{status}, braggtile_tiles_rendered_total, tile seconds."""
    body = request.app.state.service.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/v1/presets", response_model=list[Preset], dependencies=[Depends(require)])
def presets() -> list[Preset]:
    """Small example jobs for the viewer."""
    return PRESETS


@router.get("/v1/colormaps", response_model=Colormaps, dependencies=[Depends(require)])
def colormaps() -> dict:
    """The colormaps' RGB tables and the scales: how PNGs and the viewer colour pixels."""
    return COLORMAPS


@router.get("/", include_in_schema=False, response_model=None)
def index() -> Response:
    """The viewer page."""
    page = STATIC / "index.html"
    if page.is_file():
        return FileResponse(page, media_type="text/html")
    return HTMLResponse("<!doctype html><title>braggtile</title><p>viewer not installed; see /docs")
