"""Disk space: a job's bytes on disk (an upper bound), free bytes, and the 507 refusal.

A job is accepted only if its store fits on the ``--data`` disk, together with what the jobs
already accepted or running still have to write, and its records and events fit on the
database's disk (SQLite: the folder of its file). Full disks met anyway (another program filled
them) answer 507 with the service's JSON error body instead of a 500. A SQLite database keeps
:data:`RESERVE_BYTES` set aside on its disk (a file given up when a write finds the disk full,
taken again when space returns), so a job whose store filled the disk can still record that
it failed.
"""

from __future__ import annotations

import errno
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine, make_url

from service import db
from service.errors import InsufficientStorage, ServiceError, Unavailable, error_body, status_of
from service.settings import Settings
from tiling.layout import RECORD_BYTES as TILE_RECORD_BYTES

log = logging.getLogger("braggtile.service")
#: Allocation unit assumed for every file, bytes (a 72-byte tile record takes a whole block).
BLOCK = 4096
#: Factor on every estimate: directories, zarr.json files, the file system's own overhead.
MARGIN = 1.25
#: Bytes of a store besides its chunks: group and array metadata, the job's input files.
METADATA_BYTES = 256 << 10
#: Database bytes per event (row, JSON, index entries), and per job record (spec, summary).
EVENT_BYTES = 1024
RECORD_BYTES = 64 << 10
#: Error codes of a full disk or an exhausted quota.
FULL = (errno.ENOSPC, errno.EDQUOT)
#: Bytes set aside for the database on its disk, and the file that holds them.
RESERVE_BYTES = 1 << 20
RESERVE_NAME = ".braggtile-db-reserve"


