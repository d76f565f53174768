"""Job events: payloads of the API's event types, and the hub that wakes SSE streams.

Event types (``event:`` of the SSE stream): ``status`` on every status change, ``tile`` per
finished tile, ``frame`` per finished frame, and a final ``successful``/``failed``/``dismissed``.
Every event is first written to the database with the job's next sequence number, then the hub
wakes the streams of that job, which read what they have not sent yet from the database: the
database is the only source of events, so late and reconnecting clients miss nothing.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from service.errors import BadInput
from tiling.events import FrameDone, TileDone

#: Largest event id a client may name (the database stores ids as 64-bit signed integers).
MAX_EVENT_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def event_id(text: str, field: str) -> int:
    """The event id ``text`` (0 .. MAX_EVENT_ID, decimal digits); BadInput naming ``field``."""
    if _DIGITS.fullmatch(text) is None or int(text) > MAX_EVENT_ID:
        shown = text[:40].encode("ascii", "backslashreplace").decode()
        raise BadInput(
            f"{field}: expects an event id, an integer from 0 to {MAX_EVENT_ID}, got {shown!r}",
            field=field,
            limit=MAX_EVENT_ID,
        )
    return int(text)


def tile_payload(event: TileDone) -> dict[str, Any]:
    """``tile``: frame, row/col, origin [slow0, fast0] and shape [h, w] in pixels, max photons."""
    w = event.window
    return {
        "frame": event.frame,
        "row": event.row,
        "col": event.col,
        "origin": [w.slow0, w.fast0],
        "shape": [w.slow1 - w.slow0, w.fast1 - w.fast0],
        "max": event.statistics.max,
        "render_s": event.render_s,
        "tiles_done": event.tiles_done,
        "tiles_total": event.tiles_total,
    }


def frame_payload(event: FrameDone) -> dict[str, Any]:
    """``frame``: C nanoBragg's frame statistics (photons/pixel), plus ``max`` and ``sum``."""
    stats = event.statistics.to_dict()
    stats["max"] = event.statistics.max_I
    stats["sum"] = event.statistics.mean * event.statistics.pixels
    return {"frame": event.frame, "statistics": stats}


class Hub:
    """Wakes the asyncio waiters of a job from any thread (an event was stored)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, job_id: str) -> None:
        """Thread-safe: wake every stream of ``job_id``."""
        loop = self._loop
        if loop is None:
            return  # no stream can be waiting yet
        try:
            loop.call_soon_threadsafe(self._wake, job_id)
        except RuntimeError:
            pass  # the loop has closed: the service is stopping

    def _wake(self, job_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        for waiter in waiters:
            waiter.set()

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        """An asyncio.Event set whenever ``job_id`` gets an event (subscribe before reading)."""
        waiter = asyncio.Event()
        with self._lock:
            self._waiters[job_id].add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                self._waiters[job_id].discard(waiter)
                if not self._waiters[job_id]:
                    del self._waiters[job_id]
