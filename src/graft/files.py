"""Serving stored blobs over HTTP: ETag = content digest, conditional GET, Range, zero-copy.

Every package download in every ecosystem ends here, so the path is short: one `stat` of the
blob file on the event loop (a local stat takes microseconds; blobs are immutable), and then

- small blobs (up to `SMALL_BYTES`, most wheels' metadata, small packages) from an in-memory
  cache of recently served ones, read synchronously on a miss;
- whole larger blobs through the ASGI `pathsend` extension, so the server sends the file
  itself (granian does) and the bytes never pass through Python;
- byte ranges (`Range: bytes=a-b`, one range; resumed downloads) read from the file.

Starlette's `FileResponse` is not used on this path: it hands every `stat` to a worker thread,
which cost more than the rest of a small download together.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from graft.blobs import BlobNotFound, BlobStore, LocalFile, parse_digest
from graft.errors import NotFound
from graft.responses import RawResponse

# Authenticated content: browsers and private caches may keep it, shared proxies may not.
CACHE_CONTROL = "private, max-age=31536000, immutable"
SMALL_BYTES = 64 << 10  # served from memory
SMALL_CACHE_BYTES = 32 << 20  # total size of the cache of small blobs, per process
CHUNK = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# A redirect to a signed, expiring URL must not be reused from a cache.
_NO_STORE = ((b"cache-control", b"no-store"),)


def etag_for(digest: str) -> str:
    return f'"{parse_digest(digest)}"'


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {c.strip().removeprefix("W/") for c in header.split(",")}
    return etag in candidates or "*" in candidates


def not_modified(request: Request, etag: str) -> bool:
    return etag_matches(_header(request.scope, b"if-none-match"), etag)


class _SmallBlobs:
    """Recently served small blobs, by digest (content-addressed, so never stale)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def cached(self, digest: str) -> bytes | None:
        data = self._items.get(digest)
        if data is not None:
            self._items.move_to_end(digest)
        return data

    def get(self, digest: str, local: LocalFile) -> bytes:
        data = self.cached(digest)
        if data is not None:
            return data
        fd = os.open(local.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            data = os.pread(fd, local.size, 0)
        finally:
            os.close(fd)
        return self.add(digest, data)

    def add(self, digest: str, data: bytes) -> bytes:
        self._items[digest] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._size -= len(old)
        return data


_SMALL = _SmallBlobs(SMALL_CACHE_BYTES)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | Literal[False] | None:
    """`(start, stop)` for one satisfiable range; None: no (usable) Range header, serve the
    whole blob; False: unsatisfiable (416)."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None:  # several ranges or another unit: RFC 9110 allows the full response
        return None
    first, last = m.group(1), m.group(2)
    if not first:
        if not last:
            return None
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size
    start = int(first)
    stop = min(size, int(last) + 1) if last else size
    if start >= size or stop <= start:
        return False
    return start, stop


class BlobResponse(Response):
    """A stored blob, whole or one range; the headers are built once, as raw bytes."""

    def __init__(
        self,
        local: LocalFile,
        digest: str,
        *,
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        start: int = 0,
        stop: int | None = None,
    ) -> None:
        self.status_code = status_code
        self.local = local
        self.digest = digest
        self.start = start
        self.stop = local.size if stop is None else stop
        self.raw_headers = headers
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        local, start, stop = self.local, self.start, self.stop
        if scope["method"] == "HEAD" or self.status_code == 304 or start >= stop:
            await send({"type": "http.response.body", "body": b""})
            return
        whole = start == 0 and stop == local.size
        if whole and local.size <= SMALL_BYTES:
            await send({"type": "http.response.body", "body": _SMALL.get(self.digest, local)})
        elif whole and "http.response.pathsend" in scope.get("extensions", {}):
            await send({"type": "http.response.pathsend", "path": local.path})
        else:
            async for chunk in _read(local.path, start, stop):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


async def _read(path: str, start: int, stop: int) -> AsyncIterator[bytes]:
    import anyio.to_thread

    fd = await anyio.to_thread.run_sync(os.open, path, os.O_RDONLY)
    try:
        offset = start
        while offset < stop:
            n = min(CHUNK, stop - offset)
            chunk = await anyio.to_thread.run_sync(os.pread, fd, n, offset)
            if not chunk:
                raise OSError(f"{path} ended early")  # cannot happen to an immutable blob
            offset += len(chunk)
            yield chunk
    finally:
        os.close(fd)


async def serve_blob(
    request: Request,
    blobs: BlobStore,
    digest: str,
    *,
    media_type: str = "application/octet-stream",
    filename: str | None = None,
    cache_control: str = CACHE_CONTROL,
    local: LocalFile | None = None,
) -> Response:
    """The response for a stored blob; `local` when the caller has just looked it up."""
    local = local or blobs.local_file(digest)
    if local is None:
        return await _serve_remote(request, blobs, digest, media_type, filename, cache_control)
    scope = request.scope
    etag = etag_for(digest)
    headers = _blob_headers(etag, cache_control)
    if etag_matches(_header(scope, b"if-none-match"), etag):
        return BlobResponse(local, digest, status_code=304, headers=headers)
    # the blob server sends it with sendfile; the client resends its Range there
    redirect = await _redirect(scope, blobs, digest, local.size, media_type, headers[0])
    if redirect is not None:
        return redirect
    headers.append((b"content-type", media_type.encode()))
    status, start, stop, lengths = _body_plan(scope, etag, local.size)
    return BlobResponse(
        local, digest, status_code=status, headers=headers + lengths, start=start, stop=stop
    )


def _blob_headers(etag: str, cache_control: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"etag", etag.encode()),
        (b"cache-control", cache_control.encode()),
        (b"accept-ranges", b"bytes"),
    ]


async def _redirect(
    scope: Scope,
    blobs: BlobStore,
    digest: str,
    size: int,
    media_type: str,
    etag_header: tuple[bytes, bytes],
) -> Response | None:
    """A 302 to where the store sends the blob itself (blob server, presigned URL), if any."""
    if scope["method"] != "GET":
        return None
    host = _header(scope, b"host")
    url = host and await blobs.direct_url(
        digest, size, media_type, scheme=scope.get("scheme", "http"), host=host
    )
    if not url:
        return None
    # 302, not 307: apk 2.14 follows only 301/302/303 (for a GET they mean the same)
    return RawResponse(b"", [(b"location", url.encode()), *_NO_STORE, etag_header], 302)


def _body_plan(
    scope: Scope, etag: str, size: int
) -> tuple[int, int, int, list[tuple[bytes, bytes]]]:
    return body_plan(_header(scope, b"range"), _header(scope, b"if-range"), etag, size)


def body_plan(
    range_header: str | None, if_range: str | None, etag: str, size: int
) -> tuple[int, int, int, list[tuple[bytes, bytes]]]:
    """(status, start, stop, length headers) after `Range` and `If-Range`: 200 whole, 206 one
    range, 416 an unsatisfiable one. Shared with the blob server."""
    wanted = _byte_range(range_header, size)
    if wanted is not None and if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's copy is another file: send this one whole
    if wanted is False:
        unsatisfiable = f"bytes */{size}".encode()
        return 416, 0, 0, [(b"content-range", unsatisfiable), (b"content-length", b"0")]
    if wanted is None:
        return 200, 0, size, [(b"content-length", str(size).encode())]
    start, stop = wanted
    return (
        206,
        start,
        stop,
        [
            (b"content-range", f"bytes {start}-{stop - 1}/{size}".encode()),
            (b"content-length", str(stop - start).encode()),
        ],
    )


async def _serve_remote(
    request: Request,
    blobs: BlobStore,
    digest: str,
    media_type: str,
    filename: str | None,
    cache_control: str,
) -> Response:
    """A backend without local files (the object store): the same answers as for a local
    blob — 304, HEAD, one Range, 416 — with a redirect to the store's presigned URL when it
    offers one, small blobs from memory, and the rest streamed from the store."""
    scope = request.scope
    etag = etag_for(digest)
    headers = _blob_headers(etag, cache_control)
    if etag_matches(_header(scope, b"if-none-match"), etag):
        return _StreamedBlob(None, headers, 304)
    try:
        size = await blobs.size(digest)
    except BlobNotFound:
        raise NotFound(f"{filename or digest} is not stored") from None
    redirect = await _redirect(scope, blobs, digest, size, media_type, headers[0])
    if redirect is not None:
        return redirect
    headers.append((b"content-type", media_type.encode()))
    status, start, stop, lengths = _body_plan(scope, etag, size)
    if status == 200 and size <= SMALL_BYTES and scope["method"] == "GET":
        data = _SMALL.cached(digest)
        if data is None:
            data = _SMALL.add(digest, await blobs.read_bytes(digest))
        return RawResponse(data, headers, 200)  # adds Content-Length
    if status == 416 or scope["method"] == "HEAD":
        return _StreamedBlob(None, headers + lengths, status)
    return _StreamedBlob(blobs.open(digest, start, stop), headers + lengths, status)


class _StreamedBlob(Response):
    """A blob streamed from a backend without local files (None: headers only)."""

    def __init__(
        self,
        body: AsyncIterator[bytes] | None,
        headers: list[tuple[bytes, bytes]],
        status: int,
    ) -> None:
        self.status_code = status
        self.raw_headers = headers
        self._body = body
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if self._body is not None and scope["method"] != "HEAD":
            body = self._body
            try:
                async for chunk in body:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                aclose = getattr(body, "aclose", None)
                if aclose is not None:
                    await aclose()  # releases the object store connection at once
        await send({"type": "http.response.body", "body": b""})


def bytes_response(
    request: Request,
    data: bytes,
    media_type: str,
    *,
    immutable: bool,
    last_modified: float | None = None,
) -> Response:
    """In-memory content (rendered indexes, generated packages) with an ETag and 304s; with
    `last_modified` (epoch seconds) also `Last-Modified` and `If-Modified-Since`, the only
    revalidation some clients send (apk)."""
    etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL if immutable else "private, max-age=0, must-revalidate",
    }
    if last_modified is not None:
        headers["Last-Modified"] = email.utils.formatdate(last_modified, usegmt=True)
    if not_modified(request, etag) or _unmodified_since(request, last_modified):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def _unmodified_since(request: Request, last_modified: float | None) -> bool:
    header = _header(request.scope, b"if-modified-since")
    if last_modified is None or not header or _header(request.scope, b"if-none-match"):
        return False  # If-None-Match, when sent, decides alone (RFC 9110)
    try:
        since = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return False
    return int(last_modified) <= since
