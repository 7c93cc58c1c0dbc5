"""Request body size limit as a pure ASGI middleware (no buffering)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graft.errors import GraftError, PayloadTooLarge
from graft.responses import error_response, wants_json


class BodyLimitMiddleware:
    """Refuse bodies larger than `max_bytes`: at once when Content-Length says so, or as soon
    as a chunked body crosses the limit (the handler never sees a truncated body as whole)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                problem: GraftError | None = None
                if declared < 0:
                    problem = GraftError("invalid Content-Length header")
                elif declared > self.max_bytes:
                    problem = PayloadTooLarge(
                        f"request body too large: the limit is {self.max_bytes} bytes"
                    )
                if problem is not None:
                    response = error_response(problem, json_body=wants_json(scope))
                    await response(scope, receive, send)
                    return
        received = 0
        answered = False

        async def limited() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not answered:
                    # Answer 413 now and tell the app the client left: whatever it tries to
                    # send afterwards is dropped, so the client sees our message, not a 400.
                    answered = True
                    problem = PayloadTooLarge(
                        f"request body too large: the limit is {self.max_bytes} bytes"
                    )
                    await error_response(problem, json_body=wants_json(scope))(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not answered:
                await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except Exception:
            if not answered:
                raise
            # The app failed on the body we cut off; the client already has its 413.
        if answered:
            await self._drain(receive)

    async def _drain(self, receive: Receive) -> None:
        """Read and drop the rest of a refused body (up to a bound), so that a client that
        sends it all before reading the answer sees the 413 instead of a reset connection."""
        dropped = 0
        while dropped < max(self.max_bytes * 4, 16 << 20):
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
