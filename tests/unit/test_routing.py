"""graft.routing: routes found by their first path segment, Starlette's 404/405/redirects kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route as StarletteRoute

from graft.routing import Dispatcher, Route, first_segment


def _echo(text: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{text} {dict(request.path_params)}")

    return endpoint


def _client(dispatcher: Dispatcher, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=dispatcher, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://graft")


def test_first_segment() -> None:
    assert first_segment("/pypi/simple/x/") == "pypi"
    assert first_segment("/healthz") == "healthz"
    assert first_segment("/") == ""


async def test_dispatch_by_segment_with_404_405_and_catch_all() -> None:
    dispatcher = Dispatcher(
        [
            Route("/pypi/simple/{project}/", _echo("page"), methods=["GET"]),
            Route("/pypi/legacy/", _echo("upload"), methods=["POST"]),
            StarletteRoute("/keys/{name}", _echo("key")),  # plain Starlette routes work too
            Route("/{anything}/catch", _echo("catch")),
        ],
        lifespan=None,
    )
    async with _client(dispatcher) as c:
        r = await c.get("/pypi/simple/requests/")
        assert (r.status_code, r.text) == (200, "page {'project': 'requests'}")
        assert (await c.head("/pypi/simple/requests/")).status_code == 200  # GET implies HEAD
        r = await c.get("/pypi/legacy/")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        assert (await c.post("/pypi/legacy/")).text == "upload {}"
        assert (await c.get("/keys/a.pub")).text == "key {'name': 'a.pub'}"
        assert (await c.get("/nothing/here")).status_code == 404
        # a route whose first segment is a parameter is reachable from every segment
        assert (await c.get("/pypi/catch")).text == "catch {'anything': 'pypi'}"
        assert (await c.get("/other/catch")).text == "catch {'anything': 'other'}"
        # Starlette's trailing-slash redirect still applies within a segment
        r = await c.get("/pypi/simple/requests", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"].endswith("/pypi/simple/requests/")


async def test_root_path_is_ignored_for_the_segment() -> None:
    dispatcher = Dispatcher([Route("/pypi/x", _echo("x"))], lifespan=None)
    async with _client(dispatcher, root_path="/graft") as c:
        r = await c.get("/graft/pypi/x")
        assert (r.status_code, r.text) == (200, "x {}")
