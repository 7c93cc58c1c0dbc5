"""The web app: server-rendered pages under `/ui/` (see `graft.web.app`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount

from graft.context import AppContext
from graft.routing import Route


def routes(ctx: AppContext) -> list[BaseRoute]:
    from graft.web import dashboard, library, requests, setup, signin, tokens
    from graft.web.app import PREFIX, WebApp

    web = WebApp(ctx)
    pages: list[BaseRoute] = [Route("/static/{name}", web.static.serve, methods=["GET", "HEAD"])]
    for module in (signin, dashboard, library, requests, tokens, setup):
        pages.extend(module.routes(web))

    async def root(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", 303)

    return [Route("/", root, methods=["GET", "HEAD"]), Mount(PREFIX, routes=pages)]
