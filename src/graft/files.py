"""Serving stored blobs over HTTP: ETag = content digest, conditional GET, Range, zero-copy.

Starlette's FileResponse does the Range work and uses the ASGI `pathsend` extension when the
server offers it (granian does), so the bytes never pass through Python.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from graft.blobs import BlobStore, parse_digest
from graft.errors import NotFound

# Authenticated content: browsers and private caches may keep it, shared proxies may not.
CACHE_CONTROL = "private, max-age=31536000, immutable"


def etag_for(digest: str) -> str:
    return f'"{parse_digest(digest)}"'


def not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    candidates = {c.strip().removeprefix("W/") for c in header.split(",")}
    return etag in candidates or "*" in candidates


async def serve_blob(
    request: Request,
    blobs: BlobStore,
    digest: str,
    *,
    media_type: str = "application/octet-stream",
    filename: str | None = None,
    cache_control: str = CACHE_CONTROL,
) -> Response:
    etag = etag_for(digest)
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    path = blobs.local_path(digest)
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=headers)
    if not await blobs.exists(digest):
        raise NotFound(f"{filename or digest} is not stored")
    headers["Content-Length"] = str(await blobs.size(digest))
    return StreamingResponse(blobs.open(digest), media_type=media_type, headers=headers)


def bytes_response(request: Request, data: bytes, media_type: str, *, immutable: bool) -> Response:
    """In-memory content (rendered indexes, generated packages) with an ETag and 304s."""
    etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL if immutable else "private, max-age=0, must-revalidate",
    }
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)
