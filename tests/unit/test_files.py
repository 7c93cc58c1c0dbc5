"""Blob downloads (graft.files.serve_blob): ETag, conditional GET, Range, HEAD, and how the
bytes go out (from memory, by the server's pathsend, or read in chunks)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from graft.blobs import FilesystemBlobStore
from graft.files import SMALL_BYTES, serve_blob
from graft.observe import AccessLog, ObserveMiddleware
from graft.routing import Dispatcher, Route


@pytest.fixture
async def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def app_for(store: FilesystemBlobStore) -> ObserveMiddleware:
    async def download(request: Request) -> Response:
        return await serve_blob(request, store, request.path_params["digest"])

    routes = [Route("/blob/{digest}", download, methods=["GET", "HEAD"])]
    log = AccessLog(fd=os.open(os.devnull, os.O_WRONLY))
    return ObserveMiddleware(
        Dispatcher(routes, lifespan=None), access_log_enabled=False, access_log=log
    )


async def fetch(store: FilesystemBlobStore, digest: str, **kw: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_for(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://graft") as client:
        return await client.request(kw.pop("method", "GET"), f"/blob/{digest}", **kw)


async def test_whole_blob_with_validators(store: FilesystemBlobStore) -> None:
    data = os.urandom(1000)
    digest = await store.put(data)
    r = await fetch(store, digest)
    assert r.status_code == 200 and r.content == data
    assert r.headers["etag"] == f'"{digest.removeprefix("sha256:")}"'
    assert r.headers["content-length"] == "1000"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == "application/octet-stream"
    again = await fetch(store, digest, headers={"If-None-Match": f'W/"x", {r.headers["etag"]}'})
    assert again.status_code == 304 and again.content == b""
    head = await fetch(store, digest, method="HEAD")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "1000"


@pytest.mark.parametrize(
    ("header", "status", "expected", "content_range"),
    [
        ("bytes=10-19", 206, slice(10, 20), "bytes 10-19/5000"),
        ("bytes=4990-", 206, slice(4990, 5000), "bytes 4990-4999/5000"),
        ("bytes=-7", 206, slice(4993, 5000), "bytes 4993-4999/5000"),
        ("bytes=4000-9999", 206, slice(4000, 5000), "bytes 4000-4999/5000"),
        ("bytes=0-0", 206, slice(0, 1), "bytes 0-0/5000"),
        ("bytes=0-1,5-6", 200, slice(0, 5000), None),  # several ranges: the whole file
        ("items=0-1", 200, slice(0, 5000), None),
    ],
)
async def test_ranges(
    store: FilesystemBlobStore,
    header: str,
    status: int,
    expected: slice,
    content_range: str | None,
) -> None:
    data = os.urandom(5000)
    digest = await store.put(data)
    r = await fetch(store, digest, headers={"Range": header})
    assert r.status_code == status
    assert r.content == data[expected]
    assert r.headers.get("content-range") == content_range
    assert int(r.headers["content-length"]) == len(data[expected])


@pytest.mark.parametrize("header", ["bytes=5000-", "bytes=6000-7000", "bytes=-0"])
async def test_unsatisfiable_range_is_416(store: FilesystemBlobStore, header: str) -> None:
    digest = await store.put(os.urandom(5000))
    r = await fetch(store, digest, headers={"Range": header})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */5000"
    assert r.content == b""


async def test_if_range_sends_the_whole_file_when_the_copy_differs(
    store: FilesystemBlobStore,
) -> None:
    data = os.urandom(3000)
    digest = await store.put(data)
    etag = f'"{digest.removeprefix("sha256:")}"'
    same = await fetch(store, digest, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert same.status_code == 206 and same.content == data[:10]
    other = await fetch(store, digest, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert other.status_code == 200 and other.content == data


async def test_missing_blob_is_404(store: FilesystemBlobStore) -> None:
    r = await fetch(store, "sha256:" + "0" * 64)
    assert r.status_code == 404
    assert "is not stored" in r.text


async def _messages(
    store: FilesystemBlobStore, digest: str, extensions: dict[str, Any]
) -> list[Any]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/blob/{digest}",
        "raw_path": f"/blob/{digest}".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
        "extensions": extensions,
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app_for(store)(scope, receive, send)
    return sent


async def test_large_blobs_go_by_pathsend_when_the_server_offers_it(
    store: FilesystemBlobStore,
) -> None:
    data = os.urandom(SMALL_BYTES + 1)
    digest = await store.put(data)
    sent = await _messages(store, digest, {"http.response.pathsend": {}})
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert Path(sent[1]["path"]).read_bytes() == data  # noqa: ASYNC240 - a test file
    # Without the extension the bytes are read and sent in chunks.
    sent = await _messages(store, digest, {})
    assert sent[0]["type"] == "http.response.start"
    assert b"".join(m.get("body", b"") for m in sent[1:]) == data
    assert sent[-1].get("more_body", False) is False


async def test_small_blobs_are_sent_from_memory(store: FilesystemBlobStore) -> None:
    data = os.urandom(SMALL_BYTES)
    digest = await store.put(data)
    sent = await _messages(store, digest, {"http.response.pathsend": {}})
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == data
