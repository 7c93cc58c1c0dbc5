"""Signed blob-server URLs: valid for one blob, one content type and a limited time."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from graft.blobs.urls import KEY_FILE, BlobUrlSigner, load_or_create_key

HEX = "ab" * 32


def _parts(url: str) -> tuple[str, str, dict[str, str]]:
    u = urlsplit(url)
    return u.netloc, u.path, {k: v[0] for k, v in parse_qs(u.query).items()}


def test_key_is_created_once_and_private(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "keys")
    assert len(key) == 32
    assert load_or_create_key(tmp_path / "keys") == key
    mode = (tmp_path / "keys" / KEY_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert [p.name for p in (tmp_path / "keys").iterdir()] == [KEY_FILE]  # no temp file left


def test_url_verifies_only_unchanged() -> None:
    signer = BlobUrlSigner(b"k" * 32, port=8001, public_url=None, ttl=60)
    url = signer.url(HEX, "application/octet-stream", scheme="http", host="graft.example.com:8000")
    netloc, path, q = _parts(url)
    assert netloc == "graft.example.com:8001" and path == f"/_blob/{HEX}"
    assert q["t"] == "application/octet-stream"
    assert signer.verify(HEX, q["e"], q["t"], q["s"])
    assert not signer.verify("cd" * 32, q["e"], q["t"], q["s"])  # another blob
    assert not signer.verify(HEX, q["e"], "text/html", q["s"])  # another content type
    assert not signer.verify(HEX, str(int(q["e"]) + 60), q["t"], q["s"])  # longer life
    # tamper with the first character: the last one of an unpadded base64 MAC carries only
    # 4 bits, and it may already be "A", so changing it can leave the MAC as it was
    forged = ("B" if q["s"][0] == "A" else "A") + q["s"][1:]
    assert not signer.verify(HEX, q["e"], q["t"], forged)
    assert not signer.verify(HEX, "soon", q["t"], q["s"])
    other = BlobUrlSigner(b"x" * 32, port=8001, public_url=None, ttl=60)
    assert not other.verify(HEX, q["e"], q["t"], q["s"])  # another key


def test_expired_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = BlobUrlSigner(b"k" * 32, port=8001, public_url=None, ttl=10)
    _, _, q = _parts(signer.url(HEX, "a/b", scheme="http", host="h"))
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 11)
    assert not signer.verify(HEX, q["e"], q["t"], q["s"])


@pytest.mark.parametrize(
    ("host", "public", "base"),
    [
        ("graft.example.com", None, "https://graft.example.com:8001"),
        ("[::1]:8000", None, "https://[::1]:8001"),
        ("[::1]", None, "https://[::1]:8001"),
        ("graft:8000", "https://blobs.example.com/dl/", "https://blobs.example.com/dl"),
    ],
)
def test_base_url(host: str, public: str | None, base: str) -> None:
    signer = BlobUrlSigner(b"k" * 32, port=8001, public_url=public, ttl=60)
    assert signer.url(HEX, "a/b", scheme="https", host=host).startswith(f"{base}/_blob/{HEX}?")
