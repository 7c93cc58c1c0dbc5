"""How a GraftError looks on the wire: JSON for the API, one text line for package clients
(pip, npm, apt … print the body of an error response as it is)."""

from __future__ import annotations

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Scope

from graft.errors import GraftError, TooManyRequests, Unauthorized

BASIC_CHALLENGE = 'Basic realm="graft", charset="UTF-8"'


def error_response(exc: GraftError, *, json_body: bool) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = exc.challenge or BASIC_CHALLENGE
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    if json_body:
        body = {"error": exc.code, "message": exc.message}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)
    return PlainTextResponse(exc.message + "\n", status_code=exc.status_code, headers=headers)


def wants_json(scope: Scope) -> bool:
    """Errors under /api are JSON; everything else is text that package clients show as is."""
    return str(scope.get("path", "")).startswith("/api")
