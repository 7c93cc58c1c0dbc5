"""The zero-copy blob server: `GET /_blob/<sha256 hex>?e=…&t=…&s=…`, signed by
`graft.blobs.urls`, answered with sendfile(2) by aiohttp's `FileResponse` (Range and HEAD
included) on the standard asyncio event loop, whose `loop.sendfile` is the real system call.

`graft serve --blob-port P` runs it beside the ASGI server; download routes redirect large
blobs here after their own checks (token, scope, usage event, conditional GET). Nothing else is
served here, and nothing here needs a database or a token.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
import signal
import sys

from aiohttp import web

from graft.blobs import FilesystemBlobStore
from graft.blobs.urls import BlobUrlSigner, load_or_create_key
from graft.files import CACHE_CONTROL
from graft.settings import Settings, load_settings

log = logging.getLogger("graft.blobserver")
_HEX = re.compile(r"^[0-9a-f]{64}$")


def create_blob_app(store: FilesystemBlobStore, signer: BlobUrlSigner) -> web.Application:
    async def blob(request: web.Request) -> web.StreamResponse:
        hex_ = request.match_info["hex"]
        q = request.query
        media_type = q.get("t", "")
        if not _HEX.match(hex_) or not signer.verify(
            hex_, q.get("e", ""), media_type, q.get("s", "")
        ):
            raise web.HTTPForbidden(text="invalid or expired download link: ask Graft again\n")
        local = store.local_file(f"sha256:{hex_}")
        if local is None:
            raise web.HTTPNotFound(text="blob not found\n")
        return web.FileResponse(
            local.path,
            headers={
                "Content-Type": media_type or "application/octet-stream",
                "Cache-Control": CACHE_CONTROL,
            },
        )

    app = web.Application()
    app.router.add_get("/_blob/{hex}", blob)  # HEAD too
    return app


def _die_with_parent() -> None:
    """Linux: end this process when `graft serve` ends, however it ends."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_blob_server(settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    _die_with_parent()
    assert settings.blob_server_port is not None
    signer = BlobUrlSigner(
        load_or_create_key(settings.keys_dir),
        port=settings.blob_server_port,
        public_url=settings.blob_server_url,
        ttl=settings.blob_url_ttl_seconds,
    )
    store = FilesystemBlobStore(settings.effective_blob_dir)
    logging.basicConfig(level=getattr(logging, settings.log_level.upper()))
    web.run_app(
        create_blob_app(store, signer),
        host=settings.host,
        port=settings.blob_server_port,
        access_log=None,
        print=None,
        handle_signals=True,
        reuse_port=True,  # `graft serve --workers N` runs N of these on one port
    )
