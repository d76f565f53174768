"""The service's exceptions and THE table mapping every exception to an HTTP status.

Every error body is ``{"detail": str, "field": str | None, "limit": number | str | None}``
(``field`` names the request field or nanoBragg flag at fault, ``limit`` the bound it broke).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import UserInputError
from tiling.lock import StoreLockedError
from tiling.store import StoreMismatchError

log = logging.getLogger("braggtile.service")


class ServiceError(Exception):
    """Base of the service's errors: a message, and the field and limit it concerns."""

    def __init__(self, detail: str, field: str | None = None, limit: Any = None):
        super().__init__(detail)
        self.detail, self.field, self.limit = detail, field, limit


class NotFound(ServiceError):
    """No such job, frame, tile or store key."""


class NotReady(NotFound):
    """The thing exists but is not rendered yet (a tile, a pyramid level, a frame's export)."""


class Conflict(ServiceError):
    """The request does not fit the job's state (e.g. cancelling a finished job)."""


class BadInput(ServiceError):
    """A request value out of range or not allowed; ``field`` and ``limit`` say which."""


class TooLarge(BadInput):
    """The job or its inputs exceed a configured limit."""


class BodyTooLarge(StarletteHTTPException):
    """A request body longer than ``--max-body-bytes`` (raised while it is read: FastAPI lets
    HTTP exceptions from the body through as they are)."""

    def __init__(self, limit: int):
        detail = f"request body: more than the limit of {limit} bytes (--max-body-bytes)"
        super().__init__(413, detail)
        self.field, self.limit = "body", limit


class Unauthorized(ServiceError):
    """The service requires a bearer token and the request has none, or a wrong one."""


class Unavailable(ServiceError):
    """The service is starting or stopping and takes no new jobs."""


class InsufficientStorage(ServiceError):
    """A disk (the store's or the database's) has too little free space; ``limit``: free bytes."""


#: Exception class -> HTTP status. The most specific class in an exception's MRO wins.
STATUS_CODES: dict[type[Exception], int] = {
    NotFound: 404,
    Conflict: 409,
    StoreMismatchError: 409,
    StoreLockedError: 409,
    TooLarge: 413,
    BadInput: 422,
    UserInputError: 422,
    Unauthorized: 401,
    Unavailable: 503,
    InsufficientStorage: 507,
}
#: Headers sent with an error's response, by exception class.
HEADERS: dict[type[Exception], dict[str, str]] = {
    Unauthorized: {"WWW-Authenticate": "Bearer"},
    Unavailable: {"Retry-After": "30"},
}


def error_body(exc: Exception) -> dict[str, Any]:
    """The JSON body of an error response."""
    if isinstance(exc, ServiceError):
        return {"detail": exc.detail, "field": exc.field, "limit": exc.limit}
    if isinstance(exc, UserInputError):
        return {"detail": str(exc), "field": getattr(exc, "field", None), "limit": None}
    return {"detail": str(exc), "field": None, "limit": None}


class ErrorResponse(JSONResponse):
    """An error's JSON, escaped to ASCII: a message quoting a lone surrogate of the request
    (legal in JSON, not encodable as UTF-8) still renders."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True).encode("ascii")


def status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


async def _table_handler(_request: Request, exc: Exception) -> JSONResponse:
    headers = next((HEADERS[c] for c in type(exc).__mro__ if c in HEADERS), None)
    return ErrorResponse(error_body(exc), status_code=status_of(exc), headers=headers)


#: Keys of pydantic error contexts that state the limit that was broken.
_LIMIT_KEYS = ("ge", "gt", "le", "lt", "min_length", "max_length", "expected", "limit")


def describe(error: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One pydantic error as the service's error body: detail, field and limit."""
    where = ("body", "query", "path", "header")
    loc = [str(x) for x in error.get("loc", ()) if x not in where]
    field = ".".join([prefix, *loc] if prefix else loc) or None
    ctx = error.get("ctx") or {}
    limit = next((ctx[k] for k in _LIMIT_KEYS if k in ctx), None)
    detail = str(error.get("msg", "invalid request")).removeprefix("Value error, ")
    if error.get("type") == "json_invalid":
        field, detail = None, f"malformed JSON: {ctx.get('error', detail)}"
    elif field:
        detail = f"{field}: {detail}"
    if not (limit is None or isinstance(limit, int | float | str)):
        limit = str(limit)
    return {"detail": detail, "field": field, "limit": limit}


async def _validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation errors in the service's error shape (422)."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    body = describe(errors[0] if errors else {})
    body["errors"] = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]
    return ErrorResponse(body, status_code=422)


async def _http_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown route, method not allowed) in the service's shape."""
    assert isinstance(exc, StarletteHTTPException)
    body = {
        "detail": str(exc.detail),
        "field": getattr(exc, "field", None),
        "limit": getattr(exc, "limit", None),
    }
    return ErrorResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _server_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    body = {"detail": f"internal error: {type(exc).__name__}", "field": None, "limit": None}
    return ErrorResponse(body, status_code=500)


def add_exception_handlers(app: FastAPI) -> None:
    """Register the table (and request validation, Starlette's errors, 500s) on ``app``."""
    for cls in STATUS_CODES:
        app.add_exception_handler(cls, _table_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _server_error_handler)
