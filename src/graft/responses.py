"""How a GraftError looks on the wire: JSON for the API, one text line for package clients
(pip, npm, apt … print the body of an error response as it is)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

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


class RawResponse(Response):
    """A response whose headers are already encoded (cached pages): no header building per
    request. `Content-Length` is added here; the body is sent in one message."""

    def __init__(
        self, body: bytes, headers: Sequence[tuple[bytes, bytes]], status_code: int = 200
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = list(headers)
        if status_code not in (204, 304):
            self.raw_headers.append((b"content-length", b"%d" % len(body)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        body = b"" if scope["method"] == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})


class PartsResponse(Response):
    """A body kept as several byte strings (an APT index is its chunks in a row): sent part by
    part, never joined into one copy. Headers already encoded; `Content-Length` added here."""

    def __init__(
        self,
        parts: Sequence[bytes],
        headers: Sequence[tuple[bytes, bytes]],
        status_code: int = 200,
    ) -> None:
        self.status_code = status_code
        self.parts = parts
        self.background = None
        self.raw_headers = list(headers)
        if status_code not in (204, 304):
            self.raw_headers.append((b"content-length", b"%d" % sum(map(len, parts))))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope["method"] == "HEAD" or self.status_code in (204, 304):
            await send({"type": "http.response.body", "body": b""})
            return
        for part in self.parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
