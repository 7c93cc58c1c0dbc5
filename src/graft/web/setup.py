"""Setup: each client's configuration for this server, as `graft configure` prints it."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from graft.clientconfig import Client, render
from graft.routing import Route
from graft.web.app import WebApp
from graft.web.sessions import WebUser

GROUPS = (
    ("Python", (Client.pip, Client.uv, Client.poetry, Client.twine)),
    ("JavaScript", (Client.npm, Client.pnpm, Client.yarn)),
    ("Java", (Client.maven, Client.gradle)),
    ("OS packages", (Client.apt, Client.apk)),
    ("Containers", (Client.docker, Client.containerd, Client.kubernetes)),
)
_PARAM = re.compile(r"^[a-z0-9][a-z0-9._:/-]{0,80}$")  # codenames, releases, image names
DEFAULTS = {
    "distro": "debian",
    "codename": "bookworm",
    "release": "3.20",
    "image": "library/python:3.12-slim",
}


def routes(web: WebApp) -> list[BaseRoute]:
    async def show(request: Request, user: WebUser) -> Response:
        try:
            client = Client(request.query_params.get("client", "pip"))
        except ValueError:
            client = Client.pip
        options = dict(DEFAULTS)
        for key in options:
            value = request.query_params.get(key, "").strip().lower()
            if value and _PARAM.match(value):
                options[key] = value
        if options["distro"] not in ("debian", "ubuntu"):
            options["distro"] = "debian"
        text = render(client, web.base_url(request), **options)
        return web.render(
            request,
            user,
            "setup.html",
            section="setup",
            groups=GROUPS,
            client=client,
            options=options,
            text=text,
        )

    return [Route("/setup", web.page(show), methods=["GET"])]
