"""Per-request observation: request id, one JSON access-log line, Prometheus metrics, and the
last line of error handling (no stack trace ever reaches a client).

This wraps every request, so it is written for speed: request ids are a per-process random
prefix plus a counter, the log line is formatted directly (only the client-controlled path is
JSON-escaped; the timestamp prefix is reused within a second) and appended to a buffer that is
written out every 50 ms, and metrics are counted in dictionaries that reach prometheus-client
once a second (`graft.metrics.RequestMetrics`). No system call on the hot path.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import itertools
import logging
import os
import re
import secrets
import time
from json.encoder import encode_basestring_ascii as _json_str

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graft.context import PRINCIPAL_KEY
from graft.errors import GraftError
from graft.metrics import REQUEST_METRICS, RequestMetrics
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


class _Clock:
    """ISO 8601 UTC timestamps with milliseconds; the date-and-time part is formatted once a
    second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        t = time.time()
        second = int(t)
        if second != self._second:
            self._second = second
            stamp = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._prefix = stamp
        return f"{self._prefix}.{int((t - second) * 1000):03d}+00:00"


class ObserveMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log_enabled: bool,
        access_log: AccessLog = ACCESS_LOG,
        metrics: RequestMetrics = REQUEST_METRICS,
    ) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled
        self.access_log = access_log
        self.metrics = metrics
        self._ids = _RequestIds()
        self._clock = _Clock()

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
        length = 0
        started = False
        id_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, started, length
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                started = True
                status = message["status"]
                headers = [*message.get("headers", ()), id_header]
                message["headers"] = headers
                for key, value in headers:
                    if key == b"content-length":
                        length = int(value)
                        break
            elif kind == "http.response.pathsend":  # the server sends the file: count it
                sent += length
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
            self.metrics.record(route, scope["method"], status, sent, elapsed)
            if self.access_log_enabled:
                self._log(scope, request_id, route, status, sent, elapsed)

    def _log(
        self, scope: Scope, request_id: str, route: str, status: int, sent: int, elapsed: float
    ) -> None:
        principal = scope.get(PRINCIPAL_KEY)
        if principal is not None:  # org and account names are validated: [a-z0-9._-]
            who = f'"org":"{principal.org}","account":"{principal.account}"'
        else:
            who = '"org":null,"account":null'
        client = scope.get("client")
        # Only the path (and the method, which the server parsed) come from the client as
        # free text; request ids are checked against _REQUEST_ID. Never the query string:
        # clients may put secrets there.
        self.access_log.append(
            f'{{"time":"{self._clock.now()}","event":"request","request_id":"{request_id}",'
            f'"method":{_json_str(scope["method"])},"path":{_json_str(scope["path"])},'
            f'"route":{_json_str(route)},"status":{status},"bytes":{sent},'
            f'"duration_ms":{elapsed * 1000:.3f},{who},'
            f'"client":{_json_str(client[0]) if client else "null"}}}\n'
        )


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
