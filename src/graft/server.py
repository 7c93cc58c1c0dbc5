"""Builds the ASGI application: health and metrics, the management API, every ecosystem."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp

from graft import ecosystems as ecosystem_registry
from graft.accounts.scopes import Scope as TokenScope
from graft.context import AppContext
from graft.ecosystems.base import Ecosystem
from graft.errors import NotFound
from graft.metrics import REQUEST_METRICS, render
from graft.observe import ACCESS_LOG, ObserveMiddleware
from graft.routing import Dispatcher, Route
from graft.rsgi import RSGIAdapter
from graft.settings import Settings, get_settings

log = logging.getLogger("graft")


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
    """The same tiny handler with and without authentication, for bench/auth. One route for
    both, so that both pay the same routing (two routes are tried in order: the second would
    also pay for the first's failed match)."""

    async def ping(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind == "auth":
            await ctx.authenticate(request, TokenScope.READ)
        elif kind != "open":
            raise NotFound("no such bench route: use /_bench/open or /_bench/auth")
        return PlainTextResponse("pong\n")

    return [Route("/_bench/{kind}", ping)]


class GraftApp(ObserveMiddleware):
    """The ASGI application: observation around the dispatcher; `ctx` for tests and tools."""

    ctx: AppContext


def create_app(
    settings: Settings | None = None,
    *,
    ecosystems: Sequence[Ecosystem] | None = None,
    ctx: AppContext | None = None,
) -> GraftApp:
    settings = settings or get_settings()
    configure_logging(settings)
    ctx = ctx or AppContext.build(settings)
    ecos = list(ecosystems) if ecosystems is not None else ecosystem_registry.load()

    from graft.api import create_api

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        await ctx.start()
        try:
            yield {}
        finally:
            await ctx.stop()
            ACCESS_LOG.flush()
            REQUEST_METRICS.flush()

    from graft.vulns import collect

    ctx.vulns.register(collect(ecos, settings))
    routes = _core_routes(ctx)
    routes.append(Mount("/api", app=create_api(ctx)))
    for eco in ecosystem_registry.check(ecos):
        routes.extend(eco.routes(ctx))
    from graft import web

    routes.extend(web.routes(ctx))

    # No Starlette application object: its error middlewares would wrap every request a second
    # and third time, and ObserveMiddleware already answers every error (graft.routing).
    dispatcher: ASGIApp = Dispatcher(routes, lifespan=lifespan)
    app = GraftApp(dispatcher, access_log_enabled=settings.access_log)
    app.ctx = ctx
    return app


def app_factory() -> GraftApp:
    """Entry point for the ASGI server workers (`graft.server:app_factory`)."""
    return create_app()


def rsgi_app_factory() -> RSGIAdapter:
    """Entry point for granian's RSGI interface (`graft.server:rsgi_app_factory`)."""
    return RSGIAdapter(create_app())
