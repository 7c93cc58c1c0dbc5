"""Short-lived signed download URLs for blobs, served by Graft's zero-copy blob server.

Graft's ASGI server (granian) copies a file through user space in 128 KiB steps; the blob
server (`graft.blobserver`) sends it with sendfile(2), as nginx does. A download route that
decides to hand a large blob over answers `302` with a URL signed here: the blob's digest,
an expiry and the content type, under an HMAC-SHA256 key kept in the data directory. The
URL carries no Graft token, so a leaked one is good for `ttl` seconds and for that one blob,
like an object store's presigned URL (which takes this place when blobs live in S3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlencode

KEY_FILE = "blob-url.key"


def load_or_create_key(keys_dir: Path) -> bytes:
    """The signing key, created once (mode 0600, written atomically)."""
    path = keys_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    keys_dir.mkdir(parents=True, exist_ok=True)
    tmp = keys_dir / f".{KEY_FILE}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32))
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # the first writer wins; everyone reads the same key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class BlobUrlSigner:
    def __init__(self, key: bytes, *, port: int, public_url: str | None, ttl: float) -> None:
        self.key = key
        self.port = port
        self.public_url = public_url.rstrip("/") if public_url else None
        self.ttl = ttl

    def _mac(self, hex_: str, expires: int, media_type: str) -> str:
        msg = f"{hex_}\n{expires}\n{media_type}".encode()
        return _b64(hmac.new(self.key, msg, hashlib.sha256).digest()[:20])

    def url(self, hex_: str, media_type: str, *, scheme: str, host: str) -> str:
        """The signed URL; without a configured public URL it is the request's host name
        with the blob server's port."""
        expires = int(time.time() + self.ttl)
        query = urlencode(
            {"e": expires, "t": media_type, "s": self._mac(hex_, expires, media_type)},
            quote_via=quote,
        )
        if self.public_url:
            base = self.public_url
        else:
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            base = f"{scheme}://{hostname}:{self.port}"
        return f"{base}/_blob/{hex_}?{query}"

    def verify(self, hex_: str, expires: str, media_type: str, mac: str) -> bool:
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(self._mac(hex_, int(expires), media_type), mac)
