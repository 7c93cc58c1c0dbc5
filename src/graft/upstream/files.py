"""Verified pull-through of upstream artifacts.

The first request for a file starts one background download per URL that writes into the blob
store while hashing, and commits only if the digest matches the one the index promised.

- Files up to `buffer_bytes` are verified before the client receives a byte, so a bad upstream
  file is a clean `502` with a message and nothing cached.
- Larger files stream to the first client as they arrive, with the final chunk held back until
  the digest is checked: on a mismatch the response is cut short (the client sees a broken
  transfer, never a complete wrong file) and later requests get the `502` for a while.
- Concurrent requests for the same file wait for that one download, then get the stored blob.
- A download continues when the first client disconnects, so waiting clients still get it.
- Across replicas, a download holds the cluster lock of its URL (graft.cluster): a replica
  that wants the same file waits for it (up to `lock_wait` seconds, then downloads anyway)
  and then finds the blob stored, instead of fetching it a second time.

An index that promises another digest than sha256 (a Maven `.sha1`, npm's sha512 `integrity`
and sha1 `shasum`) passes it as `checks`: those are computed while streaming and checked before
the commit, with the same guarantees. A file verified by such checks is found again through an
alias (the strongest of those digests, e.g. `sha512:<hex>`), kept in memory and in
`upstream_artifacts`, so it is pulled through once, not once per process. `hashes` asks for
more digests of the verified bytes, and `on_stored` receives them (as `Fetched`) once the blob
is committed, before any waiting client is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from graft.blobs import BlobStore, DigestMismatch
from graft.db import Database
from graft.db.models import UpstreamArtifact
from graft.errors import GraftError, NotFound
from graft.files import CACHE_CONTROL, etag_for, serve_blob
from graft.upstream.config import UpstreamConfig
from graft.upstream.pages import UpstreamUnavailable

log = logging.getLogger("graft.upstream")

_END = None  # queue sentinel: the download has finished (check `done` for how)

# Strongest first: the alias of a file verified by several digests is its strongest one.
CHECK_ALGORITHMS = ("sha512", "sha384", "sha256", "sha1")


class UpstreamMismatch(GraftError):
    status_code = 502
    code = "upstream_mismatch"


class ChecksumMismatch(Exception):
    def __init__(self, algorithm: str, expected: str, actual: str) -> None:
        super().__init__(f"{algorithm} mismatch: expected {expected}, got {actual}")
        self.algorithm, self.expected, self.actual = algorithm, expected, actual


@dataclass(frozen=True, slots=True)
class Fetched:
    """A verified upstream file as stored: its blob digest, size, and the hex digests asked for
    (`checks` and `hashes`, always including sha256)."""

    digest: str
    size: int
    hashes: dict[str, str]


OnStored = Callable[[Fetched], Awaitable[None]]
Lock = Callable[..., AbstractAsyncContextManager[bool]]  # Cluster.lock(name, wait=…)


@dataclass(eq=False)
class _Download:
    url: str
    expected: str | None
    done: asyncio.Future[str]
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(maxsize=256))
    listening: bool = True
    content_length: int | None = None
    checks: Mapping[str, str] = field(default_factory=dict)
    hashes: tuple[str, ...] = ()
    on_stored: OnStored | None = None
    alias: str | None = None

    def detach(self) -> None:
        """The streaming client left: stop feeding it, never block the download on it."""
        self.listening = False
        while not self.queue.empty():
            self.queue.get_nowait()


def alias_of(checks: Mapping[str, str]) -> str | None:
    """`sha512:<hex>` for {"sha512": hex, "sha1": hex}: the key a verified file is found by."""
    for algorithm in CHECK_ALGORITHMS:
        if checks.get(algorithm):
            return f"{algorithm}:{checks[algorithm].lower()}"
    return None


class VerifiedAliases:
    """alias (e.g. `sha512:<hex>`) -> blob digest of files verified on pull-through.

    In memory, backed by the `upstream_artifacts` table (read on a miss, written once per
    file), so a warm lookup costs no query and a new process finds what others fetched."""

    def __init__(self, db: Database | None, *, max_entries: int = 200_000) -> None:
        self.db = db
        self.max_entries = max_entries
        self._known: dict[str, str] = {}

    def cached(self, alias: str) -> str | None:
        return self._known.get(alias)

    async def get(self, alias: str) -> str | None:
        found = self._known.get(alias)
        if found is not None or self.db is None:
            return found
        async with self.db.session() as s:
            found = await s.scalar(
                select(UpstreamArtifact.digest).where(UpstreamArtifact.alias == alias)
            )
        if found is not None:
            self._remember(alias, found)
        return found

    async def add(self, alias: str, digest: str, size: int) -> None:
        self._remember(alias, digest)
        if self.db is None:
            return
        values = {
            "alias": alias,
            "digest": digest,
            "size": size,
            "fetched_at": dt.datetime.now(dt.UTC),
        }
        ins = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        stmt = ins(UpstreamArtifact).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["alias"], set_=values)
        try:
            async with self.db.session() as s:
                await s.execute(stmt)
        except Exception:  # the file is verified and stored; only the shortcut is lost
            log.exception("could not record %s -> %s", alias, digest)

    def _remember(self, alias: str, digest: str) -> None:
        if len(self._known) >= self.max_entries:
            self._known.clear()
        self._known[alias] = digest


def same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.netloc) == (y.scheme, y.netloc)


class ArtifactFetcher:
    def __init__(
        self,
        blobs: BlobStore,
        client: httpx.AsyncClient,
        *,
        buffer_bytes: int = 8 << 20,
        max_bytes: int | None = None,
        failure_ttl: float = 60.0,
        db: Database | None = None,
        lock: Lock | None = None,
        lock_wait: float = 30.0,
    ) -> None:
        self.blobs = blobs
        self.client = client
        self.aliases = VerifiedAliases(db)
        self.buffer_bytes = buffer_bytes
        self.max_bytes = max_bytes
        self.failure_ttl = failure_ttl
        self._downloads: dict[str, _Download] = {}
        self._failures: dict[str, tuple[float, GraftError]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.upstream_requests = 0
        self.lock = lock
        self.lock_wait = lock_wait

    async def serve(
        self,
        request: Request,
        upstream: UpstreamConfig,
        url: str,
        expected: str | None,
        *,
        media_type: str = "application/octet-stream",
        checks: Mapping[str, str] | None = None,
        hashes: Iterable[str] = (),
        on_stored: OnStored | None = None,
        cache_control: str = CACHE_CONTROL,
    ) -> Response:
        """A response for `url`, from the blob store if held, else pulled through.

        `checks` (hashlib name → expected hex) are verified like `expected`; `on_stored` is
        called with the digests in `hashes` after a download commits."""
        alias = alias_of(checks) if checks else None
        if expected is None and alias is not None:
            expected = await self.aliases.get(alias)
            if expected is not None and not await self.blobs.exists(expected):
                expected = None
        if expected is not None:
            local = self.blobs.local_file(expected)
            if local is not None or await self.blobs.exists(expected):
                return await serve_blob(
                    request,
                    self.blobs,
                    expected,
                    media_type=media_type,
                    cache_control=cache_control,
                    local=local,
                )
        self._check_failed(url)
        dl = self._downloads.get(url)
        if dl is not None:  # join the running download
            digest = await asyncio.shield(dl.done)
            return await serve_blob(
                request, self.blobs, digest, media_type=media_type, cache_control=cache_control
            )
        dl = self._start(upstream, url, expected, checks, hashes, on_stored, alias)
        return await self._first_response(request, dl, media_type, cache_control)

    async def fetch(
        self,
        upstream: UpstreamConfig,
        url: str,
        expected: str | None = None,
        *,
        checks: Mapping[str, str] | None = None,
        hashes: Iterable[str] = (),
        on_stored: OnStored | None = None,
    ) -> str:
        """Pull `url` through (or join its running download) without serving it; return the
        blob digest once stored and verified."""
        alias = alias_of(checks) if checks else None
        if expected is None and alias is not None:
            expected = await self.aliases.get(alias)
        if expected is not None and await self.blobs.exists(expected):
            return expected
        self._check_failed(url)
        dl = self._downloads.get(url)
        if dl is None:
            dl = self._start(upstream, url, expected, checks, hashes, on_stored, alias)
            dl.detach()  # nobody streams this one
        return await asyncio.shield(dl.done)

    def _check_failed(self, url: str) -> None:
        failed = self._failures.get(url)
        if failed is not None:
            if time.monotonic() - failed[0] < self.failure_ttl:
                raise failed[1]
            del self._failures[url]

    def _start(
        self,
        upstream: UpstreamConfig,
        url: str,
        expected: str | None,
        checks: Mapping[str, str] | None = None,
        hashes: Iterable[str] = (),
        on_stored: OnStored | None = None,
        alias: str | None = None,
    ) -> _Download:
        dl = _Download(
            url,
            expected,
            asyncio.get_running_loop().create_future(),
            checks=dict(checks or {}),
            hashes=tuple(hashes),
            on_stored=on_stored,
            alias=alias,
        )
        self._downloads[url] = dl
        headers = {"Accept-Encoding": "identity"}
        if same_origin(url, upstream.url):  # never hand upstream credentials to another host
            headers.update(upstream.auth_headers())
        task = asyncio.create_task(self._download(upstream, dl, headers), name=f"fetch {url}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return dl

    async def _download(
        self, upstream: UpstreamConfig, dl: _Download, headers: dict[str, str]
    ) -> None:
        try:
            if self.lock is None:
                digest = await self._transfer(upstream, dl, headers)
            else:
                async with self.lock(f"fetch {dl.url}", wait=self.lock_wait):
                    # Another replica may have stored it while this one waited.
                    digest = await self._stored_elsewhere(dl) or await self._transfer(
                        upstream, dl, headers
                    )
        except BaseException as exc:
            error = self._as_error(upstream, dl, exc)
            if not isinstance(error, NotFound):
                self._failures[dl.url] = (time.monotonic(), error)
            dl.done.set_exception(error)
            dl.done.exception()  # retrieved: followers re-raise it themselves
            if not isinstance(exc, Exception):
                raise
        else:
            dl.done.set_result(digest)
        finally:
            del self._downloads[dl.url]
            if dl.listening:
                with contextlib.suppress(asyncio.QueueFull):
                    dl.queue.put_nowait(_END)

    async def _stored_elsewhere(self, dl: _Download) -> str | None:
        """The digest if the verified file is already stored (by another replica)."""
        sha256 = dl.checks.get("sha256")
        digest = dl.expected or (f"sha256:{sha256.lower()}" if sha256 else None)
        if digest is None and dl.alias is not None:
            digest = await self.aliases.get(dl.alias)
        if digest is None or not await self.blobs.exists(digest):
            return None
        if dl.on_stored is not None:  # the digests it wants, from the stored bytes
            hashers = {a: hashlib.new(a) for a in {*dl.checks, *dl.hashes} - {"sha256"}}
            size = 0
            async for chunk in self.blobs.open(digest):
                size += len(chunk)
                for h in hashers.values():
                    h.update(chunk)
            found = {a: h.hexdigest() for a, h in hashers.items()}
            found["sha256"] = digest.removeprefix("sha256:")
            try:
                await dl.on_stored(Fetched(digest, size, found))
            except Exception:
                log.exception("recording the download of %s failed", dl.url)
        return digest

    async def _transfer(
        self, upstream: UpstreamConfig, dl: _Download, headers: dict[str, str]
    ) -> str:
        self.upstream_requests += 1
        async with self.client.stream("GET", dl.url, headers=headers, follow_redirects=True) as r:
            if r.status_code in (404, 410):
                raise NotFound(f"{dl.url.rsplit('/', 1)[-1]} was not found upstream")
            if r.status_code != 200:
                raise UpstreamUnavailable(
                    f"upstream {upstream.name} answered {r.status_code} for {dl.url}"
                )
            if "content-length" in r.headers and r.headers["content-length"].isdigit():
                dl.content_length = int(r.headers["content-length"])
            hashers = {a: hashlib.new(a) for a in {*dl.checks, *dl.hashes} - {"sha256"}}
            async with self.blobs.writer(max_size=self.max_bytes) as writer:
                async for chunk in r.aiter_bytes():
                    await writer.write(chunk)
                    for h in hashers.values():
                        h.update(chunk)
                    if dl.listening:
                        await dl.queue.put(chunk)
                found = {a: h.hexdigest() for a, h in hashers.items()}
                for algorithm, want in dl.checks.items():
                    if algorithm != "sha256" and found[algorithm] != want.lower():
                        raise ChecksumMismatch(algorithm, want.lower(), found[algorithm])
                sha256 = dl.checks.get("sha256")
                expected = dl.expected or (f"sha256:{sha256.lower()}" if sha256 else None)
                digest = await writer.commit(expected)
                size = writer.size
            if dl.alias is not None:
                await self.aliases.add(dl.alias, digest, size)
            if dl.on_stored is not None:
                found["sha256"] = digest.removeprefix("sha256:")
                try:
                    await dl.on_stored(Fetched(digest, size, found))
                except Exception:  # the blob is stored and verified; only the note is lost
                    log.exception("recording the download of %s failed", dl.url)
            return digest

    def _as_error(self, upstream: UpstreamConfig, dl: _Download, exc: BaseException) -> GraftError:
        if isinstance(exc, GraftError):
            return exc
        if isinstance(exc, ChecksumMismatch):
            log.error(
                "upstream %s served %s with %s %s, expected %s; not cached",
                upstream.name,
                dl.url,
                exc.algorithm,
                exc.actual,
                exc.expected,
            )
            return UpstreamMismatch(
                f"upstream {upstream.name} served {dl.url.rsplit('/', 1)[-1]} with digest "
                f"{exc.algorithm}:{exc.actual}, but the upstream says {exc.algorithm}:"
                f"{exc.expected}; nothing was cached"
            )
        if isinstance(exc, DigestMismatch):
            log.error(
                "upstream %s served %s with sha256 %s, expected %s; not cached",
                upstream.name,
                dl.url,
                exc.actual,
                exc.expected,
            )
            return UpstreamMismatch(
                f"upstream {upstream.name} served {dl.url.rsplit('/', 1)[-1]} with digest "
                f"{exc.actual}, but its index says {exc.expected}; nothing was cached"
            )
        if isinstance(exc, httpx.HTTPError):
            return UpstreamUnavailable(f"upstream {upstream.name} failed for {dl.url}: {exc}")
        log.error("download of %s failed", dl.url, exc_info=exc)
        return UpstreamUnavailable(f"download of {dl.url} failed: {type(exc).__name__}")

    async def _first_response(
        self, request: Request, dl: _Download, media_type: str, cache_control: str = CACHE_CONTROL
    ) -> Response:
        buffered: list[bytes] = []
        size = 0
        while size <= self.buffer_bytes:
            chunk = await dl.queue.get()
            if chunk is _END:
                digest = await asyncio.shield(dl.done)  # raises the 404/502 on failure
                return await serve_blob(
                    request, self.blobs, digest, media_type=media_type, cache_control=cache_control
                )
            buffered.append(chunk)
            size += len(chunk)

        async def stream() -> AsyncIterator[bytes]:
            try:
                for part in buffered:
                    yield part
                held: bytes | None = None
                while (arrived := await dl.queue.get()) is not _END:
                    if held is not None:
                        yield held
                    held = arrived
                await asyncio.shield(dl.done)  # raises on mismatch: the transfer is cut short
                if held is not None:
                    yield held
            finally:
                dl.detach()

        headers = {"Cache-Control": cache_control}
        if dl.expected is not None:
            headers["ETag"] = etag_for(dl.expected)
        if dl.content_length is not None:
            headers["Content-Length"] = str(dl.content_length)
        return StreamingResponse(stream(), media_type=media_type, headers=headers)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
