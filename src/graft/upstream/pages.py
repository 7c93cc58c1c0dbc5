"""Cached upstream index pages: TTL, revalidation, stale-if-error, negative cache.

A page is fresh for the upstream's `ttl_seconds`; after that the next request revalidates it
with `If-None-Match` / `If-Modified-Since` (one request in flight per URL). If the upstream is
down, the last good copy is served and the fact logged. A 404 is remembered for
`negative_ttl_seconds`, so a storm of misses costs one upstream request. Bodies live in the blob
store and validators in `upstream_pages`, so a restarted process revalidates instead of
refetching everything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import httpx
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from graft.blobs import BlobStore
from graft.db import Database
from graft.db.models import UpstreamPage
from graft.errors import GraftError
from graft.singleflight import SingleFlight
from graft.upstream.config import UpstreamConfig

log = logging.getLogger("graft.upstream")

MAX_PAGE_BYTES = 64 << 20  # an index page larger than this is refused, not buffered


class UpstreamUnavailable(GraftError):
    status_code = 502
    code = "upstream_unavailable"


@dataclass(frozen=True, slots=True)
class Page:
    url: str
    status: int  # 200, or 404 for "not there"
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    checked: float  # monotonic time of the last successful contact with the upstream
    stale: bool = False  # served from cache because the upstream failed
    # Changes whenever the content changes: a key for caches derived from this page.
    identity: str = ""

    @property
    def found(self) -> bool:
        return self.status == 200


def _page(
    url: str,
    status: int,
    body: bytes,
    content_type: str,
    etag: str | None,
    last_modified: str | None,
    checked: float,
) -> Page:
    identity = f"{status}:{hashlib.sha256(body).hexdigest()}"
    return Page(url, status, body, content_type, etag, last_modified, checked, False, identity)


def _url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


class PageCache:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        client: httpx.AsyncClient,
        *,
        max_entries: int = 20_000,
        retry_after_error: float = 30.0,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.client = client
        self.max_entries = max_entries
        self.retry_after_error = retry_after_error
        self._pages: OrderedDict[str, Page] = OrderedDict()
        self._flights: SingleFlight[Page] = SingleFlight()
        self.upstream_requests = 0  # for tests and metrics

    async def get(self, upstream: UpstreamConfig, url: str, *, accept: str) -> Page:
        page = self._pages.get(url)
        if page is not None and self._fresh(upstream, page):
            self._pages.move_to_end(url)
            return page
        return await self._flights.do(url, lambda: self._refresh(upstream, url, accept, page))

    def invalidate(self, url: str) -> None:
        self._pages.pop(url, None)

    @staticmethod
    def _fresh(upstream: UpstreamConfig, page: Page) -> bool:
        ttl = upstream.ttl_seconds if page.found else upstream.negative_ttl_seconds
        return time.monotonic() - page.checked < ttl

    async def _refresh(
        self, upstream: UpstreamConfig, url: str, accept: str, page: Page | None
    ) -> Page:
        if page is None:
            page = await self._load(url)
        headers = {"Accept": accept, **upstream.auth_headers()}
        if page is not None and page.found:
            if page.etag:
                headers["If-None-Match"] = page.etag
            if page.last_modified:
                headers["If-Modified-Since"] = page.last_modified
        try:
            self.upstream_requests += 1
            resp = await self.client.get(url, headers=headers, follow_redirects=True)
            if resp.status_code == 304 and page is not None and page.found:
                fresh = replace(page, checked=time.monotonic(), stale=False)
            elif resp.status_code == 200:
                if len(resp.content) > MAX_PAGE_BYTES:
                    raise UpstreamUnavailable(f"upstream page {url} is larger than allowed")
                fresh = _page(
                    url,
                    200,
                    resp.content,
                    resp.headers.get("content-type", ""),
                    resp.headers.get("etag"),
                    resp.headers.get("last-modified"),
                    time.monotonic(),
                )
                await self._store(fresh)
            elif resp.status_code in (404, 410):
                fresh = _page(url, 404, b"", "", None, None, time.monotonic())
            else:
                raise UpstreamUnavailable(
                    f"upstream {upstream.name} answered {resp.status_code} for {url}"
                )
        except (httpx.HTTPError, UpstreamUnavailable) as exc:
            if page is not None and page.found:
                log.warning(
                    "upstream %s failed (%s); serving the last good copy of %s",
                    upstream.name,
                    exc,
                    url,
                )
                # Try the upstream again after a short pause, not on every request.
                retry_in = min(self.retry_after_error, upstream.ttl_seconds)
                checked = time.monotonic() - upstream.ttl_seconds + retry_in
                fresh = replace(page, checked=checked, stale=True)
            else:
                message = exc.message if isinstance(exc, UpstreamUnavailable) else str(exc)
                raise UpstreamUnavailable(
                    f"upstream {upstream.name} is unreachable and nothing is cached: "
                    f"{message or type(exc).__name__}"
                ) from None
        self._remember(fresh)
        return fresh

    def _remember(self, page: Page) -> None:
        self._pages[page.url] = page
        self._pages.move_to_end(page.url)
        while len(self._pages) > self.max_entries:
            self._pages.popitem(last=False)

    async def _load(self, url: str) -> Page | None:
        """The last good copy from an earlier process, if any (cold start only)."""
        async with self.db.session() as s:
            row = await s.scalar(
                select(UpstreamPage).where(UpstreamPage.url_hash == _url_hash(url))
            )
        if row is None or row.digest is None:
            return None
        try:
            body = await self.blobs.read_bytes(row.digest)
        except Exception:
            return None
        age = (dt.datetime.now(dt.UTC) - row.fetched_at).total_seconds()
        return _page(
            url,
            row.status,
            body,
            row.content_type,
            row.etag,
            row.last_modified,
            time.monotonic() - max(age, 0.0),
        )

    async def _store(self, page: Page) -> None:
        digest = await self.blobs.put(page.body)
        values = {
            "url_hash": _url_hash(page.url),
            "url": page.url,
            "status": page.status,
            "digest": digest,
            "content_type": page.content_type[:255],
            "etag": page.etag[:512] if page.etag else None,
            "last_modified": page.last_modified[:64] if page.last_modified else None,
            "fetched_at": dt.datetime.now(dt.UTC),
        }
        ins = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        stmt = ins(UpstreamPage).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["url_hash"], set_=values)
        async with self.db.session() as s:
            await s.execute(stmt)
