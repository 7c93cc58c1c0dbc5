"""Serving the ASGI application through granian's RSGI interface.

Graft is an ASGI application (Starlette, FastAPI) and stays one: tests, uvicorn and every
middleware see ASGI. Under granian, though, each ASGI message is a Python dict that granian
converts on every `send`, which measured as a fifth of the CPU of a cached index page.
RSGI, granian's native interface, takes a whole response in one call
(`response_bytes(status, headers, body)`), a file by path, or a stream. This adapter gives the
ASGI app an ASGI `scope`, `receive` and `send` built on the RSGI protocol object, and turns
the common response shapes into one RSGI call:

- `http.response.start` + one `http.response.body` → `response_bytes`;
- `http.response.start` + `http.response.pathsend` → `response_file`;
- anything with `more_body` → `response_stream` and `send_bytes` per message.

The request body is read as the app asks for it (`async for` over the protocol: uploads
stream), and after it `receive` waits for the client to disconnect, as ASGI servers do.
Lifespan runs through the ASGI lifespan protocol in `__rsgi_init__` / `__rsgi_del__`.

Written by hand: granian ships no RSGI→ASGI bridge, and the point is to skip the per-message
work; it is the whole of Graft's contact with RSGI (about 150 lines).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import ASGIApp, Message

log = logging.getLogger("graft")

_EXTENSIONS: dict[str, dict[str, Any]] = {"http.response.pathsend": {}}
_SERVER_ERROR = b"internal error\n"


def _address(value: str) -> tuple[str, int]:
    """`127.0.0.1:8000` or `[::1]:8000` → (host, port)."""
    host, _, port = value.rpartition(":")
    if host.startswith("["):
        host = host[1:-1]
    try:
        return host, int(port)
    except ValueError:
        return value, 0


class _Lifespan:
    """The ASGI lifespan protocol, driven from granian's init and del hooks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._outbox.put)
        except Exception as exc:  # a failed startup is reported by startup()
            await self._outbox.put({"type": "lifespan.startup.failed", "message": repr(exc)})

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._outbox.get()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"application startup failed: {reply.get('message', '')}")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        await self._task


class RSGIAdapter:
    """An RSGI application that runs an ASGI application."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.lifespan = _Lifespan(app)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.lifespan.startup())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.lifespan.shutdown())

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":  # Graft serves no websockets
            proto.close(1003)
            return
        query: str = scope.query_string
        asgi_scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": scope.http_version,
            "method": scope.method,
            "scheme": scope.scheme,
            "path": scope.path,
            "root_path": "",
            "query_string": query.encode("latin-1"),
            "headers": [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers.items()
            ],
            "client": _address(scope.client),
            "server": _address(scope.server),
            "extensions": _EXTENSIONS,
            "state": dict(self.lifespan.state),
        }
        response = _Response(proto)
        try:
            await self.app(asgi_scope, response.receive, response.send)
        except Exception:
            log.exception("unhandled error outside the application's own handling")
            if not response.started:
                proto.response_bytes(500, [("content-type", "text/plain")], _SERVER_ERROR)
            return
        response.finish()


class _Response:
    __slots__ = ("body_done", "chunks", "headers", "proto", "started", "status", "stream")

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.started = False  # http.response.start seen
        self.stream: Any = None
        self.chunks: AsyncIterator[bytes] | None = None
        self.body_done = False

    async def receive(self) -> Message:
        if not self.body_done:
            if self.chunks is None:
                self.chunks = self.proto.__aiter__()
            assert self.chunks is not None
            try:
                chunk = await self.chunks.__anext__()
            except StopAsyncIteration:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self.proto.client_disconnect()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())
            ]
            self.started = True
        elif kind == "http.response.body":
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.stream is None:
                if not more:
                    self.proto.response_bytes(self.status, self.headers, body)
                    self.status = 0  # sent
                    return
                self.stream = self.proto.response_stream(self.status, self.headers)
                self.status = 0
            if body:
                await self.stream.send_bytes(body)
        elif kind == "http.response.pathsend":
            self.proto.response_file(self.status, self.headers, message["path"])
            self.status = 0

    def finish(self) -> None:
        if self.status:  # started, never sent a body: an empty one
            self.proto.response_empty(self.status, self.headers)
