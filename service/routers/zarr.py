"""The job's zarr v3 store, read-only over HTTP: ``zarr.open_group(URL, mode="r")`` reads it.

Keys map to files of the store folder (``zarr.json``, ``0/c/0/1/2``, ...). A key that is not a
file (a chunk not written yet, a folder, anything outside the store) is a 404, which zarr reads
as "missing": chunks not written read as the fill value, so a live store is readable any time.
A full-resolution chunk (of the photons or of the detector's image) is served only once its
tile's record is written (records follow their chunks), so a chunk left half-done by a crash is
never served.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from service.deps import JobParams
from service.errors import BadInput, NotFound
from service.routers.jobs import ERRORS
from tiling.layout import tile_chunk_of_key

router = APIRouter(prefix="/v1/jobs/{job_id}/zarr", tags=["zarr"])
#: Longest key (characters) and longest part of a key (bytes of UTF-8, a file name's limit).
MAX_KEY_CHARS = 1024
MAX_KEY_PART_BYTES = 255


def check_key(key: str) -> None:
    """BadInput naming ``key`` and the limit if no file of a store could have this key."""
    for part in key.split("/"):
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > MAX_KEY_PART_BYTES:
            raise BadInput(
                f"key: a part of {size} bytes, more than the limit of {MAX_KEY_PART_BYTES}",
                field="key",
                limit=MAX_KEY_PART_BYTES,
            )


def store_file(store: str, key: str) -> FsPath:
    """The file of store key ``key``; NotFound if there is none (or it is outside the store)."""
    root = FsPath(store).resolve()
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise NotFound(f"no key {key!r} in the store", field="key")
    path = root.joinpath(*parts)
    if not path.is_file() or not path.resolve().is_relative_to(root):
        raise NotFound(f"no key {key!r} in the store", field="key")
    return path


@router.get("/{key:path}", responses=ERRORS)
def zarr_key(
    job: Annotated[JobParams, Depends()],
    key: Annotated[
        str,
        Path(max_length=MAX_KEY_CHARS, description="store key, e.g. zarr.json or 0/c/0/1/2"),
    ],
) -> Response:
    """One key of the store (metadata JSON or a chunk's bytes).

    The file is read whole through one open descriptor: the writers replace files by rename
    (metadata as a job runs, chunks on a resume), and a length taken from the path before
    another open could belong to a different file than the bytes sent."""
    check_key(key)
    path = store_file(job.row["store"], key)
    tile = tile_chunk_of_key(key)
    if tile is not None and not job.pixels().tile_done(*tile):
        raise NotFound(f"no key {key!r} in the store: its tile is not rendered yet", field="key")
    media = "application/json" if path.name == "zarr.json" else "application/octet-stream"
    try:
        content = path.read_bytes()
    except FileNotFoundError as err:  # removed since (a purge): as if never written
        raise NotFound(f"no key {key!r} in the store", field="key") from err
    return Response(content, media_type=media, headers={"Cache-Control": "no-cache"})


router.add_api_route(
    "/{key:path}", zarr_key, methods=["HEAD"], include_in_schema=False, operation_id="zarr_head"
)
