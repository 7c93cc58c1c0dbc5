"""Builds the ASGI application: health and metrics, the management API, every ecosystem."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graft import ecosystems as ecosystem_registry
from graft.accounts.scopes import Scope as TokenScope
from graft.context import PRINCIPAL_KEY, AppContext
from graft.ecosystems.base import Ecosystem
from graft.errors import GraftError
from graft.metrics import LATENCY, REQUESTS, RESPONSE_BYTES, render
from graft.responses import error_response, wants_json
from graft.settings import Settings, get_settings

log = logging.getLogger("graft")
access_log = structlog.get_logger("graft.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )


class ObserveMiddleware:
    """Request id, access log line, Prometheus metrics, and the last line of error handling:
    nothing that escapes a handler reaches the client as a stack trace."""

    def __init__(self, app: ASGIApp, *, access_log_enabled: bool) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        sent = 0
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
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
            REQUESTS.labels(route, scope["method"], str(status)).inc()
            RESPONSE_BYTES.labels(route).inc(sent)
            LATENCY.labels(route).observe(elapsed)
            if self.access_log_enabled:
                principal = scope.get(PRINCIPAL_KEY)
                access_log.info(
                    "request",
                    request_id=request_id,
                    method=scope["method"],
                    path=scope["path"],  # never the query string: clients may put secrets there
                    route=route,
                    status=status,
                    bytes=sent,
                    duration_ms=round(elapsed * 1000, 3),
                    org=principal.org if principal else None,
                    account=principal.account if principal else None,
                    client=scope["client"][0] if scope.get("client") else None,
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


def _core_routes(ctx: AppContext) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        problems = []
        try:
            await asyncio.wait_for(ctx.db.ping(), timeout=5)
        except Exception as exc:
            problems.append(f"database: {type(exc).__name__}")
        try:
            await asyncio.wait_for(ctx.blobs.check(), timeout=5)
        except Exception as exc:
            problems.append(f"blob store: {type(exc).__name__}")
        if problems:
            return PlainTextResponse("not ready: " + "; ".join(problems) + "\n", status_code=503)
        return PlainTextResponse("ready\n")

    async def metrics(request: Request) -> Response:
        body, content_type = render()
        return Response(body, media_type=content_type)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if ctx.settings.bench_routes:
        routes += _bench_routes(ctx)
    return routes


def _bench_routes(ctx: AppContext) -> list[BaseRoute]:
    """The same tiny handler with and without authentication, for bench/auth."""

    async def open_ping(request: Request) -> Response:
        return PlainTextResponse("pong\n")

    async def auth_ping(request: Request) -> Response:
        await ctx.authenticate(request, TokenScope.READ)
        return PlainTextResponse("pong\n")

    return [Route("/_bench/open", open_ping), Route("/_bench/auth", auth_ping)]


def create_app(
    settings: Settings | None = None,
    *,
    ecosystems: Sequence[Ecosystem] | None = None,
    ctx: AppContext | None = None,
) -> Starlette:
    settings = settings or get_settings()
    configure_logging(settings)
    ctx = ctx or AppContext.build(settings)
    ecos = list(ecosystems) if ecosystems is not None else ecosystem_registry.load()

    from graft.api import create_api

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await ctx.start()
        try:
            yield {}
        finally:
            await ctx.stop()

    routes = _core_routes(ctx)
    routes.append(Mount("/api", app=create_api(ctx)))
    for eco in ecosystem_registry.check(ecos):
        routes.extend(eco.routes(ctx))

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.ctx = ctx
    app.add_middleware(ObserveMiddleware, access_log_enabled=settings.access_log)
    return app


def app_factory() -> Starlette:
    """Entry point for the ASGI server workers (`graft.server:app_factory`)."""
    return create_app()
