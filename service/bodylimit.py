"""The request body's size bound (``--max-body-bytes``), enforced before and while it is read.

A declared ``Content-Length`` over the limit is refused (413) before a byte of the body is
read; a body without one (chunked) is counted as it streams in and refused once it passes
the limit, so no request makes the service hold more than the limit in memory.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BodyTooLarge, ErrorResponse


class BodyLimit:
    """ASGI middleware: 413 (JSON naming ``body`` and the limit) for bodies over ``limit``
    bytes."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            too_large = BodyTooLarge(self.limit)
            body = {"detail": too_large.detail, "field": "body", "limit": self.limit}
            await ErrorResponse(body, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)
