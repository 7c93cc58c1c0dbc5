"""Request routing for protocol routes, kept short on the hot path.

Starlette's `Route` does the matching (path templates, convertors, methods); two things around
it are Graft's own because they cost time on every request and bought nothing here:

- `Route` calls the endpoint without Starlette's per-request exception-handler wrapper (two
  extra coroutine layers and a `send` wrapper). Errors are answered by `ObserveMiddleware`.
- `Dispatcher` picks the routes by the first path segment (`/pypi`, `/debian`, `/v2` …) with a
  dictionary lookup, so a request is matched only against its own ecosystem's routes instead of
  every route of every ecosystem in turn. Inside a segment, Starlette's `Router` decides (404,
  405, trailing-slash redirects), exactly as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Router
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp, Lifespan, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class Route(StarletteRoute):
    """A Starlette route whose endpoint is called directly: `await endpoint(request)`."""

    def __init__(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        methods: Collection[str] | None = None,
        name: str | None = None,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=methods, name=name)

        async def call(scope: Scope, receive: Receive, send: Send) -> None:
            response = await endpoint(Request(scope, receive, send))
            await response(scope, receive, send)

        app: ASGIApp = call
        for cls, args, kwargs in reversed(middleware or ()):
            app = cls(app, *args, **kwargs)
        self.app = app


def first_segment(path: str) -> str:
    """`/pypi/simple/x/` -> `pypi`; `/healthz` -> `healthz`; `/` -> ``."""
    end = path.find("/", 1)
    return path[1:] if end < 0 else path[1:end]


class Dispatcher:
    """An ASGI app routing by the first path segment to one Starlette `Router` per segment.

    A route whose first segment is a parameter (none today) is tried after the routes of every
    segment, so every route stays reachable."""

    def __init__(self, routes: Sequence[BaseRoute], *, lifespan: Lifespan[Any] | None) -> None:
        literal: dict[str, list[BaseRoute]] = defaultdict(list)
        catch_all: list[BaseRoute] = []
        for route in routes:
            path: str = getattr(route, "path", "")
            segment = first_segment(path)
            if not path or "{" in segment:
                catch_all.append(route)
            else:
                literal[segment].append(route)
        self.routes = list(routes)
        self._routers = {seg: Router([*rs, *catch_all]) for seg, rs in literal.items()}
        self._default = Router(catch_all, lifespan=lifespan)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        router = self._default
        if scope["type"] == "http":
            path: str = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            router = self._routers.get(first_segment(path), self._default)
        await router(scope, receive, send)
