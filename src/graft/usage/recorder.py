"""The usage interface that protocol routes call on every artifact download.

`record()` is synchronous and O(1): it folds the event into an in-memory aggregate keyed by
library entry, so a burst of a million downloads of one wheel costs one row update. A background
task writes the aggregate every `flush_seconds`; `stop()` flushes what is left (a replica
stopped with SIGTERM writes its last batch before it exits). A failed write keeps the batch
and merges it into the next one, so a database hiccup loses nothing; and since a batch is one
transaction, a write whose outcome is unknown (the connection broke during COMMIT) is looked
up by its transaction id on PostgreSQL (`txid_status`) before it is retried, so it is never
counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

from sqlalchemy import Table, case, null, or_, text
from sqlalchemy.dialects import postgresql, sqlite

from graft.db import Database
from graft.db.models import LibraryEntry, LibraryEntryAccount, UsageDay
from graft.metrics import USAGE_EVENTS

log = logging.getLogger("graft.usage")


class Served(StrEnum):
    UPSTREAM = "upstream"  # the upstream build, passed through the cache
    PATCHED = "patched"  # the organization's patched build
    FALLBACK = "fallback"  # an OS `rootio-X` transitional package pointing at upstream X
    PRIVATE = "private"  # a package the organization publishes itself


@dataclass(frozen=True, slots=True)
class UsageEvent:
    org_id: int
    account_id: int
    ecosystem: str
    package: str
    version: str
    served: Served
    distribution: str = ""
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # OS packages: the source package advisories name, when it is not `package` itself, and
    # the source version, when it is not `version` (a Debian binNMU)
    source: str | None = None
    source_version: str | None = None


_Key = tuple[int, str, str, str, str, str]  # org, ecosystem, distribution, package, version, served


@dataclass(slots=True)
class _Aggregate:
    first: dt.datetime
    last: dt.datetime
    count: int = 0
    accounts: dict[int, tuple[int, dt.datetime]] = field(default_factory=dict)
    days: dict[dt.date, int] = field(default_factory=dict)  # installs per UTC day
    source: str | None = None  # follows from the key; the latest event's is kept
    source_version: str | None = None

    def add(self, account_id: int, count: int, first: dt.datetime, last: dt.datetime) -> None:
        self.first = min(self.first, first)
        self.last = max(self.last, last)
        self.count += count
        n, seen = self.accounts.get(account_id, (0, last))
        self.accounts[account_id] = (n + count, max(seen, last))


class UsageRecorder:
    def __init__(self, db: Database, *, flush_seconds: float = 2.0, max_keys: int = 100_000):
        self.db = db
        self.flush_seconds = flush_seconds
        self.max_keys = max_keys
        self._pending: dict[_Key, _Aggregate] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self._queued = 0  # added to the metric at each flush, not per event
        self._txid: int | None = None  # PostgreSQL transaction id of the batch being written

    # -- hot path -------------------------------------------------------------------------
    def record(self, event: UsageEvent) -> None:
        key: _Key = (
            event.org_id,
            event.ecosystem,
            event.distribution,
            event.package,
            event.version,
            event.served.value,
        )
        agg = self._pending.get(key)
        if agg is None:
            if len(self._pending) >= self.max_keys:
                self.dropped += 1
                USAGE_EVENTS.labels("dropped").inc()
                return
            agg = self._pending[key] = _Aggregate(first=event.at, last=event.at)
        agg.source, agg.source_version = event.source, event.source_version
        agg.add(event.account_id, 1, event.at, event.at)
        day = event.at.astimezone(dt.UTC).date()
        agg.days[day] = agg.days.get(day, 0) + 1
        self._queued += 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- background -----------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="usage-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:  # keep flushing later; the batch was kept
                log.exception("usage flush failed; will retry")

    async def flush(self) -> int:
        """Write everything pending; returns the number of library entries touched."""
        async with self._lock:
            batch, self._pending = self._pending, {}
            if self._queued:
                USAGE_EVENTS.labels("queued").inc(self._queued)
                self._queued = 0
            if not batch:
                return 0
            try:
                await self._write(batch)
            except BaseException:
                if not await self._committed_anyway():
                    self._merge_back(batch)
                    raise
                log.warning("usage batch committed although its write reported an error")
            USAGE_EVENTS.labels("written").inc(sum(a.count for a in batch.values()))
            return len(batch)

    def _merge_back(self, batch: dict[_Key, _Aggregate]) -> None:
        for key, agg in batch.items():
            cur = self._pending.get(key)
            if cur is None:
                self._pending[key] = agg
                continue
            for account_id, (n, seen) in agg.accounts.items():
                cur.add(account_id, n, agg.first, seen)
            for day, n in agg.days.items():
                cur.days[day] = cur.days.get(day, 0) + n

    async def _committed_anyway(self) -> bool:
        """Whether the failed batch's transaction committed after all (PostgreSQL)."""
        txid, self._txid = self._txid, None
        if txid is None:
            return False
        try:
            async with self.db.session() as s:
                status = await s.scalar(text("SELECT txid_status(:t)"), {"t": txid})
        except Exception:
            log.exception("could not learn whether usage batch %d committed", txid)
            return False  # counted again rather than lost
        return bool(status == "committed")

    async def _write(self, batch: dict[_Key, _Aggregate]) -> None:
        dialect = self.db.dialect
        ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
        entry = cast(Table, LibraryEntry.__table__)
        link = cast(Table, LibraryEntryAccount.__table__)
        days = cast(Table, UsageDay.__table__)
        # The days' totals (the dashboard's history), one row per day, ecosystem and served.
        per_day: dict[tuple[int, dt.date, str, str], int] = {}
        for (org_id, eco, _dist, _pkg, _ver, served), agg in batch.items():
            for day, n in agg.days.items():
                per_day[(org_id, day, eco, served)] = per_day.get((org_id, day, eco, served), 0) + n
        self._txid = None
        async with self.db.session() as s:
            if dialect == "postgresql":
                self._txid = await s.scalar(text("SELECT txid_current()"))
            for (org_id, day, eco, served), n in sorted(per_day.items()):
                dstmt = ins(days).values(
                    org_id=org_id, day=day, ecosystem=eco, served=served, count=n
                )
                await s.execute(
                    dstmt.on_conflict_do_update(
                        index_elements=["org_id", "day", "ecosystem", "served"],
                        set_={"count": days.c.count + dstmt.excluded.count},
                    )
                )
            for (org_id, eco, dist, pkg, ver, served), agg in sorted(batch.items()):
                stmt = ins(entry).values(
                    org_id=org_id,
                    ecosystem=eco,
                    distribution=dist,
                    package=pkg,
                    version=ver,
                    served=served,
                    source=agg.source,
                    source_version=agg.source_version,
                    first_seen=agg.first,
                    last_seen=agg.last,
                    count=agg.count,
                )
                ex = stmt.excluded
                # a row written before its source was known becomes due again once it is
                resourced = or_(
                    entry.c.source.is_distinct_from(ex.source),
                    entry.c.source_version.is_distinct_from(ex.source_version),
                )
                upsert = stmt.on_conflict_do_update(
                    index_elements=[
                        "org_id",
                        "ecosystem",
                        "distribution",
                        "package",
                        "version",
                        "served",
                    ],
                    set_={
                        "count": entry.c.count + ex.count,
                        "source": ex.source,
                        "source_version": ex.source_version,
                        "status": case((resourced, null()), else_=entry.c.status),
                        "last_seen": case(
                            (ex.last_seen > entry.c.last_seen, ex.last_seen),
                            else_=entry.c.last_seen,
                        ),
                        "first_seen": case(
                            (ex.first_seen < entry.c.first_seen, ex.first_seen),
                            else_=entry.c.first_seen,
                        ),
                    },
                )
                entry_id = (await s.execute(upsert.returning(entry.c.id))).scalar_one()
                for account_id, (n, seen) in sorted(agg.accounts.items()):
                    lstmt = ins(link).values(
                        entry_id=entry_id, account_id=account_id, last_seen=seen, count=n
                    )
                    lex = lstmt.excluded
                    await s.execute(
                        lstmt.on_conflict_do_update(
                            index_elements=["entry_id", "account_id"],
                            set_={
                                "count": link.c.count + lex.count,
                                "last_seen": case(
                                    (lex.last_seen > link.c.last_seen, lex.last_seen),
                                    else_=link.c.last_seen,
                                ),
                            },
                        )
                    )