def _blocks(size: int) -> int:
    """``size`` bytes rounded up to whole blocks."""
    return -(-size // BLOCK) * BLOCK


def store_bytes(summary: dict[str, Any]) -> int:
    """Upper bound of a job's store on disk, bytes, from its record's summary (``frames``,
    ``tile``, ``dtype``, ``levels``, ``grid``, and ``photons`` and ``detector_itemsize`` where
    the job has a detector response): every chunk of every pyramid level as written
    uncompressed (edge chunks whole), the detector's image beside the photons, every tile
    record, each file in whole blocks, plus metadata, times :data:`MARGIN`. Compressed chunks
    (Blosc) are usually much smaller. (Without photons the detector's image is level 0,
    counted at the levels' itemsize, at least its own.)"""
    tile, frames = summary["tile"], summary["frames"]
    chunk = _blocks(tile * tile * np.dtype(summary["dtype"]).itemsize)
    chunks = sum(math.ceil(s / tile) * math.ceil(f / tile) for s, f in summary["levels"])
    rows, cols = summary["grid"]
    per_frame = chunks * chunk + rows * cols * _blocks(TILE_RECORD_BYTES)
    if summary.get("photons", True):  # the detector's image beside the photons
        per_frame += rows * cols * _blocks(tile * tile * summary.get("detector_itemsize", 0))
    return int((frames * per_frame + METADATA_BYTES) * MARGIN)


def database_bytes(summary: dict[str, Any]) -> int:
    """Upper bound of a job's record and events in the database, bytes: an event per tile and
    per frame, a few status events, and the record."""
    rows, cols = summary["grid"]
    frames = summary["frames"]
    events = frames * (rows * cols + 1) + 8
    return int((events * EVENT_BYTES + RECORD_BYTES) * MARGIN)


def database_folder(url: str) -> Path | None:
    """The folder of a SQLite database file (None for servers and in-memory databases)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve().parent


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the disk of ``path`` (or of its nearest
    existing parent)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


class Reserve:
    """Space set aside for a SQLite database in ``folder`` (nothing for other databases)."""

    def __init__(self, folder: Path | None):
        self.path = None if folder is None else folder / RESERVE_NAME

    def hold(self) -> None:
        """Set the space aside, if it is not and the disk has twice as much free."""
        if self.path is None or self.path.exists():
            return
        if free_bytes(self.path.parent) < 2 * RESERVE_BYTES:
            return
        try:
            with open(self.path, "wb") as fh:
                fh.write(bytes(RESERVE_BYTES))
        except OSError:
            self.path.unlink(missing_ok=True)

    @property
    def missing(self) -> int:
        """Bytes to set aside again before the database's disk takes more jobs."""
        return RESERVE_BYTES if self.path is not None and not self.path.exists() else 0

    def release(self) -> None:
        """Give the space to the database (its disk is full)."""
        if self.path is not None and self.path.exists():
            log.warning("the database's disk is full: releasing %s", self.path)
            self.path.unlink(missing_ok=True)

    def watch(self, engine: Engine) -> None:
        """Release the space whenever a statement of ``engine`` finds the disk full, so the next
        one (the final event of the job that met it) can be written."""

        def on_error(context: Any) -> None:
            if "full" in str(context.original_exception).lower():
                self.release()

        sa.event.listen(engine, "handle_error", on_error)


class Space:
    """The free-space check of job submissions on the data and database disks."""

    def __init__(self, settings: Settings, engine: Engine):
        self.settings, self.engine = settings, engine
        self.database = database_folder(settings.database_url)
        self.reserve = Reserve(self.database)
        self.reserve.watch(engine)
        self.reserve.hold()

    def outstanding(self) -> int:
        """Bytes the accepted and running jobs may still write to their stores (each job's
        bound times the fraction of its tiles not done)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(db.jobs.c.summary, db.jobs.c.tiles_done, db.jobs.c.tiles_total).where(
                    db.jobs.c.status.in_(("accepted", "running"))
                )
            ).all()
        left = 0.0
        for summary, done, total in rows:
            left += store_bytes(summary) * (1.0 - done / total if total else 1.0)
        return int(left)

    def check(self, summary: dict[str, Any]) -> None:
        """Raise :class:`InsufficientStorage` (507) when a job of ``summary`` cannot fit (with
        the database's reserve set aside again): the detail names the disk, the bytes needed
        and the bytes free."""
        data = self.settings.data
        needs = [(data, "--data", store_bytes(summary) + self.outstanding())]
        if self.database is not None:
            need = database_bytes(summary) + self.reserve.missing
            if _same_disk(self.database, data):
                needs[0] = (data, "--data", needs[0][2] + need)
            else:
                needs.append((self.database, "--database", need))
        for path, flag, need in needs:
            free = free_bytes(path)
            if free < need:
                raise InsufficientStorage(
                    f"{flag}: not enough free space on the disk of {path}: this job needs "
                    f"about {need} bytes (with the jobs before it), {free} bytes are free",
                    field=flag,
                    limit=free,
                )
        self.reserve.hold()  # again, if space has returned


def _same_disk(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def storage_error(exc: Exception, settings: Settings) -> ServiceError | None:
    """The service error of a full disk or a failing database, None for other errors."""
    if isinstance(exc, OSError) and exc.errno in FULL:
        path = Path(exc.filename) if isinstance(exc.filename, str) else settings.data
        free = free_bytes(path)
        return InsufficientStorage(
            f"no space left on the disk of {path} ({free} bytes free): {exc.strerror}",
            field="--data",
            limit=free,
        )
    if isinstance(exc, sa.exc.OperationalError):
        text = str(exc.orig)
        folder = database_folder(settings.database_url)
        if "full" in text.lower():
            free = free_bytes(folder) if folder is not None else None
            where = f" ({free} bytes free in {folder})" if folder is not None else ""
            return InsufficientStorage(
                f"--database: the database's disk is full{where}: {text}",
                field="--database",
                limit=free,
            )
        return Unavailable(f"--database: the database is unavailable: {text}", field="--database")
    return None


async def _storage_handler(request: Request, exc: Exception) -> JSONResponse:
    error = storage_error(exc, request.app.state.service.settings)
    if error is None:
        log.error("unhandled error", exc_info=exc)
        body = {"detail": f"internal error: {type(exc).__name__}", "field": None, "limit": None}
        return JSONResponse(body, status_code=500)
    log.warning("%s", error.detail)
    headers = {"Retry-After": "60"}
    return JSONResponse(error_body(error), status_code=status_of(error), headers=headers)


def add_storage_handlers(app: FastAPI) -> None:
    """Answer full disks (OSError ENOSPC/EDQUOT) with 507 and database failures (a full disk:
    507, others: 503), with the service's JSON error body."""
    app.add_exception_handler(OSError, _storage_handler)
    app.add_exception_handler(sa.exc.OperationalError, _storage_handler)
