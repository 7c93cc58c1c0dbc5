"""graft.cluster: invalidation messages delivered at commit to every replica, cluster-wide
locks, and what happens when the listening connection is lost. Two `Cluster` objects on one
database stand for two replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from graft.cluster import Cluster, announce
from graft.db import Database
from graft.errors import Conflict


@pytest.fixture
async def replicas(db: Database) -> AsyncIterator[tuple[Cluster, Cluster]]:
    other_db = Database(db.url)
    a, b = Cluster(db), Cluster(other_db)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()
    await other_db.dispose()


async def wait_for(condition: Any, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_announcements_reach_every_replica_at_commit(
    db: Database, replicas: tuple[Cluster, Cluster]
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("messages between replicas need PostgreSQL")
    a, b = replicas
    seen: list[tuple[str, Any]] = []
    a.subscribe("catalog", lambda p: seen.append(("a", p)))
    b.subscribe("catalog", lambda p: seen.append(("b", p)))
    async with db.session() as s:
        await announce(s, "catalog", {"pkg": "x"})
        await asyncio.sleep(0.2)
        assert seen == []  # not before the transaction commits
    await wait_for(lambda: len(seen) == 2)
    assert sorted(seen) == [("a", {"pkg": "x"}), ("b", {"pkg": "x"})]
    # A rolled-back change announces nothing.
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            await announce(s, "catalog", {"pkg": "y"})
            raise RuntimeError("rollback")
    async with db.session() as s:
        await announce(s, "catalog", {"pkg": "z"})
    await wait_for(lambda: len(seen) == 4)
    assert {p["pkg"] for _, p in seen if p} == {"x", "z"}


async def test_a_lost_connection_drops_every_cache_and_reconnects(
    db: Database, replicas: tuple[Cluster, Cluster]
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("needs PostgreSQL")
    a, _ = replicas
    seen: list[Any] = []
    a.subscribe("tokens", seen.append)
    async with db.session() as s:
        await s.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            )
        )
    await wait_for(lambda: None in seen)  # missed messages: everything is dropped
    await wait_for(lambda: a._conn is not None, seconds=15)
    async with db.session() as s:
        await announce(s, "tokens", {"revoked": 1})
    await wait_for(lambda: {"revoked": 1} in seen)


async def test_locks_exclude_other_replicas(
    db: Database, replicas: tuple[Cluster, Cluster]
) -> None:
    a, b = replicas
    async with a.lock("sign debian/bookworm", wait=0) as mine:
        assert mine
        async with a.lock("sign debian/bookworm", wait=0) as again:
            assert not again  # not re-entrant, even within one process
        async with b.lock("sign debian/bookworm", wait=0.2) as theirs:
            # Another replica is excluded on PostgreSQL; on SQLite locks are per process.
            assert theirs is (db.dialect != "postgresql")
        async with b.lock("something else", wait=0) as other:
            assert other
    async with b.lock("sign debian/bookworm", wait=0) as theirs:
        assert theirs


async def test_a_waiting_replica_gets_the_lock_when_it_is_released(
    db: Database, replicas: tuple[Cluster, Cluster]
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("needs PostgreSQL")
    a, b = replicas
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with a.lock("fetch u"):
            order.append("a has it")
            await release.wait()
            order.append("a releases")

    async def waiter() -> None:
        async with b.lock("fetch u") as mine:
            assert mine
            order.append("b has it")

    task_a = asyncio.create_task(holder())
    await wait_for(lambda: order == ["a has it"])
    task_b = asyncio.create_task(waiter())
    await asyncio.sleep(0.3)
    assert order == ["a has it"]
    release.set()
    await asyncio.gather(task_a, task_b)
    assert order == ["a has it", "a releases", "b has it"]
    assert a._local == {} and b._local == {}  # nothing kept per name


async def test_sqlite_delivers_in_process_only(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("SQLite behaviour")
    c = Cluster(db)
    await c.start()
    seen: list[Any] = []
    c.subscribe("catalog", seen.append)
    async with db.session() as s:
        await announce(s, "catalog", {"pkg": "x"})  # a no-op on SQLite
    c.deliver("catalog", {"pkg": "x"})
    assert seen == [{"pkg": "x"}]
    await c.stop()


async def test_an_upstream_added_or_removed_elsewhere_is_used_at_once(
    db: Database, replicas: tuple[Cluster, Cluster]
) -> None:
    """`graft upstream add` runs in another process: a replica whose list is fresh (reloaded
    only every 30 s) uses the new upstream from its next lookup on, and drops a removed one."""
    from graft.upstream.config import UpstreamConfig
    from graft.upstream.registry import UpstreamRegistry

    if db.dialect != "postgresql":
        pytest.skip("messages between replicas need PostgreSQL")
    b = replicas[1]
    serving = UpstreamRegistry(b.db, [])  # reloads by itself only every 30 s
    b.subscribe("upstreams", serving.on_announced)
    await serving.load()

    async def names_within(seconds: float, expected: list[str]) -> bool:
        for _ in range(int(seconds / 0.05)):
            if [u.name for u in await serving.for_ecosystem("pypi")] == expected:
                return True
            await asyncio.sleep(0.05)
        return False

    assert await names_within(0.1, [])
    cli = UpstreamRegistry(Database(db.url), [])  # the CLI process: no listener of its own
    try:
        mirror = UpstreamConfig(ecosystem="pypi", name="mirror", url="http://127.0.0.1:9/simple/")
        await cli.add(mirror)
        assert await names_within(5, ["mirror"])
        with pytest.raises(Conflict):  # a refused duplicate announces nothing
            await cli.add(mirror)
        await cli.remove("mirror")
        assert await names_within(5, [])
    finally:
        await cli.db.dispose()
