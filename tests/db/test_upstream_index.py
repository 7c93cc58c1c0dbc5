"""Verified pull-through with checksums other than sha256 (Maven's .sha1), and the URL index
that remembers what was verified, on both database backends."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from graft.blobs import FilesystemBlobStore
from graft.db import Database
from graft.upstream.config import UpstreamConfig
from graft.upstream.files import ArtifactFetcher, Fetched, UpstreamMismatch
from graft.upstream.index import FileIndex

BODY = b"jar bytes " * 5000
URL = "http://up.example.com/g/a/1.0/a-1.0.jar"
UPSTREAM = UpstreamConfig(ecosystem="maven", name="up", url="http://up.example.com/")


def fetcher(tmp_path: Path, body: bytes = BODY) -> tuple[ArtifactFetcher, FilesystemBlobStore]:
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    return ArtifactFetcher(blobs, httpx.AsyncClient(transport=transport)), blobs


def stored(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "blobs" / "sha256").rglob("*") if p.is_file()]


async def test_checks_pass_and_every_hash_is_reported(tmp_path: Path) -> None:
    f, blobs = fetcher(tmp_path)
    seen: list[Fetched] = []

    async def on_stored(fetched: Fetched) -> None:
        seen.append(fetched)

    digest = await f.fetch(
        UPSTREAM,
        URL,
        checks={"sha1": hashlib.sha1(BODY).hexdigest().upper()},
        hashes=("md5", "sha1", "sha256", "sha512"),
        on_stored=on_stored,
    )
    assert digest == f"sha256:{hashlib.sha256(BODY).hexdigest()}"
    assert await blobs.read_bytes(digest) == BODY
    (fetched,) = seen
    assert fetched.size == len(BODY)
    assert fetched.hashes == {a: hashlib.new(a, BODY).hexdigest() for a in fetched.hashes}
    assert set(fetched.hashes) == {"md5", "sha1", "sha256", "sha512"}


async def test_a_checksum_mismatch_stores_nothing_and_is_remembered(tmp_path: Path) -> None:
    f, _ = fetcher(tmp_path)
    for _ in range(2):
        with pytest.raises(UpstreamMismatch, match="sha1"):
            await f.fetch(UPSTREAM, URL, checks={"sha1": "0" * 40})
    assert stored(tmp_path) == []
    assert f.upstream_requests == 1  # the failure is remembered for a while


async def test_the_index_remembers_verified_files(db: Database) -> None:
    index = FileIndex(db, miss_seconds=60)
    assert await index.get(URL) is None
    fetched = Fetched("sha256:" + "a" * 64, 12, {"sha1": "b" * 40})
    await index.put(URL, fetched)
    hit = await index.get(URL)
    assert hit is not None and (hit.digest, hit.size, hit.hashes) == (
        fetched.digest,
        12,
        {"sha1": "b" * 40},
    )
    fresh = FileIndex(db)  # another process, or after a restart
    again = await fresh.get(URL)
    assert again is not None and again.digest == fetched.digest
    await fresh.put(URL, Fetched("sha256:" + "c" * 64, 13, {}))  # re-verified: replaced
    latest = await FileIndex(db).get(URL)
    assert latest is not None and latest.size == 13
