"""Usage events → library entries, on both database backends."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from graft.accounts.service import AccountService
from graft.db import Database
from graft.db.models import LibraryEntry, LibraryEntryAccount
from graft.usage import Served, UsageEvent, UsageRecorder

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
async def ids(db: Database) -> dict[str, int]:
    svc = AccountService(db, default_grace=dt.timedelta(hours=1))
    a = await svc.create_org("acme")
    b = await svc.create_org("beta")
    ci = await svc.create_account("acme", "ci", kind="service")
    alice = await svc.create_account("acme", "alice")
    bob = await svc.create_account("beta", "bob")
    return {"acme": a.id, "beta": b.id, "ci": ci.id, "alice": alice.id, "bob": bob.id}


def event(ids: dict[str, int], account: str, org: str = "acme", **kw: object) -> UsageEvent:
    fields: dict[str, object] = {
        "org_id": ids[org],
        "account_id": ids[account],
        "ecosystem": "pypi",
        "package": "requests",
        "version": "2.31.0",
        "served": Served.UPSTREAM,
        "at": T0,
    }
    fields.update(kw)
    return UsageEvent(**fields)  # type: ignore[arg-type]


async def entries(db: Database) -> list[LibraryEntry]:
    async with db.session() as s:
        return list(await s.scalars(select(LibraryEntry).order_by(LibraryEntry.id)))


async def test_events_are_folded_into_library_entries(db: Database, ids: dict[str, int]) -> None:
    rec = UsageRecorder(db, flush_seconds=60)
    for i in range(5):
        rec.record(event(ids, "ci", at=T0 + dt.timedelta(minutes=i)))
    rec.record(event(ids, "alice", at=T0 - dt.timedelta(days=1)))
    rec.record(event(ids, "ci", version="2.31.0+graft.1", served=Served.PATCHED))
    rec.record(event(ids, "bob", org="beta"))
    assert rec.pending == 3  # aggregated in memory: one key per library entry
    assert await rec.flush() == 3
    rows = await entries(db)
    by_key = {(r.org_id, r.version, r.served): r for r in rows}
    up = by_key[(ids["acme"], "2.31.0", "upstream")]
    assert up.count == 6
    assert up.first_seen == T0 - dt.timedelta(days=1)
    assert up.last_seen == T0 + dt.timedelta(minutes=4)
    assert by_key[(ids["acme"], "2.31.0+graft.1", "patched")].count == 1
    assert by_key[(ids["beta"], "2.31.0", "upstream")].count == 1
    async with db.session() as s:
        links = {
            (link.entry_id, link.account_id): link.count
            for link in await s.scalars(select(LibraryEntryAccount))
        }
    assert links[(up.id, ids["ci"])] == 5
    assert links[(up.id, ids["alice"])] == 1


async def test_later_batches_add_to_the_same_entry(db: Database, ids: dict[str, int]) -> None:
    rec = UsageRecorder(db, flush_seconds=60)
    rec.record(event(ids, "ci"))
    await rec.flush()
    rec.record(event(ids, "ci", at=T0 + dt.timedelta(hours=1)))
    rec.record(event(ids, "ci", at=T0 - dt.timedelta(hours=1)))
    await rec.flush()
    (row,) = await entries(db)
    assert row.count == 3
    assert row.first_seen == T0 - dt.timedelta(hours=1)
    assert row.last_seen == T0 + dt.timedelta(hours=1)
    assert await rec.flush() == 0


async def test_os_fallback_and_distribution_are_kept_apart(
    db: Database, ids: dict[str, int]
) -> None:
    rec = UsageRecorder(db, flush_seconds=60)
    common = {"ecosystem": "debian", "package": "rootio-curl", "version": "7.88.1-10+deb12u8"}
    rec.record(event(ids, "ci", distribution="bookworm", served=Served.FALLBACK, **common))
    rec.record(event(ids, "ci", distribution="trixie", served=Served.FALLBACK, **common))
    await rec.flush()
    assert sorted(r.distribution for r in await entries(db)) == ["bookworm", "trixie"]


async def test_stop_flushes_what_is_queued(db: Database, ids: dict[str, int]) -> None:
    rec = UsageRecorder(db, flush_seconds=3600)
    await rec.start()
    rec.record(event(ids, "ci"))
    await rec.stop()
    assert [r.count for r in await entries(db)] == [1]


async def test_background_task_flushes_periodically(db: Database, ids: dict[str, int]) -> None:
    import asyncio

    rec = UsageRecorder(db, flush_seconds=0.05)
    await rec.start()
    try:
        rec.record(event(ids, "ci"))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if await entries(db):
                break
        assert [r.count for r in await entries(db)] == [1]
    finally:
        await rec.stop()


async def test_a_failed_write_keeps_the_batch(
    db: Database, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = UsageRecorder(db, flush_seconds=60)
    rec.record(event(ids, "ci"))
    real_write = rec._write
    calls = 0

    async def flaky(batch):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        await real_write(batch)

    monkeypatch.setattr(rec, "_write", flaky)
    with pytest.raises(ConnectionError):
        await rec.flush()
    rec.record(event(ids, "ci"))  # arrives while the first batch waits
    await rec.flush()
    assert [r.count for r in await entries(db)] == [2]


async def test_a_batch_committed_despite_an_error_is_not_counted_twice(
    db: Database, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection breaks after COMMIT reached the server: the batch is in the database,
    and the recorder, told of an error, must not write it again (a replica stopping while the
    database connection drops)."""
    if db.dialect != "postgresql":
        pytest.skip("an ambiguous COMMIT is a network failure; SQLite has none")
    rec = UsageRecorder(db, flush_seconds=60)
    rec.record(event(ids, "ci"))
    real_write = rec._write

    async def reply_lost(batch):  # type: ignore[no-untyped-def]
        await real_write(batch)
        raise ConnectionError("connection reset after COMMIT")

    monkeypatch.setattr(rec, "_write", reply_lost)
    await rec.flush()  # no error: the batch is known to be written
    monkeypatch.undo()
    rec.record(event(ids, "ci"))
    await rec.flush()
    assert [r.count for r in await entries(db)] == [2]


