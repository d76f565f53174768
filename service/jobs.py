"""The job manager: submit, run each job's render in its own thread, cancel, events, records.

A job's render (:func:`tiling.graph.render_job`) runs in a thread of a bounded pool (jobs beyond
``max_running_jobs`` wait as ``accepted``), so rendering never blocks the event loop and one
slow job never delays another job's status or events.

A job's state changes only through the manager's transition methods (:meth:`JobManager.start`,
``progress``, ``tile_done``, ``frame_done``, ``succeed``, ``fail``, ``dismiss``, ``requeue``),
checked against the one table of :mod:`service.lifecycle`: an illegal one raises
:class:`~service.lifecycle.IllegalTransition` (409). Each is applied under the job's lock: the
row's changes and the transition's events (with the next sequence numbers) are written in one
database transaction, then the hub wakes the job's streams. A final transition sets the job's
cancel event, which stops its render; what the render reports after that (``late_ok``) is
dropped, never written after the final event.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from distributed import Client
from sqlalchemy.engine import Engine

from service import db
from service.errors import NotFound, Unavailable
from service.events import Hub, frame_payload, tile_payload
from service.lifecycle import IllegalTransition, State, Transition, is_final, next_state
from service.metrics import Metrics
from service.models import JobRecord, JobRequest
from service.settings import Settings
from service.space import Space
from service.submission import build_spec, summary
from tiling.events import Event, FrameDone, JobStarted, TileDone
from tiling.graph import JobCancelled, render_job
from tiling.job import JobSpec
from tiling.store import StoreReader, TileStore

log = logging.getLogger("braggtile.service")
STORE_NAME = "store.zarr"
INPUTS_NAME = "inputs"
#: Job specs kept validated in memory for the pixel endpoints.
SPEC_CACHE = 256
#: Seconds a purge waits for the render thread of a dismissed job to stop.
PURGE_WAIT_S = 120.0


@dataclass
class _Live:
    """In-memory state of a job this process runs or queued."""

    seq: int
    state: State = "new"
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancel: threading.Event = field(default_factory=threading.Event)
    recovered: bool = False  # queued again from the records of a previous process

    @property
    def closed(self) -> bool:
        """The final event is written: nothing more is."""
        return is_final(self.state)


class JobManager:
    """Jobs of one service: records and events in ``engine``'s database, renders on ``client``."""

    def __init__(
        self, settings: Settings, engine: Engine, client: Client, hub: Hub, metrics: Metrics
    ):
        self.settings, self.engine, self.client = settings, engine, client
        self.hub, self.metrics = hub, metrics
        self.pool = ThreadPoolExecutor(settings.max_running_jobs, thread_name_prefix="bt-job")
        self.live: dict[str, _Live] = {}
        self.live_lock = threading.Lock()
        self.specs: OrderedDict[str, JobSpec] = OrderedDict()
        self.accepting = True
        self.futures: dict[str, Future[None]] = {}  # each queued or running job's thread
        self.space = Space(settings, engine)
        #: Called as a job finishes, before its final event (the retention policy).
        self.on_finish: Callable[[str], None] = lambda _job_id: None

    # --- submit ----------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> JobRecord:
        """Validate, record (``accepted``), create the store and queue the render."""
        if not self.accepting:
            raise Unavailable("the service is shutting down; no new jobs")
        job_id = uuid.uuid4().hex
        folder = self.settings.job_folder(job_id)
        try:
            spec = build_spec(request, folder / INPUTS_NAME, self.settings.limits)
            self.space.check(summary(spec))  # 507 when it cannot fit
            store = folder / STORE_NAME
            spec = TileStore.open_or_create(str(store), spec)[0].job  # input files in the store
            self._insert_row(job_id, request, spec, str(store))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        with self.live_lock:
            self.live[job_id] = _Live(seq=0)
        self._apply(job_id, "accept")
        self.futures[job_id] = self.pool.submit(self._run, job_id)
        return self.record(job_id)

    def _insert_row(self, job_id: str, request: JobRequest, spec: JobSpec, store: str) -> None:
        """The job's record, ``accepted``."""
        row = {
            "id": job_id,
            "status": "accepted",
            "created": db.utcnow(),
            "tiles_done": 0,
            "tiles_total": len(spec.grid.tiles()) * spec.frames,
            "nanobragg": request.nanobragg,
            "spec": spec.to_dict(),
            "summary": summary(spec),
            "fingerprint": spec.fingerprint,
            "store": store,
        }
        with self.engine.begin() as conn:
            conn.execute(db.jobs.insert().values(**row))

    def recover(self) -> list[str]:
        """Queue again the jobs a previous process left accepted or running (their stores
        resume: finished tiles are kept); returns their ids, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    db.jobs.c.id,
                    db.jobs.c.status,
                    sa.func.coalesce(sa.func.max(db.events.c.seq), 0),
                )
                .outerjoin(db.events, db.events.c.job_id == db.jobs.c.id)
                .where(db.jobs.c.status.in_(("accepted", "running")))
                .group_by(db.jobs.c.id, db.jobs.c.status)
                .order_by(sa.func.min(db.jobs.c.created))
            ).all()
        for job_id, status, seq in rows:
            with self.live_lock:
                self.live[job_id] = _Live(seq=int(seq), state=status, recovered=True)
            self.requeue(job_id)  # a running one is accepted again (a status event)
            self.futures[job_id] = self.pool.submit(self._run, job_id)
        return [job_id for job_id, _, _ in rows]

    # --- running ---------------------------------------------------------------------------

    def _run(self, job_id: str) -> None:
        live = self.live[job_id]
        try:
            if live.cancel.is_set() or not self.start(job_id, late_ok=True):
                return  # dismissed while queued, or the service is closing
            row = self.row(job_id)
            spec = JobSpec.from_dict(row["spec"])
            if live.recovered:  # a job of a previous process: events for what it left unsaid
                self._catch_up(job_id, row["store"], spec)
            render_job(
                self.client,
                row["store"],
                spec,
                on_event=lambda event: self._on_event(job_id, event),
                cancel=live.cancel,
            )
            self.succeed(job_id, late_ok=True)
        except JobCancelled:
            pass  # dismissed (the final event is written) or shutting down (resumable)
        except Exception as err:  # noqa: BLE001 - any failure of a render fails its job
            self._record_failure(job_id, f"{type(err).__name__}: {err}")
        finally:
            with self.live_lock:
                if live.closed:
                    self.live.pop(job_id, None)
                self.futures.pop(job_id, None)

    def _record_failure(self, job_id: str, message: str) -> None:
        """Fail the job; a second try if the first found the database's disk full (that
        released the space set aside for it: see :mod:`service.space`)."""
        for attempt in (1, 2):
            try:
                self.fail(job_id, message, late_ok=True)
                return
            except sa.exc.OperationalError:
                if attempt == 2:
                    log.exception("job %s failed (%s); that was not recorded", job_id, message)

    def _catch_up(self, job_id: str, path: str, spec: JobSpec) -> None:
        """Emit the ``tile`` and ``frame`` events of tiles and frames in the store that have
        none (finished while the previous process was stopping), so that every tile still has
        exactly one event."""
        with self.engine.connect() as conn:
            said = conn.execute(
                sa.select(db.events.c.type, db.events.c.data).where(
                    db.events.c.job_id == job_id, db.events.c.type.in_(("tile", "frame"))
                )
            ).all()
        tiles = {(d["frame"], d["row"], d["col"]) for t, d in said if t == "tile"}
        frames = {d["frame"] for t, d in said if t == "frame"}
        try:
            store = StoreReader(path)
        except FileNotFoundError:
            return  # nothing was written: the render creates the store
        done = len(tiles)
        total = len(spec.grid.tiles()) * spec.frames
        for (frame, row, col), record in sorted(store.records().items()):
            if (frame, row, col) not in tiles:
                done += 1
                event = TileDone(
                    frame,
                    row,
                    col,
                    spec.grid.window(row, col),
                    record.statistics,
                    record.render_s,
                    done,
                    total,
                )
                self.tile_done(job_id, event, late_ok=True)
        entries = store.frames()
        for frame in sorted(store.complete_frames() - frames):
            self.frame_done(job_id, FrameDone(frame, entries[frame].statistics), late_ok=True)

    def _on_event(self, job_id: str, event: Event) -> None:
        """A render's progress event as its transition (dropped once the job is closed)."""
        if isinstance(event, JobStarted):
            self.progress(job_id, event.tiles_done, late_ok=True)
        elif isinstance(event, TileDone):
            self.metrics.tile_done(event.render_s)
            self.tile_done(job_id, event, late_ok=True)
        elif isinstance(event, FrameDone):
            self.frame_done(job_id, event, late_ok=True)

    # --- transitions (service.lifecycle.TRANSITIONS) --------------------------------------
    # ``late_ok``: the caller is the job's render, which may report after the job was closed
    # (dismissed); then the transition is dropped and returns False instead of raising.

    def requeue(self, job_id: str) -> bool:
        """A job a previous process left accepted or running is queued again (``accepted``)."""
        return self._apply(job_id, "requeue")

    def start(self, job_id: str, *, late_ok: bool = False) -> bool:
        """A render thread took the job: ``running``, with its start time."""
        return self._apply(job_id, "start", late_ok=late_ok, started=db.utcnow())

    def progress(self, job_id: str, tiles_done: int, *, late_ok: bool = False) -> bool:
        """The render found ``tiles_done`` tiles in the store (resume): the row only."""
        return self._apply(job_id, "progress", late_ok=late_ok, tiles_done=tiles_done)

    def tile_done(self, job_id: str, event: TileDone, *, late_ok: bool = False) -> bool:
        """A tile is in the store: its ``tile`` event, and the row's tile count."""
        return self._apply(
            job_id,
            "tile_done",
            ("tile", tile_payload(event)),
            late_ok=late_ok,
            tiles_done=event.tiles_done,
        )

    def frame_done(self, job_id: str, event: FrameDone, *, late_ok: bool = False) -> bool:
        """A frame is complete: its ``frame`` event."""
        return self._apply(job_id, "frame_done", ("frame", frame_payload(event)), late_ok=late_ok)

    def succeed(self, job_id: str, *, late_ok: bool = False) -> bool:
        """Every frame is complete: ``successful`` (final)."""
        return self._apply(job_id, "succeed", late_ok=late_ok, message=None)

    def fail(self, job_id: str, message: str, *, late_ok: bool = False) -> bool:
        """The job cannot go on (``message`` says why): ``failed`` (final); its render stops,
        its store keeps what was written."""
        return self._apply(job_id, "fail", late_ok=late_ok, message=message)

    def dismiss(self, job_id: str, message: str = "dismissed by request") -> bool:
        """Dismiss an accepted or running job: ``dismissed`` (final); its pending and queued
        tasks are dropped, its store keeps what was written."""
        return self._apply(job_id, "dismiss", message=message)

    def _apply(
        self,
        job_id: str,
        event: Transition,
        extra: tuple[str, dict[str, Any]] | None = None,
        *,
        late_ok: bool = False,
        **changes: Any,
    ) -> bool:
        """Apply transition ``event``: the row's ``changes`` (and status), then a ``status``
        event if the state changed (a final one followed by an event named after the final
        state, with the same data), then ``extra`` (type, data), all in one database
        transaction under the job's lock. Returns False if dropped (``late_ok``, job closed)."""
        live = self.live[job_id]
        with live.lock:
            if late_ok and live.closed:
                return False
            state = next_state(job_id, live.state, event)
            changed = state != live.state
            if changed:
                changes["status"] = state
            if is_final(state):
                changes["finished"] = db.utcnow()
                if changed:
                    self.on_finish(job_id)  # the retention policy, before the final event
            seq = live.seq
            try:
                with self.engine.begin() as conn:
                    if state == "successful":
                        changes["tiles_done"] = db.jobs.c.tiles_total
                    if changes:
                        update = db.jobs.update().where(db.jobs.c.id == job_id)
                        conn.execute(update.values(**changes))
                    written = self._write_events(conn, job_id, live, state, changed, changes, extra)
            except BaseException:
                live.seq = seq  # rolled back: the numbers are free again
                raise
            live.state = state
            if is_final(state):
                live.cancel.set()
        if written:
            self.hub.notify(job_id)
        return True

    def _write_events(
        self,
        conn: Any,
        job_id: str,
        live: _Live,
        state: State,
        changed: bool,
        changes: dict[str, Any],
        extra: tuple[str, dict[str, Any]] | None,
    ) -> bool:
        """Insert a transition's events (see :meth:`_apply`); whether there were any."""
        if changed:
            row = conn.execute(
                sa.select(db.jobs.c.tiles_done, db.jobs.c.tiles_total).where(db.jobs.c.id == job_id)
            ).one()
            data: dict[str, Any] = {"status": state}
            if is_final(state):
                data["message"] = changes.get("message")
            data.update(_progress(state, row.tiles_done, row.tiles_total))
            self._insert(conn, job_id, live, "status", data)
            if is_final(state):
                self._insert(conn, job_id, live, state, data)
        if extra is not None:
            self._insert(conn, job_id, live, *extra)
        return changed or extra is not None

    @staticmethod
    def _insert(conn: Any, job_id: str, live: _Live, kind: str, data: dict[str, Any]) -> None:
        live.seq += 1
        conn.execute(
            db.events.insert().values(
                job_id=job_id, seq=live.seq, type=kind, data=data, created=db.utcnow()
            )
        )

    def cancel(self, job_id: str) -> JobRecord:
        """``DELETE /v1/jobs/{id}``: dismiss the job (again: its record; a job that is not
        accepted or running, or not this process's: 409)."""
        row = self.row(job_id)
        if row["status"] == "dismissed":
            return self.record(job_id)
        if job_id not in self.live:
            raise IllegalTransition(job_id, row["status"], "dismiss")
        try:
            self.dismiss(job_id)
        except IllegalTransition:
            if self.row(job_id)["status"] != "dismissed":
                raise
        return self.record(job_id)

    def purge(self, job_id: str) -> None:
        """Remove a job and its data: dismiss it if it is queued or running, wait for its render
        to stop, then delete its events, its record and its folder (the job is then 404)."""
        if not is_final(self.row(job_id)["status"]):
            try:
                self.cancel(job_id)
            except IllegalTransition:
                pass  # left by a previous process and not queued here: nothing runs it
        future = self.futures.get(job_id)
        if future is not None and not future.cancel():
            wait([future], timeout=PURGE_WAIT_S)
        forget(self.engine, job_id)
        with self.live_lock:
            self.live.pop(job_id, None)
            self.specs.pop(job_id, None)
            self.futures.pop(job_id, None)
        shutil.rmtree(self.settings.job_folder(job_id), ignore_errors=True)

    def drain(self) -> None:
        """Stop taking jobs (submissions get 503); running and queued jobs go on until close."""
        if self.accepting:
            log.info("draining: no new jobs")
        self.accepting = False

    def close(self) -> None:
        """Stop taking jobs, stop running renders (they stay resumable), wait for threads."""
        self.accepting = False
        with self.live_lock:
            lives = list(self.live.values())
        for live in lives:
            live.cancel.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    # --- reading ---------------------------------------------------------------------------

    def row(self, job_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.jobs).where(db.jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise NotFound(f"no job {job_id!r}", field="id")
        return dict(row)

    def spec(self, row: dict[str, Any]) -> JobSpec:
        """The JobSpec of a job row (validated once, then cached: a job never changes)."""
        key = row["id"]
        with self.live_lock:
            spec = self.specs.get(key)
            if spec is not None:
                self.specs.move_to_end(key)
                return spec
        spec = JobSpec.from_dict(row["spec"])
        with self.live_lock:
            self.specs[key] = spec
            while len(self.specs) > SPEC_CACHE:
                self.specs.popitem(last=False)
        return spec

    def record(self, job_id: str) -> JobRecord:
        return to_record(self.row(job_id))

    def records(
        self, limit: int, offset: int, statuses: list[str] | None = None
    ) -> tuple[list[JobRecord], int]:
        """Jobs newest first (only those in ``statuses`` if given), and how many there are."""
        where = db.jobs.c.status.in_(statuses) if statuses else sa.true()
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(db.jobs).where(where)
            ).scalar_one()
            rows = conn.execute(
                sa.select(db.jobs)
                .where(where)
                .order_by(db.jobs.c.created.desc(), db.jobs.c.id)
                .limit(limit)
                .offset(offset)
            ).mappings()
            return [to_record(dict(r)) for r in rows], int(total)

    def events_after(self, job_id: str, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Stored events of ``job_id`` with sequence numbers above ``seq``, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(db.events.c.seq, db.events.c.type, db.events.c.data)
                .where(db.events.c.job_id == job_id, db.events.c.seq > seq)
                .order_by(db.events.c.seq)
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def status_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(db.jobs.c.status, sa.func.count()).group_by(db.jobs.c.status)
            ).all()
        return {status: int(n) for status, n in rows}

    def running(self) -> int:
        with self.live_lock:
            return sum(1 for live in self.live.values() if not live.closed)


