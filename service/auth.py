"""Optional bearer-token authentication of the ``/v1`` API.

When the service has a token (``braggtile serve --token`` or ``BRAGGTILE_TOKEN``), every
``/v1`` endpoint requires it, as ``Authorization: Bearer TOKEN`` or, for clients that cannot
send headers (a browser's EventSource, a download link), as the ``access_token`` query
parameter. ``/healthz``, ``/metrics`` and the viewer's static page need none.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.errors import Unauthorized

#: The OpenAPI security scheme (``/docs`` shows an Authorize button); checked below.
bearer = HTTPBearer(auto_error=False, description="the service's token, when it has one")


class RequireToken:
    """Router dependency: Unauthorized (401) unless the request carries the service's token."""

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        access_token: Annotated[
            str | None,
            Query(description="the token, for clients that cannot send headers (EventSource)"),
        ] = None,
    ) -> None:
        expected = request.app.state.service.settings.token
        if not expected:
            return
        given = credentials.credentials if credentials is not None else access_token
        if given is None:
            raise Unauthorized("this service requires a bearer token", field="Authorization")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("the bearer token is not valid", field="Authorization")


require = RequireToken()