async def test_a_rolled_back_batch_is_written_again(
    db: Database, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction had an id and failed before COMMIT: the batch is kept and retried."""
    rec = UsageRecorder(db, flush_seconds=60)
    rec.record(event(ids, "ci"))
    real_write = rec._write

    async def fails_inside(batch):  # type: ignore[no-untyped-def]
        original = db.session

        def broken_session():  # type: ignore[no-untyped-def]
            cm = original()

            class Wrapped:
                async def __aenter__(self):  # type: ignore[no-untyped-def]
                    self.s = await cm.__aenter__()
                    return self.s

                async def __aexit__(self, *exc):  # type: ignore[no-untyped-def]
                    await cm.__aexit__(RuntimeError, RuntimeError("boom"), None)
                    raise RuntimeError("failed before COMMIT")

            return Wrapped()

        monkeypatch.setattr(db, "session", broken_session)
        try:
            await real_write(batch)
        finally:
            monkeypatch.setattr(db, "session", original)

    monkeypatch.setattr(rec, "_write", fails_inside)
    with pytest.raises(RuntimeError):
        await rec.flush()
    if db.dialect == "postgresql":
        assert rec.pending == 1  # looked up: not committed, so kept
    monkeypatch.setattr(rec, "_write", real_write)
    await rec.flush()
    assert [r.count for r in await entries(db)] == [1]


async def test_queue_is_bounded(db: Database, ids: dict[str, int]) -> None:
    rec = UsageRecorder(db, flush_seconds=60, max_keys=2)
    for v in ("1", "2", "3"):
        rec.record(event(ids, "ci", version=v))
    rec.record(event(ids, "ci", version="1"))  # an existing key still counts
    assert rec.pending == 2 and rec.dropped == 1
    await rec.flush()
    assert sorted((r.version, r.count) for r in await entries(db)) == [("1", 2), ("2", 1)]


async def test_installs_are_counted_per_day_and_served(db: Database, ids: dict[str, int]) -> None:
    from graft.db.models import UsageDay

    rec = UsageRecorder(db, flush_seconds=60)
    for i in range(3):  # one library entry spanning two days: counted on each day
        rec.record(event(ids, "ci", at=T0 + dt.timedelta(hours=6 * i)))
    rec.record(event(ids, "ci", version="2.31.0+graft.1", served=Served.PATCHED))
    rec.record(event(ids, "bob", org="beta"))
    await rec.flush()
    rec.record(event(ids, "alice", version="2.32.0", at=T0))  # a second batch adds up
    await rec.flush()
    async with db.session() as s:
        rows = {
            (r.org_id, r.day.isoformat(), r.ecosystem, r.served): r.count
            for r in await s.scalars(select(UsageDay))
        }
    assert rows == {
        (ids["acme"], "2026-05-01", "pypi", "upstream"): 3,
        (ids["acme"], "2026-05-02", "pypi", "upstream"): 1,
        (ids["acme"], "2026-05-01", "pypi", "patched"): 1,
        (ids["beta"], "2026-05-01", "pypi", "upstream"): 1,
    }
