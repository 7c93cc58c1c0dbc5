"""graft.rsgi: the ASGI app under granian's RSGI protocol, with a stand-in protocol object
recording what the adapter asks of granian."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Receive, Scope, Send

from graft.rsgi import RSGIAdapter, _address


class Headers:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def items(self) -> list[tuple[str, str]]:
        return self._items


class FakeScope:
    proto = "http"
    http_version = "1.1"
    method = "POST"
    scheme = "http"
    path = "/npm/@scope/name"
    query_string = "a=1"
    client = "127.0.0.1:5000"
    server = "[::1]:8000"
    headers = Headers([("host", "graft"), ("content-type", "text/plain")])


class Transport:
    def __init__(self, sent: list[Any]) -> None:
        self.sent = sent

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(("chunk", data))


class FakeProto:
    def __init__(self, body: list[bytes]) -> None:
        self.body = body
        self.sent: list[Any] = []
        self.disconnected = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            for chunk in self.body:
                yield chunk

        return gen()

    async def client_disconnect(self) -> None:
        await self.disconnected.wait()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.sent.append(("bytes", status, headers, body))

    def response_empty(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.sent.append(("empty", status, headers))

    def response_file(self, status: int, headers: list[tuple[str, str]], path: str) -> None:
        self.sent.append(("file", status, headers, path))

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Transport:
        self.sent.append(("stream", status, headers))
        return Transport(self.sent)


async def call(app: Any, body: list[bytes] | None = None) -> FakeProto:
    proto = FakeProto(body or [])
    await RSGIAdapter(app).__rsgi__(FakeScope(), proto)
    return proto


async def test_scope_and_a_streamed_request_body() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["scope"] = scope
        chunks = []
        while True:
            message = await receive()
            chunks.append(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    proto = await call(app, [b"he", b"llo"])
    assert proto.sent == [("bytes", 201, [("x-a", "1")], b"hello")]
    scope = seen["scope"]
    assert scope["path"] == "/npm/@scope/name" and scope["query_string"] == b"a=1"
    assert scope["headers"] == [(b"host", b"graft"), (b"content-type", b"text/plain")]
    assert scope["client"] == ("127.0.0.1", 5000) and scope["server"] == ("::1", 8000)
    assert "http.response.pathsend" in scope["extensions"]


async def test_streamed_file_and_empty_responses() -> None:
    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    assert (await call(stream)).sent == [("stream", 200, []), ("chunk", b"a"), ("chunk", b"b")]

    async def file(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/blobs/x"})

    assert (await call(file)).sent == [("file", 200, [], "/blobs/x")]

    async def start_only(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 304, "headers": []})

    assert (await call(start_only)).sent == [("empty", 304, [])]


async def test_a_failing_app_answers_500_and_receive_waits_for_disconnect() -> None:
    async def boom(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("bug")

    sent = (await call(boom)).sent
    assert sent[0][:2] == ("bytes", 500)

    async def waits(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["more_body"] is False  # no body
        waiter = asyncio.ensure_future(receive())
        await asyncio.sleep(0.01)
        assert not waiter.done()  # until the client goes away
        proto.disconnected.set()
        assert (await waiter)["type"] == "http.disconnect"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    proto = FakeProto([])
    await RSGIAdapter(waits).__rsgi__(FakeScope(), proto)
    assert proto.sent == [("bytes", 200, [], b"")]


def test_address() -> None:
    assert _address("10.0.0.1:443") == ("10.0.0.1", 443)
    assert _address("[2001:db8::1]:80") == ("2001:db8::1", 80)
    assert _address("unix") == ("unix", 0)
