"""OGC API - Processes 1.0 (core, JSON, job list) over braggtile's job manager, at ``/ogcapi``.

``POST /ogcapi/processes/render/execution`` submits a job exactly like ``POST /v1/jobs`` (it is
one and the same job, listed at both); its errors, like those of every route here, are RFC 7807
problems (``application/problem+json``: type, title, status, detail, plus field and limit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import ogcapi
from service.auth import require
from service.deps import manager_of
from service.errors import HEADERS, NotFound, describe, error_body, status_of
from service.models import JobRecord, Status

log = logging.getLogger("braggtile.service")
PROBLEM = "application/problem+json"
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"content": {PROBLEM: {}}, "description": HTTPStatus(code).phrase}
    for code in (401, 404, 409, 413, 422, 503)
}


def problem(exc: Exception) -> JSONResponse:
    """An exception as an RFC 7807 problem (status from service.errors' table)."""
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        status, body = 422, describe(errors[0] if errors else {})
    elif isinstance(exc, StarletteHTTPException):
        status, body = exc.status_code, {"detail": str(exc.detail), "field": None, "limit": None}
    else:
        status, body = status_of(exc), error_body(exc)
    if status >= 500:
        log.error("unhandled error", exc_info=exc)
        body = {**body, "detail": f"internal error: {type(exc).__name__}"}
    mro = type(exc).__mro__
    kind = next((ogcapi.PROBLEM_TYPES[c] for c in mro if c in ogcapi.PROBLEM_TYPES), None)
    headers = next((HEADERS[c] for c in mro if c in HEADERS), None)
    document = {
        "type": kind or "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        **body,
    }
    return JSONResponse(document, status_code=status, headers=headers, media_type=PROBLEM)


class ProblemRoute(APIRoute):
    """A route whose errors (its dependencies' and validation's too) are RFC 7807 problems."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def problem_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error becomes a problem body
                return problem(exc)

        return problem_handler


@dataclass
class OgcJob:
    """The job ``jobId`` of the path (NoSuchJob -> 404, OGC's no-such-job problem)."""

    request: Request
    jobId: Annotated[str, Path(description="job id", max_length=64)]  # OGC's name

    def record(self) -> JobRecord:
        try:
            return manager_of(self.request).record(self.jobId)
        except NotFound:
            raise ogcapi.NoSuchJob(f"no job {self.jobId!r}", field="jobId") from None


def process_id(
    processId: Annotated[str, Path(description="process id: render")],  # OGC's name
) -> str:
    """The process of the path; NoSuchProcess (404) unless it is ``render``."""
    if processId != ogcapi.PROCESS_ID:
        raise ogcapi.NoSuchProcess(
            f"no process {processId!r}; processes: {ogcapi.PROCESS_ID}",
            field="processId",
            limit=ogcapi.PROCESS_ID,
        )
    return processId


def landing_links(base: str) -> list[dict[str, str]]:
    json = "application/json"
    return [
        {"rel": "self", "href": f"{base}/", "type": json, "title": "this document"},
        {
            "rel": "service-desc",
            "href": "/openapi.json",
            "type": "application/vnd.oai.openapi+json;version=3.0",
            "title": "the API definition",
        },
        {"rel": "service-doc", "href": "/docs", "type": "text/html", "title": "API documentation"},
        {"rel": f"{ogcapi.OGC_REL}/conformance", "href": f"{base}/conformance", "type": json},
        {"rel": f"{ogcapi.OGC_REL}/processes", "href": f"{base}/processes", "type": json},
        {"rel": f"{ogcapi.OGC_REL}/job-list", "href": f"{base}/jobs", "type": json},
    ]


@dataclass
class ProcessesFactory:
    """OGC API - Processes routes at ``prefix`` (titiler's factory manner): ``.router``."""

    prefix: str = "/ogcapi"
    router: APIRouter = field(init=False)

    def __post_init__(self) -> None:
        self.router = APIRouter(
            prefix=self.prefix,
            tags=["OGC API - Processes"],
            route_class=ProblemRoute,
            responses=PROBLEM_RESPONSES,
        )
        self.register_landing()
        self.register_processes()
        self.register_jobs()

    def register_landing(self) -> None:
        @self.router.get("/", summary="landing page")
        def landing() -> dict[str, Any]:
            """The OGC API landing page: links to the conformance, processes and jobs."""
            return {
                "title": "braggtile",
                "description": "nanoBragg diffraction images rendered tile by tile",
                "links": landing_links(self.prefix),
            }

        @self.router.get("/conformance", summary="conformance classes")
        def conformance() -> dict[str, list[str]]:
            """The OGC API - Processes 1.0 conformance classes this service implements."""
            return {"conformsTo": ogcapi.CONFORMANCE}

    def register_processes(self) -> None:
        auth = [Depends(require)]

        @self.router.get("/processes", dependencies=auth, summary="processes")
        def processes() -> dict[str, Any]:
            """The one process: render."""
            links = [{"rel": "self", "href": f"{self.prefix}/processes"}]
            return {"processes": [ogcapi.process_summary(self.prefix)], "links": links}

        @self.router.get("/processes/{processId}", dependencies=auth, summary="a process")
        def process(_: Annotated[str, Depends(process_id)]) -> dict[str, Any]:
            """The process description of render: inputs (POST /v1/jobs' fields), outputs."""
            return ogcapi.process_description(self.prefix)

        @self.router.post(
            "/processes/{processId}/execution",
            dependencies=auth,
            status_code=201,
            response_model=ogcapi.StatusInfo,
            response_model_exclude_none=True,
            summary="execute a process (asynchronously)",
        )
        def execute(
            request: Request,
            response: Response,
            body: ogcapi.Execute,
            _: Annotated[str, Depends(process_id)],
            prefer: Annotated[str | None, Header(description="respond-async")] = None,
        ) -> ogcapi.StatusInfo:
            """Submit a render job; it always runs asynchronously: 201, Location: the job."""
            record = manager_of(request).submit(ogcapi.job_request(body))
            response.headers["Location"] = f"{self.prefix}/jobs/{record.id}"
            if prefer and "respond-async" in prefer:
                response.headers["Preference-Applied"] = "respond-async"
            return ogcapi.status_info(record, self.prefix)

    def register_jobs(self) -> None:
        auth = [Depends(require)]

        @self.router.get(
            "/jobs",
            dependencies=auth,
            response_model=ogcapi.OgcJobList,
            response_model_exclude_none=True,
            summary="jobs",
        )
        def jobs(
            request: Request,
            limit: Annotated[int, Query(ge=1, le=500, description="jobs per page")] = 20,
            offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="jobs skipped")] = 0,
            status: Annotated[list[Status] | None, Query(description="only these")] = None,
        ) -> ogcapi.OgcJobList:
            """Jobs, newest first, ``limit`` per page (``next`` link while more remain)."""
            records, total = manager_of(request).records(limit, offset, status)
            extra = "".join(f"&status={s}" for s in status or ())
            page = f"{self.prefix}/jobs?limit={limit}&offset="
            links = [{"rel": "self", "href": f"{page}{offset}{extra}", "type": "application/json"}]
            if offset + limit < total:
                links.append({"rel": "next", "href": f"{page}{offset + limit}{extra}"})
            infos = [ogcapi.status_info(r, self.prefix) for r in records]
            return ogcapi.OgcJobList(jobs=infos, links=links)

        @self.router.get(
            "/jobs/{jobId}",
            dependencies=auth,
            response_model=ogcapi.StatusInfo,
            response_model_exclude_none=True,
            summary="a job's status",
        )
        def job(job: Annotated[OgcJob, Depends()]) -> ogcapi.StatusInfo:
            """The job's status, progress and links (results, once successful)."""
            return ogcapi.status_info(job.record(), self.prefix)

        @self.router.get("/jobs/{jobId}/results", dependencies=auth, summary="a job's results")
        def results(job: Annotated[OgcJob, Depends()]) -> dict[str, Any]:
            """Links to the store and the preview of a successful job; 404 before."""
            return ogcapi.results(job.record())


router = ProcessesFactory().router
