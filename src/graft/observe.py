"""Per-request observation: request id, one JSON access-log line, Prometheus metrics, and the
last line of error handling (no stack trace ever reaches a client).

This wraps every request, so it is written for speed: metric children are cached per label
set, request ids are a per-process random prefix plus a counter, and the log line is one
`json.dumps` appended to a buffer that is written out every 50 ms (no logging framework and no
system call on the hot path).
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import itertools
import json
import logging
import os
import re
import secrets
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graft.context import PRINCIPAL_KEY
from graft.errors import GraftError
from graft.metrics import LATENCY, REQUESTS, RESPONSE_BYTES
from graft.responses import error_response, wants_json

log = logging.getLogger("graft")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class _RequestIds:
    """Unique ids without an os.urandom call per request."""

    def __init__(self) -> None:
        self._reset(os.getpid())

    def _reset(self, pid: int) -> None:
        self._pid = pid
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def next(self) -> str:
        pid = os.getpid()
        if pid != self._pid:  # a forked worker gets its own prefix
            self._reset(pid)
        return f"{self._prefix}{next(self._counter):08x}"


class AccessLog:
    """JSON lines collected in memory and written with one `write(2)` every `interval`.

    A write per request would release the GIL per request, and under a threaded server such as
    granian each release is a costly hand-off; batching keeps the log off the request's path.
    """

    def __init__(self, fd: int = 1, interval: float = 0.05, max_buffer: int = 256 << 10) -> None:
        self.fd = fd
        self.interval = interval
        self.max_buffer = max_buffer
        self._lines: list[str] = []
        self._size = 0
        self._scheduled = False
        atexit.register(self.flush)

    def append(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self.max_buffer:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        data = "".join(self._lines).encode()
        self._lines, self._size = [], 0
        try:  # noqa: SIM105 - a closed or full log pipe must never fail a request
            os.write(self.fd, data)
        except OSError:
            pass


ACCESS_LOG = AccessLog()


class ObserveMiddleware:
    def __init__(
        self, app: ASGIApp, *, access_log_enabled: bool, access_log: AccessLog = ACCESS_LOG
    ) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled
        self.access_log = access_log
        self._ids = _RequestIds()
        self._children: dict[tuple[str, str, int], tuple[Counter, Counter, Histogram]] = {}

    def _metrics(self, route: str, method: str, status: int) -> tuple[Counter, Counter, Histogram]:
        key = (route, method, status)
        found = self._children.get(key)
        if found is None:
            found = (
                REQUESTS.labels(route, method, str(status)),
                RESPONSE_BYTES.labels(route),
                LATENCY.labels(route),
            )
            if len(self._children) < 10_000:
                self._children[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else self._ids.next()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        sent = 0
        started = False
        id_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, started
            kind = message["type"]
            if kind == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except GraftError as exc:
            if started:
                raise
            await error_response(exc, json_body=wants_json(scope))(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error (request %s)", request_id)
            if started:
                raise
            await PlainTextResponse(f"internal error (request id {request_id})\n", status_code=500)(
                scope, receive, send_wrapper
            )
        finally:
            elapsed = time.perf_counter() - start
            route = _route_label(scope)
            requests, response_bytes, latency = self._metrics(route, scope["method"], status)
            requests.inc()
            response_bytes.inc(sent)
            latency.observe(elapsed)
            if self.access_log_enabled:
                self._log(scope, request_id, route, status, sent, elapsed)

    def _log(
        self, scope: Scope, request_id: str, route: str, status: int, sent: int, elapsed: float
    ) -> None:
        principal = scope.get(PRINCIPAL_KEY)
        entry: dict[str, Any] = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "event": "request",
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],  # never the query string: clients may put secrets there
            "route": route,
            "status": status,
            "bytes": sent,
            "duration_ms": round(elapsed * 1000, 3),
            "org": principal.org if principal else None,
            "account": principal.account if principal else None,
            "client": scope["client"][0] if scope.get("client") else None,
        }
        self.access_log.append(json.dumps(entry, separators=(",", ":")) + "\n")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    # Mounts put their prefix in root_path; the label is the full template, never a raw path.
    return f"{scope.get('root_path', '')}{path}" or "/"
