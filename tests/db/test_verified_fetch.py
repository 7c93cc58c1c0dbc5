"""ArtifactFetcher with npm-style digests (sha512 + sha1): verified before commit, found again
by alias — in memory, and from `upstream_artifacts` in a new process."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from graft.blobs import FilesystemBlobStore
from graft.db import Database
from graft.upstream.config import UpstreamConfig
from graft.upstream.files import ArtifactFetcher, UpstreamMismatch

DATA = b"npm tarball " * 1000
UPSTREAM = UpstreamConfig(ecosystem="npm", name="up", url="http://up.example.com/")


def _request() -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    )


def _fetcher(
    blobs: FilesystemBlobStore, db: Database, served: bytes, hits: list[str]
) -> ArtifactFetcher:
    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(str(request.url))
        return httpx.Response(200, content=served)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ArtifactFetcher(blobs, client, buffer_bytes=1 << 20, db=db)


CHECKS = {"sha512": hashlib.sha512(DATA).hexdigest(), "sha1": hashlib.sha1(DATA).hexdigest()}


async def test_verified_by_sha512_and_found_again(db: Database, tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    hits: list[str] = []
    fetcher = _fetcher(blobs, db, DATA, hits)
    url = "http://cdn.example.com/x-1.0.0.tgz"
    r = await fetcher.serve(_request(), UPSTREAM, url, None, checks=CHECKS)
    assert r.status_code == 200 and len(hits) == 1
    digest = "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert await blobs.exists(digest)
    await fetcher.serve(_request(), UPSTREAM, url, None, checks=CHECKS)
    assert len(hits) == 1  # the alias, in memory
    fresh = _fetcher(blobs, db, DATA, hits)  # another process: the alias from the database
    await fresh.serve(_request(), UPSTREAM, url, None, checks=CHECKS)
    assert len(hits) == 1


@pytest.mark.parametrize("algorithm", ["sha512", "sha1"])
async def test_a_mismatch_stores_nothing(db: Database, tmp_path: Path, algorithm: str) -> None:
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    tampered = DATA[:-1] + b"!"
    fetcher = _fetcher(blobs, db, tampered, [])
    checks = {algorithm: CHECKS[algorithm]}
    with pytest.raises(UpstreamMismatch, match=f"{algorithm}:"):
        await fetcher.serve(
            _request(), UPSTREAM, "http://up.example.com/y.tgz", None, checks=checks
        )
    assert not await blobs.exists("sha256:" + hashlib.sha256(tampered).hexdigest())
    assert fetcher.aliases.cached(f"{algorithm}:{CHECKS[algorithm]}") is None
