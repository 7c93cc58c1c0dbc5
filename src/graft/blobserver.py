"""The zero-copy blob server: `GET /_blob/<sha256 hex>?e=…&t=…&s=…`, signed by
`graft.blobs.urls`, answered with sendfile(2) on a blocking socket.

`graft serve --blob-port P` runs it beside the ASGI server; download routes redirect large
blobs here after their own checks (token, scope, usage event, conditional GET). Nothing else is
served here, and nothing here needs a database or a token.

It is a small WSGI application under gunicorn's threaded worker (`gthread`: one worker process
per Graft worker, a pool of threads each, idle keep-alive connections parked in a selector).
Gunicorn sends a `wsgi.file_wrapper` body with `socket.sendfile` on the connection made
blocking, so one system call moves the whole file (or range) while the kernel waits for the
client. An asyncio server (aiohttp's `FileResponse` was used before) has to stop at every full
socket buffer and come back through the event loop: on a 64 MiB file that measured about
twice nginx's CPU per file and 0.84x its throughput (bench/README.md); the blocking send
measured on a par with nginx.

Range, If-Range and If-None-Match follow the same rules as the main port (`graft.files`);
the ETag is the blob's digest, as there.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from gunicorn.app.base import BaseApplication

from graft.blobs import FilesystemBlobStore
from graft.blobs.urls import BlobUrlSigner, load_or_create_key
from graft.files import CACHE_CONTROL, body_plan, etag_for, etag_matches
from graft.settings import Settings, load_settings

log = logging.getLogger("graft.blobserver")
_PATH = re.compile(r"^/_blob/([^/]*)$")
_HEX = re.compile(r"^[0-9a-f]{64}$")

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_REASONS = {
    200: "OK",
    206: "Partial Content",
    304: "Not Modified",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    416: "Range Not Satisfiable",
}


def _text(
    start: StartResponse, status: int, text: str, extra: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    body = text.encode()
    start(
        f"{status} {_REASONS[status]}",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra],
    )
    return [body]


class BlobApp:
    """The WSGI application: verify the signed link, then hand the file to the server."""

    def __init__(self, store: FilesystemBlobStore, signer: BlobUrlSigner) -> None:
        self.store = store
        self.signer = signer

    def __call__(self, environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        m = _PATH.match(environ.get("PATH_INFO", ""))
        if m is None:
            return _text(start, 404, "not found\n")
        if method not in ("GET", "HEAD"):
            return _text(start, 405, "only GET and HEAD\n", [("Allow", "GET, HEAD")])
        hex_ = m.group(1)
        q = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        media_type = q.get("t", "")
        if not _HEX.match(hex_) or not self.signer.verify(
            hex_, q.get("e", ""), media_type, q.get("s", "")
        ):
            return _text(start, 403, "invalid or expired download link: ask Graft again\n")
        digest = f"sha256:{hex_}"
        local = self.store.local_file(digest)
        if local is None:
            return _text(start, 404, "blob not found\n")
        etag = etag_for(digest)
        headers = [
            ("ETag", etag),
            ("Cache-Control", CACHE_CONTROL),
            ("Accept-Ranges", "bytes"),
        ]
        if etag_matches(environ.get("HTTP_IF_NONE_MATCH"), etag):
            start("304 Not Modified", headers)
            return []
        status, first, stop, lengths = body_plan(
            environ.get("HTTP_RANGE"), environ.get("HTTP_IF_RANGE"), etag, local.size
        )
        headers.append(("Content-Type", media_type or "application/octet-stream"))
        headers += [(k.decode(), v.decode()) for k, v in lengths]
        if method == "HEAD" or first >= stop:
            start(f"{status} {_REASONS[status]}", headers)
            return []
        f = open(local.path, "rb")  # noqa: SIM115 - closed by the server with the wrapper
        try:
            f.seek(first)
            start(f"{status} {_REASONS[status]}", headers)
            # Content-Length bounds what the server sends from the file's position.
            wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](f, 1 << 20)
        except BaseException:
            f.close()
            raise
        return wrapper


class _Gunicorn(BaseApplication):
    def __init__(self, app: BlobApp, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:  # a WSGI application (typeshed and the stubs spell it apart)
        return self._app


def _die_with_parent() -> None:
    """Linux: end this process when `graft serve` ends, however it ends."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_blob_server(settings: Settings | None = None) -> None:
    """Serve until told to stop (SIGTERM/SIGINT): gunicorn's arbiter with one threaded worker
    process per Graft worker."""
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
    level = settings.log_level.lower()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    _Gunicorn(
        BlobApp(store, signer),
        {
            "bind": [f"{host}:{settings.blob_server_port}"],
            "workers": settings.workers,
            "worker_class": "gthread",
            "threads": settings.blob_server_threads,
            # parked idle keep-alive connections, beyond the threads sending
            "worker_connections": max(1000, settings.blob_server_threads * 4),
            "keepalive": 5,
            "graceful_timeout": 10,
            "loglevel": "warning" if level == "info" else level,
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "graft-blob-server",
            "sendfile": True,
            "control_socket_disable": True,
        },
    ).run()
    os._exit(0)  # the arbiter returned: nothing else to run in this process
