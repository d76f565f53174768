"""Jobs: submit, list, status, cancel, and the Server-Sent Events stream of a job."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sse_starlette import EventSourceResponse

from service.deps import JobParams, manager_of
from service.events import MAX_EVENT_ID, event_id
from service.jobs import JobManager, to_record
from service.models import FINAL, ErrorBody, EventTicket, JobList, JobRecord, JobRequest, Status

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    413: {"model": ErrorBody},
    422: {"model": ErrorBody},
    507: {"model": ErrorBody},
}
#: Seconds a stream waits for news before checking again (pings keep proxies open).
WAIT_S = 15.0
#: Seconds a woken stream waits for more events before reading them in one query.
GATHER_S = 0.05


@router.post("", status_code=201, response_model=JobRecord, responses=ERRORS)
def submit(body: JobRequest, request: Request, response: Response) -> JobRecord:
    """Submit a render job: nanoBragg flags or the typed job model, plus optional inputs."""
    record = manager_of(request).submit(body)
    response.headers["Location"] = f"/v1/jobs/{record.id}"
    return record


@router.get("", response_model=JobList)
def list_jobs(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500, description="jobs per page")] = 20,
    offset: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="jobs skipped (newest first)")
    ] = 0,
    status: Annotated[
        list[Status] | None, Query(description="only jobs in these statuses (repeatable)")
    ] = None,
) -> JobList:
    """Jobs, newest first, ``limit`` per page."""
    records, total = manager_of(request).records(limit, offset, status)
    extra = "".join(f"&status={s}" for s in status or ())

    def page(at: int) -> str:
        return f"/v1/jobs?limit={limit}&offset={at}{extra}"

    links = [{"rel": "self", "href": page(offset)}]
    if offset + limit < total:
        links.append({"rel": "next", "href": page(offset + limit)})
    if offset:
        links.append({"rel": "prev", "href": page(max(0, offset - limit))})
    return JobList(jobs=records, total=total, links=links)


@router.get("/{job_id}", response_model=JobRecord, responses=ERRORS)
def get_job(job: Annotated[JobParams, Depends()]) -> JobRecord:
    """A job's status, progress, times and links."""
    return to_record(job.row)


@router.delete(
    "/{job_id}",
    response_model=JobRecord,
    responses={204: {"description": "purged: the job is gone (then 404)"}, **ERRORS},
)
def cancel_job(
    job: Annotated[JobParams, Depends()],
    purge: Annotated[
        bool, Query(description="remove the job, its events and its data (any status): 204")
    ] = False,
) -> JobRecord | Response:
    """Cancel (dismiss) an accepted or running job: its pending and queued tasks are dropped.
    With ``purge=true``: dismiss it if it runs, then delete its record, events and folder."""
    if purge:
        job.manager.purge(job.job_id)
        return Response(status_code=204)
    return job.manager.cancel(job.job_id)


async def _stream(manager: JobManager, job_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
    """Stored events of the job after ``after``, then new ones as they come, to the final one.

    One query per wake-up while events flow (a wake-up gathers the events of ``GATHER_S``);
    the job's status is read only when there is nothing new, and the events read once more
    after it (a final status is committed together with the final event).
    """
    hub = manager.hub
    last = after
    while True:
        with hub.subscribe(job_id) as waiter:
            rows = await anyio.to_thread.run_sync(manager.events_after, job_id, last)
            if not rows:
                status = (await anyio.to_thread.run_sync(manager.row, job_id))["status"]
                if status in FINAL:
                    rows = await anyio.to_thread.run_sync(manager.events_after, job_id, last)
                    if not rows:
                        return  # the client already has the final event
            for row in rows:
                last = row["seq"]
                yield {"id": str(last), "event": row["type"], "data": json.dumps(row["data"])}
                if row["type"] in FINAL:
                    return
            if rows:
                continue
            try:
                await asyncio.wait_for(waiter.wait(), WAIT_S)
            except TimeoutError:
                continue
        await asyncio.sleep(GATHER_S)


@router.get(
    "/{job_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
    response_class=EventSourceResponse,
)
def events(
    job: Annotated[JobParams, Depends()],
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=64, description="replay events after this id"),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_EVENT_ID, description="replay events after this id (as Last-Event-ID)"),
    ] = None,
    _ticket: Annotated[
        str | None,
        Query(alias="ticket", max_length=512, description="a ticket from POST .../events/ticket"),
    ] = None,
    _access_token: Annotated[
        str | None,
        Query(alias="access_token", max_length=4096, description="the token (prefer a ticket)"),
    ] = None,
) -> EventSourceResponse:
    """Server-Sent Events: ``status``, ``tile``, ``frame``, then ``successful``, ``failed`` or
    ``dismissed``; ids are 1, 2, ... per job, and every event after Last-Event-ID is replayed.
    A browser's EventSource, which cannot send the bearer token, passes ``ticket``."""
    start = after or 0
    if last_event_id is not None:
        start = event_id(last_event_id, "Last-Event-ID")
    return EventSourceResponse(
        _stream(job.manager, job.job_id, start),
        ping=int(WAIT_S),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{job_id}/events/ticket", response_model=EventTicket, responses=ERRORS)
def event_ticket(job: Annotated[JobParams, Depends()], request: Request) -> EventTicket:
    """A short-lived ticket for this job's event stream (``?ticket=``), for clients that
    cannot send the bearer token (a browser's EventSource). Valid for opening the stream
    until ``expires``."""
    ticket, expires = request.app.state.tickets.issue(job.job_id, time.time())
    return EventTicket(
        ticket=ticket,
        expires=datetime.fromtimestamp(expires, UTC),
        href=f"/v1/jobs/{job.job_id}/events?ticket={ticket}",
    )
