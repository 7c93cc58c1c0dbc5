"""The manifest cache on the pull path: an expired entry keeps answering while ONE query
refreshes it, and a write in this process is never undone by a query that raced it."""

from __future__ import annotations

import asyncio
from typing import Any

from graft.db import Database
from graft.ecosystems.oci.manifests import ParsedManifest
from graft.ecosystems.oci.store import MetaStore, org_space

MEDIA = "application/vnd.oci.image.manifest.v1+json"
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def _parsed() -> ParsedManifest:
    return ParsedManifest(MEDIA, (), (), None, None)


class CountingMeta(MetaStore):
    """Counts the manifest queries; `gate` holds each answer, once read, until released."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.queries = 0
        self.gate: asyncio.Event | None = None

    async def _query_manifest(self, repository_id: int, reference: str) -> Any:
        self.queries += 1
        found = await super()._query_manifest(repository_id, reference)
        if self.gate is not None:
            await self.gate.wait()
        return found


def _expire_all(meta: MetaStore) -> None:
    for entry in meta.cache._entries.values():
        entry.expires = 0.0


async def test_expired_entry_answers_while_one_query_refreshes_it(db: Database) -> None:
    writer = MetaStore(db)  # "another replica": its writes do not touch `meta`'s cache
    repo = await writer.repository_id(org_space(1), "app", create=True)
    assert repo is not None
    await writer.put_manifest(repo, A, 10, _parsed(), "latest")
    meta = CountingMeta(db)

    first = await asyncio.gather(*(meta.resolve(repo, "latest") for _ in range(20)))
    assert {i.digest for i in first if i} == {A} and meta.queries == 1  # cold: one query

    await writer.put_manifest(repo, B, 10, _parsed(), "latest")  # the tag moves elsewhere
    _expire_all(meta)
    meta.gate = asyncio.Event()
    stale = await asyncio.gather(*(meta.resolve(repo, "latest") for _ in range(20)))
    assert {i.digest for i in stale if i} == {A}  # answered at once, from the expired entry
    assert meta.queries == 2  # and one refresh started, not twenty
    meta.gate.set()
    for _ in range(50):
        await asyncio.sleep(0.01)
        hit = meta.cache.get((repo, "latest"))
        if hit is not None and hit.value is not None and hit.value.digest == B:
            break
    fresh = await meta.resolve(repo, "latest")
    assert fresh is not None and fresh.digest == B and meta.queries == 2


async def test_a_write_during_a_query_is_not_overwritten_by_its_result(db: Database) -> None:
    meta = CountingMeta(db)
    repo = await meta.repository_id(org_space(1), "app", create=True)
    assert repo is not None
    await meta.put_manifest(repo, A, 10, _parsed(), "latest")
    meta.gate = asyncio.Event()
    reading = asyncio.create_task(meta.resolve(repo, "latest"))
    for _ in range(100):  # until the query has read the old state (A) and waits at the gate
        await asyncio.sleep(0.01)
        if meta.queries == 1:
            break
    await meta.put_manifest(repo, B, 10, _parsed(), "latest")  # this process moves the tag
    meta.gate.set()
    old = await reading
    assert old is not None and old.digest == A  # that reader saw the state it read
    meta.gate = None
    after = await meta.resolve(repo, "latest")  # but A was not cached over the write
    assert after is not None and after.digest == B and meta.queries == 2
