"""Optional bearer-token authentication, checked before a request's body is read.

When the service has a token (``braggtile serve --token`` or ``BRAGGTILE_TOKEN``), every path
but the open ones (``/``, ``/healthz``, ``/metrics``, ``/static/...``, the OpenAPI page and
document) requires ``Authorization: Bearer TOKEN``, compared in constant time. A browser's
EventSource cannot send headers: the event stream ``GET /v1/jobs/{id}/events`` alone also
accepts ``?ticket=`` (a short-lived ticket from ``POST /v1/jobs/{id}/events/ticket``, signed
with a key of this process, valid for that job's stream only) or ``?access_token=``. Both are
replaced by ``REDACTED`` in the access log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ErrorResponse

#: Seconds a ticket stays valid (it is checked when the stream opens, not while it runs).
TICKET_SECONDS = 60
#: Paths anyone may read, token or not.
OPEN_PATHS = frozenset(
    {"/", "/healthz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    | {"/ogcapi", "/ogcapi/", "/ogcapi/conformance"}  # OGC API landing page and conformance
)
OPEN_PREFIXES = ("/static/",)
#: The event stream of a job: the one place a token or ticket may ride in the URL.
EVENT_STREAM = re.compile(r"/v1/jobs/([^/]+)/events")
#: Query parameters that carry secrets (redacted from logs).
SECRET_PARAMS = re.compile(r"\b(access(?:_|%5[fF])token|ticket)=[^&\s\"]*")

#: The OpenAPI security scheme (``/docs`` shows an Authorize button).
bearer = HTTPBearer(auto_error=False, description="the service's token, when it has one")


async def require(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Router dependency that declares the bearer scheme in OpenAPI; :class:`TokenGate`
    has already checked the token (before the body was read)."""


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


class Tickets:
    """Signed tickets for one job's event stream: ``JOB.EXPIRES.HMAC-SHA256`` (hex)."""

    def __init__(self, seconds: int = TICKET_SECONDS, key: bytes | None = None):
        self.seconds = seconds
        self.key = key if key is not None else secrets.token_bytes(32)

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    def issue(self, job_id: str, now: float) -> tuple[str, int]:
        """A ticket for ``job_id``'s stream and its expiry (Unix seconds)."""
        expires = int(now) + self.seconds
        payload = f"{job_id}.{expires}"
        return f"{payload}.{self._sign(payload)}", expires

    def valid(self, ticket: str, job_id: str, now: float) -> bool:
        """Whether ``ticket`` was issued here for ``job_id`` and has not expired at ``now``."""
        payload, _, signature = ticket.rpartition(".")
        job, _, expires = payload.rpartition(".")
        if not _same(signature, self._sign(payload)):
            return False
        return job == job_id and expires.isascii() and expires.isdigit() and now <= int(expires)


class TokenGate:
    """ASGI middleware: 401 (JSON, ``WWW-Authenticate: Bearer``) for a request without the
    token, sent before the application, and so before its body, is reached."""

    def __init__(self, app: ASGIApp, token: str | None, tickets: Tickets):
        self.app, self.token, self.tickets = app, token, tickets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token:
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        detail, field = refusal
        body = {"detail": detail, "field": field, "limit": None}
        headers = {"WWW-Authenticate": "Bearer"}
        await ErrorResponse(body, status_code=401, headers=headers)(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[str, str] | None:
        """None if ``scope`` may pass, else the 401's detail and field."""
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        header = Headers(scope=scope).get("authorization")
        if header is not None:
            scheme, _, given = header.partition(" ")
            if scheme.lower() == "bearer" and _same(given.strip(), self.token or ""):
                return None
            return "the bearer token is not valid", "Authorization"
        query = QueryParams(scope["query_string"])
        stream = EVENT_STREAM.fullmatch(path)
        if stream is not None and scope["method"] in ("GET", "HEAD"):
            return self._stream_refusal(query, stream.group(1))
        if "access_token" in query or "ticket" in query:
            return (
                "a token or ticket in the URL is accepted only by the event stream "
                "(GET /v1/jobs/{id}/events); send Authorization: Bearer",
                "access_token",
            )
        return "this service requires a bearer token", "Authorization"

    def _stream_refusal(self, query: QueryParams, job_id: str) -> tuple[str, str] | None:
        ticket, token = query.get("ticket"), query.get("access_token")
        if ticket is not None:
            if self.tickets.valid(ticket, job_id, time.time()):
                return None
            return "the ticket is not valid for this job's stream, or has expired", "ticket"
        if token is not None:
            if _same(token, self.token or ""):
                return None
            return "the access token is not valid", "access_token"
        return "this service requires a bearer token (or a ticket for the stream)", "Authorization"


class RedactSecrets(logging.Filter):
    """Replace the values of ``access_token`` and ``ticket`` in log records (uvicorn's access
    log writes every request's URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(a) for a in record.args)
        record.msg = _redact(record.msg)
        return True


def _redact(value: Any) -> Any:
    return SECRET_PARAMS.sub(r"\1=REDACTED", value) if isinstance(value, str) else value
