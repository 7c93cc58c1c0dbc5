"""Which upstream files Graft holds, by URL: for indexes that do not name a file by sha256.

PyPI pages give each file's sha256, so the blob is found by digest. A Maven repository names a
file only by its `.sha1`; once a download has been verified, `FileIndex` remembers URL → blob
digest, size and checksums, in memory and in `upstream_files`, so a later request (in this
process or after a restart) is served without asking the upstream anything.

Lookups cost no database query while the entry is in memory; a miss is remembered for
`miss_seconds`, so a storm of requests for files Graft does not hold costs one query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from graft.db import Database
from graft.db.models import UpstreamFile
from graft.singleflight import SingleFlight
from graft.upstream.files import Fetched


@dataclass(frozen=True, slots=True)
class IndexedFile:
    digest: str
    size: int
    hashes: dict[str, str]
    fetched_at: dt.datetime


def _url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


class FileIndex:
    def __init__(
        self, db: Database, *, max_entries: int = 50_000, miss_seconds: float = 60.0
    ) -> None:
        self.db = db
        self.max_entries = max_entries
        self.miss_seconds = miss_seconds
        self._known: OrderedDict[str, IndexedFile] = OrderedDict()
        self._misses: dict[str, float] = {}
        self._flights: SingleFlight[IndexedFile | None] = SingleFlight()

    async def get(self, url: str) -> IndexedFile | None:
        hit = self._known.get(url)
        if hit is not None:
            self._known.move_to_end(url)
            return hit
        missed = self._misses.get(url)
        if missed is not None and time.monotonic() - missed < self.miss_seconds:
            return None
        return await self._flights.do(url, lambda: self._load(url))

    async def _load(self, url: str) -> IndexedFile | None:
        async with self.db.session() as s:
            row = await s.scalar(
                select(UpstreamFile).where(UpstreamFile.url_hash == _url_hash(url))
            )
        if row is None:
            if len(self._misses) > self.max_entries:
                self._misses.clear()
            self._misses[url] = time.monotonic()
            return None
        found = IndexedFile(row.digest, row.size, dict(row.hashes or {}), row.fetched_at)
        self._remember(url, found)
        return found

    async def put(self, url: str, fetched: Fetched) -> IndexedFile:
        now = dt.datetime.now(dt.UTC)
        entry = IndexedFile(fetched.digest, fetched.size, dict(fetched.hashes), now)
        values = {
            "url_hash": _url_hash(url),
            "url": url,
            "digest": entry.digest,
            "size": entry.size,
            "hashes": entry.hashes,
            "fetched_at": now,
        }
        ins = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        stmt = ins(UpstreamFile).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["url_hash"], set_=values)
        async with self.db.session() as s:
            await s.execute(stmt)
        self._remember(url, entry)
        return entry

    def forget(self, url: str) -> None:
        """Drop the in-memory entry (the row stays; it is reloaded on the next request)."""
        self._known.pop(url, None)

    def _remember(self, url: str, entry: IndexedFile) -> None:
        self._misses.pop(url, None)
        self._known[url] = entry
        self._known.move_to_end(url)
        while len(self._known) > self.max_entries:
            self._known.popitem(last=False)