def forget(engine: Engine, job_id: str) -> None:
    """Delete a job's events and record."""
    with engine.begin() as conn:
        conn.execute(db.events.delete().where(db.events.c.job_id == job_id))
        conn.execute(db.jobs.delete().where(db.jobs.c.id == job_id))


def _progress(status: str, done: int, total: int) -> dict[str, Any]:
    percent = 100.0 if status == "successful" else (100.0 * done / total if total else 0.0)
    return {"progress": round(percent, 3), "tiles_done": done, "tiles_total": total}


def to_record(row: dict[str, Any]) -> JobRecord:
    """A database row as the API's job record."""
    job_id = row["id"]
    base = f"/v1/jobs/{job_id}"
    links = [
        {"rel": "self", "href": base, "type": "application/json"},
        {"rel": "events", "href": f"{base}/events", "type": "text/event-stream"},
        {"rel": "zarr", "href": f"{base}/zarr", "type": "application/vnd.zarr"},
        {"rel": "preview", "href": f"{base}/frames/0/preview.png", "type": "image/png"},
    ]
    return JobRecord(
        id=job_id,
        jobID=job_id,
        status=row["status"],
        **_progress(row["status"], row["tiles_done"], row["tiles_total"]),
        created=db.aware(row["created"]),
        started=db.aware(row["started"]),
        finished=db.aware(row["finished"]),
        message=row["message"],
        nanobragg=row["nanobragg"],
        links=links,
        **row["summary"],
    )
