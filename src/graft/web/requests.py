"""placeholder"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from graft.routing import Route
from graft.web.app import WebApp
from graft.web.sessions import WebUser


def routes(web: WebApp) -> list[BaseRoute]:
    async def show(request: Request, user: WebUser) -> Response:
        return web.render(request, user, "error.html", section="requests", status=200, message="soon")

    return [Route("/requests", web.page(show), methods=["GET"])]
